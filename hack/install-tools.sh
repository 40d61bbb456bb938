#!/usr/bin/env bash
# Builds the pinned Go tools (code generators, controller-gen, staticcheck) from the hack/tools
# module into _output/tools/bin.
#
# The versions are whatever hack/tools/go.mod pins; nothing is fetched by "@latest". A stamp
# file records the inputs of the last build (the tools module, this script, the Go version), so
# a warm run that finds every binary up to date returns at once. Otherwise `go build` does the
# work and its build cache keeps a rebuild cheap.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"

tools_mod="${SKERRY_ROOT}/hack/tools"
bin_dir="${SKERRY_TOOLS_BIN:-${SKERRY_OUTPUT}/tools/bin}"
stamp="${bin_dir}/.stamp"

# Each tool: <binary name>=<package>.
tools=(
  "client-gen=k8s.io/code-generator/cmd/client-gen"
  "controller-gen=sigs.k8s.io/controller-tools/cmd/controller-gen"
  "deepcopy-gen=k8s.io/code-generator/cmd/deepcopy-gen"
  "informer-gen=k8s.io/code-generator/cmd/informer-gen"
  "lister-gen=k8s.io/code-generator/cmd/lister-gen"
  "protoc-gen-go=google.golang.org/protobuf/cmd/protoc-gen-go"
  "protoc-gen-go-grpc=google.golang.org/grpc/cmd/protoc-gen-go-grpc"
  "staticcheck=honnef.co/go/tools/cmd/staticcheck"
)

# The tools module is its own module: never let a go.work or the caller's GOFLAGS (say
# -mod=vendor) pull the main module's settings into it.
export GOWORK=off
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-mod=readonly"

want=$(
  {
    go version
    printf '%s\n' "${tools[@]}"
    cat "${tools_mod}/go.mod" "${tools_mod}/go.sum" "${BASH_SOURCE[0]}"
  } | sha256sum | cut -d' ' -f1
)

up_to_date() {
  [[ -f $stamp && $(<"$stamp") == "$want" ]] || return 1
  local t
  for t in "${tools[@]}"; do
    [[ -x ${bin_dir}/${t%%=*} ]] || return 1
  done
}

if up_to_date; then
  exit 0
fi

skerry::log "building tools into ${bin_dir}"
mkdir -p "$bin_dir"
rm -f "$stamp"
pkgs=()
for t in "${tools[@]}"; do
  pkgs+=("${t#*=}")
done
# Build into a scratch directory and move the binaries in place, so a failed or concurrent
# build never leaves a half-written binary where the scripts look for it.
scratch=$(mktemp -d "${bin_dir}/.build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
(cd "$tools_mod" && go build -o "${scratch}/" "${pkgs[@]}")
for t in "${tools[@]}"; do
  name=${t%%=*}
  [[ -x ${scratch}/${name} ]] || skerry::die "go build did not produce ${name}"
  mv -f "${scratch}/${name}" "${bin_dir}/${name}"
done
echo "$want" >"$stamp"
skerry::log "tools ready: $("${bin_dir}/staticcheck" -version), controller-gen $("${bin_dir}/controller-gen" --version | sed 's/^Version: //')"

#!/usr/bin/env bash
# Regenerates everything derived from the API types under api/ (what `make generate` runs):
#   1. zz_generated.deepcopy.go in every package marked +k8s:deepcopy-gen=package  (deepcopy-gen)
#   2. the typed clientset, listers and informers under pkg/client  (client-, lister-, informer-gen)
#   3. the CRD manifests under manifests/crds  (controller-gen)
#   4. the DMI gRPC code from api/**/*.proto  (protoc with protoc-gen-go and protoc-gen-go-grpc)
#   5. gofmt on the generated Go code
#   6. docs/configuration.md from the config types of cloud/config and edge/config  (hack/cmd/configdoc)
# Previous output is removed first, so types that were deleted leave no stale files behind.
#
# Run from anywhere. SKERRY_ROOT selects the tree to generate into (hack/verify-codegen.sh points
# it at a scratch copy); the tools always come from this checkout's _output/tools/bin.
set -euo pipefail
self_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "${self_root}/hack/lib/util.sh"

tools_bin="${SKERRY_TOOLS_BIN:-${self_root}/_output/tools/bin}"
SKERRY_ROOT="$self_root" SKERRY_TOOLS_BIN="$tools_bin" "${self_root}/hack/install-tools.sh"

module=github.com/skerry-io/skerry
boilerplate="${self_root}/hack/boilerplate.go.txt"
client_pkg="${module}/pkg/client"
# The generated .pb.go files name the protoc version in their header, so a different protoc
# would make `make verify` fail on every run: insist on the one the checked-in code came from.
protoc_bin="${PROTOC:-protoc}"
protoc_version="libprotoc 3.21.12"
protoc_include="${PROTOC_INCLUDE:-/usr/include}" # holds google/protobuf/any.proto

cd "$SKERRY_ROOT"
[[ $(go list -m) == "$module" ]] || skerry::die "${SKERRY_ROOT} is not the ${module} module"
# Generators load packages with go/packages: keep them on the module's own go.mod, quietly.
export GOWORK=off GOFLAGS="${GOFLAGS:+${GOFLAGS} }-mod=readonly"

# API packages (directories under api/) that ask for a client: api/<group>/<version>.
mapfile -t client_dirs < <(grep -rlE --include='*.go' '^// \+genclient$' api | xargs -r -n1 dirname | LC_ALL=C sort -u)
mapfile -t deepcopy_dirs < <(grep -rlE --include='doc.go' '^// \+k8s:deepcopy-gen=package$' api | xargs -r -n1 dirname | LC_ALL=C sort -u)

skerry::log "deepcopy: ${deepcopy_dirs[*]:-none}"
find api -name zz_generated.deepcopy.go -delete
if ((${#deepcopy_dirs[@]})); then
  "${tools_bin}/deepcopy-gen" \
    --go-header-file "$boilerplate" \
    --output-file zz_generated.deepcopy.go \
    "${deepcopy_dirs[@]/#/${module}/}"
fi

rm -rf pkg/client/clientset pkg/client/listers pkg/client/informers
mkdir -p manifests/crds
# Only remove what controller-gen wrote, never a hand-written manifest.
for f in manifests/crds/*.yaml; do
  if [[ -f $f ]] && grep -q '^    controller-gen.kubebuilder.io/version:' "$f"; then
    rm -f "$f"
  fi
done

# The remaining generators only read the API packages (now complete with their deep-copy
# methods) and write disjoint outputs, so they run in parallel. Each one's output is shown only
# when it fails.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
declare -A pids=()
run() { # run NAME CMD...: start CMD in the background, logging to $logs/NAME.
  local name=$1
  shift
  "$@" >"${logs}/${name}" 2>&1 &
  pids[$name]=$!
}

skerry::log "clientset, listers, informers: ${client_dirs[*]:-none}; CRDs: manifests/crds"
if ((${#client_dirs[@]})); then
  inputs=()
  for d in "${client_dirs[@]}"; do
    inputs+=(--input "${d#api/}") # <group>/<version>
  done
  run client-gen "${tools_bin}/client-gen" \
    --go-header-file "$boilerplate" \
    --clientset-name versioned \
    --input-base "${module}/api" \
    "${inputs[@]}" \
    --output-dir pkg/client/clientset \
    --output-pkg "${client_pkg}/clientset"
  run lister-gen "${tools_bin}/lister-gen" \
    --go-header-file "$boilerplate" \
    --output-dir pkg/client/listers \
    --output-pkg "${client_pkg}/listers" \
    "${client_dirs[@]/#/${module}/}"
  run informer-gen "${tools_bin}/informer-gen" \
    --go-header-file "$boilerplate" \
    --versioned-clientset-package "${client_pkg}/clientset/versioned" \
    --listers-package "${client_pkg}/listers" \
    --output-dir pkg/client/informers \
    --output-pkg "${client_pkg}/informers" \
    "${client_dirs[@]/#/${module}/}"
fi
run controller-gen "${tools_bin}/controller-gen" \
  crd:crdVersions=v1 \
  paths=./api/... \
  output:crd:artifacts:config=manifests/crds

failed=()
for name in "${!pids[@]}"; do
  if ! wait "${pids[$name]}"; then
    failed+=("$name")
    cat "${logs}/${name}" >&2
  fi
done
((${#failed[@]} == 0)) || skerry::die "generator(s) failed: ${failed[*]}"

mapfile -t protos < <(find api -name '*.proto' | LC_ALL=C sort)
skerry::log "protobuf: ${protos[*]:-none}"
find api \( -name '*.pb.go' -o -name '*_grpc.pb.go' \) -delete
if ((${#protos[@]})); then
  command -v "$protoc_bin" >/dev/null || skerry::die "protoc not found (apt-get install protobuf-compiler)"
  [[ $("$protoc_bin" --version) == "$protoc_version" ]] ||
    skerry::die "need ${protoc_version}, have $("$protoc_bin" --version): the generated headers would differ"
  [[ -f ${protoc_include}/google/protobuf/any.proto ]] ||
    skerry::die "no well-known protobuf types under ${protoc_include} (apt-get install libprotobuf-dev)"
  # Paths relative to the tree root, so each file registers as api/<...>.proto: unique in a binary.
  "$protoc_bin" -I . -I "$protoc_include" \
    --plugin=protoc-gen-go="${tools_bin}/protoc-gen-go" \
    --plugin=protoc-gen-go-grpc="${tools_bin}/protoc-gen-go-grpc" \
    --go_out=. --go_opt=paths=source_relative \
    --go-grpc_out=. --go-grpc_opt=paths=source_relative \
    "${protos[@]}"
fi

skerry::log "gofmt"
find api pkg/client/clientset pkg/client/listers pkg/client/informers -name '*.go' \
  \( -name zz_generated.deepcopy.go -o -path 'pkg/client/*' \) -print0 | xargs -r0 gofmt -s -w

skerry::log "configuration reference: docs/configuration.md"
go run ./hack/cmd/configdoc -root . -o docs/configuration.md

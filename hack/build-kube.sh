#!/usr/bin/env bash
# Builds the Kubernetes control plane for the local cluster (kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) from the pinned module in hack/kube and puts
# the binaries in _output/kube/<version>/.
#
# Cache: a cold build takes minutes, and CI starts each run from a fresh clone, so the binaries are
# built into a versioned cache outside the clone:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/skerry/kube/<version>-<hash>/
# where <hash> covers hack/kube/go.mod, hack/kube/go.sum and BUILD_SCRIPT_VERSION below (bump it
# when the build flags change). A binary is reused when it is present and reports the expected
# version; only missing or wrong ones are rebuilt. The cache entries are then hard-linked (or
# copied, across file systems) into _output/kube/<version>/. Delete the cache directory to force a
# rebuild.
#
# Usage: hack/build-kube.sh    (prints the output directory on stdout)
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"

KUBE_VERSION=v1.36.3
BUILD_SCRIPT_VERSION=1
KUBE_MODULE_DIR="${SKERRY_ROOT}/hack/kube"
KUBE_BINARIES=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

skerry::kube::cache_dir() {
  local hash
  hash=$(cat "${KUBE_MODULE_DIR}/go.mod" "${KUBE_MODULE_DIR}/go.sum" <(echo "build-script=${BUILD_SCRIPT_VERSION}") |
    sha256sum | cut -c1-12)
  echo "${XDG_CACHE_HOME:-${HOME}/.cache}/skerry/kube/${KUBE_VERSION}-${hash}"
}

# skerry::kube::has_version BIN: BIN runs and reports KUBE_VERSION (a binary built without the
# version ldflags reports v0.0.0-master and must not be reused).
skerry::kube::has_version() {
  local bin=$1 out
  [[ -x $bin ]] || return 1
  case $(basename "$bin") in
    kubectl) out=$("$bin" version --client 2>/dev/null) || return 1 ;;
    *) out=$("$bin" --version 2>/dev/null) || return 1 ;;
  esac
  [[ $out == *"${KUBE_VERSION}"* ]]
}

skerry::kube::ldflags() {
  local major minor commit date
  major=${KUBE_VERSION#v}
  major=${major%%.*}
  minor=${KUBE_VERSION#v*.}
  minor=${minor%%.*}
  # The module proxy records the release time (used as a reproducible build date) and, for some
  # modules, the VCS commit. For k8s.io/kubernetes it has no commit, so gitCommit stays empty
  # rather than the "$Format:%H$" placeholder.
  local info
  info=$(cd "${KUBE_MODULE_DIR}" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}} {{with .Origin}}{{.Hash}}{{end}}' k8s.io/kubernetes)
  read -r date commit <<<"${info}"
  local flags=(-s -w)
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=(
      "-X ${pkg}.gitVersion=${KUBE_VERSION}"
      "-X ${pkg}.gitMajor=${major}"
      "-X ${pkg}.gitMinor=${minor}"
      "-X ${pkg}.gitCommit=${commit:-}"
      "-X ${pkg}.gitTreeState=clean"
      "-X ${pkg}.buildDate=${date}"
    )
  done
  echo "${flags[*]}"
}

# skerry::kube::install SRC DST: hard-link SRC to DST (copy when linking fails), atomically.
skerry::kube::install() {
  local src=$1 dst=$2
  [[ $src -ef $dst ]] && return 0
  # A copy made by an earlier run keeps the source's size and mtime (cp -p): no need to copy again.
  if [[ -f $dst && $(stat -c %s.%Y "$src") == "$(stat -c %s.%Y "$dst")" ]]; then
    return 0
  fi
  rm -f "${dst}.tmp"
  ln "$src" "${dst}.tmp" 2>/dev/null || cp -p "$src" "${dst}.tmp"
  mv -f "${dst}.tmp" "$dst"
}

main() {
  local start=${SECONDS}
  local cache out
  cache=$(skerry::kube::cache_dir)
  out="${SKERRY_OUTPUT}/kube/${KUBE_VERSION}"
  mkdir -p "$cache" "$out"

  # Serialise concurrent builds into the same cache entry (two CI jobs, or local-up twice).
  exec 9>"${cache}/.lock"
  flock 9

  local missing=() bin
  for bin in "${KUBE_BINARIES[@]}"; do
    skerry::kube::has_version "${cache}/${bin}" || missing+=("$bin")
  done

  if ((${#missing[@]} > 0)); then
    skerry::log "building ${missing[*]} ${KUBE_VERSION} into ${cache} (several minutes when the Go build cache is cold)"
    local tmp pkgs=()
    tmp=$(mktemp -d "${cache}/.build.XXXXXX")
    # shellcheck disable=SC2064 # expand tmp now: it is local to this function
    trap "rm -rf '${tmp}'" EXIT
    for bin in "${missing[@]}"; do
      pkgs+=("k8s.io/kubernetes/cmd/${bin}")
    done
    (
      cd "${KUBE_MODULE_DIR}"
      CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "$(skerry::kube::ldflags)" -o "${tmp}/" "${pkgs[@]}"
    )
    for bin in "${missing[@]}"; do
      skerry::kube::has_version "${tmp}/${bin}" || skerry::die "${bin} does not report ${KUBE_VERSION}"
      mv -f "${tmp}/${bin}" "${cache}/${bin}"
    done
    rm -rf "$tmp"
    trap - EXIT
  fi

  for bin in "${KUBE_BINARIES[@]}"; do
    skerry::kube::install "${cache}/${bin}" "${out}/${bin}"
  done
  skerry::log "kube ${KUBE_VERSION} binaries ready in ${out} ($((SECONDS - start))s)"
  echo "$out"
}

main "$@"

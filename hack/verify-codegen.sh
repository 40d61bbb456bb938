#!/usr/bin/env bash
# Fails when the generated code or CRD manifests differ from what hack/update-codegen.sh makes of
# the API types (what `make verify` runs). It regenerates into a scratch copy of the source tree,
# so the working tree is never modified, pass or fail. Run from anywhere.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
cd "$SKERRY_ROOT"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

# Copy the source tree: what git would see (tracked and untracked-but-not-ignored files) in a
# checkout, everything but _output and .git otherwise.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do
      # Tracked files deleted from the working tree are listed too: skip them.
      if [[ -e $f || -L $f ]]; then printf '%s\0' "$f"; fi
    done |
    tar --null -T - -cf - | tar -C "$scratch" -xf -
else
  tar --exclude=./_output --exclude=./.git -cf - . | tar -C "$scratch" -xf -
fi

# This checkout's generator script and tools, the scratch copy as the tree to generate into.
here=$SKERRY_ROOT
SKERRY_ROOT="$scratch" SKERRY_TOOLS_BIN="${SKERRY_OUTPUT}/tools/bin" "${here}/hack/update-codegen.sh"

# Compare everything update-codegen.sh writes, in both directions (changed, missing and stale
# extra files): the output directories, the deep-copy and protobuf files of both trees, and the
# configuration reference.
mapfile -t deepcopy_files < <(
  { find api -name zz_generated.deepcopy.go -o -name '*.pb.go'; (cd "$scratch" && find api -name zz_generated.deepcopy.go -o -name '*.pb.go'); } 2>/dev/null |
    LC_ALL=C sort -u
)
out=$(
  for d in pkg/client/clientset pkg/client/listers pkg/client/informers manifests/crds; do
    diff -ruN "$d" "${scratch}/${d}" || true
  done
  for f in "${deepcopy_files[@]}"; do
    diff -uN "$f" "${scratch}/${f}" || true
  done
  diff -uN docs/configuration.md "${scratch}/docs/configuration.md" || true
)
if [[ -n $out ]]; then
  printf '%s\n' "$out" | head -n 400 >&2 || true # head may close the pipe early
  skerry::die "generated files are stale (diff above: - working tree, + regenerated): run 'make generate'"
fi
skerry::log "generated code, CRDs and docs/configuration.md are up to date"

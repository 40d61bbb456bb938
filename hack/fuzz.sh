#!/usr/bin/env bash
# Runs every fuzz target in the main module for FUZZTIME each (default 10s).
# `go test` already replays each target's seed corpus; this explores beyond it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
cd "$SKERRY_ROOT"
fuzztime=${FUZZTIME:-10s}

mapfile -t files < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^./_output/' | sort)
((${#files[@]} > 0)) || skerry::die "no fuzz targets found"
for f in "${files[@]}"; do
  pkg="./$(dirname "${f#./}")"
  while read -r target; do
    skerry::log "fuzz ${pkg} ${target} for ${fuzztime}"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done < <(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //')
done

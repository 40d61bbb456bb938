#!/usr/bin/env bash
# Runs every fuzz target in the main module for FUZZTIME each (default 5000x: 5,000 inputs).
# `go test` already replays each target's seed corpus; this explores beyond it.
#
# The budget is a count of executions, not a duration: with Go 1.26 a duration budget can end
# in "context deadline exceeded" with no crasher when the fuzz workers are starved of CPU at
# the deadline (a race in the fuzzing coordinator, go.dev/issue/75804, fixed in Go 1.27), which
# failed CI here on a loaded 2-core machine. A count only makes a slow run slower.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
cd "$SKERRY_ROOT"
fuzztime=${FUZZTIME:-5000x}

mapfile -t files < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Za-z0-9_]*\(' . | grep -v '^./_output/' | sort)
((${#files[@]} > 0)) || skerry::die "no fuzz targets found"
for f in "${files[@]}"; do
  pkg="./$(dirname "${f#./}")"
  while read -r target; do
    skerry::log "fuzz ${pkg} ${target} for ${fuzztime}"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg"
  done < <(grep -oE '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //')
done

#!/usr/bin/env bash
# Proves the runtime started by hack/runtime-up.sh works, through CRI as edged uses it:
#   1. a busybox pod on the pod network (CNI IP, CRI log file),
#   2. the same with hostNetwork,
#   3. skerry-demo answering HTTP on its pod IP and on a hostPort (portmap), with env and a
#      mounted config file, then stopping cleanly on SIGTERM.
# Each step prints its timings. Exits non-zero on the first failure.
set -euo pipefail
# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
skerry::runtime_paths

crismoke=${SKERRY_RUNTIME_BIN}/crismoke
[[ -x $crismoke ]] || skerry::die "${crismoke} missing: run hack/runtime-up.sh first"
"$crismoke" --endpoint "$SKERRY_CRI_ENDPOINT" --timeout 10s wait >/dev/null ||
  skerry::die "no ready runtime at ${SKERRY_CRI_ENDPOINT}: run hack/runtime-up.sh first"

run() {
  "$crismoke" --endpoint "$SKERRY_CRI_ENDPOINT" --timeout 90s "$@"
}

run smoke
run --host-network smoke
run --host-port "${SKERRY_SMOKE_HOST_PORT:-18080}" demo
skerry::log "runtime smoke test passed"

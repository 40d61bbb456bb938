#!/usr/bin/env bash
# Devices benchmark (issue 6). Builds cloudcore, edgecore and keadm with the release flags
# (as make build) and bench/devices into a temporary directory, then runs
#   devices twin   twin updates/s from MQTT into the edge store and the outbox, in one
#                  process, with and without coalescing (no cluster needed);
#   devices cloud  DMI report → DeviceStatus latency and edgecore RSS with 0 and 1,000
#                  devices, against the running local cluster (hack/local-up.sh), with the
#                  real cloudcore (127.0.0.1:29100/29102/29106) and edgecore (MQTT
#                  127.0.0.1:29884, MetaServer :29110, Edged off: no container runtime).
# The device CRDs are applied first (server-side apply: idempotent). devices cloud removes
# what it created (namespace, Node, Lease, token, processes, work directory) at exit.
#
#   bench/devices.sh                                   # both, default flags
#   bench/devices.sh twin -devices 10 -duration 10s    # one, with its flags
#   bench/devices.sh cloud -devices 1000 -settle 30s
set -euo pipefail
# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib/util.sh"
cd "$SKERRY_ROOT"

work=$(mktemp -d)
kubectl=("${SKERRY_OUTPUT}/kube/v1.36.3/kubectl" --kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig")
bench_pid=''

cleanup() {
  # devices cleans up after itself on SIGTERM; wait for it.
  if [[ -n $bench_pid ]]; then kill -TERM "$bench_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

CGO_ENABLED=0 go build -trimpath -ldflags "$(hack/version.sh)" -o "$work/" ./cmd/cloudcore ./cmd/edgecore ./cmd/keadm
go build -o "$work/" ./bench/devices

run() {
  "$work/devices" "$@" &
  bench_pid=$!
  wait "$bench_pid"
  bench_pid=''
}

cloud() {
  if [[ $(timeout 10 "${kubectl[@]}" get --raw /readyz 2>/dev/null) != ok ]]; then
    echo "devices.sh: the local cluster is not running (hack/local-up.sh --no-runtime starts it)" >&2
    exit 1
  fi
  "${kubectl[@]}" apply --server-side -f manifests/crds >/dev/null
  run cloud -kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig" -cloudcore "$work/cloudcore" \
    -edgecore "$work/edgecore" -keadm "$work/keadm" "$@"
}

case "${1:-}" in
twin) shift; run twin "$@" ;;
cloud) shift; cloud "$@" ;;
'')
  run twin -devices 10
  run twin -devices 100
  run twin -devices 1000
  cloud
  ;;
*) echo "usage: bench/devices.sh [twin|cloud [flags]]" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Edged benchmark (issue 5): pod start latency (edge store commit → Running reported in the
# API server) one at a time and in parallel against the CRI floor measured by the same
# program, and edgecore's RSS, PSS and CPU idle with 0 and with the parallel run's pods.
# Starts the local control plane and runtime if they are not running (and stops what it
# started at the end), builds cloudcore, edgecore and keadm (make build) and bench/podstart,
# and runs it; podstart itself starts and stops cloudcore and edgecore and deletes what it
# created.
#
#   bench/podstart.sh                          # 20 one at a time, 20 at once, with and without token
#   bench/podstart.sh -token=false -idle 30s
#
# Every wait inside podstart has a deadline (-timeout, default 2m per wait).
set -euo pipefail
# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib/util.sh"
cd "$SKERRY_ROOT"

work=$(mktemp -d)
kubectl=("${SKERRY_OUTPUT}/kube/v1.36.3/kubectl" --kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig")
crismoke=(go run ./hack/cmd/crismoke --timeout 30s)
started_cluster=0 started_runtime=0 bench_pid=''

cleanup() {
  # podstart cleans up after itself on SIGTERM; wait for it before stopping anything.
  if [[ -n $bench_pid ]]; then kill -TERM "$bench_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  if ((started_cluster)); then
    hack/local-down.sh >/dev/null 2>&1
  elif ((started_runtime)); then
    hack/runtime-down.sh >/dev/null 2>&1
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if [[ $(timeout 10 "${kubectl[@]}" get --raw /readyz 2>/dev/null) != ok ]]; then
  started_cluster=1
  timeout 900 hack/local-up.sh >/dev/null
elif ! timeout 40 "${crismoke[@]}" wait >/dev/null 2>&1; then
  started_runtime=1
  timeout 600 hack/runtime-up.sh >/dev/null
fi
timeout 600 make -s build >/dev/null
go build -o "$work/" ./bench/podstart

"$work/podstart" -kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig" -cloudcore "${SKERRY_OUTPUT}/bin/cloudcore" \
  -edgecore "${SKERRY_OUTPUT}/bin/edgecore" -keadm "${SKERRY_OUTPUT}/bin/keadm" "$@" &
bench_pid=$!
wait "$bench_pid"
bench_pid=''

#!/usr/bin/env bash
# Pod sync benchmark (issue 4): pod created in the API server → committed in a hollow edge
# node's real store, bytes on the wire per pod, cloudcore RSS. Starts the local control plane
# if it is not running (and stops it again at the end), builds cloudcore and bench/podsync,
# and runs it; podsync itself starts and stops cloudcore and deletes what it created.
#
#   bench/podsync.sh -nodes 1 -pods-per-node 100 -sequential
#   bench/podsync.sh -nodes 100 -pods-per-node 10 -rate 50 [-automount-token=false]
#
# Every wait inside podsync has a deadline (-timeout, default 5m per phase).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib/util.sh"
cd "$SKERRY_ROOT"

work=$(mktemp -d)
kubectl=("${SKERRY_OUTPUT}/kube/v1.36.3/kubectl" --kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig")
started_cluster=0 bench_pid=''

cleanup() {
  # podsync cleans up after itself on SIGTERM; wait for it before stopping the cluster.
  [[ -n $bench_pid ]] && kill -TERM "$bench_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  ((started_cluster)) && hack/local-down.sh --no-runtime >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT

if [[ $("${kubectl[@]}" get --raw /readyz 2>/dev/null) != ok ]]; then
  hack/local-up.sh --no-runtime >/dev/null
  started_cluster=1
fi
make -s build >/dev/null
go build -o "$work/" ./bench/podsync

"$work/podsync" -kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig" -cloudcore "${SKERRY_OUTPUT}/bin/cloudcore" "$@" &
bench_pid=$!
wait "$bench_pid"
bench_pid=''

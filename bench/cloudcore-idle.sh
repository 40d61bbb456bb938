#!/usr/bin/env bash
# Measures the real cloudcore binary with N idle edgesim nodes: cloudcore's RSS per connected
# node, the time for all nodes to connect, and the time for all of them to reconnect after a
# cloudcore restart. Needs the local control plane (started here if it is not running).
#
#   bench/cloudcore-idle.sh [NODES] [CONNECT_RATE]     e.g. bench/cloudcore-idle.sh 1000 500
#
# Everything runs on 127.0.0.1 and every wait has a deadline.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../hack/lib/util.sh"
cd "$SKERRY_ROOT"

nodes=${1:-1000}
rate=${2:-500}
work=$(mktemp -d)
kubectl=("${SKERRY_OUTPUT}/kube/v1.36.3/kubectl" --kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig")
admin=127.0.0.1:10006
cloud_pid='' sim_pid='' started_cluster=0

cleanup() {
  [[ -n $sim_pid ]] && kill -TERM "$sim_pid" 2>/dev/null || true
  [[ -n $cloud_pid ]] && kill -TERM "$cloud_pid" 2>/dev/null || true
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
CGO_ENABLED=0 go build -o "$work/" ./cmd/edgesim

cat >"$work/cloudcore.yaml" <<CFG
apiVersion: cloudcore.config.skerry.io/v1alpha1
kind: CloudCore
kubeAPI: {kubeconfig: ${SKERRY_OUTPUT}/local/kubeconfig}
hub: {nodeLimit: $((nodes + 100)), websocket: {enable: true, address: "127.0.0.1:10000"}}
bootstrap: {address: "127.0.0.1:10002", advertiseAddresses: [127.0.0.1]}
admin: {address: "${admin}"}
CFG

now_ms() { local us=${EPOCHREALTIME/[.,]/}; echo $((us / 1000)); }
connected() { curl -fs "http://${admin}/debug/nodes" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo 0; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
start_cloudcore() {
  _output/bin/cloudcore --config "$work/cloudcore.yaml" >>"$work/cloudcore.log" 2>&1 &
  cloud_pid=$!
  skerry::wait_for "cloudcore /readyz" 60 curl -fs "http://${admin}/readyz" ||
    { tail -20 "$work/cloudcore.log"; exit 1; }
}
wait_all() { # wait_all TIMEOUT: until cloudcore reports every node connected
  local deadline=$((SECONDS + $1))
  until (($(connected) >= nodes)); do
    ((SECONDS < deadline)) || { echo "only $(connected)/${nodes} nodes connected" >&2; return 1; }
    sleep 0.1
  done
}

start_cloudcore
"${kubectl[@]}" -n kubeedge get secret skerry-ca -o jsonpath='{.data.tls\.crt}' | base64 -d >"$work/ca.crt"
"${kubectl[@]}" -n kubeedge get secret skerry-ca -o jsonpath='{.data.tls\.key}' | base64 -d >"$work/ca.key"
base_rss=$(rss_kb "$cloud_pid")

t0=$(now_ms)
"$work/edgesim" --ca-cert "$work/ca.crt" --ca-key "$work/ca.key" --server 127.0.0.1:10000 \
  --nodes "$nodes" --connect-rate "$rate" --duration 10m >"$work/edgesim.log" 2>&1 &
sim_pid=$!
wait_all 300
connect_ms=$(($(now_ms) - t0))
# A fixed settle period is part of the measurement (not a wait for a condition): handshakes are
# over and the sessions idle before RSS is read.
sleep 10
idle_rss=$(rss_kb "$cloud_pid")

kill -TERM "$cloud_pid"
wait "$cloud_pid" 2>/dev/null || true
t1=$(now_ms)
start_cloudcore
wait_all 300
reconnect_ms=$(($(now_ms) - t1))

per_node=$(((idle_rss - base_rss) / nodes))
printf 'cloudcore idle: %d nodes (WebSocket, connect rate %s/s)\n' "$nodes" "$rate"
printf '  all connected after        %d ms\n' "$connect_ms"
printf '  cloudcore RSS              %d kB -> %d kB: %d kB per node\n' "$base_rss" "$idle_rss" "$per_node"
printf '  all reconnected after restart (from the new process start) %d ms\n' "$reconnect_ms"

#!/usr/bin/env bash
# The quickstart: `make up` runs `hack/quickstart.sh up`, `make down` runs `hack/quickstart.sh down`.
#
# up: installs the Debian packages that are missing, builds the binaries, starts the local control
# plane and container runtime (hack/local-up.sh), installs the cloud part with
# `keadm init --mode process`, joins this machine as edge node "edge-node" with `keadm join`, waits
# for the node to be Ready, deploys the demo (manifests/quickstart/demo.yaml: a web app with a
# ConfigMap, a simulated thermostat, its model and its mapper) and prints what runs, each claim
# checked. Every step shows its elapsed time; a failed step names its log.
#
# down: deletes the demo, `keadm reset edge`, deletes the node, `keadm reset cloud`, then
# hack/local-down.sh (with --keep-cluster, the control plane and runtime stay up: the e2e test of
# this script uses that). Debian packages installed by `up` stay installed.
#
# Both are idempotent: `up` on a running quickstart checks it and prints the status again.
# Logs: _output/quickstart/logs/. Run as root (the runtime, pods and cgroups need it).
#
# Usage: hack/quickstart.sh up | down [--keep-cluster]
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
cd "$SKERRY_ROOT"

QS_DIR="${SKERRY_OUTPUT}/quickstart"
LOG_DIR="${QS_DIR}/logs"
STATE_DIR="${QS_DIR}/state"
CLOUD_CONFIG_DIR="${QS_DIR}/cloud"
EDGE_CONFIG_DIR="${QS_DIR}/edge"
EDGE_DATA_DIR="${QS_DIR}/edge/data"
# The mapper pod mounts this directory (manifests/quickstart/demo.yaml names it too).
DMI_DIR=/run/skerry/quickstart/dmi
NODE=edge-node
CRI_ENDPOINT=unix:///run/skerry/containerd/containerd.sock
HUB=127.0.0.1:10000
KUBECONFIG_PATH="${SKERRY_OUTPUT}/local/kubeconfig"
KUBE_BIN="${SKERRY_OUTPUT}/kube/v1.36.3"
KEADM="${SKERRY_OUTPUT}/bin/keadm"
kubectl=("${KUBE_BIN}/kubectl" --kubeconfig "$KUBECONFIG_PATH")

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

T0=$SECONDS
PHASE=up
STEP=0
STEPS=0

elapsed() { printf '%dm%02ds' $(((SECONDS - T0) / 60)) $(((SECONDS - T0) % 60)); }

# step NAME CMD...: run CMD with its output in LOG_DIR/NN-name.log; print the step, its time and
# the total elapsed time; on failure, the end of its log and where the rest is.
step() {
  local name=$1 log t=$SECONDS
  shift
  STEP=$((STEP + 1))
  log=$(printf '%s/%s-%02d-%s.log' "$LOG_DIR" "$PHASE" "$STEP" "${name// /-}")
  printf '[%d/%d] %-40s' "$STEP" "$STEPS" "$name" >&2
  if "$@" >"$log" 2>&1; then
    printf ' ok   %3ds  (total %s)\n' $((SECONDS - t)) "$(elapsed)" >&2
    return 0
  fi
  printf ' FAILED after %ds\n' $((SECONDS - t)) >&2
  echo "---- last lines of ${log}:" >&2
  tail -n 25 "$log" >&2 || true
  echo "---- step \"${name}\" failed; its whole log: ${log}; all logs: ${LOG_DIR}/" >&2
  exit 1
}

build() { make -s build; }

keadm_init() {
  "$KEADM" init --mode process --kubeconfig "$KUBECONFIG_PATH" --advertise-address 127.0.0.1 \
    --config-dir "$CLOUD_CONFIG_DIR" --state-dir "$STATE_DIR" --timeout 3m
}

# keadm_join joins once: a node that holds its certificate joins again without a token.
keadm_join() {
  local token=()
  if [[ ! -s ${EDGE_DATA_DIR}/certs/node.crt ]]; then
    local t
    t=$("$KEADM" gettoken --kubeconfig "$KUBECONFIG_PATH" --node "$NODE" --ttl 1h --single-use \
      --description "make up")
    token=(--token "$t")
  fi
  mkdir -p "$DMI_DIR"
  "$KEADM" join --cloudcore-ipport "$HUB" "${token[@]}" --edgenode-name "$NODE" \
    --remote-runtime-endpoint "$CRI_ENDPOINT" \
    --config-dir "$EDGE_CONFIG_DIR" --state-dir "$STATE_DIR" \
    --set "dataDir=${EDGE_DATA_DIR}" --set "deviceTwin.dmi.socket=${DMI_DIR}/dmi.sock" \
    --timeout 2m
}

node_ready() {
  "${kubectl[@]}" wait --for=condition=Ready "node/${NODE}" --timeout=120s
}

deploy_demo() {
  "${kubectl[@]}" apply -f manifests/quickstart/demo.yaml
  "${kubectl[@]}" -n demo rollout status deployment/web --timeout=180s
  "${kubectl[@]}" -n demo rollout status deployment/virtual-mapper --timeout=180s
}

# Facts the status prints, each checked before it is printed.
POD='' POD_IP='' CURL='' TEMP1='' TEMP2='' SETPOINT=''

check_app() {
  local deadline=$((SECONDS + 60)) body
  POD=$("${kubectl[@]}" -n demo get pods -l app=web --field-selector=status.phase=Running \
    -o jsonpath='{.items[0].metadata.name}')
  POD_IP=$("${kubectl[@]}" -n demo get pod "$POD" -o jsonpath='{.status.podIP}')
  [[ -n $POD && -n $POD_IP ]] || { echo "no Running web pod with an IP"; return 1; }
  until body=$(curl -fsS --max-time 5 "http://${POD_IP}:8080/"); do
    ((SECONDS < deadline)) || { echo "http://${POD_IP}:8080/ did not answer"; return 1; }
    sleep 1
  done
  echo "$body"
  CURL=$(grep -o 'Hello from the edge' <<<"$body" | head -n 1) || true
  [[ -n $CURL ]] || { echo "the answer does not show the ConfigMap's greeting"; return 1; }
}

# twin NAME: the reported value of one property in the thermostat's DeviceStatus.
twin() {
  "${kubectl[@]}" -n demo get devicestatus thermostat \
    -o jsonpath="{.status.twins[?(@.propertyName==\"$1\")].reported.value}" 2>/dev/null
}

check_device() {
  local deadline=$((SECONDS + 90))
  # The mapper reports every second: wait for a first value, then for it to change.
  until TEMP1=$(twin temperature) && [[ -n $TEMP1 ]]; do
    ((SECONDS < deadline)) || { echo "no temperature in DeviceStatus demo/thermostat"; return 1; }
    sleep 1
  done
  until TEMP2=$(twin temperature) && [[ -n $TEMP2 && $TEMP2 != "$TEMP1" ]]; do
    ((SECONDS < deadline)) || { echo "temperature stayed ${TEMP1}"; return 1; }
    sleep 1
  done
  until SETPOINT=$(twin setpoint) && [[ $SETPOINT == 22 ]]; do
    ((SECONDS < deadline)) || { echo "setpoint reported '${SETPOINT}', desired 22"; return 1; }
    sleep 1
  done
  echo "temperature ${TEMP1} -> ${TEMP2}, setpoint ${SETPOINT}"
}

print_status() {
  local ready
  ready=$("${kubectl[@]}" get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
  cat <<EOF

Skerry is up ($(elapsed)). Checked just now:
  node    ${NODE}           Ready=${ready}
  pod     demo/${POD}   Running, IP ${POD_IP}
          curl http://${POD_IP}:8080/  ->  "${CURL}" (from ConfigMap demo/web-config)
  device  demo/thermostat   temperature ${TEMP1} -> ${TEMP2} °C (changing), setpoint ${SETPOINT} (desired 22)

Look further:
  export KUBECONFIG=${KUBECONFIG_PATH} PATH=${KUBE_BIN}:\$PATH
  kubectl get nodes -o wide
  kubectl -n demo get pods -o wide
  kubectl -n demo get devicestatus thermostat -o yaml
  kubectl -n demo patch device thermostat --type=json \\
    -p '[{"op":"replace","path":"/spec/properties/1/desired/value","value":"25"}]'
  mosquitto_sub -h 127.0.0.1 -p 1884 -t '\$hw/events/device/#' -v
Logs: ${LOG_DIR}/ (cloudcore and edgecore: ${STATE_DIR}/). Stop everything: make down
EOF
}

up() {
  rm -rf "$LOG_DIR"
  mkdir -p "$LOG_DIR"
  STEPS=9
  step "install dependencies" hack/install-deps.sh
  step "build" build
  step "start control plane and runtime" hack/local-up.sh
  step "keadm init (cloudcore)" keadm_init
  step "keadm join (edge-node)" keadm_join
  step "node edge-node Ready" node_ready
  step "deploy the demo" deploy_demo
  step "check the web app" check_app
  step "check the thermostat" check_device
  print_status
}

cluster_up() { [[ $("${kubectl[@]}" get --raw /readyz 2>/dev/null) == ok ]]; }

# delete_demo deletes the demo while edgecore still runs, so its pods stop gracefully.
delete_demo() {
  "${kubectl[@]}" delete --ignore-not-found --wait=true --timeout=120s namespace demo
}

delete_node() {
  "${kubectl[@]}" delete --ignore-not-found --wait=true --timeout=60s node "$NODE"
}

down() {
  local keep_cluster=$1
  PHASE=down
  mkdir -p "$LOG_DIR"
  local up=0
  cluster_up && up=1
  STEPS=$((1 + !keep_cluster))
  [[ -x $KEADM ]] && STEPS=$((STEPS + 2 + 2 * up))
  if [[ -x $KEADM ]]; then
    if ((up)); then
      step "delete the demo" delete_demo
    fi
    step "keadm reset edge" "$KEADM" reset edge --config-dir "$EDGE_CONFIG_DIR" --state-dir "$STATE_DIR"
    if ((up)); then
      step "delete node ${NODE}" delete_node
      step "keadm reset cloud" "$KEADM" reset cloud --kubeconfig "$KUBECONFIG_PATH" \
        --config-dir "$CLOUD_CONFIG_DIR" --state-dir "$STATE_DIR"
    else
      # The control plane is down: its objects stay in its data until the next `make up`.
      step "keadm reset cloud (no cluster)" "$KEADM" reset cloud --host-only \
        --config-dir "$CLOUD_CONFIG_DIR" --state-dir "$STATE_DIR"
    fi
  fi
  step "remove quickstart files" rm -rf "$DMI_DIR" "$CLOUD_CONFIG_DIR" "$EDGE_CONFIG_DIR" "$STATE_DIR"
  if ((!keep_cluster)); then
    step "stop control plane and runtime" hack/local-down.sh
  fi
  echo "Stopped ($(elapsed)). Logs of this run: ${LOG_DIR}/" >&2
}

case ${1:-} in
up)
  [[ $# -eq 1 ]] || { usage >&2; exit 2; }
  up
  ;;
down)
  case ${2:-} in
  "") down 0 ;;
  --keep-cluster) down 1 ;;
  *) usage >&2; exit 2 ;;
  esac
  ;;
-h | --help) usage ;;
*) usage >&2; exit 2 ;;
esac

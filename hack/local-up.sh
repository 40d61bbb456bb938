#!/usr/bin/env bash
# Starts the local development cluster: etcd (Debian's), kube-apiserver, kube-controller-manager
# and kube-scheduler v1.36.3 (built by hack/build-kube.sh), then the container runtime
# (hack/runtime-up.sh) unless --no-runtime is given or SKERRY_SKIP_RUNTIME=1.
#
# Everything lives under _output/local/: pki/ (certificates, keys, kubeconfigs), etcd/ (data),
# logs/, pids/, and kubeconfig (admin). Idempotent: components that already run are left alone,
# stale pid files from a crash are ignored. hack/local-down.sh stops it all again.
#
# Usage: hack/local-up.sh [--no-runtime]
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"

LOCAL_DIR="${SKERRY_OUTPUT}/local"
PKI_DIR="${LOCAL_DIR}/pki"
LOG_DIR="${LOCAL_DIR}/logs"
PID_DIR="${LOCAL_DIR}/pids"
ETCD_DATA_DIR="${LOCAL_DIR}/etcd"
ADMIN_KUBECONFIG="${LOCAL_DIR}/kubeconfig"

ETCD_URL=http://127.0.0.1:2379
APISERVER_URL=https://127.0.0.1:6443
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1 # the kubernetes Service: first IP of SERVICE_CIDR
CONTROLLER_MANAGER_PORT=10257
SCHEDULER_PORT=10259

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# wait_ready NAME WHAT TIMEOUT CMD...: like skerry::wait_for, but gives up at once when the
# daemon NAME has exited, and shows the tail of its log on failure.
wait_ready() {
  local name=$1 what=$2 timeout=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ! skerry::pid_alive "${PID_DIR}/${name}.pid" "${name}"; then
      fail_with_log "${name}" "exited during startup"
    fi
    if ((SECONDS >= deadline)); then
      fail_with_log "${name}" "not ready after ${timeout}s (waiting for: ${what})"
    fi
    sleep 0.2
  done
  skerry::log "${what}: ok"
}

fail_with_log() {
  local name=$1 why=$2 log="${LOG_DIR}/$1.log"
  skerry::log "ERROR: ${name} ${why}; last lines of ${log}:"
  tail -n 40 "${log}" >&2 || true
  exit 1
}

# start NAME PORTS CMD...: start daemon NAME unless it already runs. Its PORTS (space separated)
# must be free first: otherwise a health probe could be answered by someone else's server.
start() {
  local name=$1 ports=$2 port
  shift 2
  if ! skerry::pid_alive "${PID_DIR}/${name}.pid" "${name}"; then
    for port in ${ports}; do
      if [[ -n $(ss -Hltn "sport = :${port}") ]]; then
        skerry::die "cannot start ${name}: port ${port} is in use by another process (ss -ltnp 'sport = :${port}')"
      fi
    done
  fi
  skerry::start_daemon "${name}" "${PID_DIR}/${name}.pid" "${LOG_DIR}/${name}.log" "$@"
}

on_exit() {
  if (($1 != 0)); then
    skerry::log "local-up failed; what did start keeps running (hack/local-down.sh stops it)"
  fi
}

etcd_healthy() {
  curl -fsS --max-time 2 "${ETCD_URL}/health" | grep -q '"health":"true"'
}

apiserver_ready() {
  curl -fsS --max-time 2 --cacert "${PKI_DIR}/ca.crt" --cert "${PKI_DIR}/admin.crt" --key "${PKI_DIR}/admin.key" \
    "${APISERVER_URL}/readyz"
}

# The controller-manager and scheduler serve a self-signed certificate: -k is fine for a health probe.
healthz() {
  curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz"
}

# pki_hash: a fingerprint of the PKI files (of nothing, before the first run).
pki_hash() {
  { cat "${PKI_DIR}"/*.crt "${PKI_DIR}"/*.key "${PKI_DIR}"/*.pub 2>/dev/null || true; } | sha256sum
}

main() {
  local with_runtime=1
  [[ ${SKERRY_SKIP_RUNTIME:-0} == 1 ]] && with_runtime=0
  while (($# > 0)); do
    case $1 in
      --no-runtime) with_runtime=0 ;;
      -h | --help)
        usage
        return 0
        ;;
      *) skerry::die "unknown argument: $1 (see --help)" ;;
    esac
    shift
  done

  local start_time=${SECONDS}
  trap 'on_exit $?' EXIT
  command -v etcd >/dev/null || skerry::die "etcd not found: run hack/install-deps.sh (Debian package etcd-server)"
  local tool
  for tool in curl ss flock; do
    command -v "${tool}" >/dev/null || skerry::die "${tool} not found"
  done
  mkdir -p "${LOCAL_DIR}" "${LOG_DIR}" "${PID_DIR}" "${ETCD_DATA_DIR}"
  chmod 0700 "${ETCD_DATA_DIR}" # etcd refuses a data dir readable by others

  local kube_bin
  kube_bin=$("${SKERRY_ROOT}/hack/build-kube.sh")

  # PKI and kubeconfigs. When they changed, running components hold the old ones: restart them.
  local localpki="${LOCAL_DIR}/bin/localpki" before
  (cd "${SKERRY_ROOT}" && go build -buildvcs=false -o "${localpki}" ./hack/cmd/localpki)
  before=$(pki_hash)
  "${localpki}" -dir "${PKI_DIR}" -server "${APISERVER_URL}" -service-ip "${SERVICE_IP}"
  if [[ $(pki_hash) != "${before}" ]]; then
    skerry::log "PKI changed: (re)starting the kube components with it"
    local c
    for c in kube-scheduler kube-controller-manager kube-apiserver; do
      skerry::stop_daemon "$c" "${PID_DIR}/$c.pid"
    done
  fi
  if ! cmp -s "${PKI_DIR}/admin.kubeconfig" "${ADMIN_KUBECONFIG}"; then
    install -m 0600 "${PKI_DIR}/admin.kubeconfig" "${ADMIN_KUBECONFIG}"
  fi

  start etcd "2379 2380" etcd \
    --name=skerry-local \
    --data-dir="${ETCD_DATA_DIR}" \
    --listen-client-urls="${ETCD_URL}" \
    --advertise-client-urls="${ETCD_URL}" \
    --listen-peer-urls=http://127.0.0.1:2380 \
    --initial-advertise-peer-urls=http://127.0.0.1:2380 \
    --initial-cluster=skerry-local=http://127.0.0.1:2380 \
    --logger=zap --log-outputs=stderr
  wait_ready etcd "etcd /health" 30 etcd_healthy

  # Loopback only. Endpoints may not hold a loopback address, so the reconciler that publishes the
  # apiserver as the endpoint of the "kubernetes" Service would fail every 10 s: it is turned off
  # (without kube-proxy, Service IPs do not route here anyway). Aggregated API servers are reached
  # by endpoint IP for the same reason. --shutdown-send-retry-after: on SIGTERM, drain requests and
  # give open watches 2 s instead of up to 60 s, so local-down is quick with clients still attached.
  start kube-apiserver 6443 "${kube_bin}/kube-apiserver" \
    --etcd-servers="${ETCD_URL}" \
    --bind-address=127.0.0.1 \
    --advertise-address=127.0.0.1 \
    --secure-port=6443 \
    --cert-dir="${LOCAL_DIR}/apiserver" \
    --tls-cert-file="${PKI_DIR}/apiserver.crt" \
    --tls-private-key-file="${PKI_DIR}/apiserver.key" \
    --client-ca-file="${PKI_DIR}/ca.crt" \
    --service-account-key-file="${PKI_DIR}/sa.pub" \
    --service-account-signing-key-file="${PKI_DIR}/sa.key" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range="${SERVICE_CIDR}" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --kubelet-client-certificate="${PKI_DIR}/apiserver-kubelet-client.crt" \
    --kubelet-client-key="${PKI_DIR}/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="${PKI_DIR}/kubelet-ca.crt" \
    --requestheader-client-ca-file="${PKI_DIR}/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="${PKI_DIR}/front-proxy-client.crt" \
    --proxy-client-key-file="${PKI_DIR}/front-proxy-client.key" \
    --enable-aggregator-routing=true \
    --endpoint-reconciler-type=none \
    --shutdown-send-retry-after=true
  wait_ready kube-apiserver "kube-apiserver /readyz" 90 apiserver_ready

  # The controller-manager and scheduler authenticate callers of their secure ports through the
  # apiserver (delegated authn/authz), with the same identity they use for their work.
  start kube-controller-manager "${CONTROLLER_MANAGER_PORT}" "${kube_bin}/kube-controller-manager" \
    --kubeconfig="${PKI_DIR}/controller-manager.kubeconfig" \
    --authentication-kubeconfig="${PKI_DIR}/controller-manager.kubeconfig" \
    --authorization-kubeconfig="${PKI_DIR}/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="${CONTROLLER_MANAGER_PORT}" \
    --cert-dir="${LOCAL_DIR}/controller-manager" \
    --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="${PKI_DIR}/sa.key" \
    --root-ca-file="${PKI_DIR}/ca.crt" \
    --cluster-signing-cert-file="${PKI_DIR}/ca.crt" \
    --cluster-signing-key-file="${PKI_DIR}/ca.key" \
    --service-cluster-ip-range="${SERVICE_CIDR}" \
    --controllers='*,bootstrapsigner,tokencleaner'
  start kube-scheduler "${SCHEDULER_PORT}" "${kube_bin}/kube-scheduler" \
    --kubeconfig="${PKI_DIR}/scheduler.kubeconfig" \
    --authentication-kubeconfig="${PKI_DIR}/scheduler.kubeconfig" \
    --authorization-kubeconfig="${PKI_DIR}/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="${SCHEDULER_PORT}" \
    --cert-dir="${LOCAL_DIR}/scheduler" \
    --leader-elect=false
  wait_ready kube-controller-manager "kube-controller-manager /healthz" 60 healthz "${CONTROLLER_MANAGER_PORT}"
  wait_ready kube-scheduler "kube-scheduler /healthz" 60 healthz "${SCHEDULER_PORT}"
  # The serviceaccount controller creates "default" in every namespace: proof that the
  # controller-manager talks to the apiserver and its controllers run.
  wait_ready kube-controller-manager "ServiceAccount default/default" 60 \
    "${kube_bin}/kubectl" --kubeconfig="${ADMIN_KUBECONFIG}" get serviceaccount default --namespace=default

  # Skerry's CRDs (KubeEdge's devices.kubeedge.io API): a cluster for Skerry serves them.
  "${kube_bin}/kubectl" --kubeconfig="${ADMIN_KUBECONFIG}" apply --server-side --force-conflicts \
    -f "${SKERRY_ROOT}/manifests/crds" >/dev/null
  "${kube_bin}/kubectl" --kubeconfig="${ADMIN_KUBECONFIG}" wait --for=condition=Established \
    --timeout=60s -f "${SKERRY_ROOT}/manifests/crds" >/dev/null ||
    skerry::die "the CRDs in manifests/crds were not established within 60s"
  skerry::log "CRDs from manifests/crds installed"

  if ((with_runtime)); then
    skerry::log "starting the container runtime (hack/runtime-up.sh)"
    "${SKERRY_ROOT}/hack/runtime-up.sh"
  fi

  skerry::log "local cluster up in $((SECONDS - start_time))s"
  cat <<EOF
Local cluster is running (API server ${APISERVER_URL}). To use it:
  export KUBECONFIG=${ADMIN_KUBECONFIG}
  export PATH=${kube_bin}:\$PATH
  kubectl version
  kubectl api-resources --api-group=devices.kubeedge.io
Stop it with hack/local-down.sh (data stays; --purge removes it).
EOF
}

main "$@"

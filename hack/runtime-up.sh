#!/usr/bin/env bash
# Starts the local container runtime that tests and demos run pods on:
#   - a plain-HTTP image registry on 127.0.0.1:5000 holding our own images (pause, busybox,
#     skerry-demo, virtual-mapper, modbus-mapper), built from this tree and Debian's busybox, since no public registry is reachable;
#   - a private containerd (CRI) on unix:///run/skerry/containerd/containerd.sock, with its own root,
#     state, runc root and CNI network (bridge skerry0, 10.88.0.0/16), whose registry mirrors send
#     registry.k8s.io and docker.io pulls to the local registry.
# Idempotent: what already runs is left alone, and a warm run takes a few seconds.
# Stop everything with hack/runtime-down.sh. Needs root and hack/install-deps.sh.
set -euo pipefail
# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
skerry::runtime_paths

DEMO_VERSION=${SKERRY_DEMO_VERSION:-0.1.0}
CONF_DIR=${SKERRY_RUNTIME_DIR}
LOG_DIR=${SKERRY_RUNTIME_DIR}/logs
PID_DIR=${SKERRY_RUNTIME_DIR}/pids
REGISTRY_DATA=${SKERRY_RUNTIME_DIR}/registry
CERTS_DIR=${SKERRY_RUNTIME_DIR}/certs.d
CNI_CONF_DIR=${SKERRY_RUNTIME_DIR}/cni/net.d
CNI_IPAM_DIR=${SKERRY_RUNTIME_DIR}/cni/ipam
SANDBOX_IMAGE=registry.k8s.io/pause:3.10

# now_ms: wall clock in milliseconds, for the timings this script reports.
now_ms() {
  local us=${EPOCHREALTIME/[.,]/}
  echo $((us / 1000))
}

start=$(now_ms)

check_prereqs() {
  ((EUID == 0)) || skerry::die "runtime-up needs root (containerd, mounts, network namespaces)"
  local missing=() cmd
  for cmd in containerd containerd-shim-runc-v2 runc docker-registry busybox ip iptables curl findmnt go; do
    command -v "$cmd" >/dev/null || missing+=("$cmd")
  done
  [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/portmap && -x /usr/lib/cni/host-local ]] ||
    missing+=("/usr/lib/cni plugins")
  [[ -x /bin/busybox ]] || missing+=("/bin/busybox")
  ((${#missing[@]} == 0)) || skerry::die "missing: ${missing[*]}; run hack/install-deps.sh"
}

# write_file PATH: write stdin to PATH unless PATH already holds exactly that. containerd watches
# the CNI dir, so even an identical rewrite (or a temp file there) would make it reload the network.
write_file() {
  local path=$1 tmp
  tmp=$(mktemp -p "$SKERRY_RUNTIME_DIR" .write.XXXXXX)
  cat >"$tmp"
  if cmp -s "$tmp" "$path"; then
    rm -f "$tmp"
  else
    chmod 0644 "$tmp"
    mv -f "$tmp" "$path"
  fi
}

registry_up() {
  curl -fs -o /dev/null --max-time 2 "http://${SKERRY_REGISTRY}/v2/"
}

start_registry() {
  local conf=${CONF_DIR}/registry.yml pidfile=${PID_DIR}/registry.pid
  if ! skerry::pid_alive "$pidfile" docker-registry && registry_up; then
    skerry::die "something else already serves ${SKERRY_REGISTRY}; stop it first"
  fi
  mkdir -p "$REGISTRY_DATA"
  # Debian's default config turns on password auth and listens on every interface.
  write_file "$conf" <<EOF
version: 0.1
log:
  level: warn
  fields:
    service: skerry-registry
storage:
  filesystem:
    rootdirectory: ${REGISTRY_DATA}
  delete:
    enabled: true
  cache:
    blobdescriptor: inmemory
http:
  addr: ${SKERRY_REGISTRY}
  headers:
    X-Content-Type-Options: [nosniff]
EOF
  skerry::start_daemon docker-registry "$pidfile" "${LOG_DIR}/registry.log" docker-registry serve "$conf"
  skerry::wait_for "registry on ${SKERRY_REGISTRY}" 20 registry_up ||
    skerry::die "registry did not come up; see ${LOG_DIR}/registry.log"
}

build_tools() {
  local t
  t=$(now_ms)
  mkdir -p "$SKERRY_RUNTIME_BIN"
  # Static, stripped, path-independent: these binaries go into images whose digests should only
  # change when the code does. A mapper's directory is named after its protocol, hence -o.
  local build=(go build -trimpath -buildvcs=false -ldflags "-s -w -X main.version=${DEMO_VERSION}")
  (
    cd "$SKERRY_ROOT"
    export CGO_ENABLED=0
    "${build[@]}" -o "${SKERRY_RUNTIME_BIN}/" \
      ./images/pause ./images/skerry-demo ./hack/cmd/imagebuild ./hack/cmd/crismoke
    "${build[@]}" -o "${SKERRY_RUNTIME_BIN}/virtual-mapper" ./mappers/virtual
    "${build[@]}" -o "${SKERRY_RUNTIME_BIN}/modbus-mapper" ./mappers/modbus
    # cloudcore for keadm init --mode cluster, stamped like `make build` stamps keadm, so the
    # image tag (its version) is the one keadm asks for.
    go build -trimpath -buildvcs=false -ldflags "$(hack/version.sh)" -o "${SKERRY_RUNTIME_BIN}/cloudcore" ./cmd/cloudcore
  )
  skerry::log "built pause, skerry-demo, virtual-mapper, modbus-mapper, cloudcore, imagebuild, crismoke in $(($(now_ms) - t)) ms"
}

push_images() {
  "${SKERRY_RUNTIME_BIN}/imagebuild" --registry "$SKERRY_REGISTRY" \
    --pause-bin "${SKERRY_RUNTIME_BIN}/pause" --demo-bin "${SKERRY_RUNTIME_BIN}/skerry-demo" \
    --virtual-mapper-bin "${SKERRY_RUNTIME_BIN}/virtual-mapper" \
    --modbus-mapper-bin "${SKERRY_RUNTIME_BIN}/modbus-mapper" \
    --cloudcore-bin "${SKERRY_RUNTIME_BIN}/cloudcore" \
    --cloudcore-version "$("${SKERRY_RUNTIME_BIN}/cloudcore" --version | cut -d' ' -f2)" \
    --demo-version "$DEMO_VERSION" >/dev/null
}

# overlay_supported DIR: whether an overlay mount works on DIR's filesystem (not on every
# filesystem, e.g. not on overlay itself or some network filesystems); containerd needs it for
# the overlayfs snapshotter.
overlay_supported() {
  local probe
  probe=$(mktemp -d "$1/.overlay-probe.XXXXXX")
  mkdir "$probe"/{lower,upper,work,merged}
  local ok=1
  if mount -t overlay overlay -o "lowerdir=${probe}/lower,upperdir=${probe}/upper,workdir=${probe}/work" \
    "${probe}/merged" 2>/dev/null; then
    umount "${probe}/merged"
    ok=0
  fi
  rm -rf "$probe"
  return "$ok"
}

write_hosts_toml() {
  local host=$1
  mkdir -p "${CERTS_DIR}/${host}"
  # server is the local registry itself, so a missing image fails fast instead of falling back
  # to the unreachable upstream.
  write_file "${CERTS_DIR}/${host}/hosts.toml" <<EOF
server = "http://${SKERRY_REGISTRY}"

[host."http://${SKERRY_REGISTRY}"]
  capabilities = ["pull", "resolve"]
EOF
}

# write_containerd_config SNAPSHOTTER FILE: the registry mirrors and CNI config (read live by
# containerd) and containerd's own config, written to FILE.
write_containerd_config() {
  local snapshotter=$1 conf=$2
  mkdir -p "$SKERRY_CONTAINERD_ROOT" "$SKERRY_CONTAINERD_STATE" "${SKERRY_RUNTIME_DIR}/opt" \
    "$CNI_CONF_DIR" "$CNI_IPAM_DIR"
  local host
  for host in registry.k8s.io docker.io "$SKERRY_REGISTRY"; do
    write_hosts_toml "$host"
  done

  # containerd adds loopback itself, so only bridge and portmap are listed.
  write_file "${CNI_CONF_DIR}/10-skerry.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "${SKERRY_CNI_NETWORK}",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "${SKERRY_CNI_BRIDGE}",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "${SKERRY_POD_CIDR}"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "${CNI_IPAM_DIR}"
      }
    },
    {
      "type": "portmap",
      "capabilities": {"portMappings": true}
    }
  ]
}
EOF

  cat >"$conf" <<EOF
# Written by hack/runtime-up.sh; edit the script, not this file.
version = 2
root = "${SKERRY_CONTAINERD_ROOT}"
state = "${SKERRY_CONTAINERD_STATE}"
# Snapshotters that cannot work here only add errors to the log.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "${SKERRY_CONTAINERD_SOCK}"

[ttrpc]
  address = "${SKERRY_CONTAINERD_SOCK}.ttrpc"

[debug]
  level = "info"

[plugins."io.containerd.internal.v1.opt"]
  path = "${SKERRY_RUNTIME_DIR}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "${SANDBOX_IMAGE}"
  # Required on these machines: root lacks CAP_SYS_RESOURCE, so lowering oom_score_adj fails and
  # every RunPodSandbox would die with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Network namespaces live under our state dir, so runtime-down can find leftovers.
  netns_mounts_under_state_dir = true
  enable_selinux = false

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "${snapshotter}"
    default_runtime_name = "runc"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 with cgroupfs paths; our own runc root keeps our containers apart from any
        # other containerd's.
        SystemdCgroup = false
        Root = "${SKERRY_RUNC_ROOT}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "${CNI_CONF_DIR}"
    max_conf_num = 1

  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "${CERTS_DIR}"
EOF
}

start_containerd() {
  local pidfile=${PID_DIR}/containerd.pid snapshotter=overlayfs
  mkdir -p "$SKERRY_CONTAINERD_ROOT"
  if ! overlay_supported "$SKERRY_CONTAINERD_ROOT"; then
    snapshotter=native
    skerry::log "overlay mounts do not work under ${SKERRY_CONTAINERD_ROOT}; using the native snapshotter"
  fi
  local conf=${CONF_DIR}/containerd.toml
  write_containerd_config "$snapshotter" "${conf}.new"
  if skerry::pid_alive "$pidfile" containerd; then
    if cmp -s "${conf}.new" "$conf"; then
      skerry::log "containerd already running (pid $(<"$pidfile"))"
    else
      # Safe: containerd reconnects to the shims on start, so pods keep running.
      skerry::log "containerd config changed; restarting containerd (pods keep running)"
      skerry::stop_daemon containerd "$pidfile" 15
    fi
  fi
  mv -f "${conf}.new" "$conf"
  if ! skerry::pid_alive "$pidfile" containerd; then
    # A socket left by a killed containerd would make the readiness check talk to nobody.
    rm -f "$SKERRY_CONTAINERD_SOCK" "${SKERRY_CONTAINERD_SOCK}.ttrpc"
    skerry::start_daemon containerd "$pidfile" "${LOG_DIR}/containerd.log" containerd --config "$conf"
  fi
  # Ready means CRI answers and reports RuntimeReady and NetworkReady (CNI config loaded).
  "${SKERRY_RUNTIME_BIN}/crismoke" --endpoint "$SKERRY_CRI_ENDPOINT" --timeout 30s wait >/dev/null ||
    skerry::die "containerd did not become ready; see ${LOG_DIR}/containerd.log"
}

main() {
  check_prereqs
  mkdir -p "$LOG_DIR" "$PID_DIR"
  start_registry
  build_tools
  local t
  t=$(now_ms)
  push_images
  skerry::log "images built and pushed to ${SKERRY_REGISTRY} in $(($(now_ms) - t)) ms"
  start_containerd
  # The sandbox image goes through CRI and the registry.k8s.io mirror, exactly as RunPodSandbox
  # would fetch it, so a broken mirror config fails here rather than in the first test.
  "${SKERRY_RUNTIME_BIN}/crismoke" --endpoint "$SKERRY_CRI_ENDPOINT" --timeout 60s pull "$SANDBOX_IMAGE" >/dev/null
  skerry::log "runtime up in $(($(now_ms) - start)) ms; CRI endpoint ${SKERRY_CRI_ENDPOINT}"
  # stdout is for callers: eval "$(hack/runtime-up.sh)".
  echo "export CONTAINER_RUNTIME_ENDPOINT=${SKERRY_CRI_ENDPOINT}"
  echo "export IMAGE_REGISTRY=${SKERRY_REGISTRY}"
}

main "$@"

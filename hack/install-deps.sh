#!/usr/bin/env bash
# Installs every Debian package the tests and the quickstart use, then the pinned Go tools.
# Idempotent and quick when everything is present: apt is only called for what is missing.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"

# What each package is for (see ../shared/runtime.md for the versions checked here):
packages=(
  containerd runc containernetworking-plugins # the CRI runtime edged runs pods on, and pod networking
  busybox-static                              # the root filesystem of the busybox test image
  etcd-server                                 # storage of the local kube-apiserver
  mosquitto mosquitto-clients                 # external MQTT broker and independent MQTT peer for tests
  docker-registry skopeo                      # local image registry and a tool to inspect it
  protobuf-compiler libprotobuf-dev           # DMI gRPC code generation (protoc and the well-known types)
  python3 python3-pymodbus                    # an independent Modbus implementation our protocol package is checked against
  iproute2 iptables                           # pod networking (CNI bridge, portmap) and fault injection
  curl ca-certificates procps psmisc git make gcc libc6-dev # script tools; gcc for go test -race
)

missing=()
for p in "${packages[@]}"; do
  if [[ $(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null) != installed ]]; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} > 0)); then
  if ((EUID != 0)); then
    skerry::die "missing packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})"
  fi
  skerry::log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  # Debian's packages try to start their services; on a machine with systemd they would take the
  # ports our scripts use. We run our own instances under our own state dirs instead.
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    for svc in containerd etcd mosquitto docker-registry; do
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    done
  fi
else
  skerry::log "all ${#packages[@]} packages present"
fi

"${SKERRY_ROOT}/hack/install-tools.sh"

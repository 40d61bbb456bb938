#!/usr/bin/env bash
# Stops what hack/runtime-up.sh started and everything its pods left behind: pod sandboxes and
# containers (through CRI while containerd still answers, then runc and the shims directly),
# mounts under our root and state dirs, the skerry0 bridge and its NAT rules, containerd and the
# registry. Safe to run any number of times, also after a crash or kill -9.
#
#   hack/runtime-down.sh           keep images, registry data and containerd's content store
#   hack/runtime-down.sh --purge   also delete all runtime state (_output/runtime, /run/skerry/containerd)
set -euo pipefail
# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
skerry::runtime_paths

PID_DIR=${SKERRY_RUNTIME_DIR}/pids
CNI_IPAM_DIR=${SKERRY_RUNTIME_DIR}/cni/ipam

purge=false
case ${1:-} in
  "") ;;
  --purge) purge=true ;;
  *) skerry::die "usage: $0 [--purge]" ;;
esac
((EUID == 0)) || skerry::die "runtime-down needs root"

# remove_pods asks containerd to stop and remove every sandbox: the clean path, which runs CNI DEL
# (IP lease, veth, iptables rules) and unmounts each pod's rootfs, shm and netns.
remove_pods() {
  skerry::pid_alive "${PID_DIR}/containerd.pid" containerd || return 0
  local crismoke=${SKERRY_RUNTIME_BIN}/crismoke
  if [[ ! -x $crismoke ]]; then
    (cd "$SKERRY_ROOT" && go build -o "$crismoke" ./hack/cmd/crismoke) || {
      skerry::log "cannot build crismoke; falling back to killing containers directly"
      return 0
    }
  fi
  "$crismoke" --endpoint "$SKERRY_CRI_ENDPOINT" --timeout 60s cleanup >&2 ||
    skerry::log "CRI cleanup incomplete; killing what is left directly"
}

# kill_containers force-deletes every container still known to runc under our runc root (one dir
# per containerd namespace): what CRI could not remove, or everything after containerd was killed.
kill_containers() {
  [[ -d $SKERRY_RUNC_ROOT ]] || return 0
  local nsdir id
  for nsdir in "$SKERRY_RUNC_ROOT"/*/; do
    [[ -d $nsdir ]] || continue
    while read -r id; do
      [[ -n $id ]] || continue
      skerry::log "killing leftover container ${id}"
      runc --root "$nsdir" delete --force "$id" >/dev/null 2>&1 || true
    done < <(runc --root "$nsdir" list -q 2>/dev/null)
  done
}

# our_shims prints the pids of containerd-shim-runc-v2 processes serving our containerd (their
# command line names our socket); other containerds' shims are left alone.
our_shims() {
  local d args
  for d in /proc/[0-9]*; do
    mapfile -d '' args <"${d}/cmdline" 2>/dev/null || continue
    ((${#args[@]} > 0)) || continue
    [[ ${args[0]} == *containerd-shim* ]] || continue
    local i
    for ((i = 1; i + 1 < ${#args[@]}; i++)); do
      if [[ ${args[i]} == -address && ${args[i + 1]} == "$SKERRY_CONTAINERD_SOCK" ]]; then
        echo "${d#/proc/}"
        break
      fi
    done
  done
}

kill_shims() {
  local pids pid
  mapfile -t pids < <(our_shims)
  ((${#pids[@]} > 0)) || return 0
  skerry::log "stopping ${#pids[@]} leftover shim(s): ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 5))
  for pid in "${pids[@]}"; do
    while skerry::running "$pid" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if skerry::running "$pid"; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
}

# mounts_under DIR prints the mount points below DIR, deepest first.
mounts_under() {
  local dir=$1
  findmnt -rn -o TARGET | awk -v d="${dir}/" 'index($0, d) == 1' | sort -r
}

unmount_all() {
  local dir m
  for dir in "$SKERRY_CONTAINERD_STATE" "$SKERRY_CONTAINERD_ROOT" "$SKERRY_CONTAINERD_RUN"; do
    [[ -d $dir ]] || continue
    while read -r m; do
      [[ -n $m ]] || continue
      skerry::log "unmounting leftover ${m}"
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || skerry::log "cannot unmount ${m}"
    done < <(mounts_under "$dir")
  done
}

# remove_network deletes the bridge and the NAT rules the bridge and portmap plugins add per pod
# (they carry the network name in a comment). With the pods gone none of it is in use.
remove_network() {
  if ip link show "$SKERRY_CNI_BRIDGE" >/dev/null 2>&1; then
    ip link del "$SKERRY_CNI_BRIDGE"
    skerry::log "removed bridge ${SKERRY_CNI_BRIDGE}"
  fi
  # With no pod left every IP lease is stale; after a kill -9 they would otherwise leak.
  rm -rf "${CNI_IPAM_DIR:?}/${SKERRY_CNI_NETWORK}"
  # Rules are deleted by line number (highest first), which needs no parsing of their quoted
  # comments; the per-pod chains they jump to (CNI-<hash>, CNI-DN-<hash>) go afterwards.
  local marker="name: \"${SKERRY_CNI_NETWORK}\"" rules chain n
  rules=$(iptables -w -t nat -S 2>/dev/null | grep -F -- "name: \\\"${SKERRY_CNI_NETWORK}\\\"" || true)
  [[ -n $rules ]] || return 0
  local chains=() targets=()
  mapfile -t chains < <(awk '$1 == "-A" {print $2}' <<<"$rules" | sort -u)
  mapfile -t targets < <(grep -oE -- '-j CNI-(DN-)?[0-9a-f]{16,}' <<<"$rules" | awk '{print $2}' | sort -u)
  for chain in "${chains[@]}"; do
    while read -r n; do
      iptables -w -t nat -D "$chain" "$n" 2>/dev/null || true
    done < <(iptables -w -t nat -L "$chain" -n --line-numbers | grep -F -- "$marker" | awk '{print $1}' | sort -rn)
  done
  for chain in "${targets[@]}"; do
    iptables -w -t nat -F "$chain" 2>/dev/null || true
    iptables -w -t nat -X "$chain" 2>/dev/null || true
  done
  skerry::log "removed ${#targets[@]} per-pod NAT chain(s) left by CNI"
}

# remove_smoke_cgroups removes the pod cgroups of crismoke pods (their owner, crismoke, removes
# them itself unless it was interrupted); runc already removed each container's own cgroup.
remove_smoke_cgroups() {
  local d
  for d in /sys/fs/cgroup/*/skerry-crismoke/pod* /sys/fs/cgroup/*/skerry-crismoke; do
    if [[ -d $d ]]; then
      rmdir "$d" 2>/dev/null || true
    fi
  done
}

main() {
  remove_pods
  skerry::stop_daemon containerd "${PID_DIR}/containerd.pid" 15
  kill_containers
  kill_shims
  unmount_all
  remove_network
  remove_smoke_cgroups
  rm -f "$SKERRY_CONTAINERD_SOCK" "${SKERRY_CONTAINERD_SOCK}.ttrpc"
  skerry::stop_daemon docker-registry "${PID_DIR}/registry.pid" 10

  if $purge; then
    local left
    left=$(mounts_under "$SKERRY_RUNTIME_DIR"; mounts_under "$SKERRY_CONTAINERD_RUN")
    [[ -z $left ]] || skerry::die "not purging: still mounted: ${left}"
    rm -rf --one-file-system "$SKERRY_RUNTIME_DIR" "$SKERRY_CONTAINERD_RUN"
    skerry::log "purged ${SKERRY_RUNTIME_DIR} and ${SKERRY_CONTAINERD_RUN}"
  fi
  skerry::log "runtime down"
}

main "$@"

#!/usr/bin/env bash
# Checks the promises of hack/local-up.sh and hack/local-down.sh on the real processes:
#   1. down leaves no process it started behind;
#   2. up works again right after down;
#   3. up works after a crash (every daemon killed with SIGKILL, stale pid files left);
#   4. down after that leaves nothing behind either.
# Ends with everything stopped. Part of `make test`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"
skerry::runtime_paths
kubectl=("${SKERRY_OUTPUT}/kube/v1.36.3/kubectl" --kubeconfig "${SKERRY_OUTPUT}/local/kubeconfig")
pass=0 fail=0

check() {
  local what=$1
  shift
  if "$@"; then
    skerry::log "ok: ${what}"
    pass=$((pass + 1))
  else
    skerry::log "FAILED: ${what}"
    fail=$((fail + 1))
  fi
}

# our_processes: live processes whose command line names this clone's _output or our containerd
# (daemons, shims, containers' runc), one "pid command" per line.
our_processes() {
  local p cmd stat
  for p in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' 2>/dev/null <"$p/cmdline") || continue
    [[ -n $cmd ]] || continue
    [[ $cmd == *"${SKERRY_OUTPUT}/"* || $cmd == *"${SKERRY_CONTAINERD_RUN}/"* ]] || continue
    [[ ${p#/proc/} != "$$" && ${p#/proc/} != "$BASHPID" ]] || continue
    stat=$(ps -o stat= -p "${p#/proc/}" 2>/dev/null) || continue
    [[ $stat != Z* ]] || continue
    echo "${p#/proc/} ${cmd:0:120}"
  done
}

nothing_left() {
  local left
  left=$(our_processes)
  [[ -z $left ]] && return 0
  printf 'still running:\n%s\n' "$left" >&2
  return 1
}

all_ready() {
  [[ $("${kubectl[@]}" get --raw /readyz 2>/dev/null) == ok ]] &&
    "${kubectl[@]}" get crd devices.devices.kubeedge.io >/dev/null 2>&1 &&
    "${SKERRY_RUNTIME_BIN}/crismoke" --endpoint "$SKERRY_CRI_ENDPOINT" --timeout 5s wait >/dev/null 2>&1
}

kill_everything() {
  local f
  for f in "${SKERRY_OUTPUT}"/local/pids/*.pid "${SKERRY_RUNTIME_DIR}"/pids/*.pid; do
    [[ -f $f ]] && kill -KILL "$(<"$f")" 2>/dev/null || true
  done
}

"${SKERRY_ROOT}/hack/local-up.sh" >/dev/null
check "up: control plane, CRDs and runtime ready" all_ready
"${SKERRY_ROOT}/hack/local-down.sh" >/dev/null
check "down: no process left" nothing_left
"${SKERRY_ROOT}/hack/local-up.sh" >/dev/null
check "up again right after down" all_ready
kill_everything
check "crash leaves stale pid files" compgen -G "${SKERRY_OUTPUT}/local/pids/*.pid"
"${SKERRY_ROOT}/hack/local-up.sh" >/dev/null
check "up after a crash with stale pid files" all_ready
"${SKERRY_ROOT}/hack/local-down.sh" >/dev/null
check "down after the crash recovery: no process left" nothing_left

echo "lifecycle: ${pass} passed, ${fail} failed"
((fail == 0))

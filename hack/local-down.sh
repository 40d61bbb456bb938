#!/usr/bin/env bash
# Stops the local development cluster started by hack/local-up.sh: the container runtime
# (hack/runtime-down.sh, unless --no-runtime or SKERRY_SKIP_RUNTIME=1), then kube-scheduler,
# kube-controller-manager, kube-apiserver and etcd, each by its recorded pid.
#
# Data stays in _output/local/ so the next local-up resumes the same cluster; --purge removes it.
# Idempotent: stopping a stopped cluster succeeds.
#
# Usage: hack/local-down.sh [--no-runtime] [--purge]
set -euo pipefail

# shellcheck source=hack/lib/util.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/util.sh"

LOCAL_DIR="${SKERRY_OUTPUT}/local"
PID_DIR="${LOCAL_DIR}/pids"

# Reverse start order: clients of the apiserver first, etcd last.
COMPONENTS=(kube-scheduler kube-controller-manager kube-apiserver etcd)

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# leftovers NAME: pids of component NAME whose command line names this clone's _output/local,
# i.e. processes local-up started whose pid file was lost. Matching on that path cannot hit a
# process that belongs to another clone or to the system.
leftovers() {
  local name=$1 dir comm cmdline
  for dir in /proc/[0-9]*; do
    comm=$(cat "${dir}/comm" 2>/dev/null) || continue
    [[ $comm == "${name:0:15}" ]] || continue
    cmdline=$(tr '\0' ' ' <"${dir}/cmdline" 2>/dev/null) || continue
    [[ $cmdline == *"${LOCAL_DIR}/"* ]] && echo "${dir#/proc/}"
  done
  return 0
}

# stop NAME: stop the recorded process of NAME, then any leftover of it without a pid file.
stop() {
  local name=$1 pid
  skerry::stop_daemon "${name}" "${PID_DIR}/${name}.pid" 30
  for pid in $(leftovers "${name}"); do
    skerry::log "${name} (pid ${pid}) runs without a pid file; stopping it"
    mkdir -p "${PID_DIR}"
    echo "${pid}" >"${PID_DIR}/${name}.pid"
    skerry::stop_daemon "${name}" "${PID_DIR}/${name}.pid" 30
  done
}

main() {
  local with_runtime=1 purge=0
  [[ ${SKERRY_SKIP_RUNTIME:-0} == 1 ]] && with_runtime=0
  while (($# > 0)); do
    case $1 in
      --no-runtime) with_runtime=0 ;;
      --purge) purge=1 ;;
      -h | --help)
        usage
        return 0
        ;;
      *) skerry::die "unknown argument: $1 (see --help)" ;;
    esac
    shift
  done

  if ((with_runtime)) && [[ -x ${SKERRY_ROOT}/hack/runtime-down.sh ]]; then
    skerry::log "stopping the container runtime (hack/runtime-down.sh)"
    "${SKERRY_ROOT}/hack/runtime-down.sh"
  fi

  local c
  for c in "${COMPONENTS[@]}"; do
    stop "$c"
  done

  if ((purge)); then
    skerry::log "removing ${LOCAL_DIR}"
    rm -rf "${LOCAL_DIR}"
  fi
  skerry::log "local cluster stopped"
}

main "$@"

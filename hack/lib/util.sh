#!/usr/bin/env bash
# Shared helpers for the hack/ scripts. Source it; it defines functions only.
#
# Every daemon a script starts is recorded in a pid file under a state dir, so the matching
# *-down script stops exactly what was started, and a stale pid file (after a crash) is
# recognised by checking that the pid still runs the expected command.

SKERRY_ROOT="${SKERRY_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SKERRY_OUTPUT="${SKERRY_OUTPUT:-${SKERRY_ROOT}/_output}"

# Timestamped progress line on stderr.
skerry::log() {
  printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

skerry::die() {
  skerry::log "ERROR: $*"
  exit 1
}

# skerry::wait_for DESC TIMEOUT_SECONDS CMD...: run CMD until it succeeds or the deadline passes.
# Polls every 0.2 s; never a fixed sleep-and-hope.
skerry::wait_for() {
  local desc=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      skerry::log "timed out after ${timeout}s waiting for ${desc}"
      return 1
    fi
    sleep 0.2
  done
}

# skerry::pid_alive PIDFILE NAME: true when PIDFILE names a running process whose command is NAME.
skerry::pid_alive() {
  local pidfile=$1 name=$2 pid comm
  [[ -f $pidfile ]] || return 1
  pid=$(<"$pidfile")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  skerry::running "$pid" || return 1
  comm=$(ps -o comm= -p "$pid" 2>/dev/null) || return 1
  [[ $comm == "${name:0:15}" ]]
}

# skerry::start_daemon NAME PIDFILE LOGFILE CMD...: start CMD in its own session in the background,
# stdout/stderr to LOGFILE, and record its pid. Refuses to start a second copy.
skerry::start_daemon() {
  local name=$1 pidfile=$2 logfile=$3
  shift 3
  if skerry::pid_alive "$pidfile" "$name"; then
    skerry::log "${name} already running (pid $(<"$pidfile"))"
    return 0
  fi
  rm -f "$pidfile"
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$logfile")"
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  echo $! >"$pidfile"
  skerry::log "started ${name} (pid $!, log ${logfile})"
}

# skerry::running PID: the process exists and is not a zombie (PID 1 here may not reap orphans).
skerry::running() {
  local stat
  stat=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
  [[ -n $stat && $stat != Z* ]]
}

# skerry::stop_daemon NAME PIDFILE [GRACE_SECONDS]: SIGTERM the recorded process, SIGKILL after the
# grace period, remove the pid file. A stale pid file (process gone or reused) is just removed.
skerry::stop_daemon() {
  local name=$1 pidfile=$2 grace=${3:-15} pid
  if ! skerry::pid_alive "$pidfile" "$name"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(<"$pidfile")
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while skerry::running "$pid"; do
    if ((SECONDS >= deadline)); then
      skerry::log "${name} (pid ${pid}) ignored SIGTERM for ${grace}s; killing"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$pidfile"
  skerry::log "stopped ${name} (pid ${pid})"
}

# skerry::runtime_paths: define (and export) where the local container runtime started by
# hack/runtime-up.sh keeps everything. The socket path is a contract: edged and the e2e tests
# dial SKERRY_CRI_ENDPOINT.
skerry::runtime_paths() {
  export SKERRY_RUNTIME_DIR="${SKERRY_OUTPUT}/runtime"
  export SKERRY_RUNTIME_BIN="${SKERRY_RUNTIME_DIR}/bin"
  export SKERRY_CONTAINERD_RUN=/run/skerry/containerd
  export SKERRY_CONTAINERD_SOCK="${SKERRY_CONTAINERD_RUN}/containerd.sock"
  export SKERRY_CONTAINERD_STATE="${SKERRY_CONTAINERD_RUN}/state"
  export SKERRY_RUNC_ROOT="${SKERRY_CONTAINERD_RUN}/runc"
  export SKERRY_CONTAINERD_ROOT="${SKERRY_RUNTIME_DIR}/containerd/root"
  export SKERRY_CRI_ENDPOINT="unix://${SKERRY_CONTAINERD_SOCK}"
  export SKERRY_REGISTRY=127.0.0.1:5000
  export SKERRY_CNI_BRIDGE=skerry0
  export SKERRY_CNI_NETWORK=skerry
  export SKERRY_POD_CIDR=10.88.0.0/16
}

# shellcheck shell=bash
# Shared helpers for tests/slurm/start.sh and tests/slurm/stop.sh.
# Sourced, not executed.
# shellcheck disable=SC2034  # the paths are used by start.sh and stop.sh

QB_SLURM_DIR="${QB_SLURM_DIR:-/tmp/quantbench-slurm}"
# Absolute path, without trailing slash (it ends up in slurm.conf and in
# /proc/*/environ markers, so it must be canonical).
case "$QB_SLURM_DIR" in
  /*) ;;
  *) QB_SLURM_DIR="$PWD/$QB_SLURM_DIR" ;;
esac
QB_SLURM_DIR="${QB_SLURM_DIR%/}"

QB_CONF="$QB_SLURM_DIR/etc/slurm.conf"
QB_MUNGE_DIR="$QB_SLURM_DIR/munge"
QB_MUNGE_SOCKET="$QB_MUNGE_DIR/munge.socket"
QB_RUN_DIR="$QB_SLURM_DIR/run"
QB_LOG_DIR="$QB_SLURM_DIR/log"
# Standard location that every Slurm client falls back to. The snakemake
# slurm-jobstep plugin strips all SLURM_* variables (SLURM_CONF included)
# before its inner `srun`, so SLURM_CONF alone is not enough: see NOTES.md.
QB_ETC_CONF="/etc/slurm/slurm.conf"

# Environment marker put on every daemon we start; slurmstepd inherits it
# from slurmd, which lets stop.sh find leftover step daemons of *this* cluster.
QB_MARKER="QB_SLURM_DAEMON_OF=$QB_SLURM_DIR"

# qb_lock: serialise start.sh/stop.sh on one state dir (a nested call from
# start.sh to stop.sh inherits the lock through QB_SLURM_LOCKED).
qb_lock() {
  [[ "${QB_SLURM_LOCKED:-}" == "$QB_SLURM_DIR" ]] && return 0
  mkdir -p "$QB_SLURM_DIR"
  exec 9>"$QB_SLURM_DIR/.lock"
  if ! flock -w 300 9; then
    qb_die "another start.sh/stop.sh holds $QB_SLURM_DIR/.lock for more than 300 s"
  fi
  export QB_SLURM_LOCKED="$QB_SLURM_DIR"
}

qb_log() { printf '[qb-slurm] %s\n' "$*" >&2; }
qb_die() { printf '[qb-slurm] ERROR: %s\n' "$*" >&2; exit 1; }

# qb_pid_alive NAME PIDFILE -> prints the pid and returns 0 if the pid file
# names a live process whose command name starts with NAME.
qb_pid_alive() {
  local name="$1" pidfile="$2" pid comm
  [[ -r "$pidfile" ]] || return 1
  pid="$(tr -dc '0-9' <"$pidfile" 2>/dev/null || true)"
  [[ -n "$pid" ]] || return 1
  [[ -r "/proc/$pid/comm" ]] || return 1
  comm="$(cat "/proc/$pid/comm" 2>/dev/null || true)"
  [[ "$comm" == "$name"* ]] || return 1
  printf '%s\n' "$pid"
}

# Pids of processes (other than listed daemons) that carry our marker.
qb_marked_pids() {
  local p
  for p in /proc/[0-9]*; do
    if grep -qszxF "$QB_MARKER" "$p/environ" 2>/dev/null; then
      printf '%s\n' "${p#/proc/}"
    fi
  done
}

# qb_with_descendants PID... -> the given pids and all their descendants
qb_with_descendants() {
  local p stat ppid
  local -A children=()
  for p in /proc/[0-9]*; do
    stat="$(cat "$p/stat" 2>/dev/null)" || continue
    stat="${stat##*) }"          # drop "pid (comm) "; comm may contain spaces
    read -r _ ppid _ <<<"$stat"   # "<state> <ppid> ..."
    children[$ppid]+=" ${p#/proc/}"
  done
  local queue=("$@") seen=() cur
  while ((${#queue[@]} > 0)); do
    cur="${queue[0]}"; queue=("${queue[@]:1}")
    seen+=("$cur")
    # shellcheck disable=SC2206
    [[ -n "${children[$cur]:-}" ]] && queue+=(${children[$cur]})
  done
  printf '%s\n' "${seen[@]}"
}

qb_print_logs() {
  local f
  for f in "$QB_MUNGE_DIR/munged.log" "$QB_LOG_DIR/slurmctld.log" "$QB_LOG_DIR/slurmd.log"; do
    if [[ -s "$f" ]]; then
      printf '\n===== last 40 lines of %s =====\n' "$f" >&2
      tail -n 40 "$f" >&2 || true
    fi
  done
}

#!/usr/bin/env bash
# Stop the one-node SLURM cluster started by tests/slurm/start.sh.
#
# Cancels this cluster's remaining jobs, then stops slurmd, slurmctld and
# munged via the pid files under $QB_SLURM_DIR (default /tmp/quantbench-slurm),
# and finally kills leftover slurmstepd processes that carry this cluster's
# environment marker. Touches no other process. Safe to run when nothing is
# running. Removes the /etc/slurm/slurm.conf link start.sh made: a link to a
# stopped cluster makes every Slurm client wait for its controller (scontrol
# ~9 s), and snakemake-executor-plugin-slurm runs `scontrol show config` when
# it is imported, i.e. at every snakemake start. The state dir itself is kept
# (remove it by hand for a clean slate); pass --purge to also delete it.
# --unlink-if-down only removes that link, and only while none of the daemons
# runs (a link left by an earlier version of this script, or by a crash).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

purge=0
unlink_only=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  --unlink-if-down) unlink_only=1 ;;
  *) qb_die "usage: $0 [--purge | --unlink-if-down]" ;;
esac

# unlink_etc_conf: remove /etc/slurm/slurm.conf if it is start.sh's link to this cluster's config
unlink_etc_conf() {
  if [[ -L "$QB_ETC_CONF" && "$(readlink "$QB_ETC_CONF")" == "$QB_CONF" ]]; then
    rm -f "$QB_ETC_CONF"
    qb_log "removed the link $QB_ETC_CONF -> $QB_CONF"
  fi
}

[[ "$(id -u)" == 0 ]] || qb_die "must run as root (the daemons run as root)"
if [[ ! -d "$QB_SLURM_DIR" ]]; then
  unlink_etc_conf  # dangling: the state dir is gone (a reboot cleared /tmp)
  qb_log "nothing to stop ($QB_SLURM_DIR does not exist)"
  exit 0
fi
qb_lock

if [[ $unlink_only == 1 ]]; then
  for daemon in "slurmd:$QB_RUN_DIR/slurmd.pid" "slurmctld:$QB_RUN_DIR/slurmctld.pid" \
      "munged:$QB_MUNGE_DIR/munged.pid"; do
    if qb_pid_alive "${daemon%%:*}" "${daemon#*:}" >/dev/null; then
      exit 0  # the cluster runs: its link stays
    fi
  done
  unlink_etc_conf
  exit 0
fi

if [[ -f "$QB_CONF" ]]; then
  export SLURM_CONF="$QB_CONF"
fi

# stop_daemons NAME:PIDFILE... : SIGTERM all of them at once (each takes
# ~2 s to exit here), wait up to 10 s, then SIGKILL whatever is left.
stop_daemons() {
  local spec name pidfile pid i pids=()
  for spec in "$@"; do
    name="${spec%%:*}"; pidfile="${spec#*:}"
    if pid="$(qb_pid_alive "$name" "$pidfile")"; then
      qb_log "stopping $name (pid $pid)"
      kill -TERM "$pid" 2>/dev/null || true
      pids+=("$pid")
    fi
  done
  for ((i = 0; i < 100 && ${#pids[@]} > 0; i++)); do
    local alive=()
    for pid in "${pids[@]}"; do
      kill -0 "$pid" 2>/dev/null && alive+=("$pid")
    done
    pids=("${alive[@]+"${alive[@]}"}")
    ((${#pids[@]} == 0)) || sleep 0.1
  done
  if ((${#pids[@]} > 0)); then
    qb_log "pids ${pids[*]} ignored SIGTERM, sending SIGKILL"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.2
  fi
  for spec in "$@"; do rm -f "${spec#*:}"; done
}

# 1. cancel jobs that are still queued or running, while the controller is up
if qb_pid_alive slurmctld "$QB_RUN_DIR/slurmctld.pid" >/dev/null && [[ -f "$QB_CONF" ]]; then
  jobs="$(timeout 10 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING -o %i 2>/dev/null || true)"
  if [[ -n "$jobs" ]]; then
    qb_log "cancelling jobs: $(tr '\n' ' ' <<<"$jobs")"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do           # up to 10 s
      left="$(timeout 5 squeue -h -t PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING -o %i 2>/dev/null || true)"
      [[ -z "$left" ]] && break
      sleep 0.2
    done
  fi
fi

# 2. the daemons (all at once: munge is not needed to shut down)
stop_daemons "slurmd:$QB_RUN_DIR/slurmd.pid" \
  "slurmctld:$QB_RUN_DIR/slurmctld.pid" \
  "munged:$QB_MUNGE_DIR/munged.pid"

# 3. leftover step daemons (they inherit our slurmd's marker) and the job
#    processes below them; normally none are left after step 1.
stepds="$(qb_marked_pids || true)"
if [[ -n "$stepds" ]]; then
  # shellcheck disable=SC2086
  left="$(qb_with_descendants $stepds)"
  qb_log "killing leftover processes of this cluster: $(tr '\n' ' ' <<<"$left")"
  # shellcheck disable=SC2086
  kill -KILL $left 2>/dev/null || true
  sleep 0.2
fi
rm -f "$QB_MUNGE_SOCKET" "$QB_MUNGE_SOCKET.lock"
unlink_etc_conf

if [[ $purge == 1 ]]; then
  case "$QB_SLURM_DIR" in
    /|/tmp|/root|/home|/etc|/usr|/var) qb_die "refusing to delete $QB_SLURM_DIR" ;;
  esac
  rm -rf "$QB_SLURM_DIR"
  qb_log "purged $QB_SLURM_DIR"
fi
qb_log "stopped"

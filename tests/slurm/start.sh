#!/usr/bin/env bash
# Start a real one-node SLURM cluster on this machine for quantbench's CI tests.
#
# Idempotent: installs slurm-wlm + munge (Debian packages) if missing, writes
# the config, starts whatever of munged/slurmctld/slurmd is not running yet and
# waits until the node is idle. Running it again on a healthy cluster is a
# cheap no-op. Stop everything with tests/slurm/stop.sh.
#
# Environment (all optional):
#   QB_SLURM_DIR            state/log/pid dir        (default /tmp/quantbench-slurm)
#   QB_SLURM_CTLD_PORT      slurmctld port           (default 6817)
#   QB_SLURM_SLURMD_PORT    slurmd port              (default 6818)
#   QB_SLURM_CPUS           CPUs advertised          (default: nproc)
#   QB_SLURM_MEM_MB         RealMemory in MB         (default: free -m total minus headroom)
#   QB_SLURM_GPUS           GPUs the node advertises as GRES (default 0), backed by empty
#                           placeholder files, so jobs can ask for GPUs (--gpus) on a machine without any
#   QB_SLURM_TIMEOUT        seconds to wait for idle (default 60)
#   QB_SLURM_ETC_LINK=0     do not link /etc/slurm/slurm.conf (then SLURM_CONF
#                           must be exported; snakemake's jobstep srun will NOT
#                           find the config: see NOTES.md)
#
# Prints the `export SLURM_CONF=...` line on stdout at the end (everything else
# goes to stderr), so `eval "$(tests/slurm/start.sh)"` works.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
source "$HERE/common.sh"

CTLD_PORT="${QB_SLURM_CTLD_PORT:-6817}"
SLURMD_PORT="${QB_SLURM_SLURMD_PORT:-6818}"
TIMEOUT="${QB_SLURM_TIMEOUT:-60}"
ETC_LINK="${QB_SLURM_ETC_LINK:-1}"

[[ "$(id -u)" == 0 ]] || qb_die "must run as root (it installs packages and runs slurmd as root)"
qb_lock

t_start=$(date +%s.%N)

# temporary files removed on any exit
tmp_policy=""
new_conf=""
cleanup() {
  [[ -n "$tmp_policy" ]] && rm -f "$tmp_policy"
  [[ -n "$new_conf" ]] && rm -f "$new_conf"
  return 0
}
trap cleanup EXIT

# --------------------------------------------------------------------------
# 1. packages
# --------------------------------------------------------------------------
need_install=0
for exe in munged mungekey slurmctld slurmd slurmstepd sbatch srun squeue sinfo scontrol scancel; do
  command -v "$exe" >/dev/null 2>&1 || need_install=1
done
if [[ $need_install == 1 ]]; then
  command -v apt-get >/dev/null || qb_die "apt-get not found: this script expects Debian/Ubuntu"
  qb_log "installing slurm-wlm and munge with apt-get ..."
  # Keep the packages' maintainer scripts from starting system daemons
  # (a system munged on /run/munge, slurmctld/slurmd without config).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    tmp_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' >"$tmp_policy"
    chmod 755 "$tmp_policy"
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_log="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends slurm-wlm munge; } >"$apt_log" 2>&1; then
    cat "$apt_log" >&2
    qb_die "apt-get install slurm-wlm munge failed"
  fi
  rm -f "$apt_log"
  if [[ -n "$tmp_policy" ]]; then rm -f "$tmp_policy"; tmp_policy=""; fi
  for exe in munged slurmctld slurmd sbatch; do
    command -v "$exe" >/dev/null 2>&1 || qb_die "$exe still missing after apt-get install"
  done
fi

# --------------------------------------------------------------------------
# 2. directories, munge key, slurm.conf
# --------------------------------------------------------------------------
mkdir -p "$QB_SLURM_DIR"/{etc,run,log,state,spool}
mkdir -p "$QB_MUNGE_DIR"
chmod 0755 "$QB_SLURM_DIR" "$QB_SLURM_DIR/etc"
chmod 0700 "$QB_MUNGE_DIR"

if [[ ! -s "$QB_MUNGE_DIR/munge.key" ]]; then
  qb_log "creating munge key"
  rm -f "$QB_MUNGE_DIR/munge.key"
  mungekey --create --keyfile="$QB_MUNGE_DIR/munge.key" >/dev/null 2>&1 \
    || dd if=/dev/urandom of="$QB_MUNGE_DIR/munge.key" bs=1024 count=1 status=none
fi
chmod 0600 "$QB_MUNGE_DIR/munge.key"

NODE="$(hostname -s)"
[[ -n "$NODE" ]] || qb_die "hostname -s is empty"
CPUS="${QB_SLURM_CPUS:-$(nproc)}"
if [[ -n "${QB_SLURM_MEM_MB:-}" ]]; then
  MEM_MB="$QB_SLURM_MEM_MB"
else
  total_mb="$(free -m | awk '/^Mem:/ {print $2}')"
  [[ "$total_mb" =~ ^[0-9]+$ ]] || qb_die "cannot read total memory from 'free -m'"
  # leave 10% (at least 512 MB) to the OS and the snakemake driver
  headroom=$(( total_mb / 10 )); (( headroom < 512 )) && headroom=512
  MEM_MB=$(( total_mb - headroom ))
  (( MEM_MB >= 256 )) || MEM_MB=$(( total_mb / 2 ))
fi
DEF_MEM_PER_CPU=$(( MEM_MB / CPUS ))
GPUS="${QB_SLURM_GPUS:-0}"
[[ "$GPUS" =~ ^[0-9]+$ ]] || qb_die "QB_SLURM_GPUS must be a count, not '$GPUS'"
GRES_TYPES=""; NODE_GRES=""
if (( GPUS > 0 )); then
  GRES_TYPES="GresTypes=gpu"; NODE_GRES=" Gres=gpu:${GPUS}"
  # gres.conf beside slurm.conf. Slurm 22.05 counts a GPU only through a File= (with Count alone the
  # node registers 0 GPUs and turns INVAL); empty placeholder files stand in for /dev/nvidiaN.
  mkdir -p "$QB_SLURM_DIR/dev"
  for (( i = 0; i < GPUS; i++ )); do : > "$QB_SLURM_DIR/dev/gpu$i"; done
  printf 'AutoDetect=off\nName=gpu File=%s/dev/gpu[0-%s]\n' "$QB_SLURM_DIR" "$(( GPUS - 1 ))" > "$QB_SLURM_DIR/etc/gres.conf"
else
  rm -f "$QB_SLURM_DIR/etc/gres.conf"
fi

new_conf="$(mktemp "$QB_SLURM_DIR/etc/slurm.conf.XXXXXX")"
cat >"$new_conf" <<EOF
# Generated by quantbench tests/slurm/start.sh -- do not edit, rerun start.sh.
ClusterName=quantbench
SlurmctldHost=${NODE}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${QB_MUNGE_SOCKET}

StateSaveLocation=${QB_SLURM_DIR}/state
SlurmdSpoolDir=${QB_SLURM_DIR}/spool
SlurmctldPidFile=${QB_RUN_DIR}/slurmctld.pid
SlurmdPidFile=${QB_RUN_DIR}/slurmd.pid
SlurmctldLogFile=${QB_LOG_DIR}/slurmctld.log
SlurmdLogFile=${QB_LOG_DIR}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# no cgroups in the sandbox
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
LaunchType=launch/slurm
SwitchType=switch/none

SchedulerType=sched/backfill
# schedule batch jobs on the next 1 s tick instead of after 3 s
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=${DEF_MEM_PER_CPU}
# use the configured CPUs/memory even if the hardware probe disagrees
SlurmdParameters=config_overrides
${GRES_TYPES}

# no slurmdbd: sacct/sacctmgr/sshare have nothing to report (see NOTES.md).
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# one line per finished job, kept forever (the only persistent job history)
JobCompType=jobcomp/filetxt
JobCompLoc=${QB_LOG_DIR}/jobcomp.log

# keep finished jobs visible to squeue/scontrol for an hour
MinJobAge=3600
ReturnToService=2
InactiveLimit=0
KillWait=5
Waittime=0
MessageTimeout=10
SlurmctldTimeout=120
SlurmdTimeout=300

NodeName=${NODE} NodeHostname=${NODE} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB}${NODE_GRES} State=UNKNOWN
PartitionName=debug Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
chmod 0644 "$new_conf"

conf_changed=1
if [[ -f "$QB_CONF" ]] && cmp -s "$new_conf" "$QB_CONF"; then
  conf_changed=0
  rm -f "$new_conf"; new_conf=""
fi

running_any=0
qb_pid_alive munged "$QB_MUNGE_DIR/munged.pid" >/dev/null && running_any=1
qb_pid_alive slurmctld "$QB_RUN_DIR/slurmctld.pid" >/dev/null && running_any=1
qb_pid_alive slurmd "$QB_RUN_DIR/slurmd.pid" >/dev/null && running_any=1

if [[ $conf_changed == 1 ]]; then
  if [[ $running_any == 1 ]]; then
    qb_log "configuration changed: restarting the cluster"
    "$HERE/stop.sh"
  fi
  mv -f "$new_conf" "$QB_CONF"; new_conf=""
fi

if [[ "$ETC_LINK" == 1 ]]; then
  mkdir -p "$(dirname "$QB_ETC_CONF")"
  if [[ -L "$QB_ETC_CONF" ]]; then
    if [[ "$(readlink "$QB_ETC_CONF")" != "$QB_CONF" ]]; then
      if [[ -e "$QB_ETC_CONF" ]]; then
        qb_die "$QB_ETC_CONF links to $(readlink "$QB_ETC_CONF"), not to $QB_CONF; remove it or set QB_SLURM_ETC_LINK=0"
      fi
      ln -sfn "$QB_CONF" "$QB_ETC_CONF"   # dangling link from an old run
    fi
  elif [[ -e "$QB_ETC_CONF" ]]; then
    qb_die "$QB_ETC_CONF exists and is not ours; move it away or set QB_SLURM_ETC_LINK=0"
  else
    ln -s "$QB_CONF" "$QB_ETC_CONF"
  fi
fi
export SLURM_CONF="$QB_CONF"

# --------------------------------------------------------------------------
# 3. daemons (started with fd 9, the lock, closed so they do not hold it)
# --------------------------------------------------------------------------
fail() {
  qb_print_logs
  qb_die "$*"
}

# wait_for SECONDS CMD... : poll CMD every 0.2 s
wait_for() {
  local limit="$1"; shift
  local deadline=$(( $(date +%s) + limit ))
  until "$@" >/dev/null 2>&1; do
    (( $(date +%s) < deadline )) || return 1
    sleep 0.2
  done
}

port_busy() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

if ! qb_pid_alive munged "$QB_MUNGE_DIR/munged.pid" >/dev/null; then
  rm -f "$QB_MUNGE_SOCKET" "$QB_MUNGE_SOCKET.lock" "$QB_MUNGE_DIR/munged.pid"
  qb_log "starting munged"
  env "$QB_MARKER" munged --force 9>&- \
    --socket="$QB_MUNGE_SOCKET" \
    --key-file="$QB_MUNGE_DIR/munge.key" \
    --pid-file="$QB_MUNGE_DIR/munged.pid" \
    --log-file="$QB_MUNGE_DIR/munged.log" \
    --seed-file="$QB_MUNGE_DIR/munged.seed" \
    || fail "munged failed to start"
fi
wait_for 10 sh -c "munge -n -S '$QB_MUNGE_SOCKET' | unmunge -S '$QB_MUNGE_SOCKET'" \
  || fail "munge does not work on $QB_MUNGE_SOCKET"

if ! qb_pid_alive slurmctld "$QB_RUN_DIR/slurmctld.pid" >/dev/null; then
  port_busy "$CTLD_PORT" && fail "port $CTLD_PORT is already in use (set QB_SLURM_CTLD_PORT)"
  qb_log "starting slurmctld (port $CTLD_PORT)"
  # -c: cold start. Jobs of an earlier run (e.g. one killed without stop.sh)
  # are forgotten instead of being requeued; job ids start again at 1.
  env "$QB_MARKER" slurmctld -c -f "$QB_CONF" 9>&- || fail "slurmctld failed to start"
  wait_for 20 scontrol ping || fail "slurmctld does not answer 'scontrol ping'"
fi

if ! qb_pid_alive slurmd "$QB_RUN_DIR/slurmd.pid" >/dev/null; then
  port_busy "$SLURMD_PORT" && fail "port $SLURMD_PORT is already in use (set QB_SLURM_SLURMD_PORT)"
  qb_log "starting slurmd (node $NODE, port $SLURMD_PORT)"
  env "$QB_MARKER" slurmd -f "$QB_CONF" -N "$NODE" 9>&- || fail "slurmd failed to start"
fi

# --------------------------------------------------------------------------
# 4. wait until the node is idle (or busy with our own jobs)
# --------------------------------------------------------------------------
deadline=$(( $(date +%s) + TIMEOUT ))
state=""
while :; do
  state="$(sinfo -h -n "$NODE" -o %t 2>/dev/null | head -n1 || true)"
  case "$state" in
    idle|mix|alloc) break ;;
    drain*|drng|inval|fail*)
      # a node drained by an earlier unclean run: give it back
      scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
  esac
  if (( $(date +%s) >= deadline )); then
    scontrol show node "$NODE" >&2 2>/dev/null || true
    fail "node $NODE not idle after ${TIMEOUT}s (state: '${state:-none}')"
  fi
  sleep 0.3
done

t_end=$(date +%s.%N)
elapsed="$(awk -v a="$t_start" -v b="$t_end" 'BEGIN { printf "%.1f", b - a }')"
qb_log "cluster up in ${elapsed}s: node $NODE is $state (CPUs=$CPUS RealMemory=${MEM_MB}MB GPUs=$GPUS, partition debug)"
if [[ "$ETC_LINK" == 1 ]]; then
  qb_log "$QB_ETC_CONF -> $QB_CONF (no env needed; the export below is optional)"
else
  qb_log "clients need: export SLURM_CONF=$QB_CONF"
fi
printf 'export SLURM_CONF=%q\n' "$QB_CONF"

#!/usr/bin/env bash
# A one-machine Slurm cluster for trying the cluster workflow (and for the `slurm` tests):
# munged, slurmctld and slurmd in the background, one node with 2+ CPUs, no systemd, no cgroups.
#
#   scripts/slurm/local-cluster.sh start     # install (Debian, idempotent), configure, start, wait for the node
#   eval "$(scripts/slurm/local-cluster.sh env)"   # SLURM_CONF for sbatch/srun/squeue/scontrol in this shell
#   sbatch scripts/slurm/train.sbatch configs/quickstart.yaml
#   scripts/slurm/local-cluster.sh status    # daemons, sinfo, squeue
#   scripts/slurm/local-cluster.sh stop      # cancel every job, stop the daemons, nothing left running
#
# Everything lives in one directory (EGGROLL_SLURM_DIR, default /tmp/eggroll-slurm): slurm.conf,
# its own munge key and socket, state, spool and logs (log/*.log). It runs as root (SlurmUser and
# SlurmdUser root; as another user, start it with sudo). Settings (environment):
#   EGGROLL_SLURM_DIR    the directory above
#   EGGROLL_SLURM_CPUS   CPUs the node declares (default: the machine's, at least 2; more than the
#                        machine has is allowed: the node is oversubscribed)
#   EGGROLL_SLURM_PORT   slurmctld's port (default 16817; slurmd uses PORT+1), away from a
#                        system Slurm's 6817/6818
# Plugins: proctrack/linuxproc, task/none, jobacct_gather/none, no accounting database (finished
# jobs stay visible to `scontrol show job` for MinJobAge = 1 h). srun's MPI plugins: pmix
# (PMIx v4, what Debian's Open MPI uses) and pmi2.
set -euo pipefail

DIR="${EGGROLL_SLURM_DIR:-/tmp/eggroll-slurm}"
PORT="${EGGROLL_SLURM_PORT:-16817}"
CONF="$DIR/slurm.conf"
PKGS=(munge slurmctld slurmd slurm-client slurm-wlm-basic-plugins libpmix-dev)  # pmix plugin: libpmix.so

say() { echo "local-cluster: $*"; }
die() { echo "local-cluster: $*" >&2; exit 1; }

install_packages() {
  local missing=() p
  for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
  local SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # the packages' own services are not started (no systemd here); we start our own daemons
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pid_of() { if [ -s "$DIR/run/$1.pid" ]; then cat "$DIR/run/$1.pid" 2>/dev/null || true; fi; }
alive() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# Processes holding a file under $DIR open (our daemons and the slurmstepd processes they started,
# which keep slurmd's log open), by pid.
pids_using_dir() {
  local fd target pid
  for fd in /proc/[0-9]*/fd/*; do
    target=$(readlink "$fd" 2>/dev/null) || continue
    case "$target" in "$DIR"/*)
      pid=${fd#/proc/}; pid=${pid%%/*}
      [ "$pid" != "$$" ] && echo "$pid" ;;
    esac
  done | sort -un
}

write_config() {
  local cpus host
  cpus="${EGGROLL_SLURM_CPUS:-$(nproc)}"
  [ "$cpus" -ge 2 ] || cpus=2
  host=$(hostname -s)
  mkdir -p "$DIR"/{state,spool,log,run,munge}
  chmod 700 "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
    chmod 400 "$DIR/munge/munge.key"
  fi
  cat >"$CONF" <<EOF
# written by scripts/slurm/local-cluster.sh: one node, no cgroups, no accounting database
ClusterName=eggroll-local
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
MessageTimeout=10
SlurmdTimeout=60
MailProg=/bin/true
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
}

wait_idle() {
  local state
  for _ in $(seq 1 120); do
    state=$(SLURM_CONF="$CONF" sinfo -h -N -o '%T' 2>/dev/null | head -n 1 || true)
    case "$state" in
      idle|mixed|allocated) say "node $(hostname -s) $state ($(SLURM_CONF="$CONF" sinfo -h -N -o '%c' | head -n 1) CPUs), SLURM_CONF=$CONF"; return 0 ;;
      down*|drain*|fail*)
        # a node that was down when the controller's state was saved: return it to service
        SLURM_CONF="$CONF" scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true ;;
    esac
    alive slurmctld || die "slurmctld exited; see $DIR/log/slurmctld.log: $(tail -n 3 "$DIR/log/slurmctld.log" 2>/dev/null | tr '\n' ' ')"
    alive slurmd || die "slurmd exited; see $DIR/log/slurmd.log: $(tail -n 3 "$DIR/log/slurmd.log" 2>/dev/null | tr '\n' ' ')"
    sleep 0.5
  done
  die "the node did not become idle within 60 s (state '${state:-none}'); logs in $DIR/log"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "run as root (SlurmdUser=root starts the jobs' tasks), e.g. with sudo"
  install_packages
  if alive slurmctld && alive slurmd && alive munged; then
    say "already running"
    wait_idle
    return 0
  fi
  stop_daemons quiet
  write_config
  local munged slurmctld slurmd
  munged=$(command -v munged || echo /usr/sbin/munged)
  slurmctld=$(command -v slurmctld || echo /usr/sbin/slurmctld)
  slurmd=$(command -v slurmd || echo /usr/sbin/slurmd)
  # our own key, socket and files; --force: munged refuses a socket directory that is not open
  # to all users (ours is 0700, as it holds the key)
  "$munged" --force --key-file="$DIR/munge/munge.key" --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    || die "munged did not start; see $DIR/log/munged.log"
  for _ in $(seq 1 40); do [ -S "$DIR/munge/munge.socket" ] && break; sleep 0.25; done
  [ -S "$DIR/munge/munge.socket" ] || die "munged started but made no socket; see $DIR/log/munged.log"
  # -c: start without the previous run's jobs; -i: ignore state-file errors
  SLURM_CONF="$CONF" "$slurmctld" -c -i -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
  SLURM_CONF="$CONF" "$slurmd" -f "$CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"
  for _ in $(seq 1 40); do alive slurmctld && alive slurmd && break; sleep 0.25; done
  wait_idle
}

# Cancels our jobs, stops slurmd, slurmctld and munged, then ends any process still holding a
# file of $DIR open (a job step's slurmstepd), each by its pid.
stop_daemons() {
  local quiet=${1:-}
  if alive slurmctld; then
    SLURM_CONF="$CONF" scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
    for _ in $(seq 1 40); do
      [ -z "$(SLURM_CONF="$CONF" squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  local d p
  for d in slurmd slurmctld munged; do
    p=$(pid_of "$d")
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill "$p" 2>/dev/null || true
      for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.25; done
      if kill -0 "$p" 2>/dev/null; then kill -9 "$p" 2>/dev/null || true; fi
    fi
    rm -f "$DIR/run/$d.pid"
  done
  local left
  if [ -d "$DIR" ]; then
    left=$(pids_using_dir)
    if [ -n "$left" ]; then
      [ -z "$quiet" ] && say "ending leftover processes $(echo "$left" | tr '\n' ' ')"
      for p in $left; do kill -9 "$p" 2>/dev/null || true; done
    fi
  fi
  rm -f "$DIR/munge/munge.socket" "$DIR/munge/munge.socket.lock"
}

stop() {
  stop_daemons
  say "stopped"
}

status() {
  local d rc=0
  for d in munged slurmctld slurmd; do
    if alive "$d"; then echo "$d: running (pid $(pid_of "$d"))"; else echo "$d: not running"; rc=3; fi
  done
  if [ $rc -eq 0 ]; then
    SLURM_CONF="$CONF" sinfo -N
    SLURM_CONF="$CONF" squeue
  fi
  return $rc
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF" ;;
  *) echo "usage: $0 start|stop|status|env   (directory: $DIR)" >&2; exit 2 ;;
esac

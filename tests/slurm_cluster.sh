#!/usr/bin/env bash
# The cluster workflow on a real Slurm (label "slurm"): scripts/slurm/local-cluster.sh starts
# munged, slurmctld and slurmd (one node, 2 CPUs) in a temporary directory, the scenarios below
# run through the real scheduler, and the cluster is stopped at exit (nothing left running).
#   1. sbatch train.sbatch, 2 tasks, srun --mpi=pmix: final weights bit-identical to 1 process
#   2. the same with RENDEZVOUS=tcp (no MPI: dist.backend=tcp, ranks from SLURM_PROCID/NTASKS)
#   3. srun --mpi=none with the MPI backend: every task stops with the "without PMI" error
#   4. scancel of a running job, resubmission: resumes, ends bit-identical to an uninterrupted run
#   5. eggroll sweep --slurm, sbatch the job array (2 points at a time), --dry-run, report.py;
#      cancel one array task midway and resubmit: only the unfinished point runs again
#   6. kill -9 of one task: the job ends within dist.timeout_s naming the lost rank, state FAILED
# Exit 77 (SKIPPED) with the reason when the daemons cannot be started here.
# usage: slurm_cluster.sh EGGROLL SOURCE_DIR
set -u
EGG=$(readlink -f "$1")
SRC=$(cd "$2" && pwd)
CLUSTER="$SRC/scripts/slurm/local-cluster.sh"
skip() { echo "SKIPPED: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root: the local cluster runs slurmd as SlurmdUser=root"
export PATH="$PATH:/usr/sbin:/sbin"
for b in munged slurmctld slurmd sbatch srun squeue scontrol scancel sinfo; do
  command -v "$b" >/dev/null || skip "$b is not installed (scripts/setup.sh installs munge, slurmctld, slurmd, slurm-client)"
done

TMP=$(mktemp -d /tmp/eggroll-slurm-test.XXXXXX)
export EGGROLL_SLURM_DIR="$TMP/cluster"
# two free ports for slurmctld and slurmd (away from a system Slurm and from other runs)
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for _ in $(seq 1 50); do
  p=$((20000 + RANDOM % 20000))
  port_free "$p" && port_free $((p + 1)) && break
done
export EGGROLL_SLURM_PORT=$p
# a free port for the tcp rendezvous of the jobs (train.sbatch's default derives one from the job id)
free_port() {
  local q
  for _ in $(seq 1 50); do
    q=$((40000 + RANDOM % 20000))
    port_free "$q" && { echo "$q"; return; }
  done
  echo 45678
}
cleanup() {
  bash "$CLUSTER" stop >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

t_start=$(date +%s)
if ! bash "$CLUSTER" start >"$TMP/start.log" 2>&1; then
  cat "$TMP/start.log"
  for f in "$EGGROLL_SLURM_DIR"/log/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 5 "$f"; }; done
  skip "the local Slurm cluster did not start: $(tail -n 1 "$TMP/start.log")"
fi
cat "$TMP/start.log"
export SLURM_CONF="$EGGROLL_SLURM_DIR/slurm.conf"
echo "slurm: $(sinfo --version), srun --mpi=list: $(srun --mpi=list 2>&1 | grep -v 'MPI plugin' | tr -s ' \t\n' ' ')"

fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -n 1 | cut -d= -f2; }
job_field() { scontrol show job "$1" 2>/dev/null | grep -o "$2=[^ ]*" | head -n 1 | cut -d= -f2; }
# wait_job ID SECONDS: until the job (every task of an array) has left the queue; prints its state
wait_job() {
  local id=$1 limit=$2 t0 s
  t0=$(date +%s)
  while [ $(($(date +%s) - t0)) -lt "$limit" ]; do
    if [ -z "$(squeue -h -j "$id" -o %i 2>/dev/null)" ]; then
      s=$(job_state "$id")
      case "$s" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|PREEMPTED|BOOT_FAIL|DEADLINE)
        echo "$s"; return 0 ;;
      esac
    fi
    sleep 0.2
  done
  echo "STILL_$(job_state "$id")"
  scancel "$id" 2>/dev/null
  return 1
}
weights() { echo "$TMP/runs/$1/checkpoints/step_$2/model.safetensors"; }
sha() { sha256sum "$1" 2>/dev/null | cut -c1-16; }
latest_step() {
  local l="$TMP/runs/$1/checkpoints/latest"
  [ -f "$l" ] && sed -n 's/^step_//p' "$l" || echo 0
}

WORK="$TMP/work"
mkdir -p "$WORK" "$TMP/runs"
cd "$WORK" || exit 1
CFG="$TMP/tiny.yaml"
cat >"$CFG" <<'EOF'
run: {steps: 4, checkpoint_every: 2, samples_per_step: 2}
model: {init_preset: tiny, init_seed: 3, vocab: byte}
es: {directions: 8, prompts_per_step: 3, sigma: 0.05, rank: 1}
optim: {name: adam, lr: 0.01}
task: {name: digits, template: raw, answer_length: 5, stop: ""}
dist: {update_mode: replicated}
EOF
export EGGROLL="$EGG" OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
# gVisor-style sandboxes have no cross-memory attach for Open MPI's shared-memory transport
export OMPI_MCA_btl_vader_single_copy_mechanism=none
SB=(sbatch --parsable --ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 --gpus-per-task=0 --time=10)
SBATCH="$SRC/scripts/slurm/train.sbatch"
# reference runs: one process, no Slurm
"$EGG" train -q "$CFG" run.dir="$TMP/runs" run.name=one >/dev/null 2>&1 || bad "1-process reference run failed"
LONG=(es.directions=32 task.answer_length=16 run.steps=60 run.checkpoint_every=2)
"$EGG" train -q "$CFG" run.dir="$TMP/runs" run.name=one_long "${LONG[@]}" >/dev/null 2>&1 ||
  bad "1-process long reference run failed"

# ---- 1. sbatch, 2 tasks, MPI over PMIx ---------------------------------------------------------
t0=$(now)
id=$(RENDEZVOUS=mpi TIMEOUT_S=60 "${SB[@]}" --output="$TMP/s1.out" "$SBATCH" "$CFG" run.dir="$TMP/runs" run.name=s1)
st=$(wait_job "$id" 90)
echo "1. sbatch RENDEZVOUS=mpi (srun --mpi=pmix), 2 tasks: job $id $st, exit $(job_field "$id" ExitCode), $(since "$t0") s;" \
     "1 process $(sha "$(weights one 4)"), 2 ranks $(sha "$(weights s1 4)")"
[ "$st" = COMPLETED ] && ok || { bad "scenario 1: job state $st"; cat "$TMP/s1.out"; }
cmp -s "$(weights one 4)" "$(weights s1 4)" && ok || bad "scenario 1: 2 ranks under Slurm differ from 1 process"
grep -q '"ranks":2' "$TMP/runs/s1/metrics.jsonl" 2>/dev/null && ok || bad "scenario 1: metrics do not say ranks 2"

# ---- 2. sbatch, 2 tasks, TCP rendezvous, no MPI -------------------------------------------------
t0=$(now)
id=$(RENDEZVOUS=tcp MASTER_PORT=$(free_port) TIMEOUT_S=60 "${SB[@]}" --output="$TMP/s2.out" "$SBATCH" "$CFG" run.dir="$TMP/runs" run.name=s2)
st=$(wait_job "$id" 90)
echo "2. sbatch RENDEZVOUS=tcp (srun --mpi=none), 2 tasks: job $id $st, exit $(job_field "$id" ExitCode), $(since "$t0") s;" \
     "2 ranks $(sha "$(weights s2 4)")"
[ "$st" = COMPLETED ] && ok || { bad "scenario 2: job state $st"; cat "$TMP/s2.out"; }
cmp -s "$(weights one 4)" "$(weights s2 4)" && ok || bad "scenario 2: 2 ranks over TCP differ from 1 process"
grep -q '"ranks":2' "$TMP/runs/s2/metrics.jsonl" 2>/dev/null && ok || bad "scenario 2: metrics do not say ranks 2"
grep -q "rendezvous tcp" "$TMP/s2.out" && ok || bad "scenario 2: the job log does not show the tcp rendezvous"

# ---- 3. srun without PMI, MPI backend ------------------------------------------------------------
t0=$(now)
timeout 60 srun --mpi=none --ntasks=2 --cpus-per-task=1 --output="$TMP/s3.%t.out" --error="$TMP/s3.%t.err" \
  "$EGG" train -q "$CFG" run.dir="$TMP/runs" run.name=s3 dist.backend=mpi dist.timeout_s=30 >"$TMP/s3.srun" 2>&1
rc=$?
dt=$(since "$t0")
echo "3. srun --mpi=none, dist.backend=mpi: srun exit $rc after $dt s; $(grep -o 'task[s]* [0-9-]*: Exited with exit code [0-9]*' "$TMP/s3.srun" | tr '\n' ' ')"
[ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && ok || bad "scenario 3: srun exit status $rc (0 = accepted, 124 = hung)"
for t in 0 1; do
  if grep -q "without PMI" "$TMP/s3.$t.err" 2>/dev/null && [ "$(wc -l <"$TMP/s3.$t.err")" -eq 1 ]; then ok
  else bad "scenario 3: task $t did not print the one-line 'without PMI' error: $(head -c 400 "$TMP/s3.$t.err" 2>/dev/null)"; fi
done
grep -q "exit code 2" "$TMP/s3.srun" && ok || bad "scenario 3: tasks did not exit with status 2: $(cat "$TMP/s3.srun")"
sed -n 1p "$TMP/s3.0.err"
awk -v d="$dt" 'BEGIN{exit !(d < 30)}' && ok || bad "scenario 3: took $dt s (timeout 30 s)"

# ---- 4. scancel a running job, resubmit: resumes, bit-identical ---------------------------------
submit4() { RENDEZVOUS=mpi TIMEOUT_S=60 "${SB[@]}" --output="$TMP/s4.$1.out" "$SBATCH" "$CFG" run.dir="$TMP/runs" run.name=s4 "${LONG[@]}"; }
t0=$(now)
id=$(submit4 a)
cancelled_at=0
for _ in $(seq 1 600); do  # up to 60 s: cancel once a checkpoint at step >= 4 exists
  s=$(latest_step s4)
  if [ "$s" -ge 4 ]; then scancel "$id"; cancelled_at=$s; break; fi
  [ -z "$(squeue -h -j "$id" -o %i)" ] && break
  sleep 0.1
done
st=$(wait_job "$id" 60)
stopped=$(latest_step s4)
echo "4. scancel job $id at checkpoint step $cancelled_at: $st after $(since "$t0") s, latest checkpoint step $stopped of 60"
[ "$st" = CANCELLED ] && ok || bad "scenario 4: first job state $st, expected CANCELLED"
[ "$stopped" -ge 4 ] && [ "$stopped" -lt 60 ] && ok || bad "scenario 4: the run was not interrupted midway (latest step $stopped)"
t0=$(now)
id=$(submit4 b)
st=$(wait_job "$id" 120)
echo "   resubmitted as job $id: $st after $(since "$t0") s; uninterrupted $(sha "$(weights one_long 60)"), cancelled+resumed $(sha "$(weights s4 60)")"
[ "$st" = COMPLETED ] && ok || { bad "scenario 4: resubmitted job state $st"; cat "$TMP/s4.b.out"; }
grep -q "resum" "$TMP/s4.b.out" "$TMP/runs/s4/"*.log 2>/dev/null || true
cmp -s "$(weights one_long 60)" "$(weights s4 60)" && ok || bad "scenario 4: cancelled-and-resumed run differs from the uninterrupted one"
lines=$(grep -c . "$TMP/runs/s4/metrics.jsonl" 2>/dev/null)
[ "$lines" = 60 ] && ok || bad "scenario 4: metrics.jsonl has $lines lines, expected 60"

# ---- 5. sweep as a job array -------------------------------------------------------------------
cat >"$WORK/popsweep.yaml" <<EOF
name: popsweep
base: $CFG
overrides: [run.dir=$TMP/runs, run.steps=30, run.checkpoint_every=2, task.answer_length=12, optim.name=sgd, optim.lr=0.1]
grid:
  es.directions: [32, 4]
  run.seed: [0, 1]
EOF
"$EGG" sweep "$WORK/popsweep.yaml" --slurm "$WORK/popsweep.sbatch" --ntasks 1 --gpus-per-task 0 --cpus-per-task 1 --max-parallel 2 \
  --time 00:10:00 >"$TMP/s5.gen" 2>&1 || { bad "scenario 5: eggroll sweep --slurm failed"; cat "$TMP/s5.gen"; }
SWEEP="$TMP/runs/popsweep"
p0=directions-32__seed-0
t0=$(now)
id=$(sbatch --parsable "$WORK/popsweep.sbatch")
cancelled=no
for _ in $(seq 1 600); do  # cancel array task 0 once it has a checkpoint and before it finishes
  s=$(latest_step popsweep/$p0)
  if [ "$s" -ge 2 ] && [ "$s" -lt 30 ]; then scancel "${id}_0" && cancelled="at step $s"; break; fi
  [ "$s" -ge 30 ] && break
  sleep 0.05
done
max_running=0
while [ -n "$(squeue -h -j "$id" -o %i 2>/dev/null)" ]; do  # how many points run at once
  r=$(squeue -h -j "$id" -t RUNNING -o %i 2>/dev/null | wc -l)
  [ "$r" -gt "$max_running" ] && max_running=$r
  [ "$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print (b-a > 120)}')" = 1 ] && break
  sleep 0.1
done
st=$(wait_job "$id" 120)
echo "5. job array $id (4 points, %2): cancelled task 0 $cancelled; array done ($st) after $(since "$t0") s;" \
     "task states: $(scontrol show job "$id" 2>/dev/null | grep -o 'ArrayTaskId=[0-9]*\|JobState=[A-Z]*' | paste -sd' ' | sed 's/ArrayTaskId=//g; s/ JobState=/:/g')"
echo "   at most $max_running array tasks running at once; $(grep -o '^#SBATCH --array=.*' "$WORK/popsweep.sbatch")"
[ "$cancelled" != no ] && ok || bad "scenario 5: array task 0 was not cancelled midway"
[ "$max_running" = 2 ] && ok || bad "scenario 5: $max_running array tasks ran at once, expected 2 (--max-parallel 2)"
"$EGG" sweep "$WORK/popsweep.yaml" --dry-run >"$TMP/s5.dry1" 2>&1
grep -q "$p0.*partial" "$TMP/s5.dry1" && ok || { bad "scenario 5: after the cancel, point 0 is not partial"; cat "$TMP/s5.dry1"; }
[ "$(grep -c 'complete (30/30 steps)' "$TMP/s5.dry1")" = 3 ] && ok || bad "scenario 5: the 3 other points are not complete"
declare -A before
# what running a point changes: its checkpoints and its metrics (a complete point only checks
# its final checkpoint, and rewrites metrics.jsonl with the same lines)
point_state() { echo "$(ls "$1/checkpoints") $(stat -c %Y "$1/checkpoints/latest") $(sha "$1/metrics.jsonl")"; }
for d in "$SWEEP"/directions-*; do before[$d]=$(point_state "$d"); done
t0=$(now)
id2=$(sbatch --parsable "$WORK/popsweep.sbatch")
st=$(wait_job "$id2" 120)
echo "   resubmitted array $id2: $st after $(since "$t0") s"
"$EGG" sweep "$WORK/popsweep.yaml" --dry-run >"$TMP/s5.dry2" 2>&1
cat "$TMP/s5.dry2"
[ "$(grep -c 'complete (30/30 steps), skipped' "$TMP/s5.dry2")" = 4 ] && ok || bad "scenario 5: not every point finished"
rerun=0
for d in "$SWEEP"/directions-*; do
  [ "$(point_state "$d")" != "${before[$d]}" ] && rerun=$((rerun + 1)) && echo "   ran again: $(basename "$d")"
done
[ "$rerun" = 1 ] && [ "${before[$SWEEP/$p0]}" != "$(point_state "$SWEEP/$p0")" ] &&
  ok || bad "scenario 5: $rerun points ran again, expected only $p0"
"$EGG" train -q "$CFG" run.dir="$TMP/runs" run.name=p0ref run.steps=30 run.checkpoint_every=2 task.answer_length=12 \
  optim.name=sgd optim.lr=0.1 es.directions=32 run.seed=0 >/dev/null 2>&1
cmp -s "$(weights p0ref 30)" "$(weights popsweep/$p0 30)" && ok || bad "scenario 5: the cancelled point differs from an uninterrupted run"
if /usr/bin/python3 "$SRC/scripts/report.py" "$SWEEP" --out "$TMP/report" >"$TMP/s5.report" 2>&1; then
  for f in report.csv results.md reward_vs_step.png final_reward_vs_population.png tokens_per_s_vs_population.png; do
    [ -s "$TMP/report/$f" ] && ok || bad "scenario 5: report.py wrote no $f"
  done
  [ "$(grep -c 'directions-' "$TMP/report/report.csv")" = 4 ] && ok || bad "scenario 5: report.csv lacks a point"
else
  bad "scenario 5: report.py failed: $(tail -n 3 "$TMP/s5.report")"
fi

# ---- 6. kill -9 of one task ----------------------------------------------------------------------
#  a. train.sbatch as shipped (srun --kill-on-bad-exit=1): srun ends the step at once, naming the task
#  b. KILL_ON_BAD_EXIT=0, MPI: Slurm's pmix plugin sees the task die and cancels the step itself
#  c. KILL_ON_BAD_EXIT=0, RENDEZVOUS=tcp: the survivor sees rank 1's connection close at once
TIMEOUT6=10
kill_rank1() {  # NAME RENDEZVOUS KILL_ON_BAD_EXIT PATTERN
  local name=$1 rv=$2 kobe=$3 pat=$4 id victim="" n e pid t0 st dt
  id=$(RENDEZVOUS=$rv MASTER_PORT=$(free_port) KILL_ON_BAD_EXIT=$kobe TIMEOUT_S=$TIMEOUT6 "${SB[@]}" --output="$TMP/$name.out" "$SBATCH" "$CFG" \
    run.dir="$TMP/runs" run.name="$name" "${LONG[@]}" run.steps=100000)
  for _ in $(seq 1 600); do  # find rank 1's process once training is under way
    n=$(grep -c . "$TMP/runs/$name/metrics.jsonl" 2>/dev/null)
    if [ "${n:-0}" -ge 2 ]; then
      for e in /proc/[0-9]*/environ; do
        tr '\0' '\n' <"$e" 2>/dev/null | grep -qx "SLURM_JOB_ID=$id" || continue
        tr '\0' '\n' <"$e" 2>/dev/null | grep -qx "SLURM_PROCID=1" || continue
        pid=${e#/proc/}; pid=${pid%/environ}
        [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = eggroll ] && victim=$pid && break
      done 2>/dev/null
      [ -n "$victim" ] && break
    fi
    sleep 0.1
  done
  if [ -z "$victim" ]; then
    bad "scenario 6$name: found no running rank 1 (job $id: $(job_state "$id"))"; scancel "$id"; cat "$TMP/$name.out"
    return
  fi
  t0=$(now)
  kill -9 "$victim"
  st=$(wait_job "$id" $((TIMEOUT6 + 40)))
  dt=$(since "$t0")
  echo "6$name. RENDEZVOUS=$rv KILL_ON_BAD_EXIT=$kobe: kill -9 of rank 1 (pid $victim) in job $id: $st," \
       "exit $(job_field "$id" ExitCode), ended $dt s after the kill (dist.timeout_s $TIMEOUT6)"
  grep -E "$pat" "$TMP/$name.out" | head -n 2 | cut -c1-300 | sed 's/^/   /'
  [ "$st" = FAILED ] && ok || bad "scenario 6$name: job state $st, expected FAILED"
  awk -v d="$dt" -v t="$TIMEOUT6" 'BEGIN{exit !(d <= t + 15)}' && ok || bad "scenario 6$name: took $dt s (timeout $TIMEOUT6 s)"
  grep -Eq "$pat" "$TMP/$name.out" && ok || { bad "scenario 6$name: the job log does not name the lost rank 1 ($pat)"; cat "$TMP/$name.out"; }
}
kill_rank1 a mpi 1 "task 1: Killed"
kill_rank1 b mpi 0 "task 1: Killed"  # Slurm's pmix plugin cancels the step when a task dies
kill_rank1 c tcp 0 "eggroll: error: .*rank 0 of 2.*lost rank 1"
grep -q "task 0: Exited with exit code 3" "$TMP/c.out" && ok || bad "scenario 6c: the survivor did not exit 3 (lost rank)"

# ---- the cluster stops, and nothing of it is left running ----------------------------------------
pids=$(cat "$EGGROLL_SLURM_DIR"/run/*.pid 2>/dev/null)
bash "$CLUSTER" stop
for p in $pids; do kill -0 "$p" 2>/dev/null && bad "daemon pid $p still running after stop"; done
for e in /proc/[0-9]*/environ; do  # job processes of this cluster (they carry its SLURM_CONF)
  p=${e#/proc/}; p=${p%/environ}
  case "$(cat "/proc/$p/comm" 2>/dev/null)" in eggroll|slurmstepd|srun|slurmd|slurmctld|munged) ;; *) continue ;; esac
  tr '\0' '\n' <"$e" 2>/dev/null | grep -qx "SLURM_CONF=$SLURM_CONF" && bad "process $p ($(cat "/proc/$p/comm")) left running"
done 2>/dev/null
echo "stopped; total $(( $(date +%s) - t_start )) s"
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

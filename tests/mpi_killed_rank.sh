#!/usr/bin/env bash
# A rank killed mid-run must make the survivors exit non-zero, quickly, naming the lost rank;
# never a hang. Usage: mpi_killed_rank.sh <mpiexec> <mpi_comm_main> [mpiexec flags...]
# Two runs of `mpi_comm_main kill 4` (the last rank SIGKILLs itself before an all_gather):
#  A. Open MPI with --enable-recovery (mpirun does not kill the survivors): each rank's own exit
#     status is recorded; the survivor must exit 3 (CommTimeout) within the 4 s timeout plus
#     slack, and its message must name rank 1.
#  B. plain mpirun (Open MPI aborts the job when a rank dies): mpirun must exit non-zero, not hang.
#  C. `mpi_comm_main stall 4`: the last rank hangs instead of dying; the survivor must time out
#     naming it, exit 3, and take the job down with it (mpirun exits non-zero, nobody hangs).
# Both under `timeout 60` as a safety net (status 124 = hang = failure).
set -u
MPIEXEC=$1; EXE=$2; shift 2
FLAGS=("$@")
TIMEOUT_S=4
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; echo "--- output ---"; cat "$work"/out.* 2>/dev/null; exit 1; }
now() { date +%s.%N; }
# Runs "$@" under `timeout 60` into $work/out.NAME; sets rc and dt (seconds). A hang fails.
timed() {
  local name=$1 t0 t1
  shift
  t0=$(now)
  timeout 60 "$@" >"$work/out.$name" 2>&1
  rc=$?; t1=$(now)
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')
  [ $rc -ne 124 ] || fail "run $name hung (killed by timeout 60)"
}

if "$MPIEXEC" --version 2>&1 | grep -Eq "Open MPI|OpenRTE"; then
  timed A "$MPIEXEC" "${FLAGS[@]}" --enable-recovery -np 2 \
    sh -c '"$1" kill "$2"; echo $? > "$3/rc.$OMPI_COMM_WORLD_RANK"' sh "$EXE" "$TIMEOUT_S" "$work"
  [ -f "$work/rc.0" ] || fail "run A: the survivor (rank 0) recorded no exit status"
  rc0=$(cat "$work/rc.0")
  [ "$rc0" = 3 ] || fail "run A: survivor exit status $rc0, expected 3 (CommTimeout)"
  grep -q "rank 0: CommTimeout after" "$work/out.A" || fail "run A: no CommTimeout message from the survivor"
  grep -q "lost rank 1" "$work/out.A" || fail "run A: the message does not name the lost rank 1"
  survivor=$(grep -o "CommTimeout after [0-9.]* s" "$work/out.A" | head -1 | grep -o "[0-9.]*")
  ok=$(awk -v s="$survivor" -v t="$TIMEOUT_S" 'BEGIN{print (s <= t + 2) ? 1 : 0}')
  [ "$ok" = 1 ] || fail "run A: survivor took $survivor s for a $TIMEOUT_S s timeout"
  echo "run A (--enable-recovery): survivor exit 3 after ${survivor} s in the collective, mpirun total ${dt} s"
  grep "CommTimeout after" "$work/out.A"
fi

timed B "$MPIEXEC" "${FLAGS[@]}" -np 2 "$EXE" kill "$TIMEOUT_S"
[ $rc -ne 0 ] || fail "run B: mpirun exited 0 although a rank was killed"
echo "run B (plain mpirun): exit status $rc after ${dt} s"
if grep -q "CommTimeout" "$work/out.B"; then grep "CommTimeout" "$work/out.B"; fi
timed C "$MPIEXEC" "${FLAGS[@]}" -np 2 "$EXE" stall "$TIMEOUT_S"
[ $rc -ne 0 ] || fail "run C: mpirun exited 0 although a rank hung"
grep -q "rank 0: CommTimeout after" "$work/out.C" || fail "run C: no CommTimeout message from rank 0"
grep -q "lost rank 1" "$work/out.C" || fail "run C: the message does not name the stuck rank 1"
echo "run C (stuck rank): mpirun exit status $rc after ${dt} s"
grep "CommTimeout after" "$work/out.C"
echo PASS

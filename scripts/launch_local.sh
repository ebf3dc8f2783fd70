#!/usr/bin/env bash
# One training run over N local processes (ranks) with mpirun:
#
#   scripts/launch_local.sh N CONFIG.yaml [key.path=value ...]
#   scripts/launch_local.sh 2 configs/quickstart.yaml run.steps=5 dist.backend=mpi
#
# Every rank runs `eggroll train CONFIG.yaml overrides...`; the trainer splits the population
# across the ranks (dist.backend auto = mpi when mpirun reports more than one rank).
#
# Environment:
#   EGGROLL=path/to/eggroll   the binary (default: build/eggroll of this checkout)
#   MPIRUN=mpirun             the launcher (mpirun / mpiexec of Open MPI or MPICH)
#   MPIRUN_ARGS="..."         extra launcher arguments (e.g. "--host a,b")
#   OMP_NUM_THREADS           CPU threads per rank (default: cores / N, at least 1)
#
# Launcher settings:
#   - Open MPI: --oversubscribe (more ranks than cores/slots is allowed; useful on a laptop or a
#     2-core CI machine), --bind-to none (ranks are OpenMP programs: binding each to one core
#     would squeeze all its threads onto it); when run as root, OMPI_ALLOW_RUN_AS_ROOT(_CONFIRM)
#     are exported (Open MPI refuses root otherwise: containers often run as root).
#   - MPICH / Hydra: -bind-to none.
set -euo pipefail

usage() {
  echo "usage: $0 N CONFIG.yaml [key.path=value ...]   (N = number of ranks, >= 1)" >&2
  exit 2
}
[ $# -ge 2 ] || usage
NP=$1
shift
[[ "$NP" =~ ^[1-9][0-9]*$ ]] || { echo "$0: N must be a positive integer, got '$NP'" >&2; usage; }
CONFIG=$1
[ -f "$CONFIG" ] || { echo "$0: config file '$CONFIG' not found" >&2; exit 2; }

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EGGROLL="${EGGROLL:-$ROOT/build/eggroll}"
[ -x "$EGGROLL" ] || { echo "$0: $EGGROLL not found or not executable (build first: scripts/build.sh, or set EGGROLL=...)" >&2; exit 2; }
MPIRUN="${MPIRUN:-mpirun}"
command -v "$MPIRUN" > /dev/null || { echo "$0: '$MPIRUN' not found (install Open MPI or MPICH, or set MPIRUN=...)" >&2; exit 2; }

# CPU threads per rank: share the cores.
if [ -z "${OMP_NUM_THREADS:-}" ]; then
  CORES=$(nproc 2> /dev/null || echo 1)
  OMP_NUM_THREADS=$(( CORES / NP ))
  [ "$OMP_NUM_THREADS" -ge 1 ] || OMP_NUM_THREADS=1
fi
export OMP_NUM_THREADS

ARGS=()
ENVS=()
if "$MPIRUN" --version 2>&1 | grep -qE "Open MPI|OpenRTE"; then
  ARGS+=(--oversubscribe --bind-to none -x OMP_NUM_THREADS)
  if [ "$(id -u)" = 0 ]; then
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  fi
  # shared-memory transport without the kernel's single-copy path (fails inside many containers)
  export OMPI_MCA_btl_vader_single_copy_mechanism="${OMPI_MCA_btl_vader_single_copy_mechanism:-none}"
else
  ARGS+=(-bind-to none)
  ENVS+=(-genv OMP_NUM_THREADS "$OMP_NUM_THREADS")
fi
# shellcheck disable=SC2206  # MPIRUN_ARGS is split on purpose
EXTRA=(${MPIRUN_ARGS:-})

echo "launch: $MPIRUN -np $NP ${ARGS[*]} ${EXTRA[*]} $EGGROLL train $* (OMP_NUM_THREADS=$OMP_NUM_THREADS)" >&2
exec "$MPIRUN" -np "$NP" "${ARGS[@]}" "${ENVS[@]}" "${EXTRA[@]}" "$EGGROLL" train "$@"

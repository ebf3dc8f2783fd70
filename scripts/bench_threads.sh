#!/usr/bin/env bash
# Threads on a shared machine: quiet vs loaded decode throughput of our thread pool and of the
# same chunks under OpenMP (EGGROLL_PARALLEL=openmp), one JSON line per (backend, batch) plus a
# summary table. The competing load (busy-spinning processes) is started and stopped by the bench
# itself, interleaved with the quiet measurements (`eggroll bench forward --competing-load N`).
# Usage: scripts/bench_threads.sh [EGGROLL_BINARY] ; environment: PRESET (0.1b), BATCH (1,64),
#        LOAD (1 busy process), REPEAT (3), BENCH_SECONDS (2), THREADS (0 = all CPUs)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
egg=${1:-$root/build/eggroll}
[ -x "$egg" ] || { echo "bench_threads: no eggroll binary at $egg (build first, or pass its path)" >&2; exit 2; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for backend in pool openmp; do
  # OMP_WAIT_POLICY unset: OpenMP's default (active) waiting, as a run without the variable has
  env -u OMP_WAIT_POLICY EGGROLL_PARALLEL=$backend "$egg" bench forward --preset "${PRESET:-0.1b}" \
    --batch "${BATCH:-1,64}" --competing-load "${LOAD:-1}" --repeat "${REPEAT:-3}" \
    --seconds "${BENCH_SECONDS:-2}" --threads "${THREADS:-0}" | tee -a "$out"
done
python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print(f"{'backend':8} {'batch':>5} {'threads':>7} {'quiet tok/s':>12} {'loaded tok/s':>13} {'loaded/quiet':>12}")
for r in rows:
    print(f"{r['parallel']:8} {r['batch']:>5} {r['threads']:>7} {r['tokens_per_s']:>12.1f} "
          f"{r['loaded_tokens_per_s']:>13.1f} {r['loaded_vs_quiet']:>12.2f}")
pool = {r['batch']: r for r in rows if r['parallel'] == 'pool'}
for r in rows:
    if r['parallel'] == 'openmp' and r['batch'] in pool:
        print(f"batch {r['batch']}: pool / openmp quiet {pool[r['batch']]['tokens_per_s'] / r['tokens_per_s']:.2f}, "
              f"loaded {pool[r['batch']]['loaded_tokens_per_s'] / r['loaded_tokens_per_s']:.2f}")
EOF

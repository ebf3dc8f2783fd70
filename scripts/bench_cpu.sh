#!/usr/bin/env bash
# The CPU benchmark tables of the README in one command (run it on an idle machine): bench
# forward in fp32 and bf16, our bf16 GEMM against oneDNN's (when eggroll-bench-onednn was built),
# bench es in fp32 and bf16 (EGGROLL vs inference vs the same-work OpenES at 16 tokens per member,
# and at 256 tokens per member on a smaller population), and the thread pool quiet vs loaded.
# Every JSON line goes to OUT_DIR (default bench-out/); a summary is printed at the end.
# Usage: scripts/bench_cpu.sh [BUILD_DIR] ; environment: OUT_DIR, PRESET (0.1b), SECONDS_PER (2)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${1:-$root/build}
egg=$build/eggroll
[ -x "$egg" ] || { echo "bench_cpu: no eggroll binary in $build (build first, or pass the build dir)" >&2; exit 2; }
out=${OUT_DIR:-bench-out}
mkdir -p "$out"
preset=${PRESET:-0.1b}
sec=${SECONDS_PER:-2}
lscpu | grep -E "Model name|^CPU\(s\)|Flags" | sed 's/Flags:.*\(avx512_bf16\).*/AVX512-BF16: yes/' >"$out/cpu.txt" || true
date -u +%FT%TZ >>"$out/cpu.txt"
for dt in f32 bf16; do
  echo "== bench forward --dtype $dt" >&2
  "$egg" bench forward --preset "$preset" --dtype "$dt" --batch 1,16,64,256 --seconds "$sec" | tee "$out/forward-$dt.jsonl"
done
if [ -x "$build/eggroll-bench-onednn" ]; then
  echo "== eggroll-bench-onednn" >&2
  "$build/eggroll-bench-onednn" --seconds 1 --batch 1,16,64,256 | tee "$out/onednn.jsonl"
fi
for dt in f32 bf16; do
  echo "== bench es --dtype $dt (16 tokens per member)" >&2
  "$egg" bench es --preset "$preset" --dtype "$dt" --population 256,1024 --tokens 16 --repeat 1 | tee "$out/es16-$dt.jsonl"
  echo "== bench es --dtype $dt (256 tokens per member)" >&2
  "$egg" bench es --preset "$preset" --dtype "$dt" --population 32 --tokens 256 --repeat 1 | tee "$out/es256-$dt.jsonl"
done
echo "== threads: pool vs OpenMP, quiet vs loaded" >&2
REPEAT=2 bash "$root/scripts/bench_threads.sh" "$egg" | tee "$out/threads.txt"

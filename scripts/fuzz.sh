#!/usr/bin/env bash
# Fuzzes the checkpoint readers (.pth and safetensors), the math task's answer parser
# (tasks/math.h: extraction, normalisation, evaluator) and the external reward process's answer
# reader (tasks/external.h) with libFuzzer + ASan + UBSan.
#
#   scripts/fuzz.sh                 # 60 s per target
#   FUZZ_SECONDS=600 scripts/fuzz.sh
#
# Builds build-fuzz/ with clang (-DEGGROLL_FUZZ=ON), seeds each corpus with small files made
# from our writer and the fixtures (fuzz/make_seeds.cpp), then runs every target for
# FUZZ_SECONDS. The corpora in build-fuzz/corpus/ grow across runs. Exits non-zero on any
# finding (crash, sanitizer report, leak, timeout, out-of-memory); reproducers are kept in
# build-fuzz/findings/<target>/ — rerun one with build-fuzz/<target> <file>.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
seconds=${FUZZ_SECONDS:-60}
jobs=${FUZZ_BUILD_JOBS:-2}
targets=(fuzz_pth fuzz_safetensors fuzz_math fuzz_external_lines)

# What the clang build needs from Debian, checked first so that a missing piece is named.
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found: apt-get install clang (scripts/setup.sh does)" >&2; exit 2; }
printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' >"$probe/f.cpp"
clang++ -fsanitize=fuzzer,address,undefined "$probe/f.cpp" -o "$probe/f" 2>"$probe/err" || {
  echo "fuzz.sh: clang++ cannot link libFuzzer/ASan: apt-get install libclang-rt-14-dev (scripts/setup.sh does)" >&2
  cat "$probe/err" >&2; exit 2; }
printf '#include <omp.h>\nint main() { return omp_get_max_threads() > 0 ? 0 : 1; }\n' >"$probe/o.cpp"
clang++ -fopenmp "$probe/o.cpp" -o "$probe/o" 2>"$probe/err" || {
  echo "fuzz.sh: clang++ has no OpenMP runtime: apt-get install libomp-dev (scripts/setup.sh does)" >&2
  cat "$probe/err" >&2; exit 2; }

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DEGGROLL_FUZZ=ON -DEGGROLL_TESTS=OFF -DEGGROLL_CUDA=OFF >/dev/null
cmake --build "$build" -j"$jobs" --target "${targets[@]}" fuzz_make_seeds

seeds=$build/seeds
rm -rf "$seeds"
"$build/fuzz_make_seeds" "$seeds" "$root/../shared/fixtures/rwkv7"
# math answers: "<gold>\x01<completion>" (printf formats: \\ is one backslash)
mkdir -p "$seeds/math"
i=0
for s in '\\frac{1}{2}\x01ok</think> \\boxed{0.5}' '(1,2)\x01</think>$\\boxed{\\left(1, 2\\right)}$' \
    '1,000\x01</think><answer>1000</answer>' 'x=3\x01\\boxed 3$' '\\sqrt[3]{-27}\x01</think>\\fbox{-3}' \
    '[1,2)\x01</think>\\boxed{[1,2)}' '\\{1,2\\}\x01</think>\\boxed{\\{2,1\\}}' '3\\frac12\x01</think>\\boxed{3.5}' \
    '90^\\circ\x01</think>\\boxed{90\\text{ degrees}}' '2^{10}\x01</think>\\boxed{1024.}'; do
  printf "$s" >"$seeds/math/seed$i"
  i=$((i + 1))
done

# external answers: a chunk-size byte, then lines
mkdir -p "$seeds/external_lines"
printf '\x07{"reward": 1}\n{"reward": -2.5, "x": [1]}\r\n\n{"reward": "1"}\nnot json\n{"rew' >"$seeds/external_lines/seed0"
printf '\x00{"reward": 1e308}\n[1]\n{}\n' >"$seeds/external_lines/seed1"

# Tokens the mutator may splice in.
cat >"$build/pth.dict" <<'EOF'
"PK\x03\x04"
"PK\x01\x02"
"PK\x05\x06"
"PK\x06\x06"
"PK\x06\x07"
"data.pkl"
"data/"
"\x80\x02"
"collections\x0AOrderedDict\x0A"
"torch._utils\x0A_rebuild_tensor_v2\x0A"
"torch._utils\x0A_rebuild_parameter\x0A"
"torch\x0AFloatStorage\x0A"
"torch\x0ABFloat16Storage\x0A"
"torch\x0AHalfStorage\x0A"
"storage"
"cpu"
"\x8a\x08"
"\xff\xff\xff\xff"
EOF
cat >"$build/safetensors.dict" <<'EOF'
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"BF16\""
"\"F16\""
"18446744073709551615"
"4294967296"
"[0,0]"
"{}"
EOF

cat >"$build/math.dict" <<'EOF'
"\\boxed{"
"\\fbox{"
"</think>"
"<answer>"
"</answer>"
"\\frac"
"\\dfrac"
"\\sqrt"
"\\sqrt["
"\\pi"
"\\left("
"\\right)"
"\\text{"
"^{"
"^\\circ"
"\\{"
"\\}"
"\\cdot"
"{,}"
"\x01"
EOF

cat >"$build/external_lines.dict" <<'EOF'
"{\"reward\": "
"}\x0a"
"\x0d\x0a"
"1e999"
"NaN"
"null"
EOF

status=0
for t in "${targets[@]}"; do
  kind=${t#fuzz_}
  corpus=$build/corpus/$kind
  findings=$build/findings/$t
  mkdir -p "$corpus" "$findings"
  echo "== $t: ${seconds}s"
  set +e
  "$build/$t" "$corpus" "$seeds/$kind" \
    -dict="$build/$kind.dict" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$findings/" 2>"$build/$t.log"
  rc=$?
  set -e
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|Done [0-9]+ runs" "$build/$t.log" || true
  found=$(find "$findings" -type f | wc -l)
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    echo "!! $t: exit status $rc, $found finding(s) in $findings (log: $build/$t.log)"
    tail -40 "$build/$t.log"
    status=1
  else
    echo "-- $t: clean"
  fi
done
exit $status

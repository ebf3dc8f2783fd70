#!/usr/bin/env bash
# GPU checks for a lent GPU machine, as one prepared command.
#
# The GPU machine has nvcc, cmake and the CUDA libraries, but none of the Debian packages this
# project builds against (fmt, spdlog, yaml-cpp, Eigen, Open MPI, ...). So the programs are built
# HERE (sm_90a machine code + compute_80 PTX) and carried, with the shared libraries they need that
# the GPU machine lacks, in one ignored folder:
#
#   1. here:   bash scripts/device-check.sh pack
#              builds gpu_ops_main, gpu_init_main and eggroll (+ nccl_comm_main, + any gpu_bench*
#              target) in build-cuda/ and fills build-cuda/device-bundle/ (binaries, their
#              non-system, non-CUDA libraries, libcudart, and a copy of ../shared/fixtures/rwkv7);
#              prints its size (< 64 MiB)
#   2. there:  the device tool's run with
#                command: bash scripts/device-check.sh run
#                carry:   ["build-cuda/device-bundle"]
#                timeout_s: 420
#              runs nvidia-smi, then every test program in the bundle with a timeout, all output
#              into $OUT/device-check.log (also on stdout): test_backend_ops (the op table: every
#              Backend op on the CUDA backend against its CPU reference; then --perf and
#              --perf --large on the CUDA backend into $OUT/backend-ops-perf.jsonl), gpu_ops_main (the
#              device step against the CPU step and the float64 fixtures, whole ES steps against
#              the CPU backend), gpu_init_main (device-side random init and the OpenES kernel
#              against their CPU references), nccl_comm_main (NCCL backend on one GPU),
#              gpu_bench* if any; then the embedded quickstart training run with run.device=cuda
#              (fp32: its final validation score must reach 20 of 24, as the CPU run's 24 does;
#              then bf16 weights, reported only).
#              Exit status 0 only if every check passed (a SKIPPED program, status 77, counts as
#              a failure there: that machine has a GPU).
#              `run quick` (one short lease): tight time limits (op table 120 s, gpu_ops 90 s,
#              others 45 s, NCCL 25 s), no --perf, the quickstart in fp32 only (75 s), and
#              bench-es on populations 256,1024 (110 s); about 7 minutes at most.
#              `run sanitize` also runs gpu_ops_main and test_backend_ops --backend cuda under
#              compute-sanitizer memcheck (works on Firecracker machines, not on gVisor ones:
#              KINDS.md).
#              `run bench-es 7.2b` (after the others if several) also runs the issue's benchmark,
#              `eggroll bench es --backend cuda --preset 7.2b --population 256,1024,2048 --tokens 16`
#              (random weights made on the device, ceilings measured in the same run; a few
#              minutes at most, timeout 420 s), its JSON lines into the log and into
#              $OUT/bench-es-PRESET.jsonl. `run skip-tests bench-es 7.2b` runs the benchmark alone.
#
# cuBLAS (~600 MB), cuRAND and NCCL are too large to carry: `run` finds the GPU machine's own
# copies (/usr/local/cuda, the PyTorch venv's nvidia-* wheels) and puts them on LD_LIBRARY_PATH;
# the log lists any library still missing (ldd). The bundle keeps libstdc++ / glibc out: the GPU
# machine's are newer than this Debian 12's and backward compatible.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${EGGROLL_CUDA_BUILD:-build-cuda}
BUNDLE=$BUILD/device-bundle
mode=${1:-}
shift || true
sanitize=0
tests=1
quick=0
bench_es_presets=()
while [ $# -gt 0 ]; do
  case "$1" in
    sanitize) sanitize=1; shift ;;
    skip-tests) tests=0; shift ;;
    quick) quick=1; shift ;;
    bench-es)
      shift
      presets=()
      while [ $# -gt 0 ] && [[ "$1" != sanitize && "$1" != skip-tests && "$1" != bench-es ]]; do
        presets+=("$1")
        shift
      done
      bench_es_presets+=("${presets[@]:-7.2b}")
      ;;
    *) echo "device-check: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

pack() {
  set -e
  # configure every time: an existing build folder may predate targets (its Makefiles would not
  # know them until cmake runs again)
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  local help
  help=$(cmake --build "$BUILD" --target help)
  if ! grep -q ' eggroll_cuda$' <<<"$help"; then
    echo "device-check: $BUILD has no CUDA backend (no nvcc found at configure time)" >&2
    exit 1
  fi
  local targets="test_backend_ops gpu_ops_main gpu_init_main eggroll"
  if grep -q ' nccl_comm_main$' <<<"$help"; then targets="$targets nccl_comm_main"; fi
  for t in $(awk '/ gpu_bench/ {print $2}' <<<"$help"); do targets="$targets $t"; done
  cmake --build "$BUILD" -j"${EGGROLL_BUILD_JOBS:-2}" --target $targets
  rm -rf "$BUNDLE"
  mkdir -p "$BUNDLE/bin" "$BUNDLE/lib" "$BUNDLE/fixtures"
  for t in $targets; do cp "$BUILD/$t" "$BUNDLE/bin/"; done
  # libraries: everything ldd resolves except glibc, libstdc++/libgcc_s, the driver and the big
  # CUDA libraries the GPU machine has (cuBLAS, cuBLASLt, cuRAND, NCCL)
  for b in "$BUNDLE"/bin/*; do
    ldd "$b" | awk '$2 == "=>" && $3 ~ /^\// {print $1, $3}'
  done | sort -u | while read -r name path; do
    case "$name" in
      libc.so.*|libm.so.*|libdl.so.*|libpthread.so.*|librt.so.*|ld-linux*|libstdc++.so.*|libgcc_s.so.*) ;;
      libcuda.so.*|libnvidia*|libcublas*|libcurand*|libnccl*) ;;
      *) cp -L "$path" "$BUNDLE/lib/$name" ;;
    esac
  done
  if [ -d ../shared/fixtures/rwkv7 ]; then
    mkdir -p "$BUNDLE/fixtures/rwkv7"
    cp ../shared/fixtures/rwkv7/* "$BUNDLE/fixtures/rwkv7/"
  else
    echo "device-check: ../shared/fixtures/rwkv7 not found: the fixture checks will fail" >&2
  fi
  git rev-parse --short HEAD >"$BUNDLE/commit" 2>/dev/null || true
  date -u +%FT%TZ >>"$BUNDLE/commit"
  echo "device-check: bundle $BUNDLE ($(du -sh "$BUNDLE" | cut -f1)):"
  ls "$BUNDLE/bin" "$BUNDLE/lib"
}

# Directories holding the CUDA libraries the bundle leaves out.
cuda_lib_dirs() {
  local d
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda/lib \
           /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
    [ -d "$d" ] && echo "$d"
  done
  # the nvidia-* wheels of a Python environment (PyTorch's venv on the GPU machine)
  local py
  for py in python3 /opt/torch/.venv/bin/python3; do
    command -v "$py" >/dev/null 2>&1 || continue
    "$py" - <<'PY' 2>/dev/null
import glob, os, site, sys
roots = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
roots += [p for p in sys.path if p.endswith("site-packages")]
seen = set()
for r in roots:
    for d in glob.glob(os.path.join(r, "nvidia", "**", "lib"), recursive=True):
        if d not in seen and os.path.isdir(d):
            seen.add(d)
            print(d)
PY
  done
}

run_checks() {
  echo "== eggroll device check: $(date -u +%FT%TZ) on $(hostname)"
  [ -f "$BUNDLE/commit" ] && echo "bundle built from: $(tr '\n' ' ' <"$BUNDLE/commit")"
  if [ ! -d "$BUNDLE/bin" ]; then
    echo "device-check: no $BUNDLE: run 'bash scripts/device-check.sh pack' here and carry $BUNDLE"
    exit 2
  fi
  nvidia-smi -L || echo "device-check: nvidia-smi failed"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm --format=csv 2>/dev/null || true
  local libpath
  libpath="$(pwd)/$BUNDLE/lib"
  while read -r d; do libpath="$libpath:$d"; done < <(cuda_lib_dirs | awk '!seen[$0]++')
  export LD_LIBRARY_PATH="$libpath${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export EGGROLL_FIXTURES="$(pwd)/$BUNDLE/fixtures"
  echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
  local failed=0 b name rc
  for b in "$BUNDLE"/bin/*; do
    name=$(basename "$b")
    [ "$tests" = 1 ] || break
    [ "$name" = eggroll ] && continue  # the command line: run by bench-es below
    echo
    echo "== $name"
    if ldd "$b" | grep -q "not found"; then
      echo "device-check: $name: missing libraries:"
      ldd "$b" | grep "not found"
    fi
    local limit=300
    [ "$name" = nccl_comm_main ] && limit=120
    if [ "$quick" = 1 ]; then  # one short lease: tight limits, no --perf, quickstart in fp32 only
      case "$name" in
        test_backend_ops) limit=120 ;;
        gpu_ops_main) limit=90 ;;
        nccl_comm_main) limit=25 ;;
        *) limit=45 ;;
      esac
    fi
    if [ "$name" = test_backend_ops ]; then
      # the op table: its cuda column must run here (SKIPPED counts as a failure on a GPU machine)
      timeout "$limit" "$b" | tee "${OUT:-.}/backend-ops.log"
      rc=${PIPESTATUS[0]}
      if grep -q "SKIPPED cuda column" "${OUT:-.}/backend-ops.log"; then rc=77; fi
      echo "== $name: exit $rc"
      [ "$rc" -ne 0 ] && failed=$((failed + 1))
      [ "$quick" = 1 ] && continue
      echo "== $name --perf (JSON lines, also in \$OUT/backend-ops-perf.jsonl)"
      timeout 120 "$b" --perf --backend cuda | tee "${OUT:-.}/backend-ops-perf.jsonl"
      timeout 180 "$b" --perf --large --backend cuda | tee -a "${OUT:-.}/backend-ops-perf.jsonl"
      continue
    fi
    timeout "$limit" "$b"
    rc=$?
    echo "== $name: exit $rc"
    [ "$rc" -ne 0 ] && failed=$((failed + 1))
  done
  if [ "$sanitize" = 1 ] && [ "$tests" = 1 ]; then
    echo
    echo "== compute-sanitizer --tool memcheck gpu_ops_main"
    local cs=""
    for c in compute-sanitizer /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer; do
      if command -v "$c" >/dev/null 2>&1; then cs=$c; break; fi
    done
    if [ -n "$cs" ]; then
      timeout 400 "$cs" --tool memcheck --error-exitcode 3 "$BUNDLE/bin/gpu_ops_main"
      rc=$?
      echo "== memcheck: exit $rc"
      [ "$rc" -ne 0 ] && failed=$((failed + 1))
      echo "== compute-sanitizer --tool memcheck test_backend_ops --backend cuda"
      timeout 400 "$cs" --tool memcheck --error-exitcode 3 "$BUNDLE/bin/test_backend_ops" --backend cuda | tail -8
      rc=${PIPESTATUS[0]}
      echo "== memcheck (op table): exit $rc"
      [ "$rc" -ne 0 ] && failed=$((failed + 1))
    else
      echo "device-check: compute-sanitizer not on PATH"
    fi
  fi
  if [ "$tests" = 1 ]; then
    # the trainer on the GPU: the embedded quickstart (tiny model, digits task, 30 steps)
    local dtype score
    local dtypes="f32 bf16" train_limit=240
    [ "$quick" = 1 ] && dtypes=f32 train_limit=75
    for dtype in $dtypes; do
      echo
      echo "== eggroll train (quickstart) run.device=cuda model.init_dtype=$dtype"
      rm -rf "${OUT:-.}/runs/quickstart-cuda-$dtype"
      timeout "$train_limit" "$BUNDLE/bin/eggroll" train run.device=cuda model.init_dtype=$dtype \
        run.name=quickstart-cuda-$dtype run.dir="${OUT:-.}/runs" run.threads=4
      rc=$?
      score=$(grep -o '"val_score":[-0-9.e]*' "${OUT:-.}/runs/quickstart-cuda-$dtype/metrics.jsonl" 2>/dev/null |
        tail -1 | cut -d: -f2)
      tail -1 "${OUT:-.}/runs/quickstart-cuda-$dtype/metrics.jsonl" 2>/dev/null
      echo "== train $dtype: exit $rc, final val_score ${score:-none} (the CPU run: 24)"
      if [ "$dtype" = f32 ]; then
        if [ "$rc" -ne 0 ] || ! awk -v s="${score:-0}" 'BEGIN { exit !(s >= 20) }'; then failed=$((failed + 1)); fi
      fi
    done
  fi
  local p json
  for p in "${bench_es_presets[@]}"; do
    echo
    local pops=256,1024,2048 bench_limit=420
    [ "$quick" = 1 ] && pops=256,1024 bench_limit=110
    echo "== eggroll bench es --backend cuda --preset $p --population $pops --tokens 16"
    json=${OUT:-.}/bench-es-$p.jsonl
    timeout "$bench_limit" "$BUNDLE/bin/eggroll" bench es --backend cuda --preset "$p" --population "$pops" \
      --tokens 16 >"$json"
    rc=$?
    cat "$json"
    echo "== bench-es $p: exit $rc"
    [ "$rc" -ne 0 ] && failed=$((failed + 1))
  done
  echo
  echo "== device check: $failed program(s) failed"
  [ "$failed" -eq 0 ]
}

run() {
  local log=${OUT:-.}/device-check.log
  run_checks 2>&1 | tee "$log"
}

case "$mode" in
  pack) pack ;;
  run) run ;;
  *)
    echo "usage: bash scripts/device-check.sh pack   (here: build + bundle)" >&2
    echo "       bash scripts/device-check.sh run [sanitize] [skip-tests] [bench-es PRESET ...]" >&2
    echo "           (on the GPU machine, carrying $BUNDLE)" >&2
    exit 2
    ;;
esac

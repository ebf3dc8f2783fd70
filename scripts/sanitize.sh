#!/usr/bin/env bash
# Builds the parser tests (checkpoints, tokenizer, config, tasks, run state, math answers,
# external answers) with ASan + UBSan in build-asan/ and runs them; any sanitizer report fails the run.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${ASAN_BUILD_DIR:-$root/build-asan}
tests=(test_checkpoint test_tokenizer test_config test_tasks test_run_dir test_math test_external)
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGGROLL_CUDA=OFF \
  -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
cmake --build "$build" -j"${ASAN_BUILD_JOBS:-2}" --target "${tests[@]}"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for t in "${tests[@]}"; do
  echo "== $t (ASan/UBSan)"
  (cd "$root" && "$build/$t")
done

#!/usr/bin/env bash
# Configures and builds eggroll (Release, host vector instructions, CUDA when the toolkit is present).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${EGGROLL_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$(nproc)"

#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test with ctest (unit and command-line tests,
# MPI tests, the ASan/UBSan build of the parser tests and the 60-second fuzz runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
ctest --test-dir build --output-on-failure -j"${EGGROLL_TEST_JOBS:-2}" "$@"

#!/usr/bin/env bash
# Installs dependencies, builds, and runs every test with ctest (unit and command-line tests,
# MPI tests, the ASan/UBSan build of the parser tests and the 60-second fuzz runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
# ctest runs two tests at once on these 2-core machines: OpenMP threads that spin while they wait
# for a descheduled sibling make an oversubscribed test many times slower, so they sleep instead
# (this matters only for EGGROLL_PARALLEL=openmp: our own pool, core/parallel.h, sleeps by itself)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --test-dir build --output-on-failure -j"${EGGROLL_TEST_JOBS:-2}" "$@"

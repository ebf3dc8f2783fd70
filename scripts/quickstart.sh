#!/usr/bin/env bash
# The main job: installs dependencies, builds, and runs the embedded quickstart training run
# (a tiny RWKV-7 made from a seed learns the toy "digits" task), then plots its reward curve.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
./build/eggroll train "$@"
/usr/bin/python3 scripts/plot_metrics.py runs/quickstart --out runs/quickstart/reward.png --title "quickstart: tiny RWKV-7, digits task"

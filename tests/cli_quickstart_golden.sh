#!/usr/bin/env bash
# The embedded quickstart's final weights, optimizer state and samples, and `eggroll generate`
# from those weights (greedy and sampled), bit for bit against tests/data/quickstart_golden.txt.
# The goldens hold for x86-64 with AVX-512F and FMA (the vector code the compiler emits for
# -march=native decides the float rounding); elsewhere the test reports itself skipped (77).
. "$(dirname "$0")/lib_cli.sh"
GOLD=$(dirname "$0")/data/quickstart_golden.txt
if ! grep -qw avx512f /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
  echo "SKIPPED: the goldens were recorded with AVX-512F + FMA; this CPU lacks one of them"
  exit 77
fi
gold() { awk -v k="$1" '$1 == k { print $2 }' "$GOLD"; }
check() {  # check NAME FILE
  local got
  got=$(sha256sum "$2" | cut -d' ' -f1)
  if [ "$got" = "$(gold "$1")" ]; then ok; else bad "$1: sha256 $got, golden $(gold "$1")"; fi
}
(cd "$TMP" && "$EGG" train >"$TMP/train.log" 2>&1) || bad "eggroll train (quickstart) failed: $(tail -3 "$TMP/train.log")"
R=$TMP/runs/quickstart
check model.safetensors "$R/checkpoints/step_30/model.safetensors"
check optimizer.safetensors "$R/checkpoints/step_30/optimizer.safetensors"
check samples.jsonl "$R/samples.jsonl"
gen() { "$EGG" generate --model "$R/checkpoints/step_30/model.safetensors" --tokens 10,50,100 --max-tokens 32 -n 4 \
  --temperature "$1" --top-k 50 --seed 7 --json |
  python3 -c "import json, sys; print(json.dumps(json.load(sys.stdin)['samples'], sort_keys=True))"; }
gen 0 >"$TMP/greedy.json" && check generate_greedy "$TMP/greedy.json" || bad "generate (greedy) failed"
gen 2.0 >"$TMP/sampled.json" && check generate_sampled "$TMP/sampled.json" || bad "generate (sampled) failed"
finish

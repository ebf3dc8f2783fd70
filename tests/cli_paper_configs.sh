#!/usr/bin/env bash
# Every config in configs/ runs 2 steps with a tiny model and tiny data in place of the real
# ones (the paper runs' hyperparameters otherwise as written): a smoke test of each config.
. "$(dirname "$0")/lib_cli.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
for cfg in "$ROOT"/configs/*.yaml; do
  name=$(basename "$cfg" .yaml)
  data=()
  if grep -qE '^\s*name:\s*gsm8k' "$cfg"; then
    data=(task.train_path="$ROOT/tests/data/gsm8k_tiny.jsonl" task.val_path="$ROOT/tests/data/gsm8k_tiny.jsonl")
  elif grep -qE '^\s*name:\s*math' "$cfg"; then
    # DeepScaleR-style problems and an AIME-style validation file, scored once (run.eval_every=2)
    data=(task.train_path="$ROOT/tests/data/math_tiny.jsonl" task.val_path="$ROOT/tests/data/aime_tiny.jsonl"
          run.eval_every=2)
  else
    data=(task.train_path= task.val_path=)
  fi
  if "$EGG" train "$cfg" -q run.name="$name" run.dir="$TMP" run.steps=2 run.checkpoint_every=0 run.eval_every=0 \
      model.path= model.init_preset=tiny model.vocab=byte es.directions=4 es.prompts_per_step=2 \
      task.thinking_length=2 task.answer_length=3 task.val_size=2 dist.backend=single "${data[@]}" \
      >"$TMP/$name.out" 2>&1 </dev/null && [ -f "$TMP/$name/checkpoints/step_2/model.safetensors" ]; then
    if grep -qE '^\s*name:\s*math' "$cfg" && ! grep -q '"val_score"' "$TMP/$name/metrics.jsonl"; then
      bad "$name: no val_score in metrics.jsonl"
      continue
    fi
    ok
  else
    bad "$name: $(tail -c 400 "$TMP/$name.out")"
  fi
done
finish

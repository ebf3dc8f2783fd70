#!/usr/bin/env bash
# A training run killed with SIGKILL at arbitrary moments (mid-step or mid-checkpoint) and
# restarted each time ends bit-identical to an uninterrupted run, and never leaves a
# checkpoint that `latest` points to but that is incomplete.
. "$(dirname "$0")/lib_cli.sh"
args=(-q run.dir="$TMP" model.init_preset=tiny model.init_seed=5 es.directions=64 task.name=digits
      task.template=raw task.answer_length=16 task.stop= run.steps=40 run.checkpoint_every=1
      run.keep_checkpoints=2 optim.name=adam optim.lr=0.01 es.sigma=0.05)
"$EGG" train "${args[@]}" run.name=whole >/dev/null 2>&1 || bad "uninterrupted run failed"
# kill after increasing delays until a run completes
delays=(0.4 0.9 0.25 1.3 0.6 1.7 0.35 2.2 3 5 10 20 40)
finished=0
kills=0
for d in "${delays[@]}"; do
  "$EGG" train "${args[@]}" run.name=killed >/dev/null 2>&1 &
  pid=$!
  sleep "$d"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null
    kills=$((kills + 1))
  else
    wait "$pid" && { finished=1; break; }
  fi
  latest="$TMP/killed/checkpoints/latest"
  if [ -f "$latest" ]; then
    ck="$TMP/killed/checkpoints/$(cat "$latest")"
    for f in model.safetensors optimizer.safetensors state.json; do
      [ -f "$ck/$f" ] || bad "after a kill, latest points to $ck without $f"
    done
  fi
done
# one more run to the end in case every attempt was killed
[ "$finished" -eq 1 ] || "$EGG" train "${args[@]}" run.name=killed >/dev/null 2>&1 || bad "final resume failed"
[ "$kills" -ge 2 ] && ok || bad "only $kills runs were killed before one finished: the test did not test much"
echo "killed $kills times"
cmp -s "$TMP/whole/checkpoints/step_40/model.safetensors" "$TMP/killed/checkpoints/step_40/model.safetensors" \
  && ok || bad "killed-and-resumed run differs from the uninterrupted one"
cmp -s "$TMP/whole/checkpoints/step_40/optimizer.safetensors" "$TMP/killed/checkpoints/step_40/optimizer.safetensors" \
  && ok || bad "optimizer state differs"
lines=$(grep -c . "$TMP/killed/metrics.jsonl")
[ "$lines" -eq 40 ] && ok || bad "metrics.jsonl has $lines lines, expected 40"
finish

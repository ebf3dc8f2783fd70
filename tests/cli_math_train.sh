#!/usr/bin/env bash
# task.name: math trains the tiny model (random init, byte vocabulary). A random model never
# writes "\boxed{", so the prompt ends with the answer prefix " \boxed " (task.answer_prefix) and
# the completion is one token: the answer the reward reads is "\boxed <token>". The data
# (tests/data/math_seven_*.jsonl) are problems whose answer is 7 (one validation gold is written
# \frac{14}{2}): the run shows the math reward driving the update (mean reward rising from ~1/256
# to most rollouts), not arithmetic. Then `eggroll score --config` gives back the logged rewards.
. "$(dirname "$0")/lib_cli.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cat >"$TMP/math.yaml" <<YAML
run: {name: math, steps: 30, checkpoint_every: 0, samples_per_step: 4, eval_every: 30}
model: {init_preset: tiny, init_seed: 1, vocab: byte}
es: {directions: 64, prompts_per_step: 4, sigma: 0.05, exclude: [emb.weight]}
optim: {lr: 0.5}
task: {name: math, train_path: $ROOT/tests/data/math_seven_train.jsonl, val_path: $ROOT/tests/data/math_seven_val.jsonl,
       template: chat, answer_prefix: " \\\\boxed ", answer_length: 1, stop: "", val_size: 4}
generation: {temperature: 1.0}
YAML
"$EGG" train "$TMP/math.yaml" -q run.dir="$TMP/runs" >"$TMP/train.log" 2>&1 || bad "math training failed: $(tail -3 "$TMP/train.log")"
python3 - "$TMP/runs/math/metrics.jsonl" <<'PY' && ok || bad "the math reward did not rise"
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
r = [x["reward_mean"] for x in m]
first, last = sum(r[:5]) / 5, sum(r[-5:]) / 5
print("math: mean reward per step", " ".join(f"{x:.3f}" for x in r))
print(f"math: first 5 steps {first:.3f}, last 5 steps {last:.3f}, greedy validation {m[-1]['val_score']}")
assert len(r) == 30, len(r)
assert first < 0.1 and last > 0.5 and last > first + 0.4, (first, last)
assert m[-1]["val_score"] == 1.0, m[-1]["val_score"]  # 4 of 4 held-out problems, \frac{14}{2} included
PY
# the prompt carries the prefix; rescoring the samples with the run's config puts it back
grep -q '"prompt":"User: What is \$[^"]*\$?\\n\\nAssistant: \\\\boxed "' "$TMP/runs/math/samples.jsonl" && ok ||
  bad "samples.jsonl prompts lack the answer prefix"
"$EGG" score --config "$TMP/runs/math/config.yaml" --in "$TMP/runs/math/samples.jsonl" --out "$TMP/rescored.jsonl" ||
  bad "eggroll score on the run's samples failed"
python3 - "$TMP/runs/math/samples.jsonl" "$TMP/rescored.jsonl" <<'PY' && ok || bad "rescored rewards differ from the logged ones"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert len(a) == len(b) == 120, (len(a), len(b))
assert [x["reward"] for x in a] == [x["reward"] for x in b]
assert sum(x["reward"] for x in a) > 10
PY
# by hand: the prefix goes before the completion
printf '{"problem": "3+4", "answer": "7", "completion": "7"}\n{"problem": "3+4", "answer": "7", "completion": "8"}\n' >"$TMP/c.jsonl"
[ "$("$EGG" score --task math --template raw --answer-prefix '\boxed ' --in "$TMP/c.jsonl" | python3 -c 'import json,sys; print([json.loads(l)["reward"] for l in sys.stdin])')" = "[1.0, 0.0]" ] && ok ||
  bad "score --answer-prefix"
[ "$("$EGG" score --task math --template raw --in "$TMP/c.jsonl" | python3 -c 'import json,sys; print([json.loads(l)["reward"] for l in sys.stdin])')" = "[0.0, 0.0]" ] && ok ||
  bad "score without the prefix"
expect_error prefix_think "task.answer_prefix: not with task.template = chat_think" -- \
  "$EGG" train "$TMP/math.yaml" run.dir="$TMP/r2" task.template=chat_think task.thinking_length=4
expect_error prefix_task "task.answer_prefix applies to task.name = math only" -- \
  "$EGG" train "$TMP/math.yaml" run.dir="$TMP/r2" task.name=digits task.train_path= task.val_path=
finish

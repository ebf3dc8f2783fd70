#!/usr/bin/env bash
# task.name: external end to end with the worked example (examples/keyword-reward: a Python
# reward process): the tiny model learns (mean reward rises), the samples rescore to the logged
# rewards with `eggroll score --config`, a reward process that dies mid-run stops the run with
# exit status 2 and an error naming the process and the rollout, and the restarted run resumes
# from its last checkpoint and ends bit-identical to the uninterrupted run.
. "$(dirname "$0")/lib_cli.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
CFG=examples/keyword-reward/keyword-reward.yaml
command -v python3 >/dev/null || { echo "SKIPPED: no python3"; exit 77; }

"$EGG" train "$CFG" -q run.dir="$TMP/a" >"$TMP/a.log" 2>&1 || bad "training with the external reward failed: $(tail -3 "$TMP/a.log")"
python3 - "$TMP/a/keyword-reward/metrics.jsonl" <<'PY' && ok || bad "the external reward did not rise"
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
r = [x["reward_mean"] for x in m]
print("external reward_mean by step:", " ".join(f"{v:.2f}" for v in r))
assert len(r) == 12 and sum(r[-2:]) / 2 > sum(r[:2]) / 2 + 5, r
PY

R=$TMP/a/keyword-reward
"$EGG" score --config "$R/config.yaml" --in "$R/samples.jsonl" --out "$TMP/rescored.jsonl" 2>"$TMP/score.err" &&
  python3 - "$R/samples.jsonl" "$TMP/rescored.jsonl" <<'PY' && ok || bad "eggroll score differs from the logged rewards: $(cat "$TMP/score.err")"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 24 and a == b, (len(a), len(b))
assert len(set(x["reward"] for x in a)) > 1
PY

# the process exits after 6 steps and 10 rollouts (64 per step): the run stops in step 6
KEYWORD_REWARD_FAIL_AFTER=$((64 * 6 + 10)) "$EGG" train "$CFG" -q run.dir="$TMP/b" >"$TMP/b.out" 2>"$TMP/b.err"
rc=$?
last=$(tail -1 "$TMP/b.err")
if [ "$rc" -eq 2 ] && echo "$last" | grep -qE "^eggroll: error: task.command 'python3 examples/keyword-reward/keyword_reward.py' \(pid [0-9]+\): exited with status 3 before answering every rollout \(10 of 64 answered\) \(rollout 11 of 64, train example 6, prompt ''\)$"; then
  ok
else
  bad "failing process: exit status $rc, last stderr line: $last"
fi
[ "$(cat "$TMP/b/keyword-reward/checkpoints/latest")" = "step_4" ] && ok || bad "expected the step_4 checkpoint after the failure"
"$EGG" train "$CFG" -q run.dir="$TMP/b" >"$TMP/b2.log" 2>&1 || bad "resumed run failed: $(tail -3 "$TMP/b2.log")"
grep -q "from .*step_4 (step 4)" "$TMP/b2.log" && ok || bad "the restarted run did not resume from step 4: $(cat "$TMP/b2.log")"
cmp -s "$TMP/a/keyword-reward/checkpoints/step_12/model.safetensors" "$TMP/b/keyword-reward/checkpoints/step_12/model.safetensors" &&
  ok || bad "resumed run's final weights differ from the uninterrupted run's"

# bad config: no command
expect_error no_command "task.name = external requires task.train_path .* and task.command" -- \
  "$EGG" train "$CFG" run.dir="$TMP/c" task.command=
finish

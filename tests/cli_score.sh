#!/usr/bin/env bash
# `eggroll score`: hand-computed rewards for every task, bad input (exit 2, one line naming the
# file:line or flag), and the rewards training logs in samples.jsonl given back for the same
# completions (digits, countdown, gsm8k, math runs with the tiny fixture model).
. "$(dirname "$0")/lib_cli.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)

# score_check NAME FILE [score flags...]: every line's reward equals its "want" field
score_check() {
  local name=$1 file=$2; shift 2
  if ! "$EGG" score --in "$file" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err"; then
    bad "$name: eggroll score failed: $(cat "$TMP/$name.err")"; return
  fi
  if python3 - "$file" "$TMP/$name.out" <<'PY'; then ok; else bad "$name: rewards differ from the hand-computed ones"; fi
import json, sys
src = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
assert len(src) == len(out), (len(src), len(out))
for i, (s, o) in enumerate(zip(src, out)):
    s2 = dict(o); s2.pop("reward")
    assert s2 == s, ("fields changed", i, s, o)
    if abs(o["reward"] - s["want"]) > 1e-12:
        print(f"line {i + 1}: reward {o['reward']}, hand-computed {s['want']}: {s}")
        sys.exit(1)
PY
}

cat >"$TMP/countdown.jsonl" <<'EOF'
{"nums": [1, 2, 3], "target": 6, "completion": "<think>ok</think> <answer>1+2+3</answer>", "want": 1.0}
{"nums": [1, 2, 3], "target": 6, "completion": "<answer>(3 - 1) * 3</answer>", "want": 0.1}
{"nums": [1, 2, 3], "target": 6, "completion": "<answer>1+2</answer>", "want": 0.1}
{"nums": [1, 2, 3], "target": 6, "completion": "<answer>3*2*1 = 6</answer>", "want": 1.0}
{"nums": [1, 2, 3], "target": 6, "completion": "1+2+3", "want": 0.0}
{"nums": [4, 5], "target": 20, "completion": "<answer>4*5</answer><answer>x</answer>", "want": 0.1}
EOF
score_check countdown "$TMP/countdown.jsonl" --task countdown

cat >"$TMP/gsm8k.jsonl" <<'EOF'
{"question": "q", "answer": "3 + 4 = 7\n#### 7", "completion": ">hmm</think> The answer is 7.", "want": 1.0}
{"question": "q", "answer": "#### 7", "completion": "The answer is 7.", "want": 0.0}
{"question": "q", "answer": "#### 7", "completion": "</think> 7 or 8", "want": 0.0}
{"question": "q", "answer": "#### 1,000", "completion": "</think> $1,000.", "want": 1.0}
EOF
score_check gsm8k "$TMP/gsm8k.jsonl" --task gsm8k

cat >"$TMP/math.jsonl" <<'EOF'
{"problem": "p", "answer": "0.5", "completion": "x</think> so \\boxed{\\frac12}", "want": 1.0}
{"problem": "p", "answer": "0.5", "completion": "so \\boxed{\\frac12}", "want": 0.0}
{"problem": "p", "answer": "0.5", "completion": "x</think> so \\boxed{3}", "want": 0.0}
{"problem": "p", "solution": "hence \\boxed{(1,2)}", "completion": "x</think> $\\boxed{\\left(1, 2\\right)}$", "want": 1.0}
{"question": "q", "answer": 1000, "completion": "x</think> <answer>1,000</answer>", "want": 1.0}
{"problem": "p", "answer": "x=3", "completion": "x</think> nothing", "want": 0.0}
EOF
score_check math "$TMP/math.jsonl" --task math
# format reward, and the chat template (no </think> required)
python3 - "$TMP/math.jsonl" >"$TMP/math_fmt.jsonl" <<'PY'
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["want"] == 0.0 and "\\boxed{3}" in r["completion"]:
        r["want"] = 0.25
    print(json.dumps(r))
PY
score_check math_format "$TMP/math_fmt.jsonl" --task math --format-reward 0.25
cat >"$TMP/math_chat.jsonl" <<'EOF'
{"problem": "p", "answer": "\\frac{\\sqrt2}{2}", "completion": "so \\boxed{\\sqrt{2}/2}", "want": 1.0}
{"problem": "p", "answer": "4", "completion": "<result>4</result>", "want": 1.0}
EOF
score_check math_chat "$TMP/math_chat.jsonl" --task math --template chat --answer-tag result

cat >"$TMP/toy.jsonl" <<'EOF'
{"completion": "a1b22", "want": 3}
{"completion": "", "want": 0}
EOF
score_check digits "$TMP/toy.jsonl" --task digits
cat >"$TMP/fastzero.jsonl" <<'EOF'
{"completion": "x", "tokens": [5, 0, 3], "want": -1}
{"completion": "ab", "tokens": [5, 6], "want": -4}
{"completion": "abc", "want": -6}
EOF
score_check fastzero "$TMP/fastzero.jsonl" --task fastzero
cat >"$TMP/reptok.jsonl" <<'EOF'
{"completion": "", "tokens": [1, 1, 2], "want": 2}
{"completion": "aab", "want": 2}
EOF
score_check reptok "$TMP/reptok.jsonl" --task reptok
cat >"$TMP/uniquetok.jsonl" <<'EOF'
{"completion": "", "tokens": [1, 1, 2], "want": 2}
{"completion": "abcab", "want": 3}
EOF
score_check uniquetok "$TMP/uniquetok.jsonl" --task uniquetok

cat >"$TMP/external.jsonl" <<'EOF'
{"prompt": "p", "keywords": ["an"], "completion": "banana", "want": 2}
{"prompt": "q", "keywords": ["a", "b"], "completion": "banana", "want": 4}
{"prompt": "r", "completion": "x", "want": 0}
EOF
score_check external "$TMP/external.jsonl" --task external --command "python3 $ROOT/examples/keyword-reward/keyword_reward.py"
printf '{"prompt": "p", "completion": "x"}\n' >"$TMP/ext1.jsonl"
"$EGG" score --task external --command "exit 4" --in "$TMP/ext1.jsonl" >/dev/null 2>"$TMP/ext.err"
[ $? -eq 2 ] && grep -qE "^eggroll: error: task.command 'exit 4' \(pid [0-9]+\): exited with status 4 .*\(rollout 1 of 1, record example 0, prompt 'p'\)$" "$TMP/ext.err" &&
  ok || bad "external score failure: $(cat "$TMP/ext.err")"

# --out writes the same lines as stdout
"$EGG" score --task countdown --in "$TMP/countdown.jsonl" --out "$TMP/cd_out.jsonl" 2>/dev/null &&
  cmp -s "$TMP/cd_out.jsonl" "$TMP/countdown.out" && ok || bad "--out differs from stdout"
# stdin
"$EGG" score --task digits --in - <"$TMP/toy.jsonl" 2>/dev/null | cmp -s - "$TMP/digits.out" && ok || bad "--in - differs"

# bad input: exit 2, one line naming the line or flag
printf '{"nums": [1], "target": 1}\n' >"$TMP/nocomp.jsonl"
expect_error missing_completion "nocomp.jsonl:1: missing string field \"completion\"" -- \
  "$EGG" score --task countdown --in "$TMP/nocomp.jsonl"
printf '\n{"completion": "x"}\n' >"$TMP/nonums.jsonl"
expect_error missing_field "nonums.jsonl:2: .*nums" -- "$EGG" score --task countdown --in "$TMP/nonums.jsonl"
printf '{"completion": "x", "question": "q"}\n' >"$TMP/nogold.jsonl"
expect_error missing_answer "nogold.jsonl:1: missing field \"answer\"" -- "$EGG" score --task math --in "$TMP/nogold.jsonl"
printf '{"completion": "x"}\n{"completion": \n' >"$TMP/badjson.jsonl"
expect_error bad_json "badjson.jsonl:2: invalid JSON" -- "$EGG" score --task digits --in "$TMP/badjson.jsonl"
printf '{"completion": "x", "tokens": [1, -2]}\n' >"$TMP/badtok.jsonl"
expect_error bad_tokens "badtok.jsonl:1: \"tokens\" must hold integers" -- "$EGG" score --task reptok --in "$TMP/badtok.jsonl"
expect_error no_file "nope.jsonl: cannot open" -- "$EGG" score --task digits --in "$TMP/nope.jsonl"
expect_error unknown_task "task.name: unknown task 'chess'" -- "$EGG" score --task chess --in "$TMP/toy.jsonl"
expect_error no_task "--task: required" -- "$EGG" score --in "$TMP/toy.jsonl"
expect_error bad_format_reward "--format-reward: 2 is outside" -- \
  "$EGG" score --task math --format-reward 2 --in "$TMP/math.jsonl"
expect_error bad_template "task.template: unknown template 'x'" -- \
  "$EGG" score --task math --template x --in "$TMP/math.jsonl"
expect_error config_and_task "--config: give the task options in the config" -- \
  "$EGG" score --config "$ROOT/configs/tiny-digits.yaml" --task digits --in "$TMP/toy.jsonl"

# training's logged rewards == eggroll score on the same rows (score --config reads the run's config.yaml)
printf '{"problem": "What is 1+1?", "answer": "2"}\n{"problem": "Write 7.", "solution": "\\\\boxed{7}"}\n' >"$TMP/math_train.jsonl"
same_rewards() {  # same_rewards NAME [train overrides...]
  local name=$1; shift
  if ! "$EGG" train "$ROOT/configs/tiny-digits.yaml" -q run.name="$name" run.dir="$TMP/runs" run.steps=2 \
      run.checkpoint_every=0 run.samples_per_step=32 es.directions=8 es.prompts_per_step=2 \
      model.path="$FIX/rwkv7/tiny-rwkv7-834k.pth" "$@" >"$TMP/$name.train" 2>&1; then
    bad "$name: training failed: $(tail -c 300 "$TMP/$name.train")"; return
  fi
  local R=$TMP/runs/$name
  if ! "$EGG" score --config "$R/config.yaml" --in "$R/samples.jsonl" --out "$TMP/$name.scored" 2>"$TMP/$name.err"; then
    bad "$name: score failed: $(cat "$TMP/$name.err")"; return
  fi
  python3 - "$R/samples.jsonl" "$TMP/$name.scored" "$name" <<'PY' && ok || bad "$name: score differs from the logged rewards"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) == 32, (len(a), len(b))
for x, y in zip(a, b):
    assert x == y, (x, y)  # every field, the reward included, bit for bit
rewards = sorted(set(x["reward"] for x in a))
print(sys.argv[3], "rewards:", rewards)
if sys.argv[3] in ("digits", "uniquetok"):
    assert len(rewards) > 1, rewards  # the comparison covers different rewards
PY
}
same_rewards digits generation.temperature=2.0
same_rewards uniquetok task.name=uniquetok generation.temperature=1.0
same_rewards fastzero task.name=fastzero
same_rewards countdown task.name=countdown task.template=chat task.answer_length=24
same_rewards gsm8k task.name=gsm8k task.train_path="$ROOT/tests/data/gsm8k_tiny.jsonl" task.template=chat
same_rewards math task.name=math task.train_path="$TMP/math_train.jsonl" task.template=chat task.format_reward=0.5
finish

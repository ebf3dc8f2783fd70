#!/usr/bin/env bash
# task.name: sft: the teacher-forced log-likelihood that `eggroll eval` reports equals the one
# computed from `eggroll logits` (log-softmax at each target byte) for the tiny fixture model,
# and training a tiny model (random init, the quickstart's) on tests/data/sft_train.jsonl raises
# the log-likelihood of the held-out tests/data/sft_val.jsonl.
. "$(dirname "$0")/lib_cli.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
M=$FIX/rwkv7/tiny-rwkv7-834k.pth
cat >"$TMP/sft.yaml" <<YAML
run: {steps: 6, checkpoint_every: 0, samples_per_step: 1}
model: {path: $M, vocab: byte}
es: {directions: 32, prompts_per_step: 2, sigma: 0.05, exclude: [emb.weight]}
optim: {lr: 0.5}
task: {name: sft, train_path: $ROOT/tests/data/sft_train.jsonl, val_path: $ROOT/tests/data/sft_val.jsonl,
       val_size: 0, template: raw}
YAML
before=$("$EGG" eval "$TMP/sft.yaml" run.dir="$TMP/runs" 2>"$TMP/eval0.err") || bad "eval before training: $(cat "$TMP/eval0.err")"
# the same number from the model's logits: mean over the validation targets' bytes of
# log softmax(logits after token 0 and the preceding bytes)[byte]
python3 - "$EGG" "$M" "$ROOT/tests/data/sft_val.jsonl" "$before" "$TMP" <<'PY' && ok || bad "eval's log-likelihood differs from eggroll logits"
import json, math, struct, subprocess, sys
egg, model, val, before, tmp = sys.argv[1:]
total, count = 0.0, 0
for line in open(val):
    t = list(json.loads(line)["target"].encode())
    toks = [0] + t
    out = f"{tmp}/l.f32"
    subprocess.run([egg, "logits", "--model", model, "--tokens", ",".join(map(str, toks[:-1])), "--out", out], check=True)
    raw = open(out, "rb").read()
    V = 256
    rows = struct.unpack(f"<{len(raw) // 4}f", raw)
    for i, y in enumerate(t):
        row = rows[i * V:(i + 1) * V]
        mx = max(row)
        total += row[y] - mx - math.log(sum(math.exp(v - mx) for v in row))
        count += 1
want = total / count
got = json.loads(before)["score"]
print(f"sft: eval {got:.6f}, from logits {want:.6f}")
assert abs(got - want) < 1e-4, (got, want)
PY
# task.chunk_tokens: targets fed 7 bytes at a time, the state carried across chunks, give the
# same log-likelihood (the validation targets are 52 and 51 bytes)
chunked=$("$EGG" eval "$TMP/sft.yaml" run.dir="$TMP/runs" task.chunk_tokens=7 2>"$TMP/eval0c.err") || bad "chunked eval: $(cat "$TMP/eval0c.err")"
python3 - "$before" "$chunked" <<'PY' && ok || bad "chunked log-likelihood differs: $before vs $chunked"
import json, sys
a, b = (json.loads(x)["score"] for x in sys.argv[1:])
print(f"sft: whole targets {a:.9f}, chunks of 7 tokens {b:.9f}")
assert abs(a - b) <= 1e-9 * abs(a), (a, b)
PY
expect_error chunk_negative "task.chunk_tokens: -3 is out of range" -- "$EGG" eval "$TMP/sft.yaml" run.dir="$TMP/runs" task.chunk_tokens=-3
INIT=(model.path= model.init_preset=tiny model.init_seed=1)
before=$("$EGG" eval "$TMP/sft.yaml" run.dir="$TMP/runs" "${INIT[@]}" 2>"$TMP/eval0.err") || bad "eval of the initial model: $(cat "$TMP/eval0.err")"
"$EGG" train "$TMP/sft.yaml" -q run.dir="$TMP/runs" "${INIT[@]}" >"$TMP/train.log" 2>&1 || bad "sft training failed: $(tail -3 "$TMP/train.log")"
after=$("$EGG" eval "$TMP/sft.yaml" run.dir="$TMP/runs" "${INIT[@]}" 2>"$TMP/eval1.err") || bad "eval after training: $(cat "$TMP/eval1.err")"
python3 - "$before" "$after" <<'PY' && ok || bad "held-out log-likelihood did not rise: $before -> $after"
import json, sys
a, b = (json.loads(x)["score"] for x in sys.argv[1:])
print(f"sft: held-out mean log-likelihood per byte {a:.4f} -> {b:.4f}")
assert b > a + 0.1, (a, b)
PY
# training with chunked targets (every training target is longer than 8 bytes) takes the same
# steps as with whole targets
"$EGG" train "$TMP/sft.yaml" -q run.dir="$TMP/runs" run.name=chunked run.steps=2 task.chunk_tokens=8 "${INIT[@]}" \
  >"$TMP/trainc.log" 2>&1 || bad "chunked sft training failed: $(tail -3 "$TMP/trainc.log")"
python3 - "$TMP/runs/sft/metrics.jsonl" "$TMP/runs/chunked/metrics.jsonl" <<'PY' && ok || bad "chunked training differs from whole-target training"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:])
assert len(b) == 2, len(b)
for x, y in zip(a[:2], b):
    print(f"sft step {x['step']}: reward mean {x['reward_mean']:.9f} (whole) {y['reward_mean']:.9f} (chunks of 8)")
    assert abs(x["reward_mean"] - y["reward_mean"]) <= 1e-9 * abs(x["reward_mean"]), (x, y)
    assert x["update_norm"] == y["update_norm"] or abs(x["update_norm"] - y["update_norm"]) <= 1e-6 * x["update_norm"]
PY
expect_error no_target "sft_bad.jsonl:1: missing string field \"target\" \(or \"text\"\)" -- bash -c \
  "printf '{\"prompt\": \"x\"}\n' >'$TMP/sft_bad.jsonl'; '$EGG' train '$TMP/sft.yaml' run.dir='$TMP/r2' task.train_path='$TMP/sft_bad.jsonl'"
expect_error score_sft "sft scores the model's log-likelihood" -- bash -c \
  "printf '{\"target\": \"x\", \"completion\": \"y\"}\n' | '$EGG' score --task sft --in -"
finish

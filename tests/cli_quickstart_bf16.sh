#!/usr/bin/env bash
# The embedded quickstart with bf16 matrices (model.matrix_dtype=bf16: bf16 products, fp32
# masters): it still learns, config.yaml records the dtype, checkpoints hold fp32 masters.
. "$(dirname "$0")/lib_cli.sh"
(cd "$TMP" && "$EGG" train model.matrix_dtype=bf16 >"$TMP/train.log" 2>&1) ||
  bad "eggroll train model.matrix_dtype=bf16 failed: $(tail -3 "$TMP/train.log")"
R=$TMP/runs/quickstart
grep -q "bf16 matrices on cpu" "$TMP/train.log" && ok || bad "the run does not say it multiplies in bf16: $(head -3 "$TMP/train.log")"
grep -qE '^  matrix_dtype: bf16' "$R/config.yaml" && ok || bad "config.yaml does not record matrix_dtype: bf16"
python3 - "$R" <<'PY' && ok || bad "bf16 quickstart: see above"
import json, struct, sys
run = sys.argv[1]
rows = [json.loads(l) for l in open(run + "/metrics.jsonl")]
first = sum(r["reward_mean"] for r in rows[:3]) / 3
last = sum(r["reward_mean"] for r in rows[-3:]) / 3
print(f"bf16 quickstart: mean reward of the first 3 steps {first:.3f}, last 3 {last:.3f}")
if not last > first + 2.0:
    sys.exit("FAIL: the reward did not rise by 2 (of 24)")
# the checkpoint holds the fp32 masters: F32 tensors, trained matrices not all bf16-representable
with open(run + "/checkpoints/step_30/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    head = json.loads(f.read(n))
    data = f.read()
dtypes = {v["dtype"] for k, v in head.items() if k != "__metadata__"}
if dtypes != {"F32"}:
    sys.exit(f"FAIL: checkpoint dtypes {dtypes}, expected F32 masters")
name = "blocks.0.att.receptance.weight"
a, b = head[name]["data_offsets"]
vals = struct.unpack(f"<{(b - a) // 4}I", data[a:b])
if all(v & 0xFFFF == 0 for v in vals):
    sys.exit(f"FAIL: {name} holds only bf16-representable values: the masters were rounded")
PY
finish

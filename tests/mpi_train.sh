#!/usr/bin/env bash
# Sharded training under mpirun (label "mpi"):
#   2 ranks, update_mode=replicated  -> weights bit-identical to 1 rank
#   2 ranks, update_mode=allreduce   -> weights within 1e-6 relative of 1 rank
#   a checkpoint written by a 2-rank run resumes on 1 rank and ends identical to the 1-rank run
#   task.name external (a reward process per rank), 2 ranks replicated -> identical to 1 rank
# usage: mpi_train.sh EGGROLL MPIEXEC [mpiexec flags...]
set -u
EGG=$1 MPIEXEC=$2
shift 2
MPIFLAGS=("$@")
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0 passes=0
ok() { passes=$((passes + 1)); }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
common=(-q run.dir="$TMP" model.init_preset=tiny model.init_seed=3 es.directions=8 es.prompts_per_step=3
        task.name=digits task.template=raw task.answer_length=5 task.stop= run.checkpoint_every=2
        optim.name=adam optim.lr=0.01 es.sigma=0.05 run.samples_per_step=2 dist.timeout_s=60)
weights() { echo "$TMP/$1/checkpoints/step_$2/model.safetensors"; }
mpi() { timeout 300 "$MPIEXEC" "${MPIFLAGS[@]}" -np 2 "$EGG" train "${common[@]}" "$@"; }

"$EGG" train "${common[@]}" run.name=one run.steps=4 dist.update_mode=replicated || bad "1-rank run failed"
mpi run.name=two run.steps=4 dist.update_mode=replicated || bad "2-rank replicated run failed"
cmp -s "$(weights one 4)" "$(weights two 4)" && ok || bad "replicated: 2 ranks differ from 1 rank"
[ -f "$TMP/two/samples.rank1.jsonl" ] && ok || bad "rank 1 wrote no samples"
grep -q '"ranks":2' "$TMP/two/metrics.jsonl" && grep -q '"bytes_sent":[1-9]' "$TMP/two/metrics.jsonl" && ok || bad "metrics lack ranks/bytes_sent"

# SGD here: Adam divides by sqrt(v), which turns the last-bit differences of a partial-sum
# order into large relative changes for gradient entries near zero
"$EGG" train "${common[@]}" run.name=one_ar run.steps=4 optim.name=sgd optim.lr=0.1 || bad "1-rank allreduce run failed"
mpi run.name=two_ar run.steps=4 optim.name=sgd optim.lr=0.1 || bad "2-rank allreduce run failed"
python3 - "$(weights one_ar 4)" "$(weights two_ar 4)" <<'PY' && ok || bad "allreduce: 2 ranks not within 1e-6 of 1 rank"
import sys, json, struct, array
def load(p):
    raw = open(p, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n]); body = raw[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__": continue
        a = array.array("f"); a.frombytes(body[v["data_offsets"][0]:v["data_offsets"][1]]); out[k] = a
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
assert a.keys() == b.keys()
worst = 0.0  # per tensor: max |a - b| relative to max |a|
for k in a:
    scale = max(abs(x) for x in a[k]) or 1.0
    worst = max(worst, max(abs(x - y) for x, y in zip(a[k], b[k])) / scale)
print("allreduce max relative difference", worst)
assert worst <= 1e-6, worst
PY

# 2 ranks for 2 steps, then 1 rank for the rest
mpi run.name=mixed run.steps=2 dist.update_mode=replicated || bad "2-rank first half failed"
"$EGG" train "${common[@]}" run.name=mixed run.steps=4 dist.update_mode=replicated || bad "1-rank resume failed"
cmp -s "$(weights one 4)" "$(weights mixed 4)" && ok || bad "2-rank checkpoint resumed on 1 rank differs"
# task.name external under mpirun: each rank starts its own reward process (fork + exec from an
# MPI process) and scores its slice; with replicated updates, 2 ranks end bit-identical to 1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
ext=(task.name=external "task.command=python3 $ROOT/examples/keyword-reward/keyword_reward.py" task.timeout_s=30
     task.train_path="$ROOT/examples/keyword-reward/prompts.jsonl" task.answer_length=8 es.directions=16
     es.prompts_per_step=2 run.steps=2 dist.update_mode=replicated)
"$EGG" train "${common[@]}" run.name=ext_one "${ext[@]}" || bad "1-rank external run failed"
mpi run.name=ext_two "${ext[@]}" || bad "2-rank external run failed"
cmp -s "$(weights ext_one 2)" "$(weights ext_two 2)" && ok || bad "external: 2 ranks differ from 1 rank"
python3 - "$TMP/ext_one/metrics.jsonl" "$TMP/ext_two/metrics.jsonl" "$TMP/ext_two/samples.rank1.jsonl" <<'PY' && ok || bad "external: 2-rank rewards differ from 1 rank, or rank 1 scored nothing"
import json, sys
a, b = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
assert [x["reward_mean"] for x in a] == [x["reward_mean"] for x in b], (a, b)
rows = [json.loads(l) for l in open(sys.argv[3])]
assert rows and all(r["rank"] == 1 and "reward" in r for r in rows), rows
print("external under mpirun: reward means", [x["reward_mean"] for x in b])
PY
echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]

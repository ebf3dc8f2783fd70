#!/usr/bin/env bash
# The command-line forms that outside checks use, on the fixtures.
. "$(dirname "$0")/lib_cli.sh"
M=$FIX/rwkv7/rand-l3-d256-v1024.pth
V=$FIX/tokenizer/rwkv_vocab_v20230424.txt

# logits: [T, V] float32, matching the reference file within 1e-3
toks=$(python3 -c "import json;print(','.join(map(str,json.load(open('$FIX/rwkv7/rand-l3-d256-v1024.json'))['tokens'])))")
if "$EGG" logits --model "$M" --tokens "$toks" --out "$TMP/l.f32"; then
  python3 - "$TMP/l.f32" "$FIX/rwkv7/rand-l3-d256-v1024.logits.f32" <<'PY' && ok || bad "logits differ from the reference"
import sys, struct
a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
assert len(a) == len(b), (len(a), len(b))
n = len(a) // 4
x = struct.unpack(f"<{n}f", a); y = struct.unpack(f"<{n}f", b)
worst = max(abs(p - q) for p, q in zip(x, y))
assert worst < 1e-3, worst
PY
else bad "logits command failed"; fi

# tokenize: every fixture case
python3 - "$EGG" "$V" "$FIX/tokenizer/cases.json" <<'PY' && ok || bad "tokenize output differs"
import sys, json, subprocess
egg, vocab, cases = sys.argv[1:]
for c in json.load(open(cases)):
    if "\0" in c["text"]:
        continue  # a NUL cannot travel in argv; the library test covers it
    out = subprocess.run([egg, "tokenize", "--vocab", vocab, "--text", c["text"]], capture_output=True, check=True)
    assert json.loads(out.stdout) == c["ids"], (c["text"], out.stdout)
PY

# generate --json: the greedy continuation of the fixture
python3 - "$EGG" "$M" "$FIX/rwkv7/rand-l3-d256-v1024.json" <<'PY' && ok || bad "generate --json differs"
import os, sys, json, subprocess
egg, model, meta = sys.argv[1:]
m = json.load(open(meta))
cmd = [egg, "generate", "--model", model, "--tokens", ",".join(map(str, m["greedy_prompt"])),
       "--max-tokens", str(len(m["greedy_continuation"])), "--temperature", "0", "--json"]
# the fixture is stored in bf16, so this decodes with bf16 matrices: the exact kernel (the AMX tiles'
# own rounding flips a near-tie of this random model; their accuracy is test_gemm's and test_forward's)
env = dict(os.environ, EGGROLL_BF16_KERNEL="exact")
out = json.loads(subprocess.run(cmd, capture_output=True, check=True, env=env).stdout)
assert out["tokens"] == m["greedy_continuation"], out["tokens"]
PY
# generate with a text prompt on the byte-level model gives text
"$EGG" generate --model "$FIX/rwkv7/tiny-rwkv7-834k.pth" --prompt "The " --max-tokens 8 --json >"$TMP/g.json" \
  && python3 -c "import json;j=json.load(open('$TMP/g.json'));assert j['text']=='the the ', j" && ok || bad "byte-level text generation"

# info
"$EGG" info --model "$M" --json >"$TMP/info.json" && python3 -c "
import json; j=json.load(open('$TMP/info.json'))
assert (j['n_layer'], j['n_embd'], j['vocab'], j['layer0_vlora'], j['dtype']) == (3, 256, 1024, True, 'bf16'), j" && ok || bad "info"

# convert round trip keeps every tensor bit-identical
"$EGG" convert --model "$M" --out "$TMP/a.safetensors" 2>/dev/null && "$EGG" convert --model "$TMP/a.safetensors" --out "$TMP/b.pth" 2>/dev/null \
  && "$EGG" convert --model "$TMP/b.pth" --out "$TMP/c.safetensors" 2>/dev/null && cmp -s "$TMP/a.safetensors" "$TMP/c.safetensors" && ok || bad "convert round trip"
# --dtype: the bf16 fixture widened to f32 (every tensor F32) and rounded back is the same file
"$EGG" convert --model "$M" --out "$TMP/wide.pth" --dtype f32 2>/dev/null \
  && "$EGG" info --model "$TMP/wide.pth" --json | grep -q '"dtype":"f32"' \
  && "$EGG" convert --model "$TMP/wide.pth" --out "$TMP/back.safetensors" --dtype bf16 2>/dev/null \
  && cmp -s "$TMP/a.safetensors" "$TMP/back.safetensors" && ok || bad "convert --dtype f32 then bf16"

# init-model: preset and explicit dims
"$EGG" init-model --preset tiny --vocab 256 --seed 3 --out "$TMP/t.pth" 2>/dev/null && "$EGG" info --model "$TMP/t.pth" --json >"$TMP/ti.json" \
  && python3 -c "import json;j=json.load(open('$TMP/ti.json'));assert j['n_layer']==2 and j['vocab']==256, j" && ok || bad "init-model preset"
"$EGG" init-model --layers 1 --embd 64 --vocab 100 --dw 8 --da 8 --dv 8 --dg 8 --out "$TMP/e.safetensors" --dtype f32 2>/dev/null \
  && "$EGG" generate --model "$TMP/e.safetensors" --tokens 1,2 --max-tokens 3 --json >/dev/null && ok || bad "init-model explicit dims"
# bench es: OpenES decodes as many tokens per member as EGGROLL unless told otherwise
"$EGG" bench es --preset tiny --population 2 --tokens 3 --openes-members 1 --repeat 1 >"$TMP/be.json" 2>/dev/null \
  && "$EGG" bench es --preset tiny --population 2 --tokens 3 --openes-tokens 5 --openes-members 1 --repeat 1 >"$TMP/be5.json" 2>/dev/null \
  && python3 - "$TMP/be.json" "$TMP/be5.json" <<'PY' && ok || bad "bench es tokens per member"
import json, sys
a = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
b = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
assert a["eggroll_tokens_per_member"] == 3 and a["openes_tokens_per_member"] == 3, a
assert b["eggroll_tokens_per_member"] == 3 and b["openes_tokens_per_member"] == 5, b
for j in (a, b):
    for k in ("openes_tokens_per_s", "ratio_keep_vs_openes", "ratio_regenerate_vs_openes",
              "openes_materialise_s_per_member", "openes_decode_s_per_member"):
        assert j[k] > 0, (k, j)
PY
# bench es --interleave steps: the three variants side by side, one step each in turn
"$EGG" bench es --preset tiny --population 4 --tokens 3 --openes-members 1 --repeat 2 --interleave steps >"$TMP/bs.json" 2>/dev/null \
  && python3 - "$TMP/bs.json" <<'PY' && ok || bad "bench es --interleave steps: $(cat "$TMP/bs.json")"
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
assert r["interleave"] == "steps" and r["population"] == 4 and r["repeat"] == 2, r
for k in ("inference_tokens_per_s", "eggroll_keep_tokens_per_s", "eggroll_regenerate_tokens_per_s", "noise_cache_bytes"):
    assert r[k] > 0, (k, r)
assert abs(r["ratio_keep_vs_inference"] - r["eggroll_keep_tokens_per_s"] / r["inference_tokens_per_s"]) < 1e-9, r
PY
grep -q '"interleave":"runs"' "$TMP/be.json" && ok || bad "bench es default interleave: $(cat "$TMP/be.json")"
"$EGG" bench es --preset tiny --population 4 --interleave sideways >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "bench es --interleave sideways must exit 2"
# bench noise: one JSON line per distribution, the vector fill's bits equal to the scalar
# definition's where the CPU has AVX-512F (an odd length: the masked tail is timed too)
"$EGG" bench noise --elements 1001 --seconds 0.01 --repeat 2 >"$TMP/bn.json" 2>/dev/null \
  && python3 - "$TMP/bn.json" <<'PY' && ok || bad "bench noise: $(cat "$TMP/bn.json")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [r["dist"] for r in rows] == ["gaussian", "rademacher"], rows
for r in rows:
    assert r["bench"] == "noise" and r["elements"] == 1001 and r["repeat"] == 2, r
    assert r["scalar_ns_per_element"] > 0, r
    if r["simd"]:
        assert r["same_bits"] is True and r["simd_ns_per_element"] > 0, r
        assert abs(r["simd_speedup"] - r["scalar_ns_per_element"] / r["simd_ns_per_element"]) < 1e-9 * r["simd_speedup"], r
    else:
        assert "simd_ns_per_element" not in r, r
PY
"$EGG" bench noise --elements 0 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "bench noise --elements 0 must exit 2"
finish

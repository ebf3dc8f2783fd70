#!/usr/bin/env bash
# Bad input of any kind: exit status 2 and one line on stderr naming the file or flag.
. "$(dirname "$0")/lib_cli.sh"
M=$FIX/rwkv7/tiny-rwkv7-834k.pth
V=$FIX/tokenizer/rwkv_vocab_v20230424.txt

expect_error "missing model" "nope\.pth" -- "$EGG" info --model "$TMP/nope.pth"
head -c 100000 "$M" >"$TMP/trunc.pth"
expect_error "truncated model" "trunc\.pth" -- "$EGG" info --model "$TMP/trunc.pth"
echo "not a checkpoint at all" >"$TMP/junk.pth"
expect_error "wrong format" "junk\.pth" -- "$EGG" logits --model "$TMP/junk.pth" --tokens 1 --out "$TMP/x"
cp "$V" "$TMP/model.safetensors"
expect_error "vocab as safetensors" "model\.safetensors" -- "$EGG" info --model "$TMP/model.safetensors"
# a .pth whose pickle names a forbidden global: same length as a real one, so the zip stays valid
python3 - "$M" "$TMP/evil.pth" <<'PY'
import sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
zin = zipfile.ZipFile(src)
with zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
    for item in zin.infolist():
        data = zin.read(item.filename)
        if item.filename.endswith("data.pkl"):
            data = data.replace(b"collections\nOrderedDict", b"os\nsystem\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"[:len(b"collections\nOrderedDict")], 1)
            data = data.replace(b"collections\nOrderedDict", b"os\nsystem", 1)
        zout.writestr(item, data)
PY
expect_error "forbidden pickle global" "evil\.pth.*(os|system|global)" -- "$EGG" info --model "$TMP/evil.pth"
# a mis-shaped tensor
"$EGG" convert --model "$M" --out "$TMP/good.safetensors" 2>/dev/null || bad "convert to safetensors"
python3 - "$TMP/good.safetensors" "$TMP/shape.safetensors" <<'PY'
import sys, json, struct
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + n])
t = hdr["blocks.3.att.key.weight"]
t["shape"] = [32, 128]  # same bytes, wrong shape
h = json.dumps(hdr).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(h)) + h + raw[8 + n:])
PY
expect_error "mis-shaped tensor" "shape\.safetensors.*blocks\.3\.att\.key\.weight" -- "$EGG" info --model "$TMP/shape.safetensors"
# vocab
printf '1 %s 1\n2 bad literal 1\n' "'a'" >"$TMP/vocab.txt"
expect_error "malformed vocab line" "vocab\.txt:2" -- "$EGG" tokenize --vocab "$TMP/vocab.txt" --text hi
expect_error "missing vocab" "novocab\.txt" -- "$EGG" tokenize --vocab "$TMP/novocab.txt" --text hi
# flags
expect_error "bad token list" "--tokens" -- "$EGG" logits --model "$M" --tokens 1,x,3 --out "$TMP/x"
expect_error "token out of range" "--tokens.*999" -- "$EGG" logits --model "$M" --tokens 1,999 --out "$TMP/x"
expect_error "negative max tokens" "max-tokens" -- "$EGG" generate --model "$M" --tokens 1 --max-tokens -3
expect_error "bad temperature" "temperature" -- "$EGG" generate --model "$M" --tokens 1 --temperature abc
expect_error "unknown flag" "--bogus" -- "$EGG" info --model "$M" --bogus
expect_error "unknown preset" "preset.*9b" -- "$EGG" init-model --preset 9b --out "$TMP/x.pth"
expect_error "bad output extension" "\.bin" -- "$EGG" convert --model "$M" --out "$TMP/x.bin"
expect_error "unwritable output" "logits|out" -- "$EGG" logits --model "$M" --tokens 1 --out "$TMP/no/such/dir/x"
expect_error "bad batch list" "--batch" -- "$EGG" bench forward --batch 0,2
expect_error "unknown bench backend" "--backend" -- "$EGG" bench es --backend gpu
expect_error "bench es: an unknown matrix dtype" "--dtype: 'f16' is not one of f32, bf16" -- "$EGG" bench es --dtype f16 --preset tiny
# bench es --backend cuda exits 2 everywhere with a population no GPU holds: one line where there
# is no device (or no CUDA build); the memory plan, then the refusal, where there is one
if nvidia-smi -L >/dev/null 2>&1; then
  "$EGG" bench es --backend cuda --preset 13.3b --population 1048576 >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ "$rc" -eq 2 ] && grep -q "does not fit" "$TMP/err"; then ok; else bad "cuda bench refusal: exit $rc: $(tail -c 300 "$TMP/err")"; fi
else
  expect_error "cuda bench without a device" "no CUDA device|built without the CUDA backend" -- \
    "$EGG" bench es --backend cuda --preset 13.3b --population 1048576
fi
# train on run.device=cuda: refused in one line without a device; with one, a run no GPU holds
# is refused by its memory plan before any weights are made (13.3b: 53 GB of fp32 on the host)
if nvidia-smi -L >/dev/null 2>&1; then
  "$EGG" train run.name=nofit run.dir="$TMP/runs" task.name=digits model.init_preset=13.3b es.directions=8192 \
    es.prompts_per_step=64 run.device=cuda >"$TMP/out" 2>"$TMP/err"
  rc=$?
  if [ "$rc" -eq 2 ] && grep -q "run.device: the run does not fit" "$TMP/err"; then ok; else
    bad "cuda train refusal: exit $rc: $(tail -c 300 "$TMP/err")"
  fi
else
  expect_error "cuda train without a device" "run.device.*(no CUDA device|without the CUDA backend)" -- \
    "$EGG" train run.name=nodev run.dir="$TMP/runs" task.name=digits model.init_preset=13.3b run.device=cuda
fi
# training configs
printf 'run:\n  steps: 2\ntask:\n  name: digits\nes:\n  sigm: 0.1\n' >"$TMP/cfg.yaml"
expect_error "unknown config key" "es\.sigm" -- "$EGG" train "$TMP/cfg.yaml" model.init_preset=tiny
printf 'run:\n  steps: 2\ntask:\n  name: digits\n' >"$TMP/ok.yaml"
expect_error "bad override value" "es\.rank" -- "$EGG" train "$TMP/ok.yaml" model.init_preset=tiny es.rank=abc
expect_error "out of range value" "es\.directions" -- "$EGG" train "$TMP/ok.yaml" model.init_preset=tiny es.directions=7
finish

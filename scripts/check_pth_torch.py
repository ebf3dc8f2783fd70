#!/usr/bin/env python3
"""Checks that the .pth files eggroll writes load in PyTorch with weights_only=True.

Not part of CI (it needs PyTorch). On Debian: apt-get install python3-torch python3-numpy,
then run with the system python:

    EGGROLL_CHECKPOINT_OUT=/tmp/ckpt-out build/test_checkpoint "[checkpoint]"
    /usr/bin/python3 scripts/check_pth_torch.py /tmp/ckpt-out

For every NAME.pth in the directory it loads the file with torch.load(weights_only=True) and
compares every tensor (names, order, dtype, shape, bits) with the safetensors file of the same
stem (NAME.safetensors, or STEM.safetensors for NAME = STEM-zip64), parsed here with numpy
alone, and, for tiny/rand, with the original fixture loaded by PyTorch.
Exits non-zero on any difference.
"""
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "shared", "fixtures", "rwkv7")
ORIGINALS = {"tiny": "tiny-rwkv7-834k.pth", "rand": "rand-l3-d256-v1024.pth"}

# raw bit patterns, so that NaNs and -0.0 compare exactly
BITS = {torch.float32: (torch.int32, np.int32), torch.bfloat16: (torch.int16, np.int16),
        torch.float16: (torch.int16, np.int16)}
ST_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}


def bits(t):
    return t.contiguous().view(BITS[t.dtype][0]).numpy().reshape(-1)


def read_safetensors(path):
    """(name, dtype, shape, raw int array) in data order, with numpy only."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = []
    for name, h in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dt = ST_DTYPES[h["dtype"]]
        b, e = h["data_offsets"]
        raw = np.frombuffer(blob[base + b:base + e], dtype=BITS[dt][1])
        out.append((name, dt, tuple(h["shape"]), raw))
    return out


def compare(label, sd, ref):
    """sd: OrderedDict from torch; ref: list of (name, dtype, shape, raw bits)."""
    errors = 0
    names = list(sd.keys())
    if names != [r[0] for r in ref]:
        print(f"  {label}: names/order differ")
        return 1
    for (name, dt, shape, raw) in ref:
        t = sd[name]
        if t.dtype != dt or tuple(t.shape) != shape or not np.array_equal(bits(t), raw):
            print(f"  {label}: tensor {name} differs ({t.dtype} {tuple(t.shape)} vs {dt} {shape})")
            errors += 1
    return errors


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    d = sys.argv[1]
    failures = 0
    pths = sorted(f for f in os.listdir(d) if f.endswith(".pth"))
    if not pths:
        print(f"no .pth files in {d}")
        return 2
    for f in pths:
        path = os.path.join(d, f)
        stem = f[:-4]
        base = stem[:-6] if stem.endswith("-zip64") else stem
        sd = torch.load(path, map_location="cpu", weights_only=True)
        n = len(sd)
        dtypes = sorted({str(t.dtype).replace("torch.", "") for t in sd.values()})
        print(f"{f}: torch.load(weights_only=True) -> {type(sd).__name__} of {n} tensors {dtypes}")
        st = os.path.join(d, base + ".safetensors")
        if os.path.exists(st):
            ref = read_safetensors(st)
            e = compare(f"vs {base}.safetensors", sd, ref)
            print(f"  vs {base}.safetensors: {'identical' if e == 0 else f'{e} differences'}")
            failures += e
        if base in ORIGINALS:
            orig = torch.load(os.path.join(FIXTURES, ORIGINALS[base]), map_location="cpu", weights_only=True)
            ref = [(k, v.dtype, tuple(v.shape), bits(v)) for k, v in orig.items()]
            e = compare(f"vs fixture {ORIGINALS[base]}", sd, ref)
            print(f"  vs fixture {ORIGINALS[base]}: {'identical' if e == 0 else f'{e} differences'}")
            failures += e
    print("OK" if failures == 0 else f"FAILED: {failures} differences")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

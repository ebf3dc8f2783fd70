#!/usr/bin/env python3
"""Turns the published Countdown, GSM8K, DeepScaleR and AIME 2024 datasets into eggroll's JSONL
(never run in CI).

  countdown:  Jiayi-Pan/Countdown-Tasks-3to4 (parquet: nums, target) -> data/countdown/{train,val}.jsonl
              one {"nums": [...], "target": N} per line; the last --val rows form the validation split
  gsm8k:      openai/gsm8k, config "main" (parquet: question, answer) -> data/gsm8k/{train,test}.jsonl
  deepscaler: agentica-org/DeepScaleR-Preview-Dataset (json: problem, answer, solution)
              -> data/deepscaler/train.jsonl, one {"problem": ..., "answer": ...} per line (task.name: math)
  aime24:     HuggingFaceH4/aime_2024 (parquet: problem, answer, ...) -> data/deepscaler/aime24.jsonl,
              the validation file of configs/deepscaler-13.3b.yaml

Downloads with huggingface_hub (pip install huggingface_hub pyarrow) unless --from DIR gives
already-downloaded parquet files. Row counts are checked against the published sizes.
"""
import argparse
import glob
import json
import os
import sys

EXPECTED = {
    "countdown": {"train": 490364},
    "gsm8k": {"train": 7473, "test": 1319},
    "deepscaler": {"train": 40315},
    "aime24": {"test": 30},
}


def read_parquet(paths):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        sys.exit("error: pyarrow is needed (pip install pyarrow)")
    rows = []
    for p in sorted(paths):
        rows.extend(pq.read_table(p).to_pylist())
    return rows


def fetch(repo, pattern, src):
    if src:
        paths = glob.glob(os.path.join(src, "**", pattern), recursive=True)
    else:
        try:
            from huggingface_hub import snapshot_download
        except ImportError:
            sys.exit("error: huggingface_hub is needed (pip install huggingface_hub), or pass --from DIR")
        root = snapshot_download(repo_id=repo, repo_type="dataset", allow_patterns=[pattern])
        paths = glob.glob(os.path.join(root, "**", pattern), recursive=True)
    if not paths:
        sys.exit(f"error: no files matching {pattern} for {repo}")
    return paths


def read_rows(paths):
    """Rows of parquet, JSON (a list of objects) or JSONL files."""
    rows = []
    for p in sorted(paths):
        if p.endswith(".parquet"):
            rows.extend(read_parquet([p]))
        elif p.endswith(".jsonl"):
            with open(p, encoding="utf-8") as f:
                rows.extend(json.loads(l) for l in f if l.strip())
        else:
            with open(p, encoding="utf-8") as f:
                data = json.load(f)
            rows.extend(data if isinstance(data, list) else data.get("data", []))
    return rows


def math_rows(name, rows):
    """{"problem", "answer"} rows (the answer as text; a missing answer falls back to the solution)."""
    out = []
    for i, r in enumerate(rows):
        problem = r.get("problem") or r.get("question")
        answer = r.get("answer")
        if answer is None or str(answer).strip() == "":
            if not r.get("solution"):
                sys.exit(f"error: {name} row {i}: neither an answer nor a solution")
            out.append({"problem": problem, "solution": r["solution"]})
            continue
        if not problem:
            sys.exit(f"error: {name} row {i}: no problem text")
        out.append({"problem": problem, "answer": str(answer).strip()})
    return out


def write_jsonl(path, rows):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    print(f"wrote {path}: {len(rows)} rows")


def check(name, split, n):
    want = EXPECTED[name].get(split)
    if want is not None and n != want:
        sys.exit(f"error: {name} {split} has {n} rows, expected {want}: incomplete or changed download")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("which", nargs="*", default=["countdown", "gsm8k"],
                    choices=["countdown", "gsm8k", "deepscaler", "aime24"])
    ap.add_argument("--out", default="data")
    ap.add_argument("--from", dest="src", help="directory with downloaded parquet files")
    ap.add_argument("--val", type=int, default=500, help="countdown rows held out for validation")
    a = ap.parse_args()
    if "countdown" in a.which:
        rows = read_parquet(fetch("Jiayi-Pan/Countdown-Tasks-3to4", "*.parquet", a.src))
        check("countdown", "train", len(rows))
        out = [{"nums": [int(x) for x in r["nums"]], "target": int(r["target"])} for r in rows]
        write_jsonl(os.path.join(a.out, "countdown", "train.jsonl"), out[: -a.val])
        write_jsonl(os.path.join(a.out, "countdown", "val.jsonl"), out[-a.val:])
    if "gsm8k" in a.which:
        for split in ("train", "test"):
            rows = read_parquet(fetch("openai/gsm8k", f"main/{split}-*.parquet", a.src))
            check("gsm8k", split, len(rows))
            write_jsonl(os.path.join(a.out, "gsm8k", f"{split}.jsonl"),
                        [{"question": r["question"], "answer": r["answer"]} for r in rows])
    if "deepscaler" in a.which:
        paths = fetch("agentica-org/DeepScaleR-Preview-Dataset", "*.json", a.src)
        rows = math_rows("deepscaler", read_rows(paths))
        check("deepscaler", "train", len(rows))
        write_jsonl(os.path.join(a.out, "deepscaler", "train.jsonl"), rows)
    if "aime24" in a.which:
        rows = math_rows("aime24", read_rows(fetch("HuggingFaceH4/aime_2024", "*.parquet", a.src)))
        check("aime24", "test", len(rows))
        write_jsonl(os.path.join(a.out, "deepscaler", "aime24.jsonl"), rows)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Plots reward (mean, min-max band) and validation score against step for one or more runs.

  scripts/plot_metrics.py runs/quickstart [runs/other ...] --out docs/quickstart.png
"""
import argparse
import json
import os
import sys


def load(run):
    rows = []
    with open(os.path.join(run, "metrics.jsonl"), encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--title", default="EGGROLL training")
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        sys.exit("error: matplotlib is needed (Debian: python3-matplotlib, run with /usr/bin/python3)")
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    for run in a.runs:
        rows = load(run)
        if not rows:
            continue
        name = os.path.basename(os.path.normpath(run))
        st = [r["step"] + 1 for r in rows]
        line, = ax.plot(st, [r["reward_mean"] for r in rows], label=f"{name}: mean reward")
        ax.fill_between(st, [r["reward_min"] for r in rows], [r["reward_max"] for r in rows],
                        color=line.get_color(), alpha=0.15, label=f"{name}: min-max")
        val = [(r["step"] + 1, r["val_score"]) for r in rows if r.get("val_score") is not None]
        if val:
            ax.plot(*zip(*val), "o--", color=line.get_color(), label=f"{name}: validation (greedy)")
    ax.set_xlabel("ES step")
    ax.set_ylabel("reward")
    ax.set_title(a.title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    fig.savefig(a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()

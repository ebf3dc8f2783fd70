#!/usr/bin/env python3
"""Aggregates the metrics of many eggroll runs into a CSV, a Markdown table and plots.

  python3 scripts/report.py runs/popsweep                  # a sweep directory (has sweep.json)
  python3 scripts/report.py runs/a runs/b --out report/    # run directories
  python3 scripts/report.py runs/popsweep --out experiments/population-sweep --title "..."

Inputs: run directories (config.yaml + metrics.jsonl, as `eggroll train` writes them) and/or
sweep directories (sweep.json, as `eggroll sweep` writes it; its points are the runs). Runs
without metrics yet are listed with 0 steps and left out of the plots.

Outputs in --out (default: the sweep directory when one is given, else ./report):
  report.csv                       one row per run
  results.md                       the per-run table and the per-population table (mean +- std
                                   over seeds)
  reward_vs_step.png               mean reward of every run against the ES step
  final_reward_vs_population.png   final reward (mean +- std over seeds) vs es.directions
  tokens_per_s_vs_population.png   generated tokens/s (mean +- std over seeds) vs es.directions

Per run: final reward = mean of reward_mean over the last --last (3) steps; best reward = the
largest reward_mean of any step; val_score = the last validation score logged; tokens/s = the
mean of the per-step tokens_per_s (generation throughput); s/step = mean wall seconds of a step
(noise + generate + score + update).

Needs only the Python standard library; the plots need matplotlib (Debian: python3-matplotlib,
run as /usr/bin/python3). config.yaml is read with a small parser of its own (no PyYAML).
"""
import argparse
import csv
import json
import math
import os
import sys


# ---- reading runs ----------------------------------------------------------------------------

def _yaml_scalar(text):
    """A scalar as eggroll's config.yaml writes it: "quoted", [list], number, bool, plain."""
    text = text.strip()
    if not text:
        return None
    if text[0] == '"':
        # double-quoted: JSON-compatible for the escapes eggroll writes
        end, i = None, 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                end = i
                break
            i += 1
        if end is None:
            return text
        try:
            return json.loads(text[: end + 1])
        except ValueError:
            return text[1:end]
    if text[0] == "[":
        end = text.find("]")
        inner = text[1:end] if end >= 0 else text[1:]
        return [_yaml_scalar(p) for p in _split_flow(inner)] if inner.strip() else []
    hash_at = text.find(" #")
    if hash_at >= 0:
        text = text[:hash_at].strip()
    if text in ("true", "false"):
        return text == "true"
    if text in ("null", "~"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def _split_flow(inner):
    parts, cur, quoted, esc = [], "", False, False
    for c in inner:
        if esc:
            cur += c
            esc = False
        elif c == "\\" and quoted:
            cur += c
            esc = True
        elif c == '"':
            cur += c
            quoted = not quoted
        elif c == "," and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += c
    parts.append(cur)
    return parts


def read_config(path):
    """{'es.directions': 16, ...} from a run's config.yaml (two-level mapping, as eggroll writes it)."""
    out = {}
    section = None
    with open(path, encoding="utf-8") as f:
        for raw in f:
            line = raw.rstrip("\n")
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            indent = len(line) - len(line.lstrip(" "))
            key, sep, rest = stripped.partition(":")
            if not sep:
                continue
            if indent == 0:
                if rest.strip() == "" or rest.strip().startswith("#"):
                    section = key
                    continue
                section = None
                out[key] = _yaml_scalar(rest)
            elif section is not None:
                out[section + "." + key] = _yaml_scalar(rest)
    return out


def read_metrics(path):
    rows = {}
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                r = json.loads(line)
            except ValueError:
                continue  # a line cut short by a crash
            if "step" in r:
                rows[r["step"]] = r  # a resumed run rewrites its steps: keep the last
    return [rows[k] for k in sorted(rows)]


def collect(paths):
    """[(run_dir, name, grid_values or None)], the sweep dirs found."""
    runs, sweeps = [], []
    for p in paths:
        sj = os.path.join(p, "sweep.json")
        if os.path.isfile(sj):
            with open(sj, encoding="utf-8") as f:
                sweep = json.load(f)
            sweeps.append((p, sweep))
            for pt in sweep.get("points", []):
                d = os.path.join(p, pt["name"])
                if not os.path.isdir(d) and os.path.isdir(pt.get("run_dir", "")):
                    d = pt["run_dir"]
                runs.append((d, pt["name"], pt.get("values", {})))
        elif os.path.isfile(os.path.join(p, "config.yaml")) or os.path.isfile(os.path.join(p, "metrics.jsonl")):
            runs.append((p, os.path.basename(os.path.normpath(p)), None))
        else:
            sys.exit(f"error: {p}: neither a run directory (config.yaml, metrics.jsonl) nor a sweep directory (sweep.json)")
    return runs, sweeps


# ---- statistics ------------------------------------------------------------------------------

def mean(xs):
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return sum(xs) / len(xs) if xs else None


def std(xs):
    """Sample standard deviation (n - 1); 0 for a single value."""
    xs = [x for x in xs if x is not None]
    if len(xs) < 2:
        return 0.0 if xs else None
    m = sum(xs) / len(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def summarize(run_dir, name, values, last):
    cfg_path = os.path.join(run_dir, "config.yaml")
    cfg = read_config(cfg_path) if os.path.isfile(cfg_path) else {}
    rows = read_metrics(os.path.join(run_dir, "metrics.jsonl"))
    rewards = [r.get("reward_mean") for r in rows]
    vals = [r["val_score"] for r in rows if r.get("val_score") is not None]
    step_s = [sum(r["seconds"].values()) for r in rows if isinstance(r.get("seconds"), dict)]
    return {
        "name": name,
        "run_dir": run_dir,
        "task": cfg.get("task.name"),
        "directions": cfg.get("es.directions"),
        "prompts_per_step": cfg.get("es.prompts_per_step"),
        "seed": cfg.get("run.seed"),
        "steps": len(rows),
        "steps_planned": cfg.get("run.steps"),
        "final_reward": mean(rewards[-last:]) if rows else None,
        "best_reward": max(x for x in rewards if x is not None) if rows else None,
        "final_val_score": vals[-1] if vals else None,
        "tokens_per_s": mean([r.get("tokens_per_s") for r in rows]),
        "s_per_step": mean(step_s),
        "other": {k: v for k, v in (values or {}).items() if k not in ("es.directions", "run.seed")},
        "rows": rows,
    }


def group_label(s):
    return ", ".join(f"{k}={v}" for k, v in sorted(s["other"].items()))


def by_population(runs):
    """{(label, directions, prompts): [runs]} over runs with metrics."""
    groups = {}
    for s in runs:
        if s["steps"] == 0 or s["directions"] is None:
            continue
        groups.setdefault((group_label(s), s["directions"], s["prompts_per_step"]), []).append(s)
    return dict(sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0)))


# ---- output ----------------------------------------------------------------------------------

def fmt(x, digits=4):
    if x is None:
        return ""
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def write_csv(runs, path):
    cols = ["name", "task", "directions", "prompts_per_step", "seed", "steps", "steps_planned", "final_reward",
            "best_reward", "final_val_score", "tokens_per_s", "s_per_step", "run_dir"]
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for s in runs:
            w.writerow(["" if s[c] is None else (f"{s[c]:.6g}" if isinstance(s[c], float) else s[c]) for c in cols])


def markdown(runs, groups, last, title):
    out = [f"# {title}", ""] if title else []
    out += [f"Final reward = mean reward over the last {last} steps; best = highest per-step mean reward; "
            "tokens/s = mean generation throughput per step; s/step = mean wall time of a step.", ""]
    has_val = any(s["final_val_score"] is not None for s in runs)
    hdr = ["run", "directions", "prompts/step", "seed", "steps", "final reward", "best reward"]
    hdr += ["final val score"] if has_val else []
    hdr += ["tokens/s", "s/step"]
    out += ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
    for s in runs:
        cells = [f"`{s['name']}`", fmt(s["directions"]), fmt(s["prompts_per_step"]), fmt(s["seed"]),
                 f"{s['steps']}" + (f"/{s['steps_planned']}" if s["steps_planned"] not in (None, s["steps"]) else ""),
                 fmt(s["final_reward"]), fmt(s["best_reward"])]
        cells += [fmt(s["final_val_score"])] if has_val else []
        cells += [fmt(s["tokens_per_s"], 1), fmt(s["s_per_step"], 3)]
        out.append("| " + " | ".join(cells) + " |")
    if groups:
        out += ["", "By population size (mean ± sample std over seeds):", ""]
        has_other = any(k[0] for k in groups)
        hdr = (["setting"] if has_other else []) + ["directions", "prompts/step", "generations/step", "runs",
                                                     "final reward", "best reward"]
        hdr += ["final val score"] if has_val else []
        hdr += ["tokens/s", "s/step"]
        out += ["| " + " | ".join(hdr) + " |", "|" + "|".join("---" for _ in hdr) + "|"]
        for (label, d, p), rs in groups.items():
            def ms(key, digits=4):
                vals = [r[key] for r in rs if r[key] is not None]
                if not vals:
                    return ""
                return f"{mean(vals):.{digits}f} ± {std(vals):.{digits}f}"
            cells = ([label or "-"] if has_other else []) + [
                str(d), fmt(p), str(d * (p or 1)), str(len(rs)), ms("final_reward"), ms("best_reward")]
            cells += [ms("final_val_score", 2)] if has_val else []
            cells += [ms("tokens_per_s", 1), ms("s_per_step", 3)]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def plots(runs, groups, out_dir, title):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("warning: matplotlib not found (Debian: python3-matplotlib, run with /usr/bin/python3): no plots",
              file=sys.stderr)
        return []
    written = []
    with_rows = [s for s in runs if s["rows"]]
    dirs = sorted({s["directions"] for s in with_rows if s["directions"] is not None})
    cmap = plt.get_cmap("viridis")
    color = {d: cmap(i / max(1, len(dirs) - 1) * 0.9) for i, d in enumerate(dirs)}
    styles = ["-", "--", ":", "-."]

    # reward vs step, one line per run (color = population, line style = seed)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    seeds = sorted({s["seed"] for s in with_rows if s["seed"] is not None})
    for s in with_rows:
        st = [r["step"] + 1 for r in s["rows"]]
        ls = styles[seeds.index(s["seed"]) % len(styles)] if s["seed"] in seeds else "-"
        ax.plot(st, [r.get("reward_mean") for r in s["rows"]], ls, color=color.get(s["directions"], None),
                label=s["name"], linewidth=1.4)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("ES step")
    ax.set_ylabel("mean reward of the population")
    ax.set_title(f"{title}: reward vs step" if title else "reward vs step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(with_rows) > 8 else 1)
    fig.tight_layout()
    p = os.path.join(out_dir, "reward_vs_step.png")
    fig.savefig(p)
    plt.close(fig)
    written.append(p)

    # final reward / tokens per s vs population size
    def vs_population(key, ylabel, fname, what):
        fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
        labels = sorted({k[0] for k in groups})
        for label in labels:
            pts = [(d, [r[key] for r in rs if r[key] is not None]) for (lb, d, _p), rs in groups.items() if lb == label]
            pts = [(d, v) for d, v in pts if v]
            if not pts:
                continue
            xs = [d for d, _ in pts]
            ax.errorbar(xs, [mean(v) for _, v in pts], yerr=[std(v) for _, v in pts], marker="o", capsize=4,
                        label=label or None)
            for d, v in pts:
                ax.scatter([d] * len(v), v, s=10, color="gray", alpha=0.6, zorder=3)
        ax.set_xscale("log", base=2)
        xs_all = sorted({k[1] for k in groups})
        if xs_all:
            ax.set_xticks(xs_all)
            ax.set_xticklabels([str(x) for x in xs_all])
        if key == "tokens_per_s":
            ax.set_ylim(bottom=0)
        ax.set_xlabel("population size (es.directions)")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {what}" if title else what)
        ax.grid(alpha=0.3)
        if any(labels):
            ax.legend(fontsize=8)
        fig.tight_layout()
        p = os.path.join(out_dir, fname)
        fig.savefig(p)
        plt.close(fig)
        written.append(p)

    if groups:
        vs_population("final_reward", "final reward (mean ± std over seeds)", "final_reward_vs_population.png",
                      "final reward vs population")
        vs_population("tokens_per_s", "generated tokens/s (mean ± std)", "tokens_per_s_vs_population.png",
                      "throughput vs population")
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="+", help="run directories and/or sweep directories (with sweep.json)")
    ap.add_argument("--out", help="output directory (default: the sweep directory, else ./report)")
    ap.add_argument("--last", type=int, default=3, help="steps averaged for the final reward (default 3)")
    ap.add_argument("--title", default=None, help="title of the tables and plots (default: the sweep name)")
    ap.add_argument("--no-plots", action="store_true", help="only the CSV and the Markdown table")
    a = ap.parse_args()
    if a.last < 1:
        sys.exit("error: --last must be >= 1")

    found, sweeps = collect(a.paths)
    if not found:
        sys.exit("error: no runs found")
    out_dir = a.out or (sweeps[0][0] if len(sweeps) == 1 and len(a.paths) == 1 else "report")
    os.makedirs(out_dir, exist_ok=True)
    title = a.title if a.title is not None else (sweeps[0][1].get("name", "") if len(sweeps) == 1 else "")

    runs = [summarize(d, n, v, a.last) for d, n, v in found]
    groups = by_population(runs)
    csv_path = os.path.join(out_dir, "report.csv")
    write_csv(runs, csv_path)
    md = markdown(runs, groups, a.last, title)
    md_path = os.path.join(out_dir, "results.md")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(md)
    written = [csv_path, md_path]
    if not a.no_plots:
        written += plots(runs, groups, out_dir, title)
    sys.stdout.write(md)
    missing = [s["name"] for s in runs if s["steps"] == 0]
    if missing:
        print(f"note: {len(missing)} run(s) without metrics yet: {', '.join(missing)}", file=sys.stderr)
    print("wrote " + ", ".join(written), file=sys.stderr)


if __name__ == "__main__":
    main()

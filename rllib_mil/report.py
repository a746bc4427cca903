"""`rllib report`: results tables and learning-curve PNGs.

Two inputs:
* a benchmark results file (``.jsonl``, one row per (task, algo, seed), written by ``benchmarks/*.py``):
  expert-normalized score table + greedy-return curves;
* Tune experiment directories (``~/ray_results/<name>``, written by ``rllib train file``): last metrics per
  trial + return curves from each trial's ``progress.csv``.
"""

import json
import os
from collections import defaultdict
from typing import Dict, List

import numpy as np

TASK_ORDER = ["mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener"]
# The paper's order (Table 1): baselines first, MIFQ last; then the ablations and the RL expert.
ALGO_ORDER = ["BC", "IIQ", "IQVDN", "MASQIL", "MAGAIL", "MIFQ", "MIFQ:offline", "MAPPO",
              "QMIX", "QMIX-DA", "QPLEX", "QPLEX-DA", "DMIX", "DMIX-DA"]
RETURN_COLUMNS = ("env_runners/episode_return_mean", "evaluation/env_runners/episode_return_mean")
# Keys every benchmark row needs (benchmarks/*.py write them); the rest are optional.
ROW_KEYS = ("task", "algo", "seed", "score")
# First line of every page: the inputs it was written from (relative to the page's folder), so a report never
# replaces a page that another input wrote.
SOURCE_PREFIX, SOURCE_SUFFIX = "<!-- written by `rllib report` from: ", " -->"


def _source_line(sources: List[str], docs: str) -> str:
    rel = (os.path.relpath(os.path.abspath(p), os.path.abspath(docs)) for p in sources)
    return SOURCE_PREFIX + ", ".join(rel) + SOURCE_SUFFIX


def check_overwrite(page: str, sources: List[str], docs: str) -> None:
    """Refuse (ValueError, nothing written) to replace ``page`` unless it was written from the same ``sources``."""
    if not os.path.exists(page):
        return
    with open(page) as f:
        first = f.readline().strip()
    if first == _source_line(sources, docs):
        return
    if first.startswith(SOURCE_PREFIX) and first.endswith(SOURCE_SUFFIX):
        was = f"written from {first[len(SOURCE_PREFIX):-len(SOURCE_SUFFIX)]} (relative to {docs})"
    else:
        was = "not written by `rllib report`"
    raise ValueError(f"{page} exists and was {was}, not from {', '.join(sources)}: nothing was written. Pass "
                     f"another --docs folder, or --overwrite to replace it.")


def read_rows(path: str) -> List[dict]:
    """The rows of a benchmark ``.jsonl``, each checked for the keys a table needs."""
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {i} is not JSON ({e}).") from None
            missing = [k for k in ROW_KEYS if not isinstance(row, dict) or k not in row]
            if missing:
                raise ValueError(f"{path} line {i} is not a benchmark results row: it lacks {missing}. `rllib report` "
                                 f"reads the rows that benchmarks/*.py write (keys {list(ROW_KEYS)}, optional curve, "
                                 f"demos, wall_s) and `rllib train file` output folders.")
            rows.append(row)
    return rows


def _ordered(values, order):
    return sorted(set(values), key=lambda v: (order.index(v) if v in order else len(order), v))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _cell(rs: List[dict]) -> str:
    """mean ± std of the score over seeds (mean raw return; win rate where the game reports one; seed count)."""
    if not rs:
        return "-"
    sc = np.array([r["score"] for r in rs])
    rets = [r["return"] for r in rs if r.get("return") is not None]
    ret = f"{np.mean(rets):.1f}; " if len(rets) == len(rs) else ""  # rows without a raw return show none
    won = [r["win_rate"] for r in rs if r.get("win_rate") is not None]
    # Games with a win (SMAX, SMACv2): the greedy win rate too, mean ± std over seeds.
    win = f"win {np.mean(won):.2f} ± {np.std(won):.2f}; " if won else ""
    return f"{sc.mean():.2f} ± {sc.std():.2f} ({ret}{win}n={len(rs)})"


def _reference(rows: List[dict], task: str, kind: str) -> str:
    """The expert's or random play's raw return on a task (and win rate), as measured beside the methods."""
    ref = next((r for r in rows if r["task"] == task and r.get(f"{kind}_return") is not None), None)
    if ref is None:  # not measured beside these rows
        return "-"
    text = f"{ref[f'{kind}_return']:.1f}"
    if ref.get(f"{kind}_win_rate") is not None:
        text += f" (win {ref[f'{kind}_win_rate']:.2f})"
    return text


def _score_table(rows: List[dict]) -> List[str]:
    """Markdown rows in the paper's layout (Table 1): methods as rows, tasks as columns; the expert first and
    random play last (raw return, win rate where there is one), each method's cell as in ``_cell``."""
    by: Dict[tuple, List[dict]] = defaultdict(list)
    for r in rows:
        by[(r["task"], r["algo"])].append(r)
    tasks = _ordered([r["task"] for r in rows], TASK_ORDER)
    algos = _ordered([r["algo"] for r in rows], ALGO_ORDER)
    lines = [
        "| method | " + " | ".join(tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    if "expert_return" in rows[0]:  # imitation rows; RL benchmarks (e.g. benchmarks/igm_da_smax.py) have no expert
        lines.append(f"| {rows[0].get('expert_label', 'expert')} (return) | "
                     + " | ".join(_reference(rows, t, "expert") for t in tasks) + " |")
    lines += [f"| {a} | " + " | ".join(_cell(by.get((t, a), [])) for t in tasks) + " |" for a in algos]
    if any(r.get("random_return") is not None for r in rows):
        lines.append("| random (return) | " + " | ".join(_reference(rows, t, "random") for t in tasks) + " |")
    return lines


def _demo_count_table(rows: List[dict], demo_counts: List[int]) -> List[str]:
    """Score vs number of demonstrations: methods as rows, (task, demos) as columns, mean score over seeds."""
    tasks = _ordered([r["task"] for r in rows], TASK_ORDER)
    algos = _ordered([r["algo"] for r in rows], ALGO_ORDER)
    cols = [(t, d) for t in tasks for d in demo_counts]
    by: Dict[tuple, List[float]] = defaultdict(list)
    for r in rows:
        by[(r["algo"], r["task"], r.get("demos"))].append(r["score"])
    lines = ["| method | " + " | ".join(f"{t.split('/')[-1]} {d}" for t, d in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for a in algos:
        lines.append(f"| {a} | " + " | ".join(
            f"{np.mean(by[(a, t, d)]):.2f}" if by.get((a, t, d)) else "-" for t, d in cols) + " |")
    return lines


def benchmark_report(path: str, docs: str, name: str, title: str, overwrite: bool = False) -> str:
    """Markdown table (mean ± std of the score over seeds) and curves of a benchmark ``.jsonl``.

    An existing ``<name>_results.md`` written from another input is not replaced unless ``overwrite``.
    Rows with several demonstration counts (``demos``) give one table per count, a demo-count plot
    (``<name>_demos.png``: score vs number of demonstrations) and learning curves per count. Curves whose points
    carry a third value (``q_abs_max``) also get a Q-magnitude plot (``<name>_q.png``).
    """
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} holds no results yet.")
    page = os.path.join(docs, f"{name}_results.md")
    if not overwrite:
        check_overwrite(page, [path], docs)
    demo_counts = sorted({r.get("demos") for r in rows if r.get("demos") is not None})
    groups = [(d, [r for r in rows if r.get("demos") == d]) for d in demo_counts] or [(None, rows)]
    lines: List[str] = []
    for d, rs in groups:
        if len(groups) > 1:
            lines += ["", f"**{d} demonstrations**", ""]
        lines += _score_table(rs)
    if len(groups) > 1:
        lines += ["", "**Score vs number of demonstrations** (mean over seeds)", ""] + _demo_count_table(rows, demo_counts)
    r0 = rows[0]
    if "budget" in r0:  # benchmarks describe their own budget
        budget = r0["budget"]
    elif not {"env_steps", "updates_per_iteration", "lr", "eval_episodes"} <= set(r0):
        budget = ""  # rows that do not say
    else:  # imitation benchmark rows (benchmarks/mifq_mpe.py)
        ra = next((r for r in rows if "alpha" in r), r0)  # BC rows carry no soft-Q settings
        demos = ", ".join(str(d) for d in demo_counts)
        budget = (
            f"Budget: {r0['env_steps']} env steps per run, {r0['updates_per_iteration']} learner updates per 100 env "
            f"steps ({r0.get('replay_batch', '?')} replay + 128 expert rows each), {demos} "
            f"{'scripted' if r0.get('expert', 'scripted') == 'scripted' else 'checkpoint'}-expert "
            f"episodes, lr={r0['lr']}, alpha={ra.get('alpha', '?')}, gamma={ra.get('gamma', '?')}; greedy decentralized evaluation on "
            f"{r0['eval_episodes']} episodes."
        )
    walls = [r["wall_s"] for r in rows if "wall_s" in r]
    score = ("score = (R − R_random) / (R_expert − R_random)" if "expert_return" in r0 else
             f"score = {r0.get('curve_label', 'the result')}")
    lines += [
        "",
        f"{score}, mean ± std over seeds {sorted({r['seed'] for r in rows})}. "
        f"{budget}" + (f" Mean wall time per run {np.mean(walls):.0f} s (2-CPU machine, CPU learner)." if walls else ""),
    ]
    table = "\n".join(lines).strip("\n")
    os.makedirs(docs, exist_ok=True)
    tasks = _ordered([r["task"] for r in rows], TASK_ORDER)
    algos = _ordered([r["algo"] for r in rows], ALGO_ORDER)
    pngs = [f"{name}_curves.png"]
    _plot_curves(rows, groups, tasks, algos, os.path.join(docs, pngs[0]), value_index=1,
                 ylabel=r0.get("curve_label", "greedy return"), references=True)
    if any(len(p) > 2 for r in rows for p in r.get("curve", [])):
        pngs.append(f"{name}_q.png")
        _plot_curves(rows, groups, tasks, algos, os.path.join(docs, pngs[-1]), value_index=2,
                     ylabel="q_abs_max (learner)", references=False)
    if len(groups) > 1:
        pngs.append(f"{name}_demos.png")
        _plot_demo_counts(rows, tasks, algos, os.path.join(docs, pngs[-1]))
    with open(page, "w") as f:
        f.write(f"{_source_line([path], docs)}\n# {title}\n\n{table}\n\n" + "\n".join(f"![{p}]({p})" for p in pngs) + "\n")
    return table


def _plot_curves(rows, groups, tasks, algos, out, value_index, ylabel, references):
    """Learning curves (mean over seeds, min-max band): one row of panels per demo count, one column per task.
    With ``references`` the values become expert-normalized scores, with the expert (1) and random play (0) as
    lines; methods with budgets far apart (MAGAIL's 100k env steps beside MIFQ's 8k) get a log step axis."""
    plt = _plt()
    fig, axes = plt.subplots(len(groups), len(tasks), figsize=(5 * len(tasks), 3.4 * len(groups)), squeeze=False)
    for axrow, (d, rs) in zip(axes, groups):
        for ax, t in zip(axrow, tasks):
            ref = next((r for r in rs if r["task"] == t), None)
            x_max, x_min = 0, float("inf")
            for a in algos:
                curves = [r["curve"] for r in rs if r["task"] == t and r["algo"] == a and r.get("curve")]
                curves = [c for c in curves if all(len(p) > value_index for p in c)]
                if not curves:
                    continue
                n = min(len(c) for c in curves)
                xs = [p[0] for p in curves[0][:n]]
                ys = np.array([[p[value_index] for p in c[:n]] for c in curves], dtype=float)
                if np.isnan(ys).all():  # e.g. no Q values (BC, MAGAIL) on the Q-magnitude plot
                    continue
                if references and ref is not None and "expert_return" in ref:
                    ys = (ys - ref["random_return"]) / (ref["expert_return"] - ref["random_return"])
                x_max, x_min = max(x_max, xs[-1]), min(x_min, min(x for x in xs if x > 0) if any(x > 0 for x in xs) else x_min)
                color = f"C{algos.index(a) % 10}"  # one colour per method across panels
                ax.plot(xs, np.nanmean(ys, 0), label=a, color=color)
                ax.fill_between(xs, np.nanmin(ys, 0), np.nanmax(ys, 0), alpha=0.2, color=color)
            if references and ref is not None and "expert_return" in ref:
                ax.axhline(1.0, color="k", ls="--", lw=1, label=ref.get("expert_label", "expert"))
                ax.axhline(0.0, color="grey", ls=":", lw=1, label="random")
            if x_min < float("inf") and x_max / x_min > 20:
                ax.set_xscale("log")
            label = f"score ({ylabel})" if references and ref is not None and "expert_return" in ref else ylabel
            ax.set(title=t if d is None else f"{t}, {d} demos", xlabel="env steps", ylabel=label)
    _legend(fig, axes)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _plot_demo_counts(rows, tasks, algos, out):
    """Final score vs number of demonstrations (mean ± std over seeds), per task (the paper's Tables 15–22)."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.4), squeeze=False)
    for ax, t in zip(axes[0], tasks):
        for a in algos:
            pts = defaultdict(list)
            for r in rows:
                if r["task"] == t and r["algo"] == a:
                    pts[r["demos"]].append(r["score"])
            if not pts:
                continue
            ds = sorted(pts)
            m = np.array([np.mean(pts[d]) for d in ds])
            sd = np.array([np.std(pts[d]) for d in ds])
            ax.errorbar(ds, m, yerr=sd, marker="o", capsize=3, label=a, color=f"C{algos.index(a) % 10}")
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.axhline(0.0, color="grey", ls=":", lw=1)
        ax.set_xscale("log", base=2)
        ax.set(title=t, xlabel="expert episodes", ylabel="expert-normalized score")
    _legend(fig, axes)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def _legend(fig, axes):
    """One legend for all panels: every method that appears in any of them."""
    seen = {}
    for ax in axes.flat:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    axes[0][0].legend(list(seen.values()), list(seen), fontsize=8)


def experiment_report(paths: List[str], docs: str, overwrite: bool = False) -> str:
    """Last metrics of every trial under Tune experiment directories, and their return curves (an existing
    ``experiment_report.md`` written from other directories is not replaced unless ``overwrite``)."""
    import pandas as pd

    page = os.path.join(docs, "experiment_report.md")
    if not overwrite:
        check_overwrite(page, paths, docs)

    trials = []
    for root in paths:
        root = os.path.abspath(os.path.expanduser(root))
        for dirpath, _, files in os.walk(root):
            if "progress.csv" in files or "result.json" in files:
                trials.append(dirpath)
    if not trials:
        raise ValueError(f"No Tune trials (result.json / progress.csv) under {paths}; pass `rllib train file` output "
                         "folders.")
    lines = ["| trial | iterations | env steps | return (rollouts) | return (greedy eval) |", "|---|---|---|---|---|"]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for trial in sorted(trials):
        df = _trial_results(trial)
        steps = df.get("num_env_steps_sampled_lifetime", df["training_iteration"])
        last = df.iloc[-1]
        cells = [f"{last.get(c, float('nan')):.2f}" if c in df else "-" for c in RETURN_COLUMNS]
        lines.append(f"| {os.path.basename(trial)} | {int(last['training_iteration'])} | {int(steps.iloc[-1])} | "
                     + " | ".join(cells) + " |")
        for col, style in zip(RETURN_COLUMNS, ("-", "o-")):
            if col in df and df[col].notna().any():
                ok = df[col].notna()
                ax.plot(steps[ok], df[col][ok], style, ms=3, label=f"{os.path.basename(trial)[:24]} {col.split('/')[0]}")
    ax.set(xlabel="env steps", ylabel="episode return")
    ax.legend(fontsize=6)
    fig.tight_layout()
    os.makedirs(docs, exist_ok=True)
    fig.savefig(os.path.join(docs, "experiment_curves.png"), dpi=90)
    plt.close(fig)
    table = "\n".join(lines)
    with open(page, "w") as f:
        f.write(f"{_source_line(paths, docs)}\n# Experiment report\n\n{table}\n\n![curves](experiment_curves.png)\n")
    return table


def _trial_results(trial: str):
    """One row per training iteration of a Tune trial, columns named like progress.csv ("a/b/c").

    Read from result.json (one JSON object per iteration) when it is there: after ``--resume`` Tune appends rows to
    progress.csv under the header of the first session, whose columns need not match the new rows (measured: a
    resumed MAPPO run's win rate landed in the return column). A restored trial can repeat iterations; the last
    report of each iteration is kept.
    """
    import pandas as pd

    path = os.path.join(trial, "result.json")
    if os.path.exists(path):
        rows = [json.loads(line) for line in open(path) if line.strip()]
        if rows:
            df = pd.json_normalize(rows, sep="/")
            return df.drop_duplicates("training_iteration", keep="last").reset_index(drop=True)
    return pd.read_csv(os.path.join(trial, "progress.csv"))

"""Convergence speed: env steps until an online imitation run's greedy score first reaches a threshold (default 0.8
of the expert), from the learning curves that ``benchmarks/mifq_mpe.py`` stores with every row (issue 11: the MAMQL
paper claims 2-5x fewer env steps to 0.8 than its baselines).

    python benchmarks/mifq_mpe.py --tasks mpe/simple_speaker_listener mpe/simple_reference --methods MAMQL MIFQ \\
        --demos 16 128 --seeds 0 1 2 --eval-every 5 --curve-episodes 20 --tag convergence \\
        --out benchmarks/results/convergence.jsonl
    python benchmarks/convergence.py benchmarks/results/convergence.jsonl [--threshold 0.8]

score = (R - R_random) / (R_expert - R_random) with the row's own expert and random returns (measured on the final
evaluation's episodes). A curve point is the greedy return on ``--curve-episodes`` fixed episodes. A run "reaches"
the threshold at the first curve point at or above it; runs that never do are counted apart, and the mean is over
the runs that reach it. The ratio column divides each method's mean by the first method's in the same cell (– when either
never reaches the threshold).
"""
import argparse
import json
import sys
from collections import defaultdict


def steps_to(row: dict, threshold: float):
    """Env steps of the first curve point whose expert-normalized score is >= threshold, else None."""
    span = row["expert_return"] - row["random_return"]
    for point in row["curve"]:
        steps, ret = point[0], point[1]
        if (ret - row["random_return"]) / span >= threshold:
            return int(steps)
    return None


def table(rows, threshold: float) -> str:
    cells = defaultdict(lambda: defaultdict(list))  # (task, demos) -> algo -> [(seed, steps or None, score)]
    for r in rows:
        cells[(r["task"], r["demos"])][r["algo"]].append((r["seed"], steps_to(r, threshold), r["score"]))
    lines = [f"| task | demos | method | env steps to {threshold} (per seed) | reached | mean of those reached | "
             f"vs first method | final score |", "|---|---|---|---|---|---|---|---|"]
    for (task, demos), by_algo in sorted(cells.items()):
        base, first = None, True
        for algo, runs in by_algo.items():
            runs.sort()
            hit = [s for _, s, _ in runs if s is not None]
            mean = sum(hit) / len(hit) if hit else None
            if first:  # the ratio is against the cell's first method only (none if it never gets there)
                base, first = mean, False
            ratio = f"{mean / base:.2f}" if mean is not None and base else "–"
            per_seed = " / ".join("never" if s is None else str(s) for _, s, _ in runs)
            final = sum(sc for *_, sc in runs) / len(runs)
            lines.append(f"| {task} | {demos} | {algo} | {per_seed} | {len(hit)}/{len(runs)} | "
                         f"{'–' if mean is None else f'{mean:.0f}'} | {ratio} | {final:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="benchmarks/mifq_mpe.py result files (.jsonl)")
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--tag", default=None, help="only rows with this tag")
    args = p.parse_args(argv)
    rows = [json.loads(line) for f in args.results for line in open(f) if line.strip()]
    rows = [r for r in rows if r.get("curve") and (args.tag is None or r.get("tag") == args.tag)]
    if not rows:
        print("no rows with learning curves", file=sys.stderr)
        return 1
    print(table(rows, args.threshold))
    return 0


if __name__ == "__main__":
    sys.exit(main())

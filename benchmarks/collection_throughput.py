"""Demonstration collection throughput (episodes/s) with 1 vs 2 Ray env runners, as a ratio in one run.

The expert is a MAPPO checkpoint (``--checkpoint``; by default one from ``benchmarks/mappo_experts.py``, or a
freshly initialised MAPPO policy when none exists: the per-step cost is the same). Each setting collects
``--episodes`` episodes ``--repeats`` times, alternating settings so machine noise hits both alike; the
median of each is reported, and the ratio is what to read (these machines are shared and noisy).

    python benchmarks/collection_throughput.py --episodes 256 --repeats 3 \
        --out benchmarks/results/collection_throughput.jsonl
"""

import argparse
import glob
import json
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = "mpe/simple_spread"


def fresh_checkpoint(path):
    from rllib_mil.algorithms.mappo import MAPPOConfig

    algo = MAPPOConfig().environment(ENV).env_runners(num_env_runners=0).build_algo()
    try:
        algo.save_to_path(path)
    finally:
        algo.stop()
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--episodes", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--runners", nargs="+", type=int, default=[1, 2])
    p.add_argument("--stochastic", action="store_true")
    p.add_argument("--out", default=None, help="append the result as a JSON line here")
    args = p.parse_args(argv)

    import ray

    import rllib_mil  # noqa: F401
    from rllib_mil.data.demos import collect_demos

    ray.init(num_cpus=max(args.runners), include_dashboard=False)
    tmp = tempfile.mkdtemp()
    ckpt = args.checkpoint or next(iter(sorted(glob.glob(os.path.join(
        ROOT, "benchmarks/results/mappo_experts/simple_spread-seed*")))), None)
    ckpt = ckpt or fresh_checkpoint(os.path.join(tmp, "mappo"))
    # Warm-up: start the Ray worker processes once, so no setting pays for process start-up.
    collect_demos(ENV, {}, ckpt, max(args.runners), 0, os.path.join(tmp, "warm.parquet"),
                  num_env_runners=max(args.runners))
    rates = {n: [] for n in args.runners}
    for rep in range(args.repeats):
        for n in args.runners:
            t0 = time.perf_counter()
            collect_demos(ENV, {}, ckpt, args.episodes, rep, os.path.join(tmp, f"r{n}.parquet"),
                          num_env_runners=n, stochastic=args.stochastic)
            rates[n].append(args.episodes / (time.perf_counter() - t0))
            print(f"repeat {rep}: {n} runner(s): {rates[n][-1]:.1f} episodes/s", flush=True)
    med = {n: statistics.median(r) for n, r in rates.items()}
    base = args.runners[0]
    row = {
        "env": ENV, "episodes": args.episodes, "repeats": args.repeats, "cpus": os.cpu_count(),
        "checkpoint": os.path.relpath(ckpt, ROOT) if ckpt.startswith(ROOT) else "fresh MAPPO policy",
        "episodes_per_s": {str(n): round(v, 2) for n, v in med.items()},
        "ratio_vs_1": {str(n): round(v / med[base], 3) for n, v in med.items()},
    }
    print(json.dumps(row))
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

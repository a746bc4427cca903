"""Scripted experts vs uniform random on the MPE team tasks: mean ± std team return over N episodes.

    python benchmarks/scripted_experts.py --episodes 100 --seed 0

Episode k is reset with ``seed + k`` for both policies (same start states); each policy's rng is
``default_rng(seed)``. The last column is the ratio of the random policy's cost to the scripted one's
(returns are negative: cost = -return), measured in this run.
"""
from __future__ import annotations

import argparse
import time

from rllib_mil.data.experts import make_expert, run_episodes
from rllib_mil.envs import make_team_env

TASKS = [
    ("mpe/simple_spread", {}),
    ("mpe/simple_reference", {}),
    ("mpe/simple_speaker_listener", {}),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spread-n", type=int, nargs="*", default=[3],
                        help="numbers of agents for simple_spread (e.g. --spread-n 3 4)")
    args = parser.parse_args(argv)

    tasks = [("mpe/simple_spread", {"N": n} if n != 3 else {}) for n in args.spread_n] + TASKS[1:]
    header = f"{'env':<36} {'scripted':>18} {'random':>18} {'cost ratio':>11} {'time':>7}"
    print(f"episodes={args.episodes} seed={args.seed} (episode k reset with seed+k)")
    print(header)
    print("-" * len(header))
    for env_id, cfg in tasks:
        env = make_team_env(env_id, cfg)
        t0 = time.perf_counter()
        s = run_episodes(env, make_expert("scripted", env), args.episodes, args.seed)
        r = run_episodes(env, make_expert("random", env), args.episodes, args.seed)
        name = env_id + ("" if not cfg else " " + ",".join(f"{k}={v}" for k, v in cfg.items()))
        print(f"{name:<36} {s.mean():>8.2f} ± {s.std():<7.2f} {r.mean():>8.2f} ± {r.std():<7.2f} "
              f"{r.mean() / s.mean():>10.2f}x {time.perf_counter() - t0:>6.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""In-process rollouts (``rllib evaluate``, ``rllib demos collect`` without Ray runners, the benchmarks' greedy
evaluations) with torch's default thread pool against one intra-op thread, in one process, back to back.

A greedy episode calls the policy on one observation at a time; torch's thread pool gains nothing there and, on a
machine whose cores are busy, waits for them at every call. ``episode_outcomes`` now runs on one thread
(``rllib_mil.data.experts.one_torch_thread``); this script times the loop both ways and prints the ratio.

    python benchmarks/eval_threads.py benchmarks/experts/mappo_mpe_spread_actor128_5m --episodes 20
"""

import argparse
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint", help="a team-algorithm checkpoint (its env is rebuilt from it)")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3, help="alternations of the two settings (medians compared)")
    args = p.parse_args(argv)

    import numpy as np
    import torch

    import rllib_mil  # noqa: F401
    from rllib_mil.data.experts import episode_rng, one_torch_thread, play_episode
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import ModulePolicy, load_team_module

    module, config = load_team_module(args.checkpoint)
    env = make_team_env(config.env, dict(config.env_config or {}))
    policy = ModulePolicy(module)

    def ms_per_step():
        t, steps = time.perf_counter(), 0
        for k in range(args.episodes):
            steps += len(play_episode(env, policy, 10_000 + k, episode_rng(10_000, k), record=True)[2])
        return 1000 * (time.perf_counter() - t) / steps

    default_threads = torch.get_num_threads()
    pool, one = [], []
    for _ in range(args.repeats):
        pool.append(ms_per_step())
        with one_torch_thread():
            one.append(ms_per_step())
    env.close()
    print(f"{config.env}: torch default ({default_threads} threads) {np.median(pool):.2f} ms/step, one thread "
          f"{np.median(one):.2f} ms/step; one thread is {np.median(pool) / np.median(one):.1f}x faster "
          f"(medians of {args.repeats}, {args.episodes} greedy episodes each)")


if __name__ == "__main__":
    main()

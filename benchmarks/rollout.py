"""Env steps per second collected by an RLlib env runner, against a bare loop over the same envs and policy network
in the same process (issue 13). Everything is measured here, one after the other, so the printed ratios hold on a
shared, noisy machine where the absolute numbers do not.

For each env id:
  bare        a plain Python loop: the policy network (the team module's forward_exploration) on a batch of
              observations, then one step of a vector env of the same envs (no RLlib at all)
  rllib/sync  SingleAgentEnvRunner.sample() with gymnasium's SyncVectorEnv (RLlib's default vectorization)
  rllib/batch SingleAgentEnvRunner.sample() with the env's own batched backend (gym_env_vectorize_mode=
              "vector_entry_point"; SMAX: one vmapped JAX call for all battles; other envs fall back to sync)

    python benchmarks/rollout.py                                   # SMAX smacv2_5_units and MPE spread, 8 and 32 envs
    python benchmarks/rollout.py --envs smax/3m --num-envs 64 --steps 20000 --out benchmarks/results/rollout.jsonl
    python benchmarks/rollout.py --runners 1 2 --steps 16000        # 1 -> 2 remote env runners, as a ratio
"""
import argparse
import json
import os
import time

import numpy as np
import torch


def module_for(env_id, env_config, num_envs, mode):
    from rllib_mil.algorithms.mappo import MAPPOConfig

    return (MAPPOConfig().environment(env_id, env_config=env_config)
            .env_runners(num_env_runners=0, num_envs_per_env_runner=num_envs, rollout_fragment_length=200,
                         gym_env_vectorize_mode=mode))


def rllib_steps_per_s(env_id, env_config, num_envs, mode, steps):
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    runner = SingleAgentEnvRunner(config=module_for(env_id, env_config, num_envs, mode))
    runner.sample(num_timesteps=max(steps // 10, 4 * num_envs))  # warm-up: JIT compilation, first resets
    t = time.perf_counter()
    runner.sample(num_timesteps=steps)
    rate = steps / (time.perf_counter() - t)
    module = runner.module
    runner.stop()
    return rate, module


@torch.no_grad()
def bare_steps_per_s(env_id, env_config, num_envs, module, steps):
    """The same work without RLlib: module forward on the batch of observations, sample, step the vector env."""
    from ray.rllib.core.columns import Columns

    from rllib_mil.envs import make_team_vector_env

    env = make_team_vector_env(env_id, env_config, num_envs)
    obs, _ = env.reset(seed=0)

    def act(o):
        batch = {Columns.OBS: {k: torch.as_tensor(v) for k, v in o.items()}}
        out = module.forward_exploration(batch, t=0)
        if Columns.ACTIONS in out:
            return out[Columns.ACTIONS].numpy()
        dist = module.get_exploration_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
        return dist.sample().numpy()

    for _ in range(max(steps // (10 * num_envs), 4)):
        obs, *_ = env.step(act(obs))
    t, done = time.perf_counter(), 0
    while done < steps:
        obs, *_ = env.step(act(obs))
        done += num_envs
    rate = done / (time.perf_counter() - t)
    env.close()
    return rate


def runners_steps_per_s(env_id, env_config, num_envs, mode, steps, n_runners):
    """Env steps/s of ``n_runners`` remote env runners (Ray actors, one CPU each, as RLlib's EnvRunnerGroup places
    them) sampling ``steps`` env steps between them in parallel."""
    import ray
    from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

    config = module_for(env_id, env_config, num_envs, mode)
    actors = [ray.remote(num_cpus=1)(SingleAgentEnvRunner).remote(config=config) for _ in range(n_runners)]
    per_runner = steps // n_runners
    ray.get([a.sample.remote(num_timesteps=max(per_runner // 10, 4 * num_envs)) for a in actors])  # warm-up
    t = time.perf_counter()
    ray.get([a.sample.remote(num_timesteps=per_runner) for a in actors])
    rate = per_runner * n_runners / (time.perf_counter() - t)
    for a in actors:
        ray.kill(a)
    return rate


def runners_main(args):
    """--runners: 1 -> N env runners, alternating settings ``--repeats`` times; medians and their ratio."""
    import ray

    ray.init(num_cpus=max(args.runners), include_dashboard=False, log_to_driver=False)
    for env_id in args.envs:
        cfg = {"max_steps": 100} if env_id.startswith("smax/") else {}
        for n in args.num_envs:
            rates = {k: [] for k in args.runners}
            for _ in range(args.repeats):
                for k in args.runners:
                    rates[k].append(runners_steps_per_s(env_id, cfg, n, "vector_entry_point", args.steps, k))
            med = {k: sorted(v)[len(v) // 2] for k, v in rates.items()}
            base = med[args.runners[0]]
            row = {"env": env_id, "num_envs": n, "steps": args.steps, "mode": "runners",
                   **{f"runners_{k}": round(v) for k, v in med.items()},
                   **{f"speedup_{k}": round(v / base, 2) for k, v in med.items() if k != args.runners[0]},
                   "repeats": args.repeats, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envs", nargs="+", default=["smax/smacv2_5_units", "mpe/simple_spread"])
    p.add_argument("--num-envs", type=int, nargs="+", default=[8, 32])
    p.add_argument("--steps", type=int, default=8000, help="env steps per measurement")
    p.add_argument("--runners", type=int, nargs="+", default=None,
                   help="instead: env steps/s of this many remote env runners (e.g. 1 2), batched backend")
    p.add_argument("--repeats", type=int, default=3, help="alternating measurements per setting with --runners")
    p.add_argument("--out", default=None, help="append one JSON line per (env, num_envs) here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)  # one core per env runner, as RLlib's runners get
    import rllib_mil  # noqa: F401

    if args.runners:
        return runners_main(args)

    for env_id in args.envs:
        cfg = {"max_steps": 100} if env_id.startswith("smax/") else {}
        for n in args.num_envs:
            sync, module = rllib_steps_per_s(env_id, cfg, n, "sync", args.steps)
            batch, _ = rllib_steps_per_s(env_id, cfg, n, "vector_entry_point", args.steps)
            bare = bare_steps_per_s(env_id, cfg, n, module, args.steps)
            row = {"env": env_id, "num_envs": n, "steps": args.steps, "bare": round(bare), "rllib_sync": round(sync),
                   "rllib_batched": round(batch), "batched_over_sync": round(batch / sync, 2),
                   "rllib_batched_over_bare": round(batch / bare, 2), "rllib_sync_over_bare": round(sync / bare, 2),
                   "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
            print(json.dumps(row), flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""MAMQL reward recovery: train MAMQL, then correlate its recovered per-agent rewards R_i(s, a) with the true ones on
held-out demonstrations (other episodes than the training ones), per agent (issue 11).

    python benchmarks/mamql_rewards.py --task mpe/simple_reference --demos 128 --seeds 0 1 2 \
        --out benchmarks/results/mamql_rewards.jsonl

Each row: task, seed, demos, mode (online/offline), env steps, greedy score, and the Pearson correlation per agent on
`--heldout` held-out scripted episodes (seed 1 of the scripted expert; training uses seed 0). As a floor, the same
correlation for the untrained reward networks of the run's initial checkpoint.
"""
import argparse
import json
import os
import tempfile
import time


def run(task, seed, demos, offline, env_steps, heldout_path, args):
    from rllib_mil.algorithms.mamql import MAMQLConfig
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import ModulePolicy, run_episodes
    from rllib_mil.rewards import export_rewards

    env_config = json.loads(args.env_config)
    cfg = (MAMQLConfig().environment(task, env_config=env_config)
           .training(expert_data={"expert": "scripted", "episodes": demos, "seed": 0}, lr=5e-4, gamma=args.gamma,
                     num_updates_per_iteration=50, train_batch_size_per_learner=64,
                     num_steps_sampled_before_learning_starts=1000, offline=offline)
           .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=25)
           .debugging(seed=seed))
    algo = cfg.build_algo()
    tmp = tempfile.mkdtemp()
    algo.save_to_path(os.path.join(tmp, "init"))
    floor = export_rewards(os.path.join(tmp, "init"), heldout_path, os.path.join(tmp, "init.parquet"))["pearson"]
    t0, iters = time.time(), (env_steps // 100) - (10 if offline else 0)
    for _ in range(iters):
        algo.train()
    algo.save_to_path(os.path.join(tmp, "final"))
    res = export_rewards(os.path.join(tmp, "final"), heldout_path, os.path.join(tmp, "final.parquet"))
    env = make_team_env(task, env_config)
    ret = run_episodes(env, ModulePolicy(algo.get_module()), 50, 100_000)["return_mean"]
    algo.stop()
    return {"task": task, "env_config": env_config, "seed": seed, "demos": demos, "mode": "offline" if offline else "online",
            "env_steps": env_steps, "return": ret, "pearson": res["pearson"], "pearson_untrained": floor,
            "heldout_rows": res["rows"], "wall_s": time.time() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mpe/simple_reference")
    p.add_argument("--demos", type=int, default=128)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--modes", nargs="+", default=["online", "offline"])
    p.add_argument("--env-steps", type=int, default=8000)
    p.add_argument("--gamma", type=float, default=0.9, help="discount (0.9 for MPE's 25-step episodes)")
    p.add_argument("--env-config", default="{}", help="JSON env_config, e.g. '{\"random_reset\": true}' (Overcooked)")
    p.add_argument("--heldout", type=int, default=64, help="held-out scripted episodes (expert seed 1)")
    p.add_argument("--out", default="benchmarks/results/mamql_rewards.jsonl")
    args = p.parse_args(argv)
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    import rllib_mil  # noqa: F401
    from rllib_mil.data.demos import ensure_demos

    heldout = ensure_demos(args.task, json.loads(args.env_config), "scripted", args.heldout, 1)
    for seed in args.seeds:
        for mode in args.modes:
            row = run(args.task, seed, args.demos, mode == "offline", args.env_steps, heldout, args)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

"""MAMQL reward recovery: train MAMQL, then correlate its recovered per-agent rewards R_i(s, a) with the true ones on
held-out episodes (other episodes than the training ones), per agent (issue 11).

    python benchmarks/mamql_rewards.py --task mpe/simple_reference --demos 128 --seeds 0 1 2 \
        --out benchmarks/results/mamql_rewards.jsonl

Held-out episodes of graded quality, `--heldout` of each: the scripted expert (seed 1; training uses seed 0), the
scripted expert with `--epsilon` noise (each agent acts at random with that probability, seeds 2, 3, ...) and random
play. Each row: task, seed, demos, mode (online/offline), env steps, greedy score, and per agent the Pearson
correlation of R_i with r_i over all held-out steps (`pearson`), over episode returns (`pearson_return`), over the
sets' mean returns (`pearson_sets`: does R rank the seven behaviours as r does?) and over the expert's steps alone
(`pearson_expert`, the first measurement's metric), with each set's mean recovered and true return. As a floor, the same for the untrained reward
networks of the run's initial checkpoint.
"""
import argparse
import json
import os
import tempfile
import time


def run(task, seed, demos, offline, env_steps, heldout_paths, args):
    from rllib_mil.algorithms.mamql import MAMQLConfig
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import ModulePolicy, run_episodes
    from rllib_mil.rewards import export_rewards

    env_config = json.loads(args.env_config)
    cfg = (MAMQLConfig().environment(task, env_config=env_config)
           .training(expert_data={"expert": "scripted", "episodes": demos, "seed": 0}, lr=5e-4, gamma=args.gamma,
                     num_updates_per_iteration=50, train_batch_size_per_learner=64,
                     num_steps_sampled_before_learning_starts=1000, offline=offline)
           .training(**json.loads(args.config))
           .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=25)
           .debugging(seed=seed))
    algo = cfg.build_algo()
    tmp = tempfile.mkdtemp()

    def measure(name):
        algo.save_to_path(os.path.join(tmp, name))
        pooled = export_rewards(os.path.join(tmp, name), heldout_paths, os.path.join(tmp, name + ".parquet"))
        expert = export_rewards(os.path.join(tmp, name), heldout_paths[0], os.path.join(tmp, name + "-e.parquet"))
        return {"pearson": pooled["pearson"], "pearson_return": pooled["pearson_return"],
                "pearson_sets": pooled["pearson_sets"],
                "pearson_expert": expert["pearson"],
                "sets": [{k: f[k] for k in ("expert", "episodes", "recovered_return", "true_return")}
                         for f in pooled["per_file"]], "rows": pooled["rows"]}

    floor = measure("init")
    t0, iters = time.time(), (env_steps // 100) - (10 if offline else 0)
    for _ in range(iters):
        algo.train()
    res = measure("final")
    env = make_team_env(task, env_config)
    ret = run_episodes(env, ModulePolicy(algo.get_module()), 50, 100_000)["return_mean"]
    algo.stop()
    return {"task": task, "env_config": env_config, "seed": seed, "demos": demos,
            "mode": "offline" if offline else "online", "env_steps": env_steps, "return": ret,
            **res, "untrained": {k: v for k, v in floor.items() if k != "rows"},
            "heldout_rows": res.pop("rows"), "config": json.loads(args.config), "tag": args.tag,
            "wall_s": time.time() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mpe/simple_reference")
    p.add_argument("--demos", type=int, default=128)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--modes", nargs="+", default=["online", "offline"])
    p.add_argument("--env-steps", type=int, default=8000)
    p.add_argument("--gamma", type=float, default=0.9, help="discount (0.9 for MPE's 25-step episodes)")
    p.add_argument("--env-config", default="{}", help="JSON env_config, e.g. '{\"random_reset\": true}' (Overcooked)")
    p.add_argument("--heldout", type=int, default=64, help="held-out episodes of each quality")
    p.add_argument("--epsilon", type=float, nargs="*", default=[0.15, 0.3, 0.45, 0.6, 0.8],
                   help="noise levels of the held-out noisy-expert sets (chance of a random action per agent, step)")
    p.add_argument("--config", default="{}", help="JSON overrides of MAMQLConfig.training(), e.g. "
                                                  "'{\"reward_form\": \"state\"}'")
    p.add_argument("--tag", default="", help="label stored in each row")
    p.add_argument("--out", default="benchmarks/results/mamql_rewards.jsonl")
    args = p.parse_args(argv)
    import ray
    import torch

    torch.set_num_threads(1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    import rllib_mil  # noqa: F401
    from rllib_mil.data.demos import collect_demos, ensure_demos

    env_config = json.loads(args.env_config)
    heldout = [ensure_demos(args.task, env_config, "scripted", args.heldout, 1)]
    sets = tempfile.mkdtemp()
    for k, eps in enumerate(args.epsilon):
        heldout.append(collect_demos(args.task, env_config, "scripted", args.heldout, 2 + k,
                                     os.path.join(sets, f"eps{eps:g}.parquet"), epsilon=eps))
    heldout.append(collect_demos(args.task, env_config, "random", args.heldout, 2 + len(args.epsilon),
                                 os.path.join(sets, "random.parquet")))
    for seed in args.seeds:
        for mode in args.modes:
            row = run(args.task, seed, args.demos, mode == "offline", args.env_steps, heldout, args)
            print(json.dumps(row), flush=True)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

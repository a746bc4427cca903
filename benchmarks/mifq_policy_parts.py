"""Diagnostic: which part of MIFQ's policy moves over a long online run? (README "Online MIFQ", eighth round.)

With the behaviour-cloning prior (``policy_prior="bc"``) the greedy policy is argmax_a Q_i(o, a) + α·β·log π0_i(a|o).
This script trains MIFQ online on scripted demonstrations and, every ``--eval-every`` env steps, plays greedy
episodes with three readings of the same network: the policy itself ("policy"), the prior alone (argmax of the prior's
logits, "prior") and Q alone ("q"). If the policy falls while Q alone stays where it was, the prior is what moved
(e.g. over-fitted to a few demonstrations), and the reverse. One JSON line per run into --out.

    python benchmarks/mifq_policy_parts.py --task mpe/simple_speaker_listener --demos 4 --seeds 1 --env-steps 40000
    python benchmarks/mifq_policy_parts.py ... --config '{"prior_net": "separate", "prior_training": "warm_start"}'
"""
import argparse
import json
import sys
import time


def greedy_return(env, module, part: str, episodes: int, seed: int) -> float:
    """Mean return of greedy episodes acting on ``part`` of the module's scores ("policy", "prior" or "q")."""
    from rllib_mil.evaluation import ModulePolicy, run_episodes

    cls = type(module)
    full = cls.action_scores

    def scores(self, out):
        q, logits = self.split_prior(out)
        return {"policy": full(self, out), "prior": logits, "q": q}[part]

    cls.action_scores = scores  # every reading goes through action_scores (greedy inference included)
    try:
        return float(run_episodes(env, ModulePolicy(module), episodes, seed)["return_mean"])
    finally:
        cls.action_scores = full


def run(args, seed: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from rllib_mil.algorithms.mifq import MIFQConfig
    from rllib_mil.envs import make_team_env

    config = (
        MIFQConfig()
        .environment(args.task)
        .training(expert_data={"expert": "scripted", "episodes": args.demos, "seed": 0}, lr=args.lr, gamma=args.gamma,
                  num_updates_per_iteration=50, train_batch_size_per_learner=64,
                  num_steps_sampled_before_learning_starts=1000)
        .training(**json.loads(args.config))
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=25)
        .debugging(seed=seed)
    )
    if config.policy_prior != "bc":
        raise SystemExit("this diagnostic reads the policy prior: keep policy_prior='bc'")
    algo = config.build_algo()
    env = make_team_env(args.task)
    points, t0, next_eval = [], time.time(), 0
    while True:
        res = algo.train()
        steps = int(res["num_env_steps_sampled_lifetime"])
        if steps >= next_eval or steps >= args.env_steps:
            next_eval = steps + args.eval_every
            module = algo.get_module()
            point = {"env_steps": steps, **{part: greedy_return(env, module, part, args.episodes, args.eval_seed)
                                            for part in ("policy", "prior", "q")},
                     "q_abs_max": float(res.get("learners", {}).get("default_policy", {}).get("q_abs_max", float("nan")))}
            points.append(point)
            print(f"  seed={seed} " + " ".join(f"{k}={v:.2f}" for k, v in point.items()), flush=True)
        if steps >= args.env_steps:
            break
    algo.stop()
    return {"task": args.task, "demos": args.demos, "seed": seed, "config": json.loads(args.config), "tag": args.tag,
            "episodes": args.episodes, "eval_seed": args.eval_seed, "points": points, "wall_s": time.time() - t0}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mpe/simple_speaker_listener")
    p.add_argument("--demos", type=int, default=4)
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--env-steps", type=int, default=40_000)
    p.add_argument("--eval-every", type=int, default=8000, help="env steps between evaluation points")
    p.add_argument("--episodes", type=int, default=30, help="greedy episodes per reading and point")
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--gamma", type=float, default=0.9)
    p.add_argument("--config", default="{}", help="JSON dict of further MIFQConfig.training() settings")
    p.add_argument("--tag", default="")
    p.add_argument("--out", default=None, help="append one JSON line per run here")
    args = p.parse_args(argv)
    for seed in args.seeds:
        row = run(args, seed)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

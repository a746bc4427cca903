"""MAPPO experts vs the scripted experts on the three MPE tasks (issue: MAPPO experts, paper protocol §5.2).

Each (task, seed) trains MAPPO from ``tuned_examples/mappo_mpe_<task>.yaml`` for ``--max-steps`` env steps (default:
the tuned example's own ``num_env_steps_sampled_lifetime`` stop), or, with ``--patience``, until its return plateaus
(the 10-iteration moving average of the sampled return has not improved by ``--min-delta`` for ``--patience`` env
steps), then evaluates the greedy decentralized policy. The plateau rule is off by default: on simple_reference the
return stays flat for about a million env steps before the agents' channel opens (MAPPO README). The scripted and
random experts are evaluated on the same episode seeds in the same run, and

    score = (R_MAPPO - R_random) / (R_scripted - R_random)

says how the MAPPO expert compares with the scripted one (1.0 = as good). Rows go to --out as JSON lines
(``rllib report`` turns them into a table and curves); final checkpoints go to --checkpoints.

    python benchmarks/mappo_experts.py --seeds 0 1 2 --out benchmarks/results/mappo_experts.jsonl --shard 0/2
    python benchmarks/mappo_experts.py --seeds 0 1 2 --out benchmarks/results/mappo_experts.jsonl --shard 1/2
    python benchmarks/mappo_experts.py --report benchmarks/results/mappo_experts.jsonl --docs docs
"""

import argparse
import json
import math
import os
import sys
import time

TASKS = {
    "mpe/simple_spread": "tuned_examples/mappo_mpe_spread.yaml",
    "mpe/simple_reference": "tuned_examples/mappo_mpe_reference.yaml",
    "mpe/simple_speaker_listener": "tuned_examples/mappo_mpe_speaker_listener.yaml",
    # JaxMARL (the `smax` extra); the scripted cooks of rllib_mil/data/experts.py are its reference
    "overcooked/cramped_room": "tuned_examples/mappo_overcooked_cramped_room.yaml",
}
MPE_TASKS = [t for t in TASKS if t.startswith("mpe/")]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def plateaued(curve, window, patience_steps, min_delta):
    """True when the best `window`-iteration moving average is older than `patience_steps` env steps."""
    if len(curve) < window:
        return False
    steps = [s for s, _ in curve]
    avg = [sum(r for _, r in curve[i - window + 1 : i + 1]) / window for i in range(window - 1, len(curve))]
    best_i, best = 0, -float("inf")
    for i, a in enumerate(avg):
        if a > best + min_delta:
            best_i, best = i, a
    return steps[-1] - steps[best_i + window - 1] >= patience_steps


def score_module(module, task, env_config, episodes, seed):
    """Greedy (and sampled) returns of a MAPPO team module, the scripted and random experts on the same episodes,
    and the score of the greedy policy against them."""
    from rllib_mil.data.experts import episode_outcomes, make_expert
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import ModulePolicy

    env = make_team_env(task, env_config)
    res = {}
    try:
        for name, policy in (("mappo", ModulePolicy(module)), ("mappo_sampled", ModulePolicy(module, True)),
                             ("scripted", make_expert("scripted", env)), ("random", make_expert("random", env))):
            returns, _ = episode_outcomes(env, policy, episodes, seed)
            res[name] = (float(returns.mean()), float(returns.std()))
    finally:
        env.close()
    return {
        "return": res["mappo"][0], "return_std": res["mappo"][1], "sampled_return": res["mappo_sampled"][0],
        "expert_return": res["scripted"][0], "expert_return_std": res["scripted"][1],
        "random_return": res["random"][0],
        "score": (res["mappo"][0] - res["random"][0]) / (res["scripted"][0] - res["random"][0]),
    }


def evaluate_saved(path, args):
    """A row for a checkpoint saved earlier (e.g. by --save-every), scored as at the end of a run."""
    from rllib_mil.evaluation import load_team_module

    module, config = load_team_module(path)
    scores = score_module(module, config.env, dict(config.env_config or {}), args.eval_episodes, args.eval_seed)
    return {"task": config.env, "algo": "MAPPO", "seed": config.seed, **scores, "eval_episodes": args.eval_episodes,
            "checkpoint": os.path.relpath(os.path.abspath(path), ROOT), "tag": args.tag,
            "budget": f"greedy decentralized evaluation of a saved checkpoint on {args.eval_episodes} episodes "
                      f"(seeds {args.eval_seed}+), the scripted and random experts on the same seeds."}


def run_one(task, seed, args):
    import torch

    from rllib_mil.cli import build_config, load_experiments

    torch.set_num_threads(1)
    (exp,) = load_experiments(os.path.join(ROOT, TASKS[task])).values()
    max_steps = args.max_steps or int((exp.get("stop") or {}).get("num_env_steps_sampled_lifetime", 300_000))
    # --config: JSON overrides of the tuned example's config keys (checked by the same rules as the CLI's)
    exp = {**exp, "config": {**(exp.get("config") or {}), **json.loads(args.config)}}
    config, _ = build_config(exp)
    config = config.env_runners(num_env_runners=args.num_env_runners).debugging(seed=seed)
    config.evaluation(evaluation_interval=None)  # evaluated below, on fixed seeds
    algo = config.build_algo()
    if args.restore:  # continue a saved run (weights, optimizer, env-step counters); --max-steps counts from its start
        algo.restore_from_path(os.path.abspath(args.restore))
    t0, curve, steps, stop_plateau = time.time(), [], 0, False
    ckpt = os.path.join(args.checkpoints, f"{task.split('/')[1]}-seed{seed}")
    next_save = args.save_every
    try:
        while not stop_plateau and steps < max_steps:
            r = algo.train()
            steps = int(r["num_env_steps_sampled_lifetime"])
            if next_save and steps >= next_save:  # intermediate checkpoints, to score the greedy policy per budget
                algo.save_to_path(f"{ckpt}-{steps}")
                next_save += args.save_every
            ret = r["env_runners"].get("episode_return_mean")
            if ret is None or math.isnan(ret):  # no episode finished in this iteration (Overcooked: 400-step
                continue  # episodes, 2048-step iterations)
            curve.append((steps, float(ret)))
            if len(curve) % 10 == 0:
                # with `signal_factor`: the minibatch estimate of I(o; m) of the words (MAPPO README, eq. 6)
                mi = r["learners"].get("default_policy", {}).get("signal_mutual_info")
                print(f"{task} seed={seed} steps={steps} return(10-iter mean)="
                      f"{sum(x for _, x in curve[-10:]) / 10:.2f}" + ("" if mi is None else f" I(o;m)={mi:.3f}nats")
                      + f" wall={time.time() - t0:.0f}s", flush=True)
            stop_plateau = args.patience is not None and plateaued(curve, 10, args.patience, args.min_delta)
        wall = time.time() - t0
        algo.save_to_path(ckpt)
        module = algo.learner_group._learner.module["default_policy"]
        scores = score_module(module, task, dict(config.env_config or {}), args.eval_episodes, args.eval_seed)
    finally:
        algo.stop()
    return {
        "task": task, "algo": "MAPPO", "seed": seed, **scores,
        "env_steps": steps, "plateau": stop_plateau, "wall_s": wall, "eval_episodes": args.eval_episodes,
        "checkpoint": os.path.relpath(ckpt, ROOT), "curve": curve, "config": json.loads(args.config),
        "tag": args.tag, "restored_from": args.restore,
        "curve_label": "sampled return (training rollouts)", "expert_label": "scripted expert",
        "budget": (f"Here 'expert' is the scripted expert and the score compares MAPPO with it. Budget: MAPPO from "
                   f"{TASKS[task]}, trained for {max_steps} env steps"
                   + ("" if args.patience is None else f" or until the 10-iteration mean return gained < "
                      f"{args.min_delta} over {args.patience} env steps")
                   + f"; greedy decentralized evaluation "
                   f"on {args.eval_episodes} episodes (seeds {args.eval_seed}+), all experts on the same seeds."),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=MPE_TASKS, choices=list(TASKS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=None,
                   help="env steps per run (default: the tuned example's num_env_steps_sampled_lifetime stop)")
    p.add_argument("--patience", type=int, default=None,
                   help="stop early after this many env steps without improvement (default: no plateau rule)")
    p.add_argument("--min-delta", type=float, default=0.5, help="improvement of the moving average that counts")
    p.add_argument("--num-env-runners", type=int, default=0, help="0 = sample in-process (best on 2 CPUs)")
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=10_000)
    p.add_argument("--out", default=os.path.join(ROOT, "benchmarks/results/mappo_experts.jsonl"))
    p.add_argument("--checkpoints", default=os.path.join(ROOT, "benchmarks/results/mappo_experts"))
    p.add_argument("--shard", default="0/1", help="i/k: run every k-th (task, seed) starting at i")
    p.add_argument("--config", default="{}", help="JSON overrides of the tuned example's config, e.g. "
                   "'{\"use_gru\": true}'")
    p.add_argument("--save-every", type=int, default=None,
                   help="also keep a checkpoint <checkpoints>/<task>-seed<seed>-<env steps> every this many env steps")
    p.add_argument("--tag", default="", help="label stored in each row (for ablations)")
    p.add_argument("--restore", default=None,
                   help="checkpoint of an earlier run of the same task to continue from (e.g. with an annealed lr: "
                        "--config '{\"lr\": [[0, 7e-4], [5000000, 7e-4], [6000000, 1e-5]]}')")
    p.add_argument("--evaluate", nargs="+", default=None, metavar="CHECKPOINT",
                   help="score these saved checkpoints (greedy, --eval-episodes from --eval-seed) instead of training")
    p.add_argument("--report", default=None, help="aggregate this .jsonl into --docs instead of running")
    p.add_argument("--docs", default=os.path.join(ROOT, "docs"))
    args = p.parse_args(argv)

    if args.report:
        from rllib_mil.report import benchmark_report

        name = os.path.splitext(os.path.basename(args.report))[0]  # mappo_experts.jsonl -> docs/mappo_experts_*
        print(benchmark_report(args.report, args.docs, name,
                               "MAPPO experts vs scripted experts (score 1.0 = as good as scripted)"))
        return 0

    import ray

    import rllib_mil  # noqa: F401

    i, k = (int(x) for x in args.shard.split("/"))
    grid = [(t, s) for t in args.tasks for s in args.seeds][i::k]
    if args.evaluate:
        runs = [lambda path=path: evaluate_saved(path, args) for path in args.evaluate]
    else:
        if not ray.is_initialized():  # (a test session may have started it)
            ray.init(num_cpus=2 if args.num_env_runners else 1, include_dashboard=False)
        runs = [lambda task=task, seed=seed: run_one(task, seed, args) for task, seed in grid]
    for run in runs:
        row = run()
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps({k: v for k, v in row.items() if k != "curve"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Imitation on the three MPE tasks: expert-normalized score of greedy decentralized policies.

    score = (R - R_random) / (R_expert - R_random)

R_expert (the demonstrating expert) and R_random (uniform over available actions) are measured in the same
run, on the same evaluation seeds as the learned policies. Methods: registered imitation algorithms with their
defaults (online: replay rows enter the loss), NAME:offline (``offline=True``), and BC (the registered algorithm,
offline; ``--bc-updates`` updates, lr ``--bc-lr``). Rows before 2026-11-30's second session measured BC with the
bare-PyTorch loop benchmarks/bc_reference.py (same loss, network and updates).

Usage (one JSON line per (task, demos, method, seed) into --out; finished cells are skipped, so a run can be resumed;
--shard i/k splits the grid so two processes can share a 2-CPU machine; --config/--tag run ablations):

    python benchmarks/mifq_mpe.py --demos 4 16 128 --methods MIFQ MIFQ:offline IQVDN BC --seeds 0 1 2 \
        --out benchmarks/results/mifq_online.jsonl --shard 0/2      # and --shard 1/2 beside it
    python benchmarks/mifq_mpe.py --tasks mpe/simple_reference --methods MIFQ --seeds 0 --demos 16 \
        --config '{"value_rows": "expert"}' --tag my_ablation --out ablation.jsonl
    rllib report benchmarks/results/mifq_online.jsonl --docs docs
"""

import argparse
import json
import os
import sys
import time

TASKS = ["mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener"]
ALGOS = ["MIFQ", "IIQ", "IQVDN"]


def reference_returns(task, expert, eval_episodes, eval_seed, env_config=None):
    """Greedy return of the demonstrating expert ("scripted" or a checkpoint) and of random play."""
    from rllib_mil.data.experts import make_expert
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import expert_from_arg, run_episodes

    env = make_team_env(task, env_config or {})
    demonstrator = expert_from_arg(expert, task)
    demonstrator = make_expert(demonstrator, env) if isinstance(demonstrator, str) else demonstrator
    expert = run_episodes(env, demonstrator, eval_episodes, eval_seed)
    random = run_episodes(env, make_expert("random", env), eval_episodes, eval_seed)
    out = {"expert": expert["return_mean"], "random": random["return_mean"],
           # where the game reports battle_won (SMAX, SMACv2)
           "expert_win_rate": expert.get("win_rate"), "random_win_rate": random.get("win_rate")}
    env.close()
    return out


def parse_method(method):
    """'MIFQ' (online, the config's defaults), 'MIFQ:offline' (offline=True) or 'BC' (offline by construction)
    -> (algo, overrides)."""
    algo, _, mode = method.partition(":")
    if mode not in ("", "offline"):
        raise SystemExit(f"unknown method {method!r}: use ALGO, ALGO:offline or BC")
    return algo, ({"offline": True} if mode == "offline" else {})


def run_one(task, method, seed, demos, args):
    algo_name, overrides = parse_method(method)
    from ray.rllib.algorithms.ppo import PPOConfig

    from rllib_mil.algorithms.mifq import MIFQConfig
    from rllib_mil.algorithms.registry import get_algorithm
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import ModulePolicy, run_episodes

    _, config_cls = get_algorithm(algo_name)
    expert_data = {"expert": args.expert, "episodes": demos, "seed": 0}
    if issubclass(config_cls, MIFQConfig):  # MIFQ, IIQ, IQVDN, MASQIL: MIFQ's machinery and settings
        training = dict(
            expert_data=expert_data,
            lr=args.lr,
            gamma=args.gamma,
            # Unset options keep MIFQConfig's defaults.
            **{k: v for k, v in (("alpha", args.alpha), ("chi2_replay", args.chi2_replay), ("value_rows", args.value_rows),
                                 ("mixer_shared", args.mixer_shared)) if v is not None},
            num_updates_per_iteration=args.updates_per_iteration,
            train_batch_size_per_learner=args.replay_batch,
            num_steps_sampled_before_learning_starts=1000,
        )
    elif issubclass(config_cls, PPOConfig):  # MAGAIL: MAPPO's defaults (its MPE settings) on its own budget
        training = dict(expert_data=expert_data)
    else:  # BC: offline, --bc-updates updates of 128 expert rows spread over the run's iterations, lr --bc-lr
        iters = -(-args.env_steps // 100) - 10
        training = dict(expert_data=expert_data, lr=args.bc_lr, num_updates_per_iteration=-(-args.bc_updates // iters))
    config = (
        config_cls()
        .environment(task, env_config=json.loads(args.env_config))
        .training(**training)
        .training(**json.loads(args.config))
        .training(**overrides)
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=25)
        .debugging(seed=seed)
    )
    on_policy = isinstance(config, PPOConfig)
    budget = args.adversarial_env_steps if on_policy else args.env_steps
    # Learning-curve points every eval_every * 100 env steps (MIFQ-style runs: every eval_every iterations).
    eval_steps = args.eval_every * 100
    algo = config.build_algo()
    env = make_team_env(task, json.loads(args.env_config))
    curve, t0, next_eval = [], time.time(), 0
    offline = bool(config.offline)
    # Offline runs get the online run's number of updates (no warm-up); their curve's x is that run's env steps.
    steps_per_iter = 4 * 25
    warmup_iters = -(-1000 // steps_per_iter)
    while True:
        res = algo.train()
        if offline:
            steps = (res["training_iteration"] + warmup_iters) * steps_per_iter
        else:
            steps = res["num_env_steps_sampled_lifetime"]
        if steps >= next_eval or steps >= budget:
            next_eval = (steps // eval_steps + 1) * eval_steps
            ev = run_episodes(env, ModulePolicy(algo.get_module()), args.curve_episodes, 10_000)["return_mean"]
            stats = res.get("learners", {}).get("default_policy", {})
            curve.append((int(steps), ev, float(stats.get("q_abs_max", float("nan")))))
            print(f"  {task} {algo_name} seed={seed} steps={steps} eval_return={ev:.2f} q_abs_max={curve[-1][2]:.1f} ({time.time()-t0:.0f}s)", flush=True)
        if steps >= budget:
            break
    final = run_episodes(env, ModulePolicy(algo.get_module()), args.eval_episodes, args.eval_seed)
    algo.stop()
    settings = {k: getattr(config, k, None) for k in ("alpha", "gamma", "value_rows", "chi2_replay", "offline")}
    settings["replay_capacity"] = (getattr(config, "replay_buffer_config", None) or {}).get("capacity")
    return {"return": final["return_mean"], "win_rate": final.get("win_rate"), "curve": curve,
            "wall_s": time.time() - t0, "settings": settings, "env_steps": int(steps)}



def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--algos", "--methods", dest="methods", nargs="+", default=ALGOS,
                   help="registered algorithm names (online, their defaults), NAME:offline, or BC")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--demos", type=int, nargs="+", default=[128], help="expert episodes (paper: 128 for MPE)")
    p.add_argument("--bc-updates", type=int, default=10_000, help="updates of BC (the registered algorithm)")
    p.add_argument("--bc-lr", type=float, default=1e-3, help="learning rate of BC")
    p.add_argument("--expert", default="scripted",
                   help="demonstrator: 'scripted' or a checkpoint trained on the task (e.g. a MAPPO expert from "
                        "benchmarks/mappo_experts.py); its greedy return is R_expert. Use with a single --tasks.")
    p.add_argument("--env-steps", type=int, default=8_000, help="env-step budget per run")
    p.add_argument("--adversarial-env-steps", type=int, default=100_000,
                   help="env-step budget of on-policy adversarial methods (MAGAIL: MAPPO's 2000-step batches)")
    p.add_argument("--updates-per-iteration", type=int, default=50, help="learner updates per 100 env steps")
    p.add_argument("--replay-batch", type=int, default=64, help="replay rows per update (expert rows: 128)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--alpha", type=float, default=None, help="soft-value temperature; unset = MIFQConfig's default")
    p.add_argument("--gamma", type=float, default=0.9,
                   help="discount; 0.9 for MPE's 25-step episodes (MIFQConfig's default 0.99 suits long episodes)")
    p.add_argument("--chi2-replay", action=argparse.BooleanOptionalAction, default=None,
                   help="chi^2 regulariser on expert and replay rows or expert rows only; unset = MIFQConfig's default")
    p.add_argument("--value-rows", choices=["all", "expert", "replay"], default=None,
                   help="rows of the value term; unset = MIFQConfig's default")
    p.add_argument("--mixer-shared", action=argparse.BooleanOptionalAction, default=None,
                   help="one mixer for R and V (MIFQ default) or two as in the paper; unset = MIFQConfig's default")
    p.add_argument("--config", default="{}", help="JSON dict of further MIFQConfig.training() settings")
    p.add_argument("--env-config", default="{}",
                   help="JSON env_config of the task (demonstrations, training and evaluation), e.g. "
                        "'{\"random_reset\": true}' for Overcooked")
    p.add_argument("--tag", default="", help="label stored in each row (for ablation tables)")
    p.add_argument("--eval-every", type=int, default=10,
                   help="learning-curve points every this many x 100 env steps (MIFQ-style runs: iterations)")
    p.add_argument("--curve-episodes", type=int, default=10)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--eval-seed", type=int, default=100_000)
    p.add_argument("--shard", default="0/1", help="i/k: run every k-th grid cell starting at i")
    p.add_argument("--out", default="results/mifq_mpe.jsonl")
    p.add_argument("--report", help="aggregate a results .jsonl instead of running")
    p.add_argument("--docs", default="docs", help="where --report writes the table and the PNG")
    args = p.parse_args(argv)
    if args.report:
        from rllib_mil.report import benchmark_report

        name = os.path.splitext(os.path.basename(args.report))[0]  # mifq_online.jsonl -> docs/mifq_online_*
        benchmark_report(args.report, args.docs, name=name, title="MIFQ / IIQ / IQVDN on MPE (benchmarks/mifq_mpe.py)")
        return 0

    import ray
    import torch

    import rllib_mil  # noqa: F401

    torch.set_num_threads(1)  # two shards share a 2-CPU machine
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    shard_i, shard_k = (int(x) for x in args.shard.split("/"))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    grid = [(t, d, m, s) for t in args.tasks for d in args.demos for m in args.methods for s in args.seeds]
    # Resumable: cells already in --out (same task, demos, method, seed and tag) are skipped.
    done = set()
    if os.path.exists(args.out):
        for line in open(args.out):
            if line.strip():
                r = json.loads(line)
                done.add((r["task"], r["demos"], r["algo"], r["seed"], r.get("tag", "")))
    refs = {}
    for n, (task, demos, algo_name, seed) in enumerate(grid):
        if n % shard_k != shard_i or (task, demos, algo_name, seed, args.tag) in done:
            continue
        if task not in refs:
            refs[task] = reference_returns(task, args.expert, args.eval_episodes, args.eval_seed,
                                           json.loads(args.env_config))
            print(f"{task}: expert {refs[task]['expert']:.2f} random {refs[task]['random']:.2f}", flush=True)
        r = run_one(task, algo_name, seed, demos, args)
        r_exp, r_rand = refs[task]["expert"], refs[task]["random"]
        row = {
            "task": task, "algo": algo_name, "seed": seed, "return": r["return"],
            "expert_return": r_exp, "random_return": r_rand,
            "score": (r["return"] - r_rand) / (r_exp - r_rand),
            "win_rate": r.get("win_rate"), "expert_win_rate": refs[task]["expert_win_rate"],
            "env_steps": r.get("env_steps", args.env_steps), "demos": demos, "expert": args.expert, "lr": args.lr, **r.get("settings", {}),
            "mixer_shared": args.mixer_shared,
            "updates_per_iteration": args.updates_per_iteration, "replay_batch": args.replay_batch, "eval_episodes": args.eval_episodes,
            "wall_s": r["wall_s"], "curve": r["curve"], "config": json.loads(args.config), "tag": args.tag,
            "env_config": json.loads(args.env_config),
        }
        won = "" if r.get("win_rate") is None else f" win_rate={r['win_rate']:.2f} (expert {row['expert_win_rate']:.2f})"
        print(f"RESULT {task} demos={demos} {algo_name} seed={seed} return={r['return']:.2f} score={row['score']:.3f}{won}",
              flush=True)
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

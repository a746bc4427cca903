"""IGM-DA on SMAX with sight range 0 (the IGM-DA paper's Table 1 setting): greedy win rate of QMIX / QPLEX / DMIX
against their -DA mode (expert agents on the global state, learner agents on local observations, DAgger).

Each run trains one registered value-decomposition algorithm from the env reward on ``smax/<map>`` with
``sight_range: 0`` (each agent sees only its own features), then plays ``--eval-episodes`` greedy decentralized
battles (the acting agents only: for -DA the learner agents) on fresh seeds. Random play is measured on the same
battles. One JSON line per (map, method, seed) into --out; finished cells are skipped (resumable); --shard i/k
splits the grid between processes.

    python benchmarks/igm_da_smax.py --maps 3m 2s3z --methods QMIX QMIX-DA --seeds 0 1 2 --env-steps 150000 \
        --out benchmarks/results/igm_da_smax.jsonl --shard 0/2          # and --shard 1/2 beside it
    rllib report benchmarks/results/igm_da_smax.jsonl --docs docs
"""

import argparse
import json
import os
import time


def make_config(task, method, seed, args):
    """The benchmark's config of one registered algorithm on ``task`` (sight range, budget and --config from args):
    one in-process env runner stepping ``--num-envs`` battles in SMAX's batched backend, 25 steps each per
    iteration."""
    from rllib_mil.algorithms.registry import get_algorithm

    _, config_cls = get_algorithm(method)
    return (
        config_cls()
        .environment(task, env_config={"sight_range": args.sight})
        .training(lr=args.lr, num_updates_per_iteration=args.updates_per_iteration,
                  train_batch_size_per_learner=args.batch)
        .training(**json.loads(args.config))
        .env_runners(num_env_runners=0, num_envs_per_env_runner=args.num_envs, rollout_fragment_length=25,
                     gym_env_vectorize_mode="vector_entry_point")
        .debugging(seed=seed)
    )


def finished_cells(path):
    """(task, algo, seed, tag) of the rows already in ``path`` (runs resume by skipping them)."""
    done = set()
    if os.path.exists(path):
        for line in open(path):
            if line.strip():
                r = json.loads(line)
                done.add((r["task"], r["algo"], r["seed"], r.get("tag", "")))
    return done


def run_one(task, method, seed, args):
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import ModulePolicy, run_episodes

    algo = make_config(task, method, seed, args).build_algo()
    env = make_team_env(task, {"sight_range": args.sight})
    curve, t0, next_eval, steps = [], time.time(), 0, 0
    while steps < args.env_steps:
        res = algo.train()
        steps = res["num_env_steps_sampled_lifetime"]
        if steps >= next_eval or steps >= args.env_steps:
            next_eval = (steps // args.eval_every + 1) * args.eval_every
            ev = run_episodes(env, ModulePolicy(algo.get_module()), args.curve_episodes, 10_000)
            stats = res.get("learners", {}).get("default_policy", {})
            curve.append((int(steps), ev.get("win_rate", float("nan")), float(stats.get("q_abs_max", float("nan")))))
            extra = f" teach_agreement={float(stats['teach_agreement']):.2f}" if "teach_agreement" in stats else ""
            print(f"  {task} {method} seed={seed} steps={steps} win={curve[-1][1]:.2f} return={ev['return_mean']:.2f}"
                  f" q_abs_max={curve[-1][2]:.2f}{extra} ({time.time() - t0:.0f}s)", flush=True)
    final = run_episodes(env, ModulePolicy(algo.get_module()), args.eval_episodes, args.eval_seed)
    out = {"return": final["return_mean"], "win_rate": final.get("win_rate"), "curve": curve,
           "wall_s": time.time() - t0, "env_steps": int(steps)}
    learner_module = algo.learner_group._learner.module["default_policy"].unwrapped()
    if learner_module.igm_da:
        # Diagnostic: the expert agents (global state) acting greedily on the same battles; the learner agents'
        # gap to them is what IGM-DA's imitation step loses (the lossy decomposition).
        experts = run_episodes(env, ExpertAgentsPolicy(learner_module), args.eval_episodes, args.eval_seed)
        out.update(expert_agents_win_rate=experts.get("win_rate"), expert_agents_return=experts["return_mean"])
    algo.stop()
    env.close()
    return out


class ExpertAgentsPolicy:
    """Greedy actions of an IGM-DA module's expert agents (they read the global state), for diagnostics only;
    recurrent expert agents (``expert_gru``) carry their state from step to step."""

    def __init__(self, module):
        self.module = module
        self.h = None

    def reset(self):
        self.h = None

    def act(self, obs, rng=None):
        import numpy as np
        import torch

        from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE

        m = self.module
        with torch.no_grad():
            o = torch.as_tensor(np.asarray(obs[OBS]))[None]  # (1, n, d)
            s = torch.as_tensor(np.asarray(obs[STATE]))[None]  # (1, s)
            if m.td_recurrent:
                x = m.td_inputs(o[:, None], s[:, None])  # (1, T=1, n, s + d)
                out, self.h = m.td_net(x, m.zero_state(x) if self.h is None else self.h)
                q = m.td_scores(out[:, 0])[0]  # (n, A)
            else:
                q = m.td_scores(m.td_values(o, s))[0]
            q = q.masked_fill(torch.as_tensor(np.asarray(obs[ACTION_MASK])) <= 0, -1e9)
        return q.argmax(-1).numpy().astype(np.int64)


def random_play(task, args):
    from rllib_mil.data.experts import make_expert
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import run_episodes

    env = make_team_env(task, {"sight_range": args.sight})
    out = run_episodes(env, make_expert("random", env), args.eval_episodes, args.eval_seed)
    env.close()
    return out


def _sight(text: str):
    """--sight: a number, or 'default' for SMAX's own per-unit-type sight ranges (None in env_config)."""
    return None if text.lower() == "default" else float(text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maps", nargs="+", default=["3m", "2s3z"])
    p.add_argument("--methods", nargs="+", default=["QMIX", "QMIX-DA"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sight", type=_sight, default=0.0,
                   help="agents' sight range (0: own features only; 'default': SMAX's per-unit-type ranges)")
    p.add_argument("--env-steps", type=int, default=150_000)
    p.add_argument("--num-envs", type=int, default=16, help="battles stepped together (SMAX batched backend)")
    p.add_argument("--updates-per-iteration", type=int, default=4,
                   help="learner updates per iteration (an iteration samples 25 steps of every battle)")
    p.add_argument("--batch", type=int, default=256, help="replay transitions per update")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--config", default="{}", help="JSON dict of further config.training() settings")
    p.add_argument("--tag", default="")
    p.add_argument("--eval-every", type=int, default=25_000, help="learning-curve points every this many env steps")
    p.add_argument("--curve-episodes", type=int, default=20)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=100_000)
    p.add_argument("--shard", default="0/1", help="i/k: run every k-th grid cell starting at i")
    p.add_argument("--out", default="benchmarks/results/igm_da_smax.jsonl")
    args = p.parse_args(argv)

    import ray
    import torch

    import rllib_mil  # noqa: F401

    torch.set_num_threads(1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    shard_i, shard_k = (int(x) for x in args.shard.split("/"))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    grid = [(f"smax/{m}", meth, s) for m in args.maps for s in args.seeds for meth in args.methods]
    done = finished_cells(args.out)
    refs = {}
    for n, (task, method, seed) in enumerate(grid):
        if n % shard_k != shard_i or (task, method, seed, args.tag) in done:
            continue
        if task not in refs:
            refs[task] = random_play(task, args)
        r = run_one(task, method, seed, args)
        row = {
            "task": task, "algo": method, "seed": seed, "return": r["return"], "win_rate": r["win_rate"],
            "score": r["win_rate"], "random_return": refs[task]["return_mean"],
            "random_win_rate": refs[task].get("win_rate"), "env_steps": r["env_steps"], "sight_range": args.sight,
            "expert_agents_win_rate": r.get("expert_agents_win_rate"),
            "lr": args.lr, "updates_per_iteration": args.updates_per_iteration, "batch": args.batch,
            "num_envs": args.num_envs, "eval_episodes": args.eval_episodes, "wall_s": r["wall_s"],
            "curve": r["curve"], "curve_label": "greedy win rate", "config": json.loads(args.config), "tag": args.tag,
            "budget": (f"Budget: {r['env_steps']} env steps per run ({args.num_envs} battles x 25 steps per iteration, "
                       f"{args.updates_per_iteration} updates of {args.batch} replay "
                       f"{'episodes' if json.loads(args.config).get('use_gru') else 'transitions'} each), lr={args.lr}, "
                       f"sight range {'SMAX default' if args.sight is None else format(args.sight, 'g')}; "
                       f"greedy decentralized win rate on {args.eval_episodes} battles"
                       + (f"; config {args.config}." if json.loads(args.config) else ".")),
        }
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"{task} {method} seed={seed}: win {r['win_rate']:.2f} return {r['return']:.2f} "
              f"({r['wall_s']:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

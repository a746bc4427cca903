"""Diagnostics for value-decomposition runs on SMAX that win every battle and then lose them again: greedy-policy
churn, the top-2 Q gap, and the win rate of the target agents beside the acting agents'.

Trains one registered value-decomposition algorithm (QMIX / QPLEX / DMIX, feed-forward agents, not -DA) on
``smax/<map>`` with sight range 0, exactly as ``igm_da_smax.py`` does, and every ``--eval-every`` env steps records:

* ``win``: greedy win rate of the acting agents on ``--curve-episodes`` fixed battles (what the curves show);
* ``win_target``: the same battles played greedily by the *target* agents (the polyak average of the acting agents'
  weights, which the TD targets already use);
* ``churn``: the fraction of agent rows, over the states of this point's greedy battles, whose greedy action
  (over available actions) differs from the greedy action of the acting agents at the previous point;
* ``churn_iter``: the same fraction over the last training iteration only (``--updates-per-iteration`` updates);
* ``gap``: median over those rows of the best minus the second-best available action's Q, and ``q_scale`` the
  median |best Q| (so ``gap / q_scale`` says how close the greedy choice is to a tie);
* ``train_win``: the env runners' epsilon-greedy win rate over the last iteration, ``td_loss``, ``q_abs_max``.

One JSON line per (map, method, seed, tag) into --out (resumable), e.g.

    python benchmarks/vd_churn.py --maps 3s_vs_5z --methods QPLEX --seeds 1 --env-steps 1000000 \
        --eval-every 50000 --out benchmarks/results/vd_churn.jsonl
    python benchmarks/vd_churn.py --summary --out benchmarks/results/vd_churn.jsonl   # the table of the rows

``win_target`` is what the algorithm's ``act_with_target: true`` plays; ``--config '{"reward_scale": 10}'`` trains on
a SMAC-like reward scale. Results: rllib_mil/algorithms/qmix/README.md, "Why runs win and then lose again".
"""

import argparse
import json
import os
import time


class GreedyQPolicy:
    """Greedy actions of a feed-forward Q net (the acting agents, or their target copy) under the action mask;
    records every state it acts on when ``record`` is a list."""

    def __init__(self, module, net, record=None):
        self.module, self.net, self.record = module, net, record

    def reset(self):
        pass

    def q(self, obs, state):
        import torch

        m = self.module
        with torch.no_grad():
            x = m.agent_inputs(torch.as_tensor(obs)[None], torch.as_tensor(state)[None])  # (1, n, d_in)
            return m.td_scores(self.net(x))[0]  # (n, A)

    def act(self, obs, rng=None):
        import numpy as np

        from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE

        o, s, mask = np.asarray(obs[OBS]), np.asarray(obs[STATE]), np.asarray(obs[ACTION_MASK])
        if self.record is not None:
            self.record.append((o, s, mask))
        q = self.q(o, s).numpy()
        return np.where(mask > 0, q, -np.inf).argmax(-1).astype(np.int64)


def churn_and_gap(module, net_now, net_before, states):
    """(fraction of live agent rows whose greedy action changed since ``net_before``, NaN without one; median top-2
    gap; median |top Q|) of ``net_now`` over the recorded states."""
    import numpy as np

    changed, gaps, tops = [], [], []
    now = GreedyQPolicy(module, net_now)
    before = GreedyQPolicy(module, net_before) if net_before is not None else None
    for o, s, mask in states:
        live = mask.sum(-1) > 1  # dead allies have one (no-op) action: no choice to churn
        if not live.any():
            continue
        q_now = np.where(mask > 0, now.q(o, s).numpy(), -np.inf)[live]
        if before is not None:
            q_before = np.where(mask > 0, before.q(o, s).numpy(), -np.inf)[live]
            changed.extend(q_now.argmax(-1) != q_before.argmax(-1))
        top2 = np.sort(q_now, -1)[:, -2:]
        gaps.extend(top2[:, 1] - top2[:, 0])
        tops.extend(np.abs(top2[:, 1]))
    churn = float(np.mean(changed)) if before is not None else float("nan")
    return churn, float(np.median(gaps)), float(np.median(tops))


def run_one(task, method, seed, args):
    import copy

    from igm_da_smax import make_config  # the same config as the IGM-DA benchmark's runs

    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import run_episodes

    config = make_config(task, method, seed, args)
    if config.igm_da or config.use_gru:
        raise SystemExit(f"{method}: vd_churn.py measures feed-forward agents without IGM-DA (their target copy acts).")
    algo = config.build_algo()
    module = algo.learner_group._learner.module["default_policy"].unwrapped()
    env = make_team_env(task, {"sight_range": args.sight})
    curve, t0, next_eval, steps, before = [], time.time(), 0, 0, None
    step_per_iter = args.num_envs * 25
    while steps < args.env_steps:
        # Snapshot before an iteration that ends at a curve point: the churn of that one iteration's updates.
        last = copy.deepcopy(module.q_net) if steps + step_per_iter >= min(next_eval, args.env_steps) else None
        res = algo.train()
        steps = res["num_env_steps_sampled_lifetime"]
        if steps >= next_eval or steps >= args.env_steps:
            next_eval = (steps // args.eval_every + 1) * args.eval_every
            states = []
            ev = run_episodes(env, GreedyQPolicy(module, module.q_net, states), args.curve_episodes, 10_000)
            ev_t = run_episodes(env, GreedyQPolicy(module, module._target_td_net), args.curve_episodes, 10_000)
            churn, gap, q_scale = churn_and_gap(module, module.q_net, before, states)
            churn_iter = churn_and_gap(module, module.q_net, last, states)[0]
            before = copy.deepcopy(module.q_net)
            stats = res.get("learners", {}).get("default_policy", {})
            point = {"env_steps": int(steps), "win": ev.get("win_rate"), "win_target": ev_t.get("win_rate"),
                     "churn": churn, "churn_iter": churn_iter, "gap": gap, "q_scale": q_scale,
                     "train_win": float(res.get("env_runners", {}).get("win_rate", float("nan"))),
                     "td_loss": float(stats.get("td_loss", float("nan"))),
                     "q_abs_max": float(stats.get("q_abs_max", float("nan")))}
            curve.append(point)
            print(f"  {task} {method} seed={seed} " + " ".join(f"{k}={v:.3g}" for k, v in point.items())
                  + f" ({time.time() - t0:.0f}s)", flush=True)
    out = {"curve": curve, "wall_s": time.time() - t0, "env_steps": int(steps)}
    for name, net in (("", module.q_net), ("_target", module._target_td_net)):
        final = run_episodes(env, GreedyQPolicy(module, net), args.eval_episodes, args.eval_seed)
        out["win_rate" + name], out["return" + name] = final.get("win_rate"), final["return_mean"]
    algo.stop()
    env.close()
    return out


def relapses(wins):
    """Times a curve falls below 0.5 after having reached 0.9 (each fall counted once until it is back at 0.9)."""
    n, up = 0, False
    for w in wins:
        if w >= 0.9:
            up = True
        elif w < 0.5 and up:
            n, up = n + 1, False
    return n


def summarize(path):
    """One line per row: the first curve point won at >= 0.9, final win rates, the second half of the curve (mean and
    relapses) for the acting and the target agents, the mean churn per training iteration and the median top-2 gap
    and |best Q| over the curve points."""
    import numpy as np

    print("| map | method | seed | tag | first point with win >= 0.9 | final win (acting / target) | 2nd-half mean win "
          "(acting / target) | relapses (acting / target) | churn between points | churn per iteration | gap | "
          "q_scale |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for line in open(path):
        r = json.loads(line)
        c = r["curve"]
        half = [p for p in c if p["env_steps"] > r["env_steps"] / 2]
        mean = lambda k, pts: float(np.mean([p[k] for p in pts]))  # noqa: E731
        first = next((f"{p['env_steps'] // 1000}k" for p in c if p["win"] >= 0.9), "never")
        churn = float(np.nanmean([p["churn"] for p in c[1:]]))
        iters = [p["churn_iter"] for p in c[1:] if p.get("churn_iter") == p.get("churn_iter", float("nan"))]
        churn_iter = f"{np.mean(iters):.2f}" if iters else "–"
        gap, q_scale = (float(np.median([p[k] for p in c[1:]])) for k in ("gap", "q_scale"))
        print(f"| {r['task'].split('/')[1]} | {r['algo']} | {r['seed']} | {r['tag']} | {first} | {r['win_rate']:.2f} / "
              f"{r['win_rate_target']:.2f} | {mean('win', half):.2f} / {mean('win_target', half):.2f} | "
              f"{relapses([p['win'] for p in c])} / {relapses([p['win_target'] for p in c])} | {churn:.2f} | "
              f"{churn_iter} | {gap:.3f} | {q_scale:.2f} |")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--maps", nargs="+", default=["3s_vs_5z"])
    p.add_argument("--methods", nargs="+", default=["QPLEX"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1])
    p.add_argument("--sight", type=float, default=0.0)
    p.add_argument("--env-steps", type=int, default=1_000_000)
    p.add_argument("--num-envs", type=int, default=16)
    p.add_argument("--updates-per-iteration", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--config", default="{}", help="JSON dict of further config.training() settings")
    p.add_argument("--tag", default="")
    p.add_argument("--eval-every", type=int, default=50_000)
    p.add_argument("--curve-episodes", type=int, default=20)
    p.add_argument("--eval-episodes", type=int, default=100)
    p.add_argument("--eval-seed", type=int, default=100_000)
    p.add_argument("--out", default="benchmarks/results/vd_churn.jsonl")
    p.add_argument("--summary", action="store_true", help="print the table of --out's rows and exit")
    args = p.parse_args(argv)
    if args.summary:
        summarize(args.out)
        return 0

    import ray
    import torch

    import rllib_mil  # noqa: F401
    from igm_da_smax import finished_cells

    torch.set_num_threads(1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    done = finished_cells(args.out)
    for m in args.maps:
        for method in args.methods:
            for seed in args.seeds:
                task = f"smax/{m}"
                if (task, method, seed, args.tag) in done:
                    continue
                r = run_one(task, method, seed, args)
                row = {"task": task, "algo": method, "seed": seed, "tag": args.tag, "config": json.loads(args.config),
                       "lr": args.lr, "batch": args.batch, "updates_per_iteration": args.updates_per_iteration,
                       "num_envs": args.num_envs, "sight_range": args.sight, "eval_episodes": args.eval_episodes,
                       **r}
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{task} {method} seed={seed} [{args.tag}]: win {r['win_rate']:.2f} target agents "
                      f"{r['win_rate_target']:.2f} ({r['wall_s']:.0f}s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

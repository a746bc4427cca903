"""Diagnostic: where does a trained MIFQ policy disagree with the scripted expert, and does it use actions the
expert never takes? (README "Online MIFQ", root cause 2.)

Trains MIFQ online (value term and chi^2 on expert and replay rows) or offline for STEPS env steps (offline: the
same number of updates), then labels with the scripted expert (a) 20 held-out expert episodes and (b) 20 episodes of
the learned greedy policy, and prints the greedy agreement and the median top-2 Q gap on each. On
simple_reference the scripted expert only ever says words 0-2, so a visited state where an agent heard a word
3-9 cannot be labelled: ``skipped`` counts those states, i.e. how often the learner speaks a word that no
demonstration grounds.

    python benchmarks/mifq_action_grounding.py mpe/simple_reference 16 online 8000 --config '{"gamma": 0.9}'
    python benchmarks/mifq_action_grounding.py mpe/simple_reference 16 offline 8000 --config '{"gamma": 0.9}'
"""
import argparse
import json

import numpy as np
import torch


def rollout(env, policy, seeds):
    """The observations of one greedy episode per reset seed."""
    rows = []
    for s in seeds:
        o, _ = env.reset(seed=s)
        rng, done = np.random.default_rng(s), False
        while not done:
            rows.append(o)
            o, _, te, tu, _ = env.step(policy(o, rng))
            done = te or tu
    return rows


def agreement(rows, expert, q_of):
    """Share of (state, agent) rows with a choice where the greedy Q action is the expert's, the median top-2 Q gap,
    and the states the scripted expert cannot label."""
    from rllib_mil.envs.contract import ACTION_MASK
    from rllib_mil.modules.soft import greedy_actions

    agree = total = skipped = 0
    margins = []
    for o in rows:
        try:
            label = expert.act(o, np.random.default_rng(0))
        except IndexError:  # the scripted expert cannot read words it never says
            skipped += 1
            continue
        q, m = q_of(o)[0], torch.as_tensor(o[ACTION_MASK])
        g = greedy_actions(q[None], m[None])[0].numpy()
        for i in range(len(label)):
            if m[i].sum() > 1:
                total += 1
                agree += int(g[i] == label[i])
                top2 = q[i].masked_fill(m[i] <= 0, -1e9).topk(2).values
                margins.append(float(top2[0] - top2[1]))
    return agree / max(total, 1), float(np.median(margins)) if margins else float("nan"), skipped


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", help="team-env id, e.g. mpe/simple_reference")
    p.add_argument("demos", type=int, help="scripted demonstration episodes")
    p.add_argument("mode", choices=["online", "offline"])
    p.add_argument("steps", type=int, help="env steps (offline: the same number of updates)")
    p.add_argument("--config", default="{}", help="JSON overrides of MIFQ's training settings")
    args = p.parse_args(argv)
    # 100 env steps per iteration; offline, the first 1000 steps of the online schedule are the warm-up it skips
    iterations = args.steps // 100 - (10 if args.mode == "offline" else 0)
    if iterations < 1:
        p.error(f"steps must be at least {1100 if args.mode == 'offline' else 100} in {args.mode} mode (one training "
                f"iteration), got {args.steps}")

    import ray

    torch.set_num_threads(1)
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    import rllib_mil  # noqa: F401
    from rllib_mil.algorithms.mifq import MIFQConfig
    from rllib_mil.data.experts import make_expert
    from rllib_mil.envs import make_team_env
    from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE
    from rllib_mil.modules.soft import greedy_actions

    extra = json.loads(args.config)
    tr = dict(expert_data={"expert": "scripted", "episodes": args.demos, "seed": 0}, lr=5e-4,
              num_updates_per_iteration=50, train_batch_size_per_learner=64,
              num_steps_sampled_before_learning_starts=1000)
    tr.update({"offline": True} if args.mode == "offline" else {"value_rows": "all", "chi2_replay": True})
    tr.update(extra)
    config = (MIFQConfig().environment(args.task).training(**tr)
              .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=25).debugging(seed=0))
    algo = config.build_algo()
    for _ in range(iterations):
        res = algo.train()
    stats = res["learners"]["default_policy"]
    keys = ("q_mean", "q_abs_max", "expert_reward_mean", "replay_reward_mean", "value_term_expert",
            "value_term_replay", "chi2_term_expert", "chi2_term_replay", "reward_term", "value_term", "v_tot_mean")
    print("STATS", {k: round(float(stats[k]), 3) for k in sorted(stats) if k in keys})
    module = algo.get_module()
    env = make_team_env(args.task, {})
    expert = make_expert("scripted", env)

    def q_of(o):  # the scores acting maximises: Q, tilted by the BC prior's log-probabilities when it has one
        with torch.no_grad():
            out = module.q_values(module.agent_inputs(torch.as_tensor(o[OBS], dtype=torch.float32)[None],
                                                      torch.as_tensor(o[STATE], dtype=torch.float32)[None]))
            return module.action_scores(out)

    def learner(o, rng):
        return greedy_actions(q_of(o), torch.as_tensor(o[ACTION_MASK])[None])[0].numpy()

    e_rows = rollout(env, lambda o, rng: expert.act(o, rng), range(50_000, 50_020))
    l_rows = rollout(env, learner, range(60_000, 60_020))
    print("RESULT", args.task, args.demos, args.mode, extra,
          "agree_expert_states=%.3f margin=%.4f skipped=%d" % agreement(e_rows, expert, q_of),
          "agree_learner_states=%.3f margin=%.4f skipped=%d" % agreement(l_rows, expert, q_of))
    algo.stop()


if __name__ == "__main__":
    main()

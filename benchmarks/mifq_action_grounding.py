"""Diagnostic: where does a trained MIFQ policy disagree with the scripted expert, and does it use actions the
expert never takes? (README "Online MIFQ", root cause 2.)

Trains MIFQ online (value term and chi^2 on expert and replay rows) or offline for STEPS env steps (offline: the
same number of updates), then labels with the scripted expert (a) 20 held-out expert episodes and (b) 20 episodes of
the learned greedy policy, and prints the greedy agreement and the median top-2 Q gap on each. On
simple_reference the scripted expert only ever says words 0-2, so a visited state where an agent heard a word
3-9 cannot be labelled: ``skipped`` counts those states, i.e. how often the learner speaks a word that no
demonstration grounds.

    python benchmarks/mifq_action_grounding.py mpe/simple_reference 16 online 8000 '{"gamma": 0.9}'
    python benchmarks/mifq_action_grounding.py mpe/simple_reference 16 offline 8000 '{"gamma": 0.9}'
"""
import sys, json, numpy as np, torch, ray
torch.set_num_threads(1)
ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
import rllib_mil
from rllib_mil.algorithms.mifq import MIFQConfig
from rllib_mil.envs import make_team_env
from rllib_mil.envs.contract import OBS, ACTION_MASK, STATE
from rllib_mil.data.experts import make_expert
from rllib_mil.modules.soft import greedy_actions
task, demos, mode, steps = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
extra = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
tr = dict(expert_data={"expert": "scripted", "episodes": demos, "seed": 0}, lr=5e-4, num_updates_per_iteration=50,
          train_batch_size_per_learner=64, num_steps_sampled_before_learning_starts=1000)
tr.update({"offline": True} if mode == "offline" else {"value_rows": "all", "chi2_replay": True})  # noqa: E501
tr.update(extra)
c = (MIFQConfig().environment(task).training(**tr).env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=25).debugging(seed=0))
algo = c.build_algo()
n_iter = steps // 100 - (10 if mode == "offline" else 0)
for _ in range(n_iter):
    res = algo.train()
L = res["learners"]["default_policy"]
print("STATS", {k: round(float(L[k]), 3) for k in sorted(L) if k in ("q_mean", "q_abs_max", "expert_reward_mean", "replay_reward_mean", "value_term_expert", "value_term_replay", "chi2_term_expert", "chi2_term_replay", "reward_term", "value_term", "v_tot_mean")})
mod = algo.get_module()
env = make_team_env(task, {})
exp = make_expert("scripted", env)
def q_of(o):
    with torch.no_grad():
        return mod.q_values(mod.agent_inputs(torch.as_tensor(o[OBS], dtype=torch.float32)[None],
                                             torch.as_tensor(o[STATE], dtype=torch.float32)[None]))
def rollout(policy, seeds):
    rows = []
    for s in seeds:
        o, _ = env.reset(seed=s); rng = np.random.default_rng(s); done = False
        while not done:
            rows.append(o)
            a = policy(o, rng)
            o, r, te, tu, _ = env.step(a); done = te or tu
    return rows
learner_pol = lambda o, rng: greedy_actions(q_of(o), torch.as_tensor(o[ACTION_MASK])[None])[0].numpy()
expert_pol = lambda o, rng: exp.act(o, rng)
def agreement(rows):
    ag = tot = 0; margins = []
    skipped = 0
    for o in rows:
        try:
            lab = exp.act(o, np.random.default_rng(0))
        except IndexError:  # the scripted expert cannot read words it never says
            skipped += 1
            continue
        q = q_of(o)[0]; m = torch.as_tensor(o[ACTION_MASK])
        g = greedy_actions(q[None], m[None])[0].numpy()
        for i in range(len(lab)):
            if m[i].sum() > 1:
                tot += 1; ag += int(g[i] == lab[i])
                qi = q[i].masked_fill(m[i] <= 0, -1e9); top2 = qi.topk(2).values; margins.append(float(top2[0] - top2[1]))
    return ag / max(tot, 1), float(np.median(margins)), skipped
e_rows = rollout(expert_pol, range(50_000, 50_020))
l_rows = rollout(learner_pol, range(60_000, 60_020))
print("RESULT", task, demos, mode, extra, "agree_expert_states=%.3f margin=%.4f skipped=%d" % agreement(e_rows), "agree_learner_states=%.3f margin=%.4f skipped=%d" % agreement(l_rows))

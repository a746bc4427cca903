"""MAMQL: the reward-recovery loss by hand, the Boltzmann policy over the marginalized critics under action masks,
per-agent rewards from the env to the learner, and the reward-export round trip (`rllib rewards export`).
(Training, checkpoints, offline mode and replay rows are covered by the registry-driven tests.)"""
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from ray.rllib.core.columns import Columns

import rllib_mil  # noqa: F401
from rllib_mil.algorithms.mamql import MAMQLConfig
from rllib_mil.algorithms.mamql.mamql_loss import reward_recovery_loss
from rllib_mil.envs import ACTION_MASK, OBS, STATE, make_team_env
from rllib_mil.rewards import RECOVERED, SOURCE, TRUE, pearson, recovered_rewards, torch_pearson
from test_cli import explain, run_cli

REFERENCE = "mpe/simple_reference"  # the agents' own rewards differ (general-sum view of a team game)
DEMOS = {"expert": "scripted", "episodes": 4, "seed": 0}


def small_config(**training):
    return (MAMQLConfig().environment(REFERENCE)
            .training(expert_data=DEMOS, num_steps_sampled_before_learning_starts=50, num_updates_per_iteration=4,
                      expert_batch_size=32, train_batch_size_per_learner=32, **training)
            .env_runners(num_env_runners=0, rollout_fragment_length=25).debugging(seed=0))


def test_reward_recovery_loss_by_hand():
    # γ = .5: targets r = Q − γ(1−d)V' = [[1 − .5·2, 2 − .5·0], [.5, 1]] (row 1 terminated: no bootstrap)
    q = torch.tensor([[1.0, 2.0], [0.5, 1.0]])
    v = torch.tensor([[2.0, 0.0], [4.0, 4.0]])
    done = torch.tensor([0.0, 1.0])
    pred = torch.tensor([[0.0, 1.0], [1.5, 1.0]], requires_grad=True)
    loss, target = reward_recovery_loss(pred, q, v, done, 0.5)
    assert torch.allclose(target, torch.tensor([[0.0, 2.0], [0.5, 1.0]]))
    assert loss.item() == pytest.approx((0 + 1 + 1 + 0) / 4)
    loss.backward()  # trains R only: the targets carry no gradient
    assert pred.grad is not None and not q.requires_grad
    with pytest.raises(ValueError, match="must be"):
        reward_recovery_loss(pred, q, v, torch.zeros(3), 0.5)


def test_reward_forms(build):
    """reward_form="state" (the default): the fitted quantity is g_i(s') + γ(1 − d)·h_i(s') − h_i(s) (no bootstrap where
    terminated), the recovered reward is g_i(s') alone, and training fits it; an unknown form is refused."""
    algo = build(small_config(gamma=0.9))
    module = algo.learner_group._learner.module["default_policy"]
    torch.manual_seed(0)
    s, s2 = torch.randn(5, module.state_dim), torch.randn(5, module.state_dim)
    a, done = torch.zeros(5, module.n_agents, dtype=torch.long), torch.tensor([0.0, 0.0, 1.0, 0.0, 1.0])
    with torch.no_grad():
        g = module.rewards(s, a, s2)  # (5, n)
        h = lambda x: module._per_agent(module.shaping_net, x)  # noqa: E731
        want = g + 0.9 * (1.0 - done)[:, None] * h(s2) - h(s)
        assert torch.allclose(module.fitted_rewards(s, a, s2, done, 0.9), want)
        assert torch.allclose(module.rewards(s, a + 1, s2), g)  # no action input
    with pytest.raises(ValueError, match="next_state"):
        module.rewards(s, a)
    for _ in range(4):
        result = algo.train()
    assert np.isfinite(float(result["learners"]["default_policy"]["reward_mse"]))
    with pytest.raises(ValueError, match="reward_form"):
        small_config(reward_form="potential").validate()
    # The paper's form: R_i(s, a) reads the joint action, and is what is fitted.
    paper = build(small_config(reward_form="state_action")).learner_group._learner.module["default_policy"]
    with torch.no_grad():
        r = paper.rewards(s, a)
        assert r.shape == (5, paper.n_agents) and not torch.allclose(paper.rewards(s, a + 1), r)
        assert torch.equal(paper.fitted_rewards(s, a, s2, done, 0.9), r)


def test_pearson_helpers_agree():
    g = np.random.default_rng(0)
    x, y = g.normal(size=(50, 3)), g.normal(size=(50, 3))
    y[:, 1] = 2 * x[:, 1] + 1
    t = torch_pearson(torch.as_tensor(x), torch.as_tensor(y)).numpy()
    assert np.allclose(t, [pearson(x[:, i], y[:, i]) for i in range(3)]) and t[1] == pytest.approx(1.0)
    assert np.isnan(pearson(np.ones(5), np.arange(5)))


def test_boltzmann_policy_over_marginalized_critics_respects_masks(build):
    """π_i(a_i|s) ∝ exp(scores_i(s, a_i)/α) over available actions, scores = Q̄_i + α·β·log π0_i under the default
    BC prior (Q̄_i alone with policy_prior=None): the critics read the state (not the own obs), an unavailable action
    is never drawn, and the draws follow the normalised Boltzmann probabilities."""
    algo = build(small_config(alpha=1.0))
    module = algo.env_runner.module
    env = make_team_env(REFERENCE)
    obs, _ = env.reset(seed=0)
    batch = {k: torch.as_tensor(v)[None].repeat(4000, *([1] * np.ndim(v))) for k, v in obs.items()}
    mask = batch[ACTION_MASK].clone()
    mask[:, :, 1::2] = 0  # forbid every odd action
    batch[ACTION_MASK] = mask
    assert module.input_dim == env.state_dim
    with torch.no_grad():
        q = module.q_values(module.agent_inputs(batch[OBS], batch[STATE]))[0]  # (n, A) or (n, 2A) with the prior
        scores = module.action_scores(q[None])[0]  # (n, A)
        torch.manual_seed(0)
        actions = module.forward_exploration({Columns.OBS: batch}, t=0)[Columns.ACTIONS]  # (4000, n)
    assert (actions % 2 == 0).all()
    probs = torch.softmax(scores.masked_fill(mask[0] <= 0, -1e9) / 1.0, dim=-1)  # (n, A)
    assert torch.allclose(probs.sum(-1), torch.ones(probs.shape[0]))
    for i in range(actions.shape[1]):
        freq = torch.bincount(actions[:, i], minlength=probs.shape[1]).double() / len(actions)
        assert torch.allclose(freq, probs[i].double(), atol=0.03), (i, freq, probs[i])
    # Changing another agent's own observation leaves agent 0's critic unchanged unless the state changes.
    other = dict(batch)
    other[OBS] = batch[OBS].clone()
    other[OBS][:, 1:] += 1.0
    with torch.no_grad():
        assert torch.equal(module.q_values(module.agent_inputs(other[OBS], other[STATE]))[0], q)


def test_true_per_agent_rewards_reach_the_learner(build):
    """Per-agent rewards travel env info -> episodes -> train batch; the learner logs how its recovered rewards
    correlate with them on replay rows, and fits the reward networks."""
    algo = build(small_config())
    for _ in range(4):
        result = algo.train()
    stats = result["learners"]["default_policy"]
    assert np.isfinite(float(stats["reward_mse"])) and float(stats["replay_rows"]) == 32
    assert -1.0 <= float(stats["reward_corr_replay"]) <= 1.0


def test_reward_export_round_trip(build, tmp_path, cli_env):
    """`rllib rewards export`: one row per (step, agent) with the recovered reward (= the checkpoint's reward
    network on the demonstrations) beside the true one, and each agent's Pearson correlation."""
    from rllib_mil.data.demos import ensure_demos, read_demos

    algo = build(small_config())
    for _ in range(3):
        algo.train()
    ckpt = str(tmp_path / "ckpt")
    algo.save_to_path(ckpt)
    # Three files of different quality, pooled: the expert's episodes, random ones and a noisy expert's (the same
    # episode ids in each).
    from rllib_mil.data.demos import collect_demos

    files = [ensure_demos(REFERENCE, {}, "scripted", 4, 0), ensure_demos(REFERENCE, {}, "random", 3, 1),
             collect_demos(REFERENCE, {}, "scripted", 2, 5, tmp_path / "noisy.parquet", epsilon=0.5)]
    out = str(tmp_path / "rewards.parquet")
    proc = run_cli(["rewards", "export", ckpt, "--demos", *files, "--out", out], cli_env, timeout=300)
    assert proc.returncode == 0, explain(proc)
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    ds = [read_demos(f) for f in files]
    n = ds[0].agent_rewards.shape[1]
    table = pq.read_table(out).to_pandas()
    assert len(table) == sum(len(d) for d in ds) * n and report["episodes"] == 4 + 3 + 2
    true = np.concatenate([d.agent_rewards for d in ds])  # (N, n)
    np.testing.assert_allclose(table[TRUE].to_numpy().reshape(-1, n), true, rtol=1e-6)
    np.testing.assert_array_equal(table[SOURCE].to_numpy()[::n], np.repeat([0, 1, 2], [len(d) for d in ds]))
    module = algo.learner_group._learner.module["default_policy"]
    want = [recovered_rewards(module, d.state, d.actions, d.next_state) for d in ds]
    np.testing.assert_allclose(table[RECOVERED].to_numpy().reshape(-1, n), np.concatenate(want), rtol=1e-4,
                               atol=1e-5)
    names = make_team_env(REFERENCE).agent_names
    # Episode returns by hand: sum each (file, episode)'s steps.
    ret = {(f, e): np.zeros((2, n)) for f, d in enumerate(ds) for e in np.unique(d.episode_id)}
    for f, d in enumerate(ds):
        for row in range(len(d)):
            ret[f, d.episode_id[row]] += [want[f][row], d.agent_rewards[row]]
    rec_ret, true_ret = np.array([v[0] for v in ret.values()]), np.array([v[1] for v in ret.values()])
    for i, name in enumerate(names):
        assert report["pearson"][name] == pytest.approx(pearson(np.concatenate(want)[:, i], true[:, i]), abs=1e-4)
        assert report["pearson_return"][name] == pytest.approx(pearson(rec_ret[:, i], true_ret[:, i]), abs=1e-4)
        set_means = []
        for f, d in enumerate(ds):
            got, rows = report["per_file"][f], [k[0] == f for k in ret]
            set_means.append((rec_ret[rows, i].mean(), true_ret[rows, i].mean()))
            assert got["true_return"][name] == pytest.approx(set_means[-1][1], rel=1e-5)
            assert got["recovered_return"][name] == pytest.approx(set_means[-1][0], rel=1e-4, abs=1e-5)
        m = np.array(set_means)
        assert report["pearson_sets"][name] == pytest.approx(pearson(m[:, 0], m[:, 1]), abs=1e-4)
    assert [p["expert"] for p in report["per_file"]] == ["scripted", "random", "scripted+epsilon0.5"]
    # A checkpoint without reward networks is refused with a message.
    from rllib_mil.algorithms.mifq import MIFQConfig

    mifq = build(MIFQConfig().environment(REFERENCE).training(expert_data=DEMOS, offline=True,
                                                                num_updates_per_iteration=1))
    mifq.train()
    mifq.save_to_path(str(tmp_path / "mifq"))
    bad = run_cli(["rewards", "export", str(tmp_path / "mifq"), "--demos", files[0]], cli_env, timeout=300)
    assert bad.returncode != 0 and "reward networks" in bad.stderr + bad.stdout, explain(bad)

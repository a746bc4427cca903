"""Value-decomposition RL (QMIX, QPLEX, DMIX) and their IGM-DA mode (QMIX-DA, QPLEX-DA, DMIX-DA).

Unit tests of the mixers and losses (pure tensors), then integration tests parametrized over
``rllib_mil.algorithms.registry.VALUE_DECOMPOSITION``: a newly registered one is tested by being registered.
"""
import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.core.columns import Columns

import rllib_mil  # noqa: F401  (registers env ids and algorithm names)
from helpers import assert_rollouts_respect_masks
from rllib_mil.algorithms.qmix import qmix_learner
from rllib_mil.algorithms.registry import VALUE_DECOMPOSITION
from rllib_mil.algorithms.value_decomposition.vd_loss import (
    gather_actions, next_actions, quantile_huber_loss, teach_loss, td_target)
from rllib_mil.envs import ACTION_MASK, OBS, STATE
from rllib_mil.evaluation import evaluate_checkpoint, load_team_module
from rllib_mil.modules.mixers import DuplexMixer, HyperMonotoneMixer, QuantileMixture
from rllib_mil.modules.soft import epsilon_greedy, greedy_actions

NAMES = sorted(VALUE_DECOMPOSITION)
MODULE_ID = "default_policy"
SPREAD = "mpe/simple_spread"
SMAX = "smax/3m"


# ------------------------------------------------------------------------------------------------ mixers
def test_qmix_mixer_is_monotone_in_every_agent():
    torch.manual_seed(0)
    mixer = HyperMonotoneMixer(4, 6, embed_dim=8, hypernet_hidden=16, normalize=False, bias=True)
    q = torch.randn(64, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(mixer(q, torch.randn(64, 6)).sum(), q)
    assert (grad >= 0).all() and (grad > 0).any()


@pytest.mark.parametrize("seed", range(5))
def test_qplex_joint_argmax_is_the_agents_argmaxes(seed):
    """IGM: over every joint action, Q_tot(S, a) with V_i = max_a Q_i is largest at the agents' own argmaxes
    (random Q, state and mixer weights; some actions masked out)."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    n, A, s = 3, 4, 5
    mixer = DuplexMixer(n, s, A, hypernet_hidden=16, n_heads=2)
    q = torch.randn(n, A, generator=g) * 3  # (n, A)
    mask = torch.ones(n, A)
    mask[0, 1] = 0.0
    mask[2, 3] = 0.0
    q_masked = q.masked_fill(mask == 0, -1e9)
    state = torch.randn(1, s, generator=g)
    joint = [u for u in itertools.product(range(A), repeat=n) if all(mask[i, u[i]] > 0 for i in range(n))]
    acts = torch.tensor(joint)  # (J, n)
    q_taken = q.gather(1, acts.T).T  # (J, n)
    v = q_masked.max(dim=-1).values.expand(len(joint), n)  # (J, n)
    q_tot = mixer(q_taken, state.expand(len(joint), s), v=v, actions=F.one_hot(acts, A))
    best = tuple(acts[q_tot.argmax()].tolist())
    assert best == tuple(q_masked.argmax(dim=-1).tolist())
    # The greedy joint action gets exactly sum_i V_i (transformed): every advantage is zero there.
    assert torch.all(q_tot <= q_tot.max() + 1e-6)


def test_qplex_mixer_checks_its_extra_inputs():
    mixer = DuplexMixer(2, 3, 4)
    with pytest.raises(ValueError, match="needs v"):
        mixer(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match="actions"):
        mixer(torch.zeros(5, 2), torch.zeros(5, 3), v=torch.zeros(5, 2), actions=torch.zeros(5, 2, 3))


def test_dmix_quantile_mixture_shapes_and_mean():
    torch.manual_seed(0)
    B, n, N, s = 7, 3, 8, 5
    mix = QuantileMixture(n, s, embed_dim=8, hypernet_hidden=16)
    z, state = torch.randn(B, n, N), torch.randn(B, s)
    z_tot = mix(z, state)
    assert z_tot.shape == (B, N)
    # The shape part is centred: the mean of Z_tot is the monotone mixer of the agents' means.
    assert torch.allclose(z_tot.mean(dim=-1), mix.mean_mixer(z.mean(dim=-1), state), atol=1e-5)
    # Shape weights are non-negative: agents' quantiles in increasing order give team quantiles in increasing order
    # (a valid quantile function), and scaling every agent's spread by c scales the team's by c.
    z_sorted = z.sort(dim=-1).values
    assert (mix(z_sorted, state).diff(dim=-1) >= -1e-6).all()
    mean = z.mean(-1, keepdim=True)
    dev = z_tot - z_tot.mean(-1, keepdim=True)
    wide = mix(mean + 3 * (z - mean), state)
    assert torch.allclose(wide - wide.mean(-1, keepdim=True), 3 * dev, atol=1e-5)
    with pytest.raises(ValueError, match="n_quantiles"):
        mix(torch.zeros(B, n), state)


# ------------------------------------------------------------------------------------------------ losses
def test_quantile_huber_loss_by_hand():
    pred = torch.tensor([[0.0, 2.0]])
    target = torch.tensor([[1.0, 4.0]])
    taus = torch.tensor([0.25, 0.75])
    # delta_ij = target_j - pred_i: [[1, 4], [-1, 2]]; Huber(1): 0.5, 3.5, 0.5, 1.5
    # weights |tau_i - 1[delta<0]|: [[.25, .25], [.25, .75]]
    expected = ((0.25 * 0.5 + 0.25 * 3.5) + (0.25 * 0.5 + 0.75 * 1.5)) / 2  # sum over i, mean over j
    assert quantile_huber_loss(pred, target, taus).item() == pytest.approx(expected)


def test_td_target_bootstraps_through_truncation_only():
    r, d = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])
    assert td_target(r, d, torch.tensor([2.0, 2.0]), 0.5).tolist() == [2.0, 1.0]
    y = td_target(r, d, torch.tensor([[2.0, 4.0], [2.0, 4.0]]), 0.5)
    assert y.tolist() == [[2.0, 3.0], [1.0, 1.0]]


def test_gather_actions_keeps_quantiles():
    z = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).view(2, 2, 3, 4)
    a = torch.tensor([[2, 0], [1, 1]])
    out = gather_actions(z, a)
    assert out.shape == (2, 2, 4)
    assert torch.equal(out[0, 0], z[0, 0, 2]) and torch.equal(out[1, 1], z[1, 1, 1])


def test_teach_loss_by_hand_and_masking():
    q_l = torch.tensor([[[0.5, 0.2, 9.0]]])  # (1, 1, 3); action 2 unavailable
    q_e = torch.tensor([[[0.0, 1.0, 50.0]]])  # the expert's argmax over available actions is 1, not 2
    mask = torch.tensor([[[1.0, 1.0, 0.0]]])
    loss, agree = teach_loss(q_l, q_e, mask, "mse")
    assert loss.item() == pytest.approx((0.5**2 + (0.2 - 1.0) ** 2) / 2)
    assert agree.item() == 0.0  # learner's greedy (available) is 0
    # Unavailable entries never matter.
    q_l2 = q_l.clone()
    q_l2[..., 2] = -123.0
    assert teach_loss(q_l2, q_e, mask, "mse")[0].item() == pytest.approx(loss.item())
    ce, _ = teach_loss(q_l, q_e, mask, "ce")
    assert ce.item() == pytest.approx(-math.log(math.exp(0.2) / (math.exp(0.5) + math.exp(0.2))), rel=1e-5)
    # "q": the expert's values themselves on the available entries.
    qd, _ = teach_loss(q_l, q_e, mask, "q")
    assert qd.item() == pytest.approx((0.5**2 + (0.2 - 1.0) ** 2) / 2)
    qd2, _ = teach_loss(q_l, q_e * 3.0, mask, "q")
    assert qd2.item() == pytest.approx((0.5**2 + (0.2 - 3.0) ** 2) / 2)
    assert teach_loss(q_l2, q_e, mask, "q")[0].item() == pytest.approx(qd.item())
    with pytest.raises(ValueError, match="teach loss"):
        teach_loss(q_l, q_e, mask, "kl")


def test_teach_loss_q_takes_the_best_expected_action_where_states_look_alike():
    """Three global states one local observation cannot tell apart: the expert's argmax is action 0 in two of them
    (the mode), but action 1 has the best value on average. Fitting one shared q by each loss: "mse" imitates the
    mode, "q" takes the best expected expert value."""
    q_e = torch.tensor([[[1.0, 0.9]], [[1.0, 0.9]], [[0.0, 0.9]]])  # (3, 1, 2): E[Q] = (0.67, 0.9)
    mask = torch.ones_like(q_e)
    greedy = {}
    for kind in ("mse", "q"):
        q = torch.zeros(1, 1, 2, requires_grad=True)  # one local observation -> one row of scores
        opt = torch.optim.SGD([q], lr=0.5)
        for _ in range(200):
            opt.zero_grad()
            teach_loss(q.expand(3, 1, 2), q_e, mask, kind)[0].backward()
            opt.step()
        greedy[kind] = int(q.detach().argmax())
    assert greedy == {"mse": 0, "q": 1}


def test_epsilon_greedy_respects_mask_and_reports_logp():
    g = torch.Generator().manual_seed(0)
    q = torch.tensor([[0.0, 5.0, 1.0, 2.0]]).expand(4000, 4)
    mask = torch.tensor([[1.0, 0.0, 1.0, 1.0]]).expand(4000, 4)
    a, logp = epsilon_greedy(q, mask, 0.3, generator=g)
    assert not (a == 1).any()  # masked even though it has the largest Q
    freq = torch.bincount(a, minlength=4).float() / len(a)
    assert freq[3].item() == pytest.approx(0.7 + 0.1, abs=0.03) and freq[0].item() == pytest.approx(0.1, abs=0.03)
    assert torch.allclose(logp[a == 3], torch.tensor(math.log(0.8)))
    assert torch.allclose(logp[a == 0], torch.tensor(math.log(0.1)))


# ------------------------------------------------------------------------------------------------ integration
def make_config(name, env=SPREAD, env_config=None, **training):
    _, config_cls = VALUE_DECOMPOSITION[name]
    return (
        config_cls()
        .environment(env, env_config=dict(env_config or {}))
        .training(**{"num_steps_sampled_before_learning_starts": 100, "train_batch_size_per_learner": 64,
                     **training})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=25)
        .fault_tolerance(restart_failed_env_runners=False)
        .debugging(seed=0)
    )


def learner_module(algo):
    return algo.learner_group._learner.module[MODULE_ID]


def env_runner_module(algo):
    m = algo.env_runner.module
    return m[MODULE_ID] if hasattr(m, "keys") else m


def assert_smax_checkpoint_evaluates(algo, tmp_path):
    """Save ``algo`` and evaluate the checkpoint on 2 SMAX battles (recurrent modules carry their state)."""
    path = str(tmp_path / "ckpt")
    algo.save_to_path(path)
    res = evaluate_checkpoint(path, episodes=2)
    assert "win_rate" in res and math.isfinite(res["return_mean"])


@pytest.fixture(scope="module", params=[(n, env) for n in NAMES for env in (SPREAD, SMAX)],
                ids=lambda p: f"{p[0]}-{p[1].split('/')[1]}")
def trained(request, ray_session):
    name, env = request.param
    env_config = {"sight_range": 0.0} if env == SMAX else {}
    algo = make_config(name, env=env, env_config=env_config).build_algo()
    try:
        initial = {k: np.array(v, copy=True) for k, v in algo.learner_group.get_weights()[MODULE_ID].items()}
        results = [algo.train() for _ in range(4)]
        yield SimpleNamespace(name=name, env=env, algo=algo, initial=initial, results=results)
    finally:
        algo.stop()


def test_trains_and_reports_metrics(trained):
    last = trained.results[-1]
    assert last["num_env_steps_sampled_lifetime"] >= 200
    stats = last["learners"][MODULE_ID]
    keys = ["td_loss", "q_tot_mean", "td_target_mean", "q_abs_max", "replay_rows"]
    if trained.name.endswith("-DA"):
        keys += ["teach_loss", "teach_agreement"]
    for key in keys:
        assert key in stats and math.isfinite(float(stats[key])), (key, sorted(stats))
    assert float(stats["replay_rows"]) == 64
    now = trained.algo.learner_group.get_weights()[MODULE_ID]
    trained_prefixes = ["mixer.", "expert_net." if trained.name.endswith("-DA") else "q_net."]
    if trained.name.endswith("-DA"):
        trained_prefixes.append("q_net.")  # the learner agents, by the teach loss
    for prefix in trained_prefixes:
        keys = [k for k in now if k.startswith(prefix)]
        assert keys and any(not np.array_equal(now[k], trained.initial[k]) for k in keys), prefix


def test_env_runner_acts_with_the_synced_acting_agents_only(trained):
    """Env runners carry the acting network only (learner agents in -DA mode: DAgger collects with them); its
    weights equal the learner's."""
    er, full = env_runner_module(trained.algo), learner_module(trained.algo)
    er_state = {k: v.detach().cpu().numpy() for k, v in er.state_dict().items()}
    learner = trained.algo.learner_group.get_weights()[MODULE_ID]
    # Mixers, target and expert nets stay on the learner.
    assert all(k.startswith("q_net.") for k in er_state), sorted(er_state)
    synced = {k for k in er_state if k.startswith("q_net.")}
    assert synced and synced == {k for k in learner if k.startswith("q_net.")}
    for k in synced:
        np.testing.assert_array_equal(er_state[k], learner[k], err_msg=k)
    assert full.igm_da == trained.name.endswith("-DA")


def test_dagger_collects_with_the_learner_agents(trained):
    """With epsilon 0 the actions the env runners take are the greedy actions of the acting (learner) agents on
    their local observations, not the expert agents' (which read the global state)."""
    algo = trained.algo
    er = env_runner_module(algo)
    er.explore_schedule = type(er.explore_schedule)(0.0, framework="torch")
    episodes = algo.env_runner.sample(num_timesteps=40, explore=True)
    full = learner_module(algo)
    obs = torch.as_tensor(np.concatenate([np.asarray(ep.get_observations()[OBS])[:-1] for ep in episodes]))
    state = torch.as_tensor(np.concatenate([np.asarray(ep.get_observations()[STATE])[:-1] for ep in episodes]))
    mask = torch.as_tensor(np.concatenate([np.asarray(ep.get_observations()[ACTION_MASK])[:-1] for ep in episodes]))
    taken = torch.as_tensor(np.concatenate([np.asarray(ep.get_actions()) for ep in episodes]))
    with torch.no_grad():
        learner_greedy = full.action_scores(full.q_net(obs)).masked_fill(mask == 0, -1e9).argmax(-1)
        expert_greedy = full.td_scores(full.td_values(obs, state)).masked_fill(mask == 0, -1e9).argmax(-1)
    assert torch.equal(taken, learner_greedy)
    if full.igm_da:
        # Make the expert agents prefer another action wherever one is available: the collected actions must not
        # move (they come from the learner agents).
        with torch.no_grad():
            alt = (learner_greedy + 1) % mask.shape[-1]
            bonus = 1e3 * F.one_hot(alt, mask.shape[-1]).float() * mask
            expert_greedy = (full.td_scores(full.td_values(obs, state)) + bonus).masked_fill(mask == 0, -1e9).argmax(-1)
        moved = (expert_greedy != taken).any()
        assert moved and torch.equal(taken, learner_greedy)


def test_beta_mixture_collects_with_the_expert_agents(build):
    """dagger_beta = 1 (classic DAgger's first round): the expert agents, synced to the env runner, play every
    step; with epsilon 0 the collected actions are their greedy actions on the global state."""
    algo = build(make_config("QMIX-DA", env=SMAX, env_config={"sight_range": 0.0}, dagger_beta=1.0,
                             epsilon=0.0, num_steps_sampled_before_learning_starts=50))
    algo.train()  # one update, then the weight sync
    er, full = env_runner_module(algo), learner_module(algo)
    learner = algo.learner_group.get_weights()[MODULE_ID]
    er_state = {k: v.detach().cpu().numpy() for k, v in er.state_dict().items()}
    assert {k for k in er_state if k.startswith("expert_net.")} == {k for k in learner if k.startswith("expert_net.")}
    for k in er_state:
        np.testing.assert_array_equal(er_state[k], learner[k], err_msg=k)
    assert full.igm_da
    # Give the two nets different preferences (random output biases) so that the check below can fail.
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for net in (er.expert_net, er.q_net):
            last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.bias.add_(10.0 * torch.randn(last.bias.shape, generator=gen))
    episodes = algo.env_runner.sample(num_timesteps=40, explore=True)
    obs = torch.as_tensor(np.concatenate([np.asarray(ep.get_observations()[OBS])[:-1] for ep in episodes]))
    state = torch.as_tensor(np.concatenate([np.asarray(ep.get_observations()[STATE])[:-1] for ep in episodes]))
    mask = torch.as_tensor(np.concatenate([np.asarray(ep.get_observations()[ACTION_MASK])[:-1] for ep in episodes]))
    taken = torch.as_tensor(np.concatenate([np.asarray(ep.get_actions()) for ep in episodes])).long()
    with torch.no_grad():
        expert_greedy = er.td_scores(er.td_values(obs, state)).masked_fill(mask == 0, -1e9).argmax(-1)
        learner_greedy = er.action_scores(er.q_net(obs)).masked_fill(mask == 0, -1e9).argmax(-1)
    assert not torch.equal(expert_greedy, learner_greedy)
    assert torch.equal(taken, expert_greedy)


def test_dagger_beta_needs_igm_da():
    config = VALUE_DECOMPOSITION["QMIX"][1]().environment(SPREAD).training(dagger_beta=[[0, 1.0], [1000, 0.0]])
    with pytest.raises(ValueError, match="igm_da=True"):
        config.validate()
    VALUE_DECOMPOSITION["QMIX-DA"][1]().environment(SPREAD).training(dagger_beta=[[0, 1.0], [1000, 0.0]]).validate()


def test_checkpoint_round_trip_and_evaluate(trained, tmp_path):
    algo = trained.algo
    path = str(tmp_path / "ckpt")
    algo.save_to_path(path)
    restored = Algorithm.from_checkpoint(path)
    try:
        a = learner_module(algo).state_dict()
        b = learner_module(restored).state_dict()
        assert set(a) == set(b)
        for k in a:
            assert torch.equal(a[k], b[k]), k
        assert math.isfinite(restored.train()["learners"][MODULE_ID]["td_loss"])
    finally:
        restored.stop()
    module, _ = load_team_module(path)
    assert module.igm_da == trained.name.endswith("-DA")
    res = evaluate_checkpoint(path, episodes=2)
    assert res["env"] == trained.env and math.isfinite(res["return_mean"])
    if trained.env == SMAX:
        assert "win_rate" in res


@pytest.mark.parametrize("name", NAMES)
def test_rollouts_respect_action_masks(name, build):
    algo = build(make_config(name, env="mpe/simple_speaker_listener"))
    assert_rollouts_respect_masks(algo.env_runner.sample(num_timesteps=200, explore=True))


@pytest.mark.parametrize("name", ["QMIX", "DMIX-DA"])
def test_reward_scale_scales_the_td_reward_only(name, build, monkeypatch):
    """`reward_scale` multiplies the reward every TD loss sees (rows as built from replay, times the scale); the
    env runners' returns stay the env's."""
    algo = build(make_config(name, env=SMAX, env_config={"sight_range": 0.0}, reward_scale=10.0))
    learner_cls = type(algo.learner_group._learner)
    built, seen = [], []
    rows_of, td = learner_cls._transition_rows, learner_cls.td_loss

    def record_rows(module, batch, *args):
        rows = rows_of(module, batch, *args)
        built.append(rows.reward.clone())
        return rows

    def record_td(self, module, config, rows):
        seen.append(rows.reward.clone())
        return td(self, module, config, rows)

    monkeypatch.setattr(learner_cls, "_transition_rows", staticmethod(record_rows))
    monkeypatch.setattr(learner_cls, "td_loss", record_td)
    results = [algo.train() for _ in range(4)]
    assert seen and len(seen) == len(built)
    assert any(bool((r != 0).any()) for r in built)  # some damage dealt, so the scale is visible
    for raw, scaled in zip(built, seen):
        torch.testing.assert_close(scaled, 10.0 * raw)
    # The env runners' return is SMAX's own: damage fractions and the win bonus, at most 2 per battle.
    assert results[-1]["env_runners"]["episode_return_mean"] <= 2.0 + 1e-6


@pytest.mark.parametrize("name", ["QMIX-DA", "QPLEX-DA", "DMIX-DA"])
def test_bootstrap_actions_learner_bootstraps_with_the_learner_agents(name, build, monkeypatch):
    """`bootstrap_actions: learner`: every TD target's a* is the learner agents' greedy action on o' (their scores
    computed from the module as it stands), not the expert agents' double-Q choice; for QMIX-DA the target mean is
    checked against r + γ(1 − d)·M^target(Q^E,target(o', a*); S') by hand."""
    algo = build(make_config(name, bootstrap_actions="learner"))
    learner_cls = type(algo.learner_group._learner)
    rows_of, choose, td = learner_cls._transition_rows, learner_cls.bootstrap_actions, learner_cls.td_loss
    seen = []

    def record_rows(module, batch, learner_next=False):
        assert learner_next
        rows = rows_of(module, batch, learner_next)
        with torch.no_grad():
            own = module.q_values(module.agent_inputs(rows.next_obs, rows.next_state))  # (B, n, A)
        torch.testing.assert_close(rows.learner_next, own)
        return rows

    def record_choice(module, config, rows):
        a = choose(module, config, rows)
        seen.append((a.clone(), greedy_actions(rows.learner_next, rows.next_mask),
                     next_actions(module.td_scores(rows.out_next), module.td_scores(rows.target_next),
                                  rows.next_mask, True)))
        return a

    def check_td(self, module, config, rows):
        loss, terms = td(self, module, config, rows)
        if name == "QMIX-DA":
            a = greedy_actions(rows.learner_next, rows.next_mask)
            with torch.no_grad():
                nxt = module.target_mixer(gather_actions(rows.target_next, a), rows.next_state)
            y = rows.reward + config.gamma * (1 - rows.terminated) * nxt
            torch.testing.assert_close(terms["td_target_mean"], y.mean())
        return loss, terms

    monkeypatch.setattr(learner_cls, "_transition_rows", staticmethod(record_rows))
    monkeypatch.setattr(learner_cls, "bootstrap_actions", staticmethod(record_choice))
    monkeypatch.setattr(learner_cls, "td_loss", check_td)
    for _ in range(4):
        algo.train()
    assert seen
    for used, learner_greedy, _ in seen:
        assert torch.equal(used, learner_greedy)
    # The two choices differ somewhere, so the check above could fail.
    assert any(not torch.equal(used, expert) for used, _, expert in seen)


def test_bootstrap_actions_learner_with_recurrent_agents(build, monkeypatch):
    """With `use_gru`, the learner agents' next-step scores come from their GRU run over the whole replay episode
    (step t + 1 of the same pass), and the TD target bootstraps with their greedy actions."""
    from rllib_mil.data.sequences import SEQ_OBS, SEQ_STATE, SEQ_VALID

    algo = build(make_config("QMIX-DA", env=SMAX, env_config={"sight_range": 0.0}, use_gru=True,
                             bootstrap_actions="learner", train_batch_size_per_learner=4, hidden=[32], gru_hidden=32))
    learner_cls = type(algo.learner_group._learner)
    rows_of, checked = learner_cls._sequence_rows, []

    def record_rows(module, batch, learner_next=False):
        rows = rows_of(module, batch, learner_next)
        valid = batch[SEQ_VALID] > 0  # (B, T)
        with torch.no_grad():
            q_all = module.q_values(module.agent_inputs(batch[SEQ_OBS], batch[SEQ_STATE]))  # (B, T+1, n, A)
        torch.testing.assert_close(rows.learner_next, q_all[:, 1:][valid])
        checked.append(rows.learner_next.shape)
        return rows

    monkeypatch.setattr(learner_cls, "_sequence_rows", staticmethod(record_rows))
    for _ in range(4):
        result = algo.train()
    assert checked and all(len(shape) == 3 for shape in checked)  # (N, n, A)
    assert math.isfinite(float(result["learners"][MODULE_ID]["td_loss"]))


def test_bootstrap_actions_learner_needs_igm_da():
    config = VALUE_DECOMPOSITION["QMIX"][1]().environment(SPREAD).training(bootstrap_actions="learner")
    with pytest.raises(ValueError, match="bootstrap_actions.*igm_da"):
        config.validate()


@pytest.mark.parametrize("name", ["QMIX", "DMIX"])
def test_act_with_target_acts_with_the_polyak_agents(name, build, tmp_path):
    """`act_with_target`: the env runners receive the target agents' weights as their acting net, the learner's own
    greedy acting uses the target agents, and a checkpoint restores and acts with them."""
    algo = build(make_config(name, env=SMAX, env_config={"sight_range": 0.0}, act_with_target=True, tau=0.05))
    for _ in range(4):
        algo.train()
    full = learner_module(algo).unwrapped()
    online, target = full.q_net.state_dict(), full._target_td_net.state_dict()
    assert any(not torch.equal(online[k], target[k]) for k in online)  # the two copies differ after updates
    er_state = env_runner_module(algo).state_dict()
    for k, v in target.items():
        torch.testing.assert_close(er_state[f"q_net.{k}"], v, msg=k)
    assert full.acting_net is full._target_td_net

    def greedy(module, net, obs):
        x = module.agent_inputs(obs[OBS], obs[STATE])
        return module.td_scores(net(x)).masked_fill(obs[ACTION_MASK] <= 0, -1e9).argmax(-1)

    seqs = algo.sample_replay_transitions(64).policy_batches[MODULE_ID]
    obs = {k: torch.as_tensor(np.asarray(seqs[Columns.OBS][k])) for k in (OBS, STATE, ACTION_MASK)}
    with torch.no_grad():
        acted = full.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
        assert torch.equal(acted, greedy(full, full._target_td_net, obs))
    path = str(tmp_path / "ckpt")
    algo.save_to_path(path)
    module, _ = load_team_module(path)
    for k, v in target.items():
        torch.testing.assert_close(module._target_td_net.state_dict()[k], v, msg=k)
    with torch.no_grad():
        assert torch.equal(module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS], acted)


def test_act_with_target_needs_a_base_algorithm():
    config = VALUE_DECOMPOSITION["QMIX-DA"][1]().environment(SPREAD).training(act_with_target=True)
    with pytest.raises(ValueError, match="act_with_target.*IGM-DA"):
        config.validate()


def test_non_finite_loss_raises(build, monkeypatch):
    algo = build(make_config("QMIX"))
    td = qmix_learner.td_loss
    monkeypatch.setattr(qmix_learner, "td_loss", lambda q_tot, y: td(q_tot, y) * float("nan"))
    with pytest.raises(FloatingPointError, match="not finite") as info:
        for _ in range(4):
            algo.train()
    assert "lr" in str(info.value)


@pytest.mark.parametrize(
    "settings,match",
    [
        ({"agent_input": "state"}, "agent_input"),
        ({"exploration": "softmax"}, "exploration"),
        ({"teach_loss": "kl"}, "teach_loss"),
        ({"teach_coef": 0}, "teach_coef"),
        ({"bootstrap_actions": "expert"}, "bootstrap_actions"),
        ({"reward_scale": 0}, "reward_scale"),
        ({"act_with_target": 1}, "act_with_target"),
        ({"reward_scale": True}, "reward_scale"),
        ({"replay_buffer_config": {"type": "PrioritizedEpisodeReplayBuffer"}}, "uniformly"),
        ({"igm_da": 1}, "igm_da"),
        ({"dagger_beta": 1.5}, "dagger_beta"),
        ({"dagger_beta": [[0, 1.0], [100, -0.1]]}, "dagger_beta"),
        ({"dagger_beta": [[0]]}, "dagger_beta"),
        ({"expert_gru": 1}, "expert_gru"),
        ({"expert_gru": True}, "expert_gru"),  # without use_gru (and, for QMIX, without IGM-DA)
    ],
)
def test_bad_settings_fail_validation(settings, match):
    for name in ("QMIX", "QMIX-DA"):
        config = VALUE_DECOMPOSITION[name][1]().environment(SPREAD).training(**settings)
        with pytest.raises(ValueError, match=match):
            config.validate()
    VALUE_DECOMPOSITION["QMIX"][1]().environment(SPREAD).validate()  # positive control


# ------------------------------------------------------------------------------------------------ recurrent
@pytest.mark.parametrize("name", NAMES)
def test_recurrent_agents_train_on_whole_episodes(name, build, tmp_path):
    """use_gru: the acting agents are GRUs carried step to step on the env runners; updates draw whole replay
    episodes (SMAX 3m, sight 0, episodes of different lengths), and checkpoints evaluate with the recurrent state."""
    algo = build(make_config(name, env=SMAX, env_config={"sight_range": 0.0}, use_gru=True,
                             train_batch_size_per_learner=4, hidden=[32], gru_hidden=32))
    for _ in range(4):
        result = algo.train()
    stats = result["learners"][MODULE_ID]
    assert math.isfinite(float(stats["td_loss"])) and float(stats["replay_rows"]) > 4  # 4 episodes, many steps
    assert env_runner_module(algo).is_stateful()
    assert_smax_checkpoint_evaluates(algo, tmp_path)


@pytest.mark.parametrize("name", ["QMIX", "DMIX-DA"])
def test_recurrent_padding_never_reaches_the_loss(name, build):
    """Garbage in the padded steps of a replay sequence batch changes neither the rows nor the loss."""
    from rllib_mil.data.sequences import (
        SEQ_ACTIONS, SEQ_MASK, SEQ_OBS, SEQ_REWARDS, SEQ_STATE, SEQ_TERMINATED, SEQ_VALID)

    algo = build(make_config(name, env=SMAX, env_config={"sight_range": 0.0}, use_gru=True, hidden=[32],
                             gru_hidden=32))
    for _ in range(3):
        algo.train()
    seqs = algo.sample_replay_sequences(6).policy_batches[MODULE_ID]
    batch = {k: torch.as_tensor(np.asarray(seqs[k])) for k in (SEQ_OBS, SEQ_STATE, SEQ_MASK, SEQ_ACTIONS,
                                                                SEQ_TERMINATED, SEQ_VALID, SEQ_REWARDS)}
    lengths = batch[SEQ_VALID].sum(1).long()
    assert lengths.min() < lengths.max()  # some padding to corrupt
    learner = algo.learner_group._learner
    module = learner_module(algo).unwrapped()

    def loss_of(b):
        torch.manual_seed(0)
        rows = learner._sequence_rows(module, b)
        loss, _ = learner.td_loss(module, algo.config, rows)
        return rows, loss

    rows, loss = loss_of(batch)
    bad = {k: v.clone() for k, v in batch.items()}
    for b, L in enumerate(lengths.tolist()):
        bad[SEQ_OBS][b, L + 1:] = 1e3
        bad[SEQ_STATE][b, L + 1:] = -1e3
        bad[SEQ_ACTIONS][b, L:] = 1
        bad[SEQ_REWARDS][b, L:] = 77.0
        bad[SEQ_TERMINATED][b, L:] = 1.0
    rows2, loss2 = loss_of(bad)
    assert rows.actions.shape[0] == int(lengths.sum())
    assert torch.equal(rows.reward, rows2.reward) and torch.allclose(rows.out, rows2.out)
    assert torch.allclose(loss, loss2)


def test_expert_gru_needs_a_recurrent_igm_da():
    """expert_gru: the recurrent expert agents exist only in IGM-DA with use_gru."""
    da = VALUE_DECOMPOSITION["QMIX-DA"][1]
    da().environment(SPREAD).training(use_gru=True, expert_gru=True).validate()  # positive controls
    da().environment(SPREAD).training(use_gru=True, expert_gru=True, dagger_beta=0.5).validate()
    with pytest.raises(ValueError, match="igm_da=True"):
        VALUE_DECOMPOSITION["QMIX"][1]().environment(SPREAD).training(use_gru=True, expert_gru=True).validate()
    with pytest.raises(ValueError, match="use_gru=True"):
        da().environment(SPREAD).training(expert_gru=True).validate()


def test_recurrent_expert_agents_act_with_their_carried_state():
    """expert_gru with the β-mixture: the env runners carry the expert agents' recurrent state beside the learner
    agents'. At β = 1 the actions stepped one env step at a time are the greedy actions of the expert GRU run over
    the whole history (so they depend on it); greedy evaluation (the learner agents) passes the expert state through
    unchanged, so every step's state has the same keys."""
    from rllib_mil.algorithms.value_decomposition.vd_rl_module import EXPERT_GRU_STATE
    from rllib_mil.envs import make_team_env
    from rllib_mil.modules.soft import greedy_actions
    from rllib_mil.modules.team_module import GRU_STATE

    config = make_config("QMIX-DA", env=SMAX, env_config={"sight_range": 0.0}, use_gru=True, expert_gru=True,
                         dagger_beta=1.0, epsilon=[[0, 0.0]], hidden=[16], gru_hidden=8)
    env = make_team_env(SMAX, {"sight_range": 0.0})
    module = config.get_rl_module_spec(env=env).build()
    assert set(module.get_initial_state()) == {GRU_STATE, EXPERT_GRU_STATE}
    assert "expert_net" not in module.get_non_inference_attributes()  # it acts on the env runners
    obs, _ = env.reset(seed=3)
    steps, state = [], {k: torch.as_tensor(v)[None] for k, v in module.get_initial_state().items()}
    with torch.no_grad():
        for t in range(4):
            batch = {Columns.OBS: {k: torch.as_tensor(v)[None, None] for k, v in obs.items()}, Columns.STATE_IN: state}
            out = module.forward_exploration(batch, t=t)
            inf = module.forward_inference(batch)
            assert set(inf[Columns.STATE_OUT]) == set(state)
            assert torch.equal(inf[Columns.STATE_OUT][EXPERT_GRU_STATE], state[EXPERT_GRU_STATE])
            steps.append(obs)
            state = out[Columns.STATE_OUT]
            obs, *_ = env.step(out[Columns.ACTIONS][0, 0].numpy())
        seq = {k: torch.as_tensor(np.stack([o[k] for o in steps]))[None] for k in (OBS, STATE, ACTION_MASK)}
        whole = module.td_scores(module.td_values(seq[OBS], seq[STATE]))  # (1, T, n, A) from the zero state
        assert torch.allclose(out[Columns.STATE_OUT][EXPERT_GRU_STATE],  # step by step = over the sequence
                              module.expert_net(module.td_inputs(seq[OBS], seq[STATE]),
                                                module.zero_state(seq[OBS]))[1], atol=1e-6)
        last = greedy_actions(whole[:, -1], seq[ACTION_MASK][:, -1])
        assert torch.equal(out[Columns.ACTIONS][0, 0], last[0])
        alone = module.td_scores(module.td_values(seq[OBS][:, -1:], seq[STATE][:, -1:]))
        assert not torch.allclose(whole[:, -1], alone[:, 0])  # the history reached the last step's scores
    env.close()


def test_recurrent_expert_agents_in_the_beta_mixture_train_and_evaluate(build, tmp_path):
    """expert_gru with dagger_beta 0.5 end to end: the env runners sample with both recurrent states, the learner
    trains on whole episodes, and the checkpoint evaluates (learner agents, expert state passed through)."""
    from rllib_mil.algorithms.value_decomposition.vd_rl_module import EXPERT_GRU_STATE

    algo = build(make_config("QMIX-DA", env=SMAX, env_config={"sight_range": 0.0}, use_gru=True, expert_gru=True,
                             dagger_beta=0.5, train_batch_size_per_learner=4, hidden=[32], gru_hidden=32))
    for _ in range(3):
        result = algo.train()
    stats = result["learners"][MODULE_ID]
    assert math.isfinite(float(stats["td_loss"])) and math.isfinite(float(stats["teach_loss"]))
    assert EXPERT_GRU_STATE in env_runner_module(algo).get_initial_state()
    assert_smax_checkpoint_evaluates(algo, tmp_path)


@pytest.mark.parametrize("name", ["QMIX-DA", "DMIX-DA"])
def test_recurrent_expert_agents_train_on_whole_episodes(name, build):
    """expert_gru: the expert agents are a GRU over (global state, own obs); the TD loss and the teach targets run it
    over whole replay episodes from the zero state, so a step's expert values depend on the steps before it."""
    from rllib_mil.data.sequences import SEQ_OBS, SEQ_STATE, SEQ_VALID
    from rllib_mil.modules.agent_nets import SharedAgentGRUNet

    algo = build(make_config(name, env=SMAX, env_config={"sight_range": 0.0}, use_gru=True, expert_gru=True,
                             train_batch_size_per_learner=4, hidden=[32], gru_hidden=32))
    module = learner_module(algo).unwrapped()
    assert isinstance(module.expert_net, SharedAgentGRUNet) and module.td_recurrent
    before = [p.detach().clone() for p in module.expert_net.parameters()]
    for _ in range(4):
        result = algo.train()
    stats = result["learners"][MODULE_ID]
    assert math.isfinite(float(stats["td_loss"])) and math.isfinite(float(stats["teach_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, module.expert_net.parameters()))  # TD trains it
    seqs = algo.sample_replay_sequences(2).policy_batches[MODULE_ID]
    obs, state = (torch.as_tensor(np.asarray(seqs[k])) for k in (SEQ_OBS, SEQ_STATE))  # (B, T+1, ...)
    assert float(torch.as_tensor(np.asarray(seqs[SEQ_VALID]))[:, 1].min()) > 0  # every episode has a step 1
    with torch.no_grad():
        whole = module.td_values(obs, state)  # (B, T+1, n, out)
        alone = module.td_values(obs[:, 1:2], state[:, 1:2])  # step 1 run from the zero state, no history
    assert whole.shape[:3] == (obs.shape[0], obs.shape[1], 3)
    assert not torch.allclose(whole[:, 1], alone[:, 0])  # the history of step 0 reached step 1's values
    assert "expert_net" in module.get_non_inference_attributes()  # stays on the learner

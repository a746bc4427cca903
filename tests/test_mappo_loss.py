"""MAPPO's loss (pure function) against hand computation, per-agent clipping, masks; the value normaliser."""
import math

import numpy as np
import pytest
import torch

from rllib_mil.algorithms.mappo.mappo_loss import agent_log_probs, mappo_loss
from rllib_mil.modules.normalization import ValueNormalizer
from rllib_mil.modules.soft import masked_q

KW = dict(clip_param=0.2, vf_loss_coeff=0.5, entropy_coeff=0.01, huber_delta=None)


def _log_softmax(x):
    x = np.asarray(x, dtype=np.float64)
    return x - np.log(np.exp(x - x.max()).sum()) - x.max()


def test_matches_hand_computation():
    # One step, two agents, three actions.
    logits = torch.tensor([[[1.0, 0.0, -1.0], [0.2, 0.3, 0.1]]], requires_grad=True)  # (B=1, n=2, A=3)
    old = torch.tensor([[[0.0, 0.0, 0.0], [0.2, 0.3, 0.1]]])
    actions = torch.tensor([[0, 2]])
    adv, v, target = torch.tensor([2.0]), torch.tensor([0.5]), torch.tensor([1.5])
    loss, terms = mappo_loss(logits=logits, old_logits=old, actions=actions, advantages=adv, values=v,
                             value_targets=target, valid=None, **KW)

    surr, ent, kl = [], [], []
    for i, a in enumerate([0, 2]):
        lp, olp = _log_softmax(logits[0, i].detach().numpy()), _log_softmax(old[0, i].numpy())
        ratio = math.exp(lp[a] - olp[a])
        surr.append(min(ratio * 2.0, min(max(ratio, 0.8), 1.2) * 2.0))
        ent.append(-(np.exp(lp) * lp).sum())
        kl.append((np.exp(olp) * (olp - lp)).sum())
    # Agent 0's ratio is exp(1 - lse(1,0,-1)) / (1/3) = 1.99 -> clipped at 1.2; agent 1's is 1.
    assert surr[0] == pytest.approx(1.2 * 2.0) and surr[1] == pytest.approx(2.0)
    expected = -np.mean(surr) + 0.5 * (0.5 * 1.0**2) - 0.01 * np.mean(ent)
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    assert terms["policy_loss"].item() == pytest.approx(-np.mean(surr), rel=1e-6)
    assert terms["vf_loss"].item() == pytest.approx(0.5)
    assert terms["entropy"].item() == pytest.approx(np.mean(ent), rel=1e-6)
    assert terms["mean_kl"].item() == pytest.approx(np.mean(kl), rel=1e-5)
    assert terms["clip_fraction"].item() == pytest.approx(0.5)


def test_each_agent_is_clipped_on_its_own():
    """Agent 0 is past the clip (no policy gradient), agent 1 is not: the joint ratio would couple them."""
    logits = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]], requires_grad=True)
    old = torch.zeros(1, 2, 2)
    mappo_loss(logits=logits, old_logits=old, actions=torch.tensor([[0, 0]]), advantages=torch.tensor([1.0]),
               values=torch.zeros(1), value_targets=torch.zeros(1), valid=None,
               **{**KW, "entropy_coeff": 0.0})[0].backward()
    assert torch.all(logits.grad[0, 0] == 0.0)
    assert torch.all(logits.grad[0, 1].abs() > 0.0)


def test_masked_actions_carry_no_probability_and_no_gradient():
    raw = torch.randn(4, 2, 5, requires_grad=True)
    mask = torch.ones(4, 2, 5)
    mask[:, 0, 3:] = 0.0  # agent 0 has 3 real actions (speaker-style padding)
    logits = masked_q(raw, mask)
    actions = torch.tensor([[2, 4]] * 4)
    loss, terms = mappo_loss(logits=logits, old_logits=logits.detach(), actions=actions,
                             advantages=torch.randn(4), values=torch.zeros(4), value_targets=torch.ones(4),
                             valid=None, **KW)
    loss.backward()
    assert torch.all(raw.grad[:, 0, 3:] == 0.0)
    _, log_p = agent_log_probs(logits, actions)
    assert torch.all(log_p[:, 0, 3:].exp() == 0.0)
    assert torch.isfinite(loss) and terms["entropy"].item() <= (math.log(3) + math.log(5)) / 2 + 1e-6


def test_invalid_rows_do_not_count():
    torch.manual_seed(0)
    B, n, A = 6, 3, 4
    args = dict(logits=torch.randn(B, n, A), old_logits=torch.randn(B, n, A), actions=torch.randint(0, A, (B, n)),
                advantages=torch.randn(B), values=torch.randn(B), value_targets=torch.randn(B))
    valid = torch.tensor([True, True, False, True, False, True])
    ref, _ = mappo_loss(**args, valid=valid, **KW)
    changed = {k: v.clone() for k, v in args.items()}
    for k in ("logits", "old_logits", "advantages", "values", "value_targets"):
        changed[k][~valid] = 100.0
    assert mappo_loss(**changed, valid=valid, **KW)[0].item() == pytest.approx(ref.item(), rel=1e-6)
    only = {k: v[valid] for k, v in args.items()}
    assert mappo_loss(**only, valid=None, **KW)[0].item() == pytest.approx(ref.item(), rel=1e-6)
    # Recurrent batches are (B, T, ...): the same rows laid out as (2, 3) give the same loss.
    seq = {k: v.reshape(2, 3, *v.shape[1:]) for k, v in args.items()}
    assert mappo_loss(**seq, valid=valid.reshape(2, 3), **KW)[0].item() == pytest.approx(ref.item(), rel=1e-6)


def test_huber_value_loss_and_cap():
    z = dict(logits=torch.zeros(2, 1, 2), old_logits=torch.zeros(2, 1, 2), actions=torch.zeros(2, 1, dtype=torch.long),
             advantages=torch.zeros(2), values=torch.tensor([0.0, 0.0]), value_targets=torch.tensor([0.5, 4.0]),
             valid=None, clip_param=0.2, vf_loss_coeff=1.0, entropy_coeff=0.0)
    _, t = mappo_loss(**z, huber_delta=1.0)
    assert t["vf_loss"].item() == pytest.approx((0.5 * 0.25 + (4.0 - 0.5)) / 2)
    _, t = mappo_loss(**z, huber_delta=None)
    assert t["vf_loss"].item() == pytest.approx((0.5 * 0.25 + 0.5 * 16.0) / 2)
    _, t = mappo_loss(**z, huber_delta=None, vf_clip_param=1.0)
    assert t["vf_loss"].item() == pytest.approx((0.5 * 0.25 + 1.0) / 2)


def test_shape_errors_name_the_tensor():
    with pytest.raises(ValueError, match="advantages"):
        mappo_loss(logits=torch.zeros(3, 2, 4), old_logits=torch.zeros(3, 2, 4), actions=torch.zeros(3, 2),
                   advantages=torch.zeros(3, 5), values=torch.zeros(3), value_targets=torch.zeros(3), valid=None,
                   **KW)
    with pytest.raises(ValueError, match="got values"):  # per-agent advantages need per-agent values
        mappo_loss(logits=torch.zeros(3, 2, 4), old_logits=torch.zeros(3, 2, 4), actions=torch.zeros(3, 2),
                   advantages=torch.zeros(3, 2), values=torch.zeros(3), value_targets=torch.zeros(3), valid=None,
                   **KW)


def test_agent_credit_gives_each_agent_its_own_advantage_and_value():
    """credit="agent": agent i's surrogate uses Â_i, and the value loss averages over steps and agents."""
    logits = torch.tensor([[[1.0, 0.0, -1.0], [0.2, 0.3, 0.1]]], requires_grad=True)  # (1, 2, 3)
    old = torch.tensor([[[0.9, 0.0, -1.0], [0.2, 0.3, 0.1]]])  # ratios inside the clip range
    adv, v, target = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, 0.0]]), torch.tensor([[1.5, 2.0]])
    loss, terms = mappo_loss(logits=logits, old_logits=old, actions=torch.tensor([[0, 2]]), advantages=adv,
                             values=v, value_targets=target, valid=None, **KW)
    surr = []
    for i, a in enumerate([0, 2]):
        lp, olp = _log_softmax(logits[0, i].detach().numpy()), _log_softmax(old[0, i].numpy())
        ratio, A = math.exp(lp[a] - olp[a]), adv[0, i].item()
        surr.append(min(ratio * A, min(max(ratio, 0.8), 1.2) * A))
    assert terms["policy_loss"].item() == pytest.approx(-np.mean(surr), rel=1e-6)
    assert terms["vf_loss"].item() == pytest.approx(np.mean([0.5 * 1.0**2, 0.5 * 2.0**2]))
    # Agent 1's advantage is negative: its gradient pushes its action's logit down, agent 0's up.
    logits.grad = None
    loss.backward()
    assert logits.grad[0, 0, 0] < 0 < logits.grad[0, 1, 2]


def test_agent_gae_matches_a_hand_recursion():
    """Per-agent GAE (RLlib's recursion, one column per agent), over a terminated episode of 3 steps + its
    bootstrap row and a truncated chunk of 2 steps + its bootstrap row."""
    from rllib_mil.algorithms.mappo.agent_credit import agent_gae

    gamma, lam = 0.9, 0.8
    rng = np.random.default_rng(0)
    values = rng.normal(size=(7, 2)).astype(np.float32)
    rewards = rng.normal(size=(7, 2)).astype(np.float32)
    rewards[[3, 6]] = 0.0  # bootstrap rows carry no reward
    term = np.array([0, 0, 1, 0, 0, 0, 0], np.float32)
    trunc = np.array([0, 0, 0, 0, 0, 1, 0], np.float32)
    adv, targets = agent_gae(values, rewards, term, trunc, gamma, lam)
    want = np.zeros((7, 2))
    for lo, hi, last_v_valid in ((0, 3, False), (4, 6, True)):  # real rows of each chunk
        for i in range(2):
            run = 0.0
            for t in reversed(range(lo, hi)):
                v_next = values[t + 1, i] if (t + 1 < hi or last_v_valid) else 0.0
                run = rewards[t, i] + gamma * v_next - values[t, i] + gamma * lam * run
                want[t, i] = run
    real = [0, 1, 2, 4, 5]
    np.testing.assert_allclose(targets[real], want[real] + values[real], rtol=1e-5, atol=1e-5)
    raw = targets - values
    np.testing.assert_allclose(adv, (raw - raw.mean()) / raw.std(), rtol=1e-5, atol=1e-5)


def test_episode_agent_rewards_align_with_steps():
    from rllib_mil.algorithms.mappo.agent_credit import episode_agent_rewards
    from rllib_mil.envs import INFO_AGENT_REWARDS

    infos = [{}, {INFO_AGENT_REWARDS: [1.0, 2.0]}, {INFO_AGENT_REWARDS: [3.0, 4.0]}, {INFO_AGENT_REWARDS: [3.0, 4.0]}]
    # 2 real steps (rewards in infos[1], infos[2]) + PPO's bootstrap row (reward 0)
    np.testing.assert_array_equal(episode_agent_rewards(infos, 3), [[1, 2], [3, 4], [0, 0]])
    with pytest.raises(ValueError, match="credit='team'"):
        episode_agent_rewards([{}, {}, {}], 3)


def test_value_normalizer():
    norm = ValueNormalizer(beta=0.99)
    x = torch.tensor([-3.0, 7.5])
    assert torch.equal(norm.normalize(x), x)  # identity before any update
    gen = torch.Generator().manual_seed(0)
    for _ in range(2000):
        norm.update(-40.0 + 5.0 * torch.randn(256, generator=gen))
    mean, std = norm.mean_std()
    assert mean.item() == pytest.approx(-40.0, abs=0.5) and std.item() == pytest.approx(5.0, rel=0.05)
    y = torch.randn(10, 3)
    torch.testing.assert_close(norm.normalize(norm.denormalize(y)), y)
    # Debiasing: after a single update the statistics are that batch's, not shrunk towards 0.
    fresh = ValueNormalizer()
    fresh.update(torch.tensor([10.0, 12.0]))
    assert fresh.mean_std()[0].item() == pytest.approx(11.0, rel=1e-6)
    with pytest.raises(ValueError, match="beta"):
        ValueNormalizer(beta=1.0)


def test_factored_logits_are_a_product_of_categoricals():
    from rllib_mil.modules.agent_nets import FactoredLogits

    torch.manual_seed(0)
    f = FactoredLogits([5, 10])
    heads = torch.randn(4, 2, 15)  # (B, n, 5 + 10)
    flat = f(heads)  # (B, n, 50)
    assert flat.shape == (4, 2, 50)
    logp = flat.log_softmax(-1)
    move, word = heads[..., :5].log_softmax(-1), heads[..., 5:].log_softmax(-1)
    for a in (0, 7, 23, 49):  # a = move + 5 * word, as MPE simple_reference
        torch.testing.assert_close(logp[..., a], move[..., a % 5] + word[..., a // 5])
    # greedy flat action = each head's argmax; entropy = sum of the heads' entropies
    greedy = flat.argmax(-1)
    assert torch.equal(greedy % 5, heads[..., :5].argmax(-1)) and torch.equal(greedy // 5, heads[..., 5:].argmax(-1))
    ent = -(logp.exp() * logp).sum(-1)
    torch.testing.assert_close(ent, -(move.exp() * move).sum(-1) - (word.exp() * word).sum(-1))
    # masked flat actions keep probability 0 after the factored sum
    mask = torch.ones(4, 2, 50)
    mask[..., 5:] = 0  # only word 0 available
    p = masked_q(flat, mask).softmax(-1)
    assert float(p[..., 5:].sum()) == 0.0
    # three factors, mixed radix with the first fastest
    g = FactoredLogits([2, 3, 4])
    h = torch.randn(1, 9)
    out = g(h)
    a = 1 + 2 * (2 + 3 * 3)
    torch.testing.assert_close(out[0, a], h[0, 1] + h[0, 2 + 2] + h[0, 5 + 3])
    with pytest.raises(ValueError, match="expects 15 logits"):
        f(torch.zeros(1, 50))


def test_factor_log_probs_are_the_factor_marginals():
    """The word marginal of a factored flat action sums the flat probabilities over the other factors."""
    from rllib_mil.algorithms.mappo.mappo_loss import factor_log_probs

    torch.manual_seed(1)
    log_p = torch.randn(3, 2, 50).log_softmax(-1)  # (B, n, 5 moves x 10 words), not a product: any distribution
    p = log_p.exp()
    word = factor_log_probs(log_p, [5, 10], 1).exp()  # (B, n, 10)
    move = factor_log_probs(log_p, [5, 10], 0).exp()  # (B, n, 5)
    for w in (0, 4, 9):
        torch.testing.assert_close(word[..., w], sum(p[..., m + 5 * w] for m in range(5)))
    for m in (0, 3):
        torch.testing.assert_close(move[..., m], sum(p[..., m + 5 * w] for w in range(10)))
    # three factors, first fastest: a = a0 + 2 * (a1 + 3 * a2)
    lp3 = torch.randn(24).log_softmax(-1)
    mid = factor_log_probs(lp3, [2, 3, 4], 1).exp()
    torch.testing.assert_close(mid[2], sum(lp3.exp()[a0 + 2 * (2 + 3 * a2)] for a0 in range(2) for a2 in range(4)))


def test_positive_signalling_loss_by_hand():
    """L^ps = -H(mean speaker) + (mean H(speaker | o) - H_target)^2 over valid rows only; its minimum is a
    deterministic word per observation with every word used."""
    from rllib_mil.algorithms.mappo.mappo_loss import positive_signalling_loss

    probs = torch.tensor([
        [[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]],
        [[0.3, 0.3, 0.4], [0.5, 0.25, 0.25]],
        [[1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05]],  # this step is padding: left out
    ])  # (B=3, n=2, M=3)
    valid = torch.tensor([True, True, False])
    loss, h_mean, h_cond = positive_signalling_loss(probs.log(), valid, target_entropy=0.5)
    rows = probs[:2].reshape(-1, 3)
    ent = lambda q: float(-(q * q.log()).sum(-1).mean())  # noqa: E731
    avg = rows.mean(0)
    assert float(h_mean) == pytest.approx(ent(avg), rel=1e-6)
    assert float(h_cond) == pytest.approx(ent(rows), rel=1e-6)
    assert float(loss) == pytest.approx(-ent(avg) + (ent(rows) - 0.5) ** 2, rel=1e-6)
    # informative speakers score lower than a speaker who says the same thing everywhere
    eye = torch.eye(3).clamp(min=1e-6)[None].expand(2, 3, 3)  # each agent row says a different word
    same = torch.tensor([0.98, 0.01, 0.01]).expand(2, 3, 3)
    informative, _, _ = positive_signalling_loss(eye.log(), None, 0.0)
    constant, _, _ = positive_signalling_loss(same.log(), None, 0.0)
    assert float(informative) < float(constant)
    assert float(informative) == pytest.approx(-math.log(3), abs=1e-3)

"""Mixers (Theorem 4.3: monotone and convex), the masked soft-Q helpers, and the shared agent net."""
import math

import pytest
import torch

from rllib_mil.modules import (
    MIXERS,
    HyperMonotoneMixer,
    Mixer,
    SharedAgentQNet,
    SumMixer,
    WeightedSumMixer,
    boltzmann_sample,
    greedy_actions,
    make_mixer,
    masked_q,
    soft_value,
)

N, S = 4, 6  # agents, state dim


def _monotone_convex_mixers():
    torch.manual_seed(0)
    return [
        SumMixer(N, S),
        WeightedSumMixer([0.0, 0.5, 1.0, 3.0], state_dim=S),
        HyperMonotoneMixer(N, S, embed_dim=8, hypernet_hidden=16),
        HyperMonotoneMixer(N, S),  # default sizes
        # MIFQ's default: normalised weights with a uniform floor, no hypernetwork biases.
        HyperMonotoneMixer(N, S, embed_dim=8, hypernet_hidden=16, normalize=True, bias=False, min_weight=0.5),
    ]


def test_normalised_mixer_keeps_every_agent_and_vdn_scale():
    torch.manual_seed(1)
    m = HyperMonotoneMixer(N, S, embed_dim=8, hypernet_hidden=16, normalize=True, bias=False, min_weight=0.5)
    state = torch.randn(32, S)
    x = torch.rand(32, N) + 0.1  # positive inputs: ELU is the identity there
    # No bias and weights summing to n over agents: equal inputs c give exactly n * c (the VDN value).
    c = torch.full((32, N), 0.7)
    torch.testing.assert_close(m(c, state), torch.full((32,), N * 0.7), rtol=1e-4, atol=1e-4)
    # Every agent keeps at least min_weight of its VDN weight: dM/dx_i >= 0.5 for positive inputs.
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(m(x, state).sum(), x)
    assert (grad >= 0.5 - 1e-4).all(), grad.min()
    with pytest.raises(ValueError, match="min_weight"):
        HyperMonotoneMixer(N, S, min_weight=0.5)  # a floor needs normalised weights


# ---------------------------------------------------------------- shape checks


def test_shape_checks_raise_with_clear_messages():
    m = HyperMonotoneMixer(N, S, embed_dim=8, hypernet_hidden=16)
    x, s = torch.randn(5, N), torch.randn(5, S)
    assert m(x, s).shape == (5,)
    with pytest.raises(ValueError, match=r"x of shape \(B, n_agents=4\), got \(5, 3\)"):
        m(torch.randn(5, 3), s)
    with pytest.raises(ValueError, match=r"x of shape \(B, n_agents=4\), got \(5, 4, 1\)"):
        m(torch.randn(5, N, 1), s)
    with pytest.raises(ValueError, match=r"state of shape \(B, state_dim=6\), got \(5, 7\)"):
        m(x, torch.randn(5, 7))
    with pytest.raises(ValueError, match=r"pass state of shape \(B, 6\)"):
        m(x, None)
    with pytest.raises(ValueError, match="batch size"):
        m(x, torch.randn(4, S))


def test_mix_output_shape_is_checked():
    class Bad(Mixer):
        def mix(self, x, state):
            return x.sum(-1, keepdim=True)  # (B, 1): wrong

    with pytest.raises(RuntimeError, match=r"Bad.mix must return shape \(5,\), got \(5, 1\)"):
        Bad(N)(torch.randn(5, N))


def test_stateless_mixers_accept_no_state():
    x = torch.randn(3, N)
    assert torch.allclose(SumMixer(N)(x), x.sum(-1))
    assert torch.allclose(SumMixer(N, S)(x, torch.randn(3, S)), x.sum(-1))


# ---------------------------------------------------------------- Theorem 4.3: monotone and convex


@pytest.mark.parametrize("mixer", _monotone_convex_mixers(), ids=lambda m: type(m).__name__)
def test_monotone_in_every_input(mixer):
    assert mixer.monotone_convex
    mixer = mixer.double()
    torch.manual_seed(1)
    x = (3 * torch.randn(256, N, dtype=torch.float64)).requires_grad_()
    s = 3 * torch.randn(256, S, dtype=torch.float64)
    (grad,) = torch.autograd.grad(mixer(x, s).sum(), x)  # rows are independent, so this is ∂M(x_b)/∂x_b
    assert (grad >= 0).all(), grad.min()


@pytest.mark.parametrize("mixer", _monotone_convex_mixers(), ids=lambda m: type(m).__name__)
def test_convex_along_random_segments(mixer):
    mixer = mixer.double()
    torch.manual_seed(2)
    for _ in range(5):  # several random states, each shared by a batch of random segments
        s = (3 * torch.randn(1, S, dtype=torch.float64)).expand(512, S)
        x0, x1 = 3 * torch.randn(2, 512, N, dtype=torch.float64)
        for t in (0.1, 0.3, 0.5, 0.8):
            lhs = mixer((1 - t) * x0 + t * x1, s)
            rhs = (1 - t) * mixer(x0, s) + t * mixer(x1, s)
            assert (lhs <= rhs + 1e-10).all(), (lhs - rhs).max()


def test_hyper_mixer_is_not_linear():
    """Sanity check that the convexity test has something to find: ELU makes the midpoint gap strictly > 0."""
    torch.manual_seed(3)
    m = HyperMonotoneMixer(N, S, embed_dim=8, hypernet_hidden=16).double()
    s = torch.randn(512, S, dtype=torch.float64)
    x0, x1 = 3 * torch.randn(2, 512, N, dtype=torch.float64)
    gap = (m(x0, s) + m(x1, s)) / 2 - m((x0 + x1) / 2, s)
    assert gap.max() > 1e-3


def test_hyper_mixer_matches_eq7_by_hand():
    """Hypernets with zero weights output their last biases, so the mixer is eq. 7 with known W1, b1, W2, b2."""
    m = HyperMonotoneMixer(n_agents=2, state_dim=3, embed_dim=2, hypernet_hidden=4)
    with torch.no_grad():
        for net in (m.hyper_w1, m.hyper_b1, m.hyper_w2, m.hyper_b2):
            net[-1].weight.zero_()
        m.hyper_w1[-1].bias.copy_(torch.tensor([1.0, -2.0, 0.5, 0.0]))  # W1 = [[1, -2], [0.5, 0]] -> |W1|
        m.hyper_b1[-1].bias.copy_(torch.tensor([-1.0, 0.5]))
        m.hyper_w2[-1].bias.copy_(torch.tensor([-3.0, 2.0]))  # |W2| = [3, 2]
        m.hyper_b2[-1].bias.copy_(torch.tensor([0.25]))
    x = torch.tensor([[2.0, -4.0]])
    # X·|W1| + b1 = [2*1 - 4*0.5 - 1, 2*2 - 4*0 + 0.5] = [-1, 4.5]; ELU -> [e^-1 - 1, 4.5]
    expected = (math.exp(-1) - 1) * 3 + 4.5 * 2 + 0.25
    assert m(x, torch.randn(1, 3)).item() == pytest.approx(expected, rel=1e-6)


def test_weighted_sum_mixer():
    w = torch.tensor([0.0, 0.5, 1.0, 3.0])
    x = torch.randn(7, N)
    assert torch.allclose(WeightedSumMixer(w)(x), (x * w).sum(-1))
    assert torch.allclose(WeightedSumMixer([2.0, 1.0])(torch.tensor([[1.0, -3.0]])), torch.tensor([-1.0]))
    with pytest.raises(ValueError, match="non-negative"):
        WeightedSumMixer([1.0, -0.1])


def test_registry():
    assert set(MIXERS) == {"none", "vdn", "mifq"}
    assert make_mixer("none", N, S) is None
    assert isinstance(make_mixer("vdn", N, S), SumMixer)
    m = make_mixer("mifq", N, S, embed_dim=4, hypernet_hidden=8)
    assert isinstance(m, HyperMonotoneMixer) and m.embed_dim == 4
    assert m(torch.randn(2, N), torch.randn(2, S)).shape == (2,)
    with pytest.raises(ValueError, match=r"unknown mixer 'qmixx'.*'mifq'.*'none'.*'vdn'"):
        make_mixer("qmixx", N, S)


# ---------------------------------------------------------------- masked soft-Q helpers


def test_masked_q_is_finite_with_finite_gradients():
    q = torch.randn(3, 2, 5, requires_grad=True)
    mask = torch.ones(3, 2, 5)
    mask[..., 1] = 0
    out = masked_q(q, mask)
    assert torch.isfinite(out).all() and (out[..., 1] < -1e8).all()
    (grad,) = torch.autograd.grad(soft_value(q, mask, 0.01).sum(), q)
    assert torch.isfinite(grad).all() and (grad[..., 1] == 0).all()


def test_boltzmann_never_samples_a_masked_action():
    q = torch.tensor([[[10.0, 0.0, 0.5, -1.0], [0.0, 50.0, 0.0, 0.0]]])  # (1, 2, 4): masked actions have the top Q
    mask = torch.tensor([[[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 1.0, 0.0]]])
    q, mask = q.expand(5000, 2, 4), mask.expand(5000, 2, 4)
    g = torch.Generator().manual_seed(0)
    for alpha in (0.1, 1.0, 100.0):
        a = boltzmann_sample(q, mask, alpha, generator=g)
        assert a.shape == (5000, 2) and a.dtype == torch.int64
        assert (mask.gather(-1, a.unsqueeze(-1)) == 1).all()
    # Frequencies follow softmax(Q/α) over the available actions (agent 1 at α=1: actions 0 and 2, equal Q).
    a = boltzmann_sample(q, mask, 1.0, generator=g)
    assert abs((a[:, 1] == 0).float().mean().item() - 0.5) < 0.05
    # Same generator seed -> same draws.
    a1 = boltzmann_sample(q, mask, 1.0, generator=torch.Generator().manual_seed(7))
    a2 = boltzmann_sample(q, mask, 1.0, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a1, a2)


def test_greedy_respects_mask():
    q = torch.tensor([[[3.0, 2.0, 1.0], [0.0, 5.0, 4.0]]])
    mask = torch.tensor([[[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]]])
    assert greedy_actions(q, mask).tolist() == [[1, 2]]
    assert greedy_actions(q, None).tolist() == [[0, 1]]
    assert greedy_actions(q, mask.bool()).tolist() == [[1, 2]]


def test_soft_value_by_hand():
    q = torch.tensor([[[1.0, 2.0, 100.0], [0.0, 0.0, 0.0]]])  # (1, 2, 3)
    mask = torch.tensor([[[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]]])
    alpha = 0.5
    v = soft_value(q, mask, alpha)
    assert v.shape == (1, 2)
    hand0 = 0.5 * math.log(math.exp(1.0 / 0.5) + math.exp(2.0 / 0.5))  # the masked 100 does not count
    hand1 = 0.5 * math.log(3.0)
    assert v[0, 0].item() == pytest.approx(hand0, rel=1e-6)
    assert v[0, 1].item() == pytest.approx(hand1, rel=1e-6)
    # α -> 0: the soft value tends to the max over available actions (from above, within α·log|A|).
    for a in (1e-1, 1e-2, 1e-3):
        v = soft_value(q, mask, a)
        assert torch.allclose(v, torch.tensor([[2.0, 0.0]]), atol=a * math.log(3) + 1e-6)
        assert (v >= torch.tensor([[2.0, 0.0]]) - 1e-6).all()


def test_alpha_must_be_positive():
    with pytest.raises(ValueError, match="alpha"):
        soft_value(torch.zeros(1, 2), None, 0.0)


# ---------------------------------------------------------------- shared agent net


def test_shared_agent_net_shapes_and_decentralization():
    torch.manual_seed(0)
    net = SharedAgentQNet(obs_dim=5, n_agents=3, n_actions=4, hidden=(16, 16))
    obs = torch.randn(8, 3, 5)
    q = net(obs)
    assert q.shape == (8, 3, 4)
    # Agent i's Q depends only on obs[:, i] (and i): changing agent 2's obs leaves agents 0 and 1 unchanged.
    obs2 = obs.clone()
    obs2[:, 2] += 1.0
    q2 = net(obs2)
    assert torch.equal(q[:, :2], q2[:, :2]) and not torch.allclose(q[:, 2], q2[:, 2])
    # Same obs row for every agent: the one-hot id still tells them apart.
    same = torch.randn(1, 5).expand(3, 5).unsqueeze(0)
    qs = net(same)
    assert not torch.allclose(qs[0, 0], qs[0, 1])
    # Without ids, agents with equal observations get equal Q (one shared net).
    plain = SharedAgentQNet(5, 3, 4, hidden=(16,), add_agent_id=False, activation="tanh")
    qp = plain(same)
    assert torch.allclose(qp[0, 0], qp[0, 1])
    # Extra leading dims (e.g. time) pass through.
    assert net(torch.randn(2, 7, 3, 5)).shape == (2, 7, 3, 4)
    with pytest.raises(ValueError, match=r"n_agents=3, obs_dim=5"):
        net(torch.randn(8, 2, 5))
    with pytest.raises(ValueError, match="unknown activation"):
        SharedAgentQNet(5, 3, 4, activation="swishy")

"""MIFQ loss (eq. 9): hand computation, Prop. 4.5, convexity in Q (Thm 4.2), reduction to IQ-Learn / IIQ / VDN."""
import pytest
import torch

from rllib_mil.algorithms.mifq.mifq_loss import chi2_phi, mifq_loss, replay_chi2_input
from rllib_mil.modules import HyperMonotoneMixer, SumMixer, WeightedSumMixer, soft_value

D = torch.float64


def identity(x):
    return x


def _random_batch(seed, n, Be=6, Bm=10, S=5):
    """Random loss inputs: expert rows (Be) and value rows (Bm), some terminated."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g, dtype=D)

    def d(b):
        return (torch.rand(b, generator=g, dtype=D) < 0.3).to(D)

    return dict(
        q_taken_e=r(Be, n), v_next_e=r(Be, n), done_e=d(Be), state_e=r(Be, S),
        v_cur=r(Bm, n), v_next=r(Bm, n), done=d(Bm), state=r(Bm, S), next_state=r(Bm, S),
    )


def _agent(batch, i):
    """Agent i's slice as a one-agent batch, (B, n) -> (B, 1)."""
    return {k: (v[:, i : i + 1] if k in ("q_taken_e", "v_next_e", "v_cur", "v_next") else v) for k, v in batch.items()}


# ---------------------------------------------------------------- (a) hand computation

# Two agents, γ = 0.5.
#   expert row 0: Q = [1, 2],   V(o') = [2, 0], not done -> r = [1 - 0.5*2, 2 - 0] = [0, 2],   -r = [0, -2]
#   expert row 1: Q = [.5, 1],  V(o') = [1, 3], done     -> r = [.5, 1] (no bootstrap),      -r = [-.5, -1]
#   value  row 0: V = [1, 2],   V' = [2, 2],    not done
#   value  row 1: V = [0, 4],   V' = [6, 1],    done
HAND = dict(
    q_taken_e=torch.tensor([[1.0, 2.0], [0.5, 1.0]]),
    v_next_e=torch.tensor([[2.0, 0.0], [1.0, 3.0]]),
    done_e=torch.tensor([0.0, 1.0]),
    state_e=None,
    v_cur=torch.tensor([[1.0, 2.0], [0.0, 4.0]]),
    v_next=torch.tensor([[2.0, 2.0], [6.0, 1.0]]),
    done=torch.tensor([0.0, 1.0]),
    state=None,
    next_state=None,
    gamma=0.5,
)


def test_hand_computation_vdn():
    # R^tot = [0 - 2, -.5 - 1] = [-2, -1.5];  φ = [-2 + 2, -1.5 + 1.125] = [0, -.375];  reward term = -.1875
    # V^tot(S) = [3, 4], V^tot(S') = [4, 7];  value term = mean(3 - .5*4, 4 - 0) = mean(1, 4) = 2.5
    loss, terms = mifq_loss(**HAND, r_mixer=SumMixer(2), v_mixer=SumMixer(2))
    assert loss.item() == pytest.approx(2.3125)
    assert terms["reward_term"].item() == pytest.approx(-0.1875)
    assert terms["value_term"].item() == pytest.approx(2.5)
    assert terms["r_tot_mean"].item() == pytest.approx(-1.75)
    assert terms["v_tot_mean"].item() == pytest.approx(3.5)
    assert terms["expert_reward_mean"].item() == pytest.approx((0 + 2 + 0.5 + 1) / 4)
    assert terms["loss"].item() == pytest.approx(2.3125)


def test_hand_computation_iiq():
    # φ per agent: row 0: φ(0) + φ(-2) = 0 + 0 = 0;  row 1: φ(-.5) + φ(-1) = -.375 - .5 = -.875
    # reward term = mean(0, -.875) = -.4375;  value term = 2.5 (linear, same as VDN)
    loss, terms = mifq_loss(**HAND, r_mixer=None, v_mixer=None)
    assert loss.item() == pytest.approx(2.0625)
    assert terms["reward_term"].item() == pytest.approx(-0.4375)
    assert terms["value_term"].item() == pytest.approx(2.5)


def test_hand_computation_weighted():
    # α = [2, .5]:  R^tot = [2*0 + .5*(-2), 2*(-.5) + .5*(-1)] = [-1, -1.5];  φ = [-.5, -.375];  reward term = -.4375
    # value rows: (2*1 + .5*2) - .5*(2*2 + .5*2) = 3 - 2.5 = .5;   (2*0 + .5*4) - 0 = 2;  value term = 1.25
    w = WeightedSumMixer([2.0, 0.5])
    loss, terms = mifq_loss(**HAND, r_mixer=w, v_mixer=w)
    assert loss.item() == pytest.approx(0.8125)
    assert terms["reward_term"].item() == pytest.approx(-0.4375)
    assert terms["value_term"].item() == pytest.approx(1.25)


# Replay rows for the χ² on expert ∪ replay rows (chi2_replay):
#   replay row 0: Q = [1, 1], V(o') = [0, 4], not done -> r = [1, -1],  -r = [-1, 1]
#   replay row 1: Q = [0, 3], V(o') = [2, 2], done     -> r = [0, 3],   -r = [0, -3]
REPLAY = dict(
    q_taken_r=torch.tensor([[1.0, 1.0], [0.0, 3.0]]),
    v_next_r=torch.tensor([[0.0, 4.0], [2.0, 2.0]]),
    done_r=torch.tensor([0.0, 1.0]),
    state_r=None,
)


def test_hand_computation_chi2_on_replay_rows_vdn():
    # R^tot expert = [-2, -1.5], replay = [0, -3];  E_e[R^tot] = -1.75;  ½·mean(4, 2.25, 0, 9) = 1.90625
    loss, terms = mifq_loss(**HAND, **REPLAY, r_mixer=SumMixer(2), v_mixer=SumMixer(2))
    assert terms["reward_term"].item() == pytest.approx(-1.75 + 1.90625)
    assert loss.item() == pytest.approx(-1.75 + 1.90625 + 2.5)
    assert terms["replay_reward_mean"].item() == pytest.approx((1 - 1 + 0 + 3) / 4)


def test_hand_computation_chi2_on_replay_rows_iiq():
    # Per agent, summed: E_e[Σ_i -r_i] = mean(-2, -1.5) = -1.75;
    # ½·mean over 4 rows of Σ_i r_i² = ½·mean(0+4, .25+1, 1+1, 0+9) = ½·4.0625 = 2.03125
    loss, terms = mifq_loss(**HAND, **REPLAY, r_mixer=None, v_mixer=None)
    assert terms["reward_term"].item() == pytest.approx(-1.75 + 2.03125)


def test_importance_weighted_chi2_on_replay_rows():
    """replay_weight: ratios π_i/μ_i per agent; the mixed χ² weights each replay row by their product (clipped), IIQ
    each agent's term by its own (clipped); expert rows keep weight 1."""
    w = torch.tensor([[2.0, 1.0], [0.5, 0.5]])
    # VDN: joint [2, .25] -> clipped [1.5, .25]; ½·mean(4, 2.25, 1.5·0, .25·9) = ½·8.5/4 = 1.0625.
    _, terms = mifq_loss(**HAND, **REPLAY, r_mixer=SumMixer(2), v_mixer=SumMixer(2), replay_weight=w,
                         replay_weight_clip=1.5)
    assert terms["reward_term"].item() == pytest.approx(-1.75 + 1.0625)
    # IIQ: clipped [[1.5, 1], [.5, .5]]; replay rows 1.5·1 + 1·1 = 2.5 and .5·0 + .5·9 = 4.5; expert rows 4, 1.25.
    _, terms = mifq_loss(**HAND, **REPLAY, r_mixer=None, v_mixer=None, replay_weight=w, replay_weight_clip=1.5)
    assert terms["reward_term"].item() == pytest.approx(-1.75 + 0.5 * (4 + 1.25 + 2.5 + 4.5) / 4)
    # Unit weights change nothing.
    a, _ = mifq_loss(**HAND, **REPLAY, r_mixer=SumMixer(2), v_mixer=SumMixer(2), replay_weight=torch.ones(2, 2))
    b, _ = mifq_loss(**HAND, **REPLAY, r_mixer=SumMixer(2), v_mixer=SumMixer(2))
    assert a.item() == pytest.approx(b.item())
    with pytest.raises(ValueError, match="replay_weight"):
        mifq_loss(**HAND, **REPLAY, r_mixer=None, v_mixer=None, replay_weight=torch.ones(3, 2))


def test_state_anchor_replaces_the_taken_q_by_v_on_replay_rows():
    """chi2_replay="state": the replay rows' χ² reads V_i(o_i) (the action-free reward V − γV'), so by hand with
    VDN: V = [2, 1], V' = [0, 4], not done, γ = .5 -> r = [2, -1], R^tot = -1, ½·mean over (expert 4, 2.25,
    replay 1) = 7.25/6; and its gradient at a replay row is the same whatever action was taken there."""
    q = torch.tensor([[[2.0, 0.0], [1.0, 1.0]]], requires_grad=True)  # (1, n=2, A=2)
    chosen = {}
    for name, actions in (("a", [[0], [0]]), ("b", [[1], [1]])):
        v = soft_value(q, torch.ones_like(q), 1.0)  # (1, 2)
        q_taken = q.gather(-1, torch.tensor([actions])).squeeze(-1)  # (1, 2, 1) -> (1, 2)
        x = replay_chi2_input(q_taken, v, "state")
        assert torch.equal(x, v) and torch.equal(replay_chi2_input(q_taken, v, True), q_taken)
        loss, terms = mifq_loss(**HAND, q_taken_r=x, v_next_r=torch.tensor([[0.0, 4.0]]), done_r=torch.tensor([0.0]),
                                state_r=None, r_mixer=SumMixer(2), v_mixer=SumMixer(2))
        (grad,) = torch.autograd.grad(loss, q)
        chosen[name] = (terms, grad)
    v0 = v.detach()[0]
    r = torch.stack([v0[0] - 0.0, v0[1] - 0.5 * 4.0])
    chi2 = 0.5 * (4 + 2.25 + float(r.sum()) ** 2) / 3
    assert chosen["a"][0]["reward_term"].item() == pytest.approx(-1.75 + chi2)
    assert torch.allclose(chosen["a"][1], chosen["b"][1])


def test_terms_split_by_kind_of_row():
    # χ² part per kind of row (its own mean): expert ½·mean(4, 2.25) = 1.5625, replay ½·mean(0, 9) = 2.25.
    # Value rows: row 0 expert (3 - .5*4 = 1), row 1 replay (4 - 0 = 4); the loss still uses mean(1, 4) = 2.5.
    loss, terms = mifq_loss(**HAND, **REPLAY, r_mixer=SumMixer(2), v_mixer=SumMixer(2),
                            value_is_expert=torch.tensor([True, False]))
    assert terms["chi2_term_expert"].item() == pytest.approx(1.5625)
    assert terms["chi2_term_replay"].item() == pytest.approx(2.25)
    assert terms["value_term_expert"].item() == pytest.approx(1.0)
    assert terms["value_term_replay"].item() == pytest.approx(4.0)
    assert terms["value_term"].item() == pytest.approx(2.5)
    assert loss.item() == pytest.approx(-1.75 + 1.90625 + 2.5)
    # All value rows of one kind: only that kind is reported.
    _, terms = mifq_loss(**HAND, r_mixer=None, v_mixer=None, value_is_expert=torch.tensor([True, True]))
    assert "value_term_replay" not in terms and terms["value_term_expert"].item() == pytest.approx(2.5)


@pytest.mark.parametrize("value_rows,n_r,expected", [
    ("expert", 3, (0, 4)), ("all", 3, (0, 7)), ("replay", 3, (4, 7)),
    # Offline (no replay rows): every choice falls back to the expert rows.
    ("replay", 0, (0, 4)), ("all", 0, (0, 4)),
])
def test_value_row_slice(value_rows, n_r, expected):
    from rllib_mil.algorithms.mifq.mifq_learner import value_row_slice

    rows = value_row_slice(value_rows, 4, n_r)
    assert (rows.start, rows.stop) == expected


def test_chi2_on_replay_rows_with_expert_rows_as_replay_equals_eq9():
    """Passing the expert rows again as 'replay' rows leaves E_e[R] + ½E[R²] = E_e[φ(R)]: eq. 9 unchanged."""
    same = dict(q_taken_r=HAND["q_taken_e"], v_next_r=HAND["v_next_e"], done_r=HAND["done_e"], state_r=None)
    for mixer in (SumMixer(2), None):
        ref, _ = mifq_loss(**HAND, r_mixer=mixer, v_mixer=mixer)
        loss, _ = mifq_loss(**HAND, **same, r_mixer=mixer, v_mixer=mixer)
        assert loss.item() == pytest.approx(ref.item())


def test_replay_rows_shape_checked():
    bad = dict(REPLAY, v_next_r=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="v_next_r"):
        mifq_loss(**HAND, **bad, r_mixer=SumMixer(2), v_mixer=SumMixer(2))


def test_terms_are_detached_and_loss_has_grad():
    batch = {k: (v.requires_grad_() if k == "q_taken_e" else v) for k, v in _random_batch(0, n=3).items()}
    mixer = HyperMonotoneMixer(3, 5, embed_dim=4, hypernet_hidden=8).double()
    loss, terms = mifq_loss(**batch, r_mixer=mixer, v_mixer=mixer, gamma=0.99)
    assert loss.dim() == 0 and loss.requires_grad
    assert all(not t.requires_grad and t.dim() == 0 for t in terms.values())
    loss.backward()
    assert torch.isfinite(batch["q_taken_e"].grad).all()


def test_shape_errors():
    batch = _random_batch(0, n=3)
    with pytest.raises(ValueError, match=r"v_next_e must have shape \(6, 3\), got \(6, 2\)"):
        mifq_loss(**{**batch, "v_next_e": batch["v_next_e"][:, :2]}, r_mixer=None, v_mixer=None, gamma=0.9)
    with pytest.raises(ValueError, match=r"done must have shape \(10,\)"):
        mifq_loss(**{**batch, "done": batch["done"][:3]}, r_mixer=None, v_mixer=None, gamma=0.9)


# ---------------------------------------------------------------- (b) Proposition 4.5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prop_4_5_linear_mixers_give_weighted_sum_of_local_losses(seed):
    n = 3
    batch = _random_batch(seed, n)
    alphas = [0.5, 2.0, 0.0]
    w = WeightedSumMixer(alphas).double()
    J, _ = mifq_loss(**batch, r_mixer=w, v_mixer=w, gamma=0.9, phi=identity)
    J_i = [mifq_loss(**_agent(batch, i), r_mixer=None, v_mixer=None, gamma=0.9, phi=identity)[0] for i in range(n)]
    assert J.item() == pytest.approx(sum(a * j.item() for a, j in zip(alphas, J_i)), rel=1e-10)


# ---------------------------------------------------------------- (c) convexity in Q (Theorem 4.2)

N_AG, A, S = 3, 4, 5
GAMMA, ALPHA = 0.9, 0.7


def _trajectory_problem(seed):
    """Q as a free tensor over the observation rows of two trajectories (lengths 4 and 3), each ending in a
    termination. The first trajectory is the expert's; both are value rows (expert ∪ replay). Each transition's
    next state is the next row, so the telescoping value term sums to non-negative multiples of V^tot."""
    g = torch.Generator().manual_seed(seed)
    cur, nxt, done, off = [], [], [], 0
    for length in (4, 3):
        for t in range(length):
            cur.append(off + t)
            nxt.append(off + t + 1)
            done.append(float(t == length - 1))
        off += length + 1  # + the row of the terminal observation
    cur, nxt, done = torch.tensor(cur), torch.tensor(nxt), torch.tensor(done, dtype=D)
    mask = (torch.rand(off, N_AG, A, generator=g) < 0.7).to(D)
    mask[..., 0] = 1.0  # the no-op is always available
    n_exp = 4
    actions = torch.multinomial(mask[cur[:n_exp]].reshape(-1, A), 1, generator=g).reshape(n_exp, N_AG)  # (Be, n)
    return dict(
        rows=off, cur=cur, nxt=nxt, done=done, mask=mask, n_exp=n_exp, actions=actions,
        states=torch.randn(off, S, generator=g, dtype=D),
        q_target=2 * torch.randn(off, N_AG, A, generator=g, dtype=D),
    )


def _J(Q, p, r_mixer, v_mixer, phi, next_from):
    """J as a function of the free Q tensor (rows, n, A); V(S') from Q itself or from the fixed target tensor."""
    V = soft_value(Q, p["mask"], ALPHA)  # (rows, n, A) -> (rows, n)
    V_next = V if next_from == "self" else soft_value(p["q_target"], p["mask"], ALPHA)
    ce, ne = p["cur"][: p["n_exp"]], p["nxt"][: p["n_exp"]]
    q_taken_e = Q[ce].gather(-1, p["actions"].unsqueeze(-1)).squeeze(-1)  # (Be, n, A) -> (Be, n, 1) -> (Be, n)
    loss, terms = mifq_loss(
        q_taken_e=q_taken_e, v_next_e=V_next[ne], done_e=p["done"][: p["n_exp"]], state_e=p["states"][ce],
        v_cur=V[p["cur"]], v_next=V_next[p["nxt"]], done=p["done"],
        state=p["states"][p["cur"]], next_state=p["states"][p["nxt"]],
        r_mixer=r_mixer, v_mixer=v_mixer, gamma=GAMMA, phi=phi,
    )
    # R^tot per expert row, to check the χ² precondition below.
    r = q_taken_e - GAMMA * (1 - p["done"][: p["n_exp"]]).unsqueeze(-1) * V_next[ne]  # (Be, n)
    return loss, r_mixer(-r, p["states"][ce])


@pytest.mark.parametrize("next_from", ["self", "target"])
@pytest.mark.parametrize("phi_name", ["identity", "chi2"])
@pytest.mark.parametrize("seed", [0, 1])
def test_J_convex_along_random_segments_in_Q(seed, phi_name, next_from):
    torch.manual_seed(seed)
    p = _trajectory_problem(seed)
    r_mixer = HyperMonotoneMixer(N_AG, S, embed_dim=8, hypernet_hidden=16).double()
    v_mixer = HyperMonotoneMixer(N_AG, S, embed_dim=8, hypernet_hidden=16).double()
    phi = identity if phi_name == "identity" else chi2_phi
    if phi_name == "chi2":
        # φ(x) = x + x²/2 is non-decreasing only on [-1, ∞), and convex∘convex needs a non-decreasing outer
        # function: lift the reward mixer's output bias b2 so that R^tot ≥ -1 (checked at every point below).
        with torch.no_grad():
            r_mixer.hyper_b2[-1].bias.add_(20.0)
    g = torch.Generator().manual_seed(100 + seed)
    for _ in range(10):
        Q0, Q1 = 3 * torch.randn(2, p["rows"], N_AG, A, generator=g, dtype=D)
        J0, rt0 = _J(Q0, p, r_mixer, v_mixer, phi, next_from)
        J1, rt1 = _J(Q1, p, r_mixer, v_mixer, phi, next_from)
        for t in (0.1, 0.25, 0.5, 0.75, 0.9):
            Jt, rtt = _J((1 - t) * Q0 + t * Q1, p, r_mixer, v_mixer, phi, next_from)
            assert Jt.item() <= ((1 - t) * J0 + t * J1).item() + 1e-9
            if phi_name == "chi2":
                assert min(rt0.min(), rt1.min(), rtt.min()).item() >= -1.0


# The two preconditions used above are needed: counterexamples with one agent, two actions, no mixer.


def _one_agent_J(q_s, q_s1, *, phi, value_rows):
    """Expert at s takes action 0; V(s') from the online Q. Shapes (1, 1) throughout."""
    V_s, V_s1 = soft_value(q_s, None, 1.0), soft_value(q_s1, None, 1.0)  # (1, 1, 2) -> (1, 1)
    zero = torch.zeros(1, dtype=D)
    if value_rows == "trajectory":  # s -> s' then s' terminates: V(s) + (1-γ)·V(s'), convex
        v_cur, v_next, done = torch.cat([V_s, V_s1]), torch.cat([V_s1, V_s1]), torch.tensor([0.0, 1.0], dtype=D)
        done_e = zero  # expert s -> s' bootstraps: -r = -Q(s, 0) + γ·V(s')
    else:  # a lone replay row s -> s': V(s) - γ·V(s'), concave in Q(s')
        v_cur, v_next, done = V_s, V_s1, zero
        done_e = torch.ones(1, dtype=D)  # expert step terminal, else its +γ·V(s') would cancel the -γ·V(s')
    return mifq_loss(
        q_taken_e=q_s[..., 0], v_next_e=V_s1, done_e=done_e, state_e=None,
        v_cur=v_cur, v_next=v_next, done=done, state=None, next_state=None,
        r_mixer=None, v_mixer=None, gamma=GAMMA, phi=phi,
    )[0]


def _midpoint_gap(phi, value_rows, q_taken):
    """J(mid) - mean(J(ends)) moving Q(s') from [-2, 2] to [2, -2]; > 0 means not convex."""
    q_s = torch.tensor([[[q_taken, 0.0]]], dtype=D)
    ends = [torch.tensor([[[-2.0, 2.0]]], dtype=D), torch.tensor([[[2.0, -2.0]]], dtype=D)]
    J = [_one_agent_J(q_s, q1, phi=phi, value_rows=value_rows) for q1 in ends + [sum(ends) / 2]]
    return (J[2] - (J[0] + J[1]) / 2).item()


def test_chi2_is_convex_only_where_r_tot_is_at_least_minus_one():
    # Q(s, a) = 6 makes -r ≈ -5.4 < -1 where φ decreases: J has a local maximum at the midpoint.
    assert _midpoint_gap(chi2_phi, "trajectory", q_taken=6.0) > 1.0
    assert _midpoint_gap(identity, "trajectory", q_taken=6.0) < 0
    assert _midpoint_gap(chi2_phi, "trajectory", q_taken=-3.0) < 0  # -r > -1 all along: convex


def test_telescoping_value_term_needs_linked_rows():
    # A lone value row s -> s' contributes -γ·V(s'), concave in Q(s'); the trajectory layout is convex.
    assert _midpoint_gap(identity, "lone", q_taken=0.0) > 0
    assert _midpoint_gap(identity, "trajectory", q_taken=0.0) < 0


# ---------------------------------------------------------------- (d) single-agent IQ-Learn (χ²) by hand


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_agent_no_mixer_equals_iq_learn_chi2(seed):
    g = torch.Generator().manual_seed(seed)
    Be, Br, A_, gamma, alpha = 5, 7, 4, 0.95, 0.3
    mask_s = (torch.rand(Be + Br, A_, generator=g) < 0.7).to(D)
    mask_s[:, 0] = 1.0
    mask_s1 = (torch.rand(Be + Br, A_, generator=g) < 0.7).to(D)
    mask_s1[:, 0] = 1.0
    Q_s = torch.randn(Be + Br, A_, generator=g, dtype=D)  # first Be rows expert, then replay
    Q_s1 = torch.randn(Be + Br, A_, generator=g, dtype=D)
    done = torch.tensor([0, 1, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0], dtype=D)
    a_e = torch.zeros(Be, dtype=torch.long)  # action 0 is always available

    # Hand: V = α·logsumexp(Q/α) over available actions (unavailable -> -inf, so exp gives 0).
    def V(Q, m):
        return alpha * torch.logsumexp(torch.where(m > 0, Q / alpha, torch.tensor(float("-inf"), dtype=D)), dim=-1)

    r = Q_s[:Be, 0] - gamma * (1 - done[:Be]) * V(Q_s1[:Be], mask_s1[:Be])
    hand = -(r - r**2 / 2).mean() + (V(Q_s, mask_s) - gamma * (1 - done) * V(Q_s1, mask_s1)).mean()

    # mifq_loss with n = 1: (B, A) -> (B, 1, A) so agents are a dim of size 1.
    q3, q13, m3, m13 = Q_s.unsqueeze(1), Q_s1.unsqueeze(1), mask_s.unsqueeze(1), mask_s1.unsqueeze(1)
    v_cur, v_next = soft_value(q3, m3, alpha), soft_value(q13, m13, alpha)  # (B, 1)
    kwargs = dict(
        q_taken_e=q3[:Be].gather(-1, a_e.view(Be, 1, 1)).squeeze(-1),  # (Be, 1, A) -> (Be, 1, 1) -> (Be, 1)
        v_next_e=v_next[:Be], done_e=done[:Be], state_e=None,
        v_cur=v_cur, v_next=v_next, done=done, state=None, next_state=None, gamma=gamma,
    )
    for mixer in (None, SumMixer(1)):
        loss, _ = mifq_loss(**kwargs, r_mixer=mixer, v_mixer=mixer)
        assert loss.item() == pytest.approx(hand.item(), rel=1e-10)


# ---------------------------------------------------------------- (e) IIQ, (f) VDN


@pytest.mark.parametrize("seed", [0, 1])
def test_iiq_equals_sum_of_single_agent_losses(seed):
    n = 4
    batch = _random_batch(seed, n)
    J, _ = mifq_loss(**batch, r_mixer=None, v_mixer=None, gamma=0.9)
    J_i = [mifq_loss(**_agent(batch, i), r_mixer=None, v_mixer=None, gamma=0.9)[0] for i in range(n)]
    assert J.item() == pytest.approx(sum(j.item() for j in J_i), rel=1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_vdn_with_identity_phi_equals_iiq(seed):
    n = 3
    batch = _random_batch(seed, n)
    vdn, _ = mifq_loss(**batch, r_mixer=SumMixer(n), v_mixer=SumMixer(n), gamma=0.9, phi=identity)
    iiq, _ = mifq_loss(**batch, r_mixer=None, v_mixer=None, gamma=0.9, phi=identity)
    assert vdn.item() == pytest.approx(iiq.item(), rel=1e-10)
    # With the χ² φ they differ (φ of a sum vs sum of φ): the equality above is not vacuous.
    vdn2, _ = mifq_loss(**batch, r_mixer=SumMixer(n), v_mixer=SumMixer(n), gamma=0.9)
    iiq2, _ = mifq_loss(**batch, r_mixer=None, v_mixer=None, gamma=0.9)
    assert abs(vdn2.item() - iiq2.item()) > 1e-3


def test_bc_term_hand_computation():
    from rllib_mil.algorithms.bc.bc_loss import bc_term

    # Row 0: agent 0 Q = [0, ln 3, 0] (τ = 1) -> p(a=1) = 3/5, NLL = ln(5/3); agent 1 uniform over 3 -> ln 3.
    # Row 1: agent 0 only action 2 available (no choice: left out); agent 1 takes action 0 of two available,
    # Q = [1, 0, 9 (masked)] -> p(a=0) = e/(e+1), NLL = ln(1 + 1/e).
    q = torch.tensor([[[0.0, torch.log(torch.tensor(3.0)), 0.0], [0.0, 0.0, 0.0]],
                      [[5.0, 5.0, 0.0], [1.0, 0.0, 9.0]]], dtype=D)
    actions = torch.tensor([[1, 2], [2, 0]])
    mask = torch.tensor([[[1, 1, 1], [1, 1, 1]], [[0, 0, 1], [1, 1, 0]]], dtype=D)
    expected = (torch.log(torch.tensor(5 / 3)) + torch.log(torch.tensor(3.0)) + torch.log1p(torch.exp(torch.tensor(-1.0)))) / 3
    assert bc_term(q, actions, mask, temperature=1.0).item() == pytest.approx(expected.item())
    # The temperature divides Q: τ = 2 on 2·Q gives the same value.
    assert bc_term(2 * q, actions, mask, temperature=2.0).item() == pytest.approx(expected.item())
    # Its gradient pushes the expert action up and every other available action down (none for masked ones).
    qg = q.clone().requires_grad_()
    bc_term(qg, actions, mask, temperature=1.0).backward()
    assert qg.grad[0, 0, 1] < 0 and qg.grad[0, 0, 0] > 0 and qg.grad[0, 0, 2] > 0
    assert qg.grad[1, 0].abs().sum() == 0 and qg.grad[1, 1, 2] == 0


def test_gradient_penalty_hand_computation():
    from rllib_mil.algorithms.mifq.mifq_loss import q_gradient_penalty

    # Linear Q(o) = o·W + b: ∇_o Σ_a Q = Σ_a W[:, a] at every interpolate, so the penalty is (‖Σ_a W_a‖ − 1)².
    lin = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [1.0, 2.0, 0, 0], [0, 0, 0, 2.0]]))  # rows: actions
    expected = (torch.tensor([2.0, 2.0, 0.0, 2.0]).norm() - 1) ** 2
    g = torch.Generator().manual_seed(0)
    pen = q_gradient_penalty(lin, torch.randn(5, 2, 4, dtype=D), torch.randn(5, 2, 4, dtype=D), generator=g)
    assert pen.item() == pytest.approx(expected.item())
    pen.backward()  # create_graph: the penalty trains the network
    assert lin.weight.grad is not None and lin.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="obs_r"):
        q_gradient_penalty(lin, torch.randn(5, 2, 4, dtype=D), torch.randn(4, 2, 4, dtype=D))


def test_policy_prior_scores_hand_computation():
    """policy_prior="bc": scores = Q + α·β·log π0 over available actions; their soft value is
    α·log Σ_a π0(a)^β·exp(Q(a)/α) and their softmax the KL-regularised policy ∝ π0^β·exp(Q/α); no gradient
    reaches the prior logits; masked actions get no prior mass."""
    from rllib_mil.modules.soft import with_policy_prior

    alpha, beta = 0.5, 2.0
    q = torch.tensor([[0.0, 1.0, -1.0], [2.0, 0.0, 7.0]], dtype=D, requires_grad=True)
    logits = torch.tensor([[0.0, 0.0, torch.log(torch.tensor(2.0))], [1.0, 1.0, 5.0]], dtype=D, requires_grad=True)
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]], dtype=D)
    scores = with_policy_prior(q, logits, mask, alpha * beta)
    # Row 0: π0 = [1/4, 1/4, 1/2]; row 1: the masked third action leaves π0 = [1/2, 1/2] on the first two.
    pi0 = torch.tensor([[0.25, 0.25, 0.5], [0.5, 0.5, 1.0]], dtype=D)
    want_v = alpha * torch.log((pi0**beta * torch.exp(q.detach() / alpha) * mask).sum(-1))
    torch.testing.assert_close(soft_value(scores, mask, alpha).detach(), want_v)
    policy = torch.softmax(torch.where(mask > 0, scores / alpha, torch.tensor(-1e9, dtype=D)), dim=-1)
    want_pi = pi0**beta * torch.exp(q.detach() / alpha) * mask
    torch.testing.assert_close(policy.detach(), want_pi / want_pi.sum(-1, keepdim=True))
    soft_value(scores, mask, alpha).sum().backward()
    assert logits.grad is None or logits.grad.abs().sum() == 0
    # A uniform prior only shifts every score by the same constant: the policy is softmax(Q/α) again.
    flat = with_policy_prior(q.detach(), torch.zeros_like(q), None, alpha)
    torch.testing.assert_close(flat - q.detach(), torch.full_like(q, alpha * torch.log(torch.tensor(1 / 3, dtype=D))))

"""MIFQ loss (Multi-agent Inverse Factorized soft-Q learning, seed paper §4.2–4.3) as a pure function of tensors.

    local reward      r_i   = Q_i(o_i, a_i) − γ(1−done)·V_i(o_i')                 (inverse soft Bellman, eq. 4/5)
    team reward       R^tot = M_R(−R; S)                                             (eq. 6)
    team value        V^tot = M_V(V(S); S)                                           (eq. 6)
    loss              J     = E_expert[φ(R^tot)] + E_{expert ∪ replay}[V^tot(S) − γ(1−done)·V^tot(S')]  (eq. 9)

The second term is IQ-Learn's telescoping estimate of (1−γ)·E[V^tot(S0)]. ``done`` is *termination* only:
truncated transitions bootstrap through V(S').

Without mixers (``r_mixer=v_mixer=None``) this is independent IQ-Learn (IIQ): J = Σ_i J_i (eq. 3/5), with φ
applied to each agent's −r_i before summing.

Convexity in Q (Theorem 4.2) holds with φ = identity when the mixers are monotone and convex. Two practical
caveats, both checked in tests/test_mifq_loss.py: the χ² φ(x) = x + x²/2 is non-decreasing only for x ≥ −1, so
φ(R^tot) stays convex only where R^tot ≥ −1; and the telescoping value term is convex when V(S') is a fixed
target, or when the value rows form trajectories whose next states are the next rows' states (ending in a
termination), so that it telescopes to non-negative multiples of V^tot. On unrelated (S, S') pairs with V(S')
from the online Q, −γ·V^tot(S') is concave.

Optional χ² on replay rows (IQ-Learn's reference code, ``chi2_replay`` in ``MIFQConfig``): with φ(x) = x + x²/2
split into its linear and quadratic parts, the reward term becomes

    E_expert[R^tot] + ½·E_{expert ∪ replay}[(R^tot)²]

(pass ``q_taken_r``/``v_next_r``/``done_r``/``state_r``). The quadratic part anchors the recovered reward of
the learner's own transitions near 0; without it nothing bounds Q on states the expert never visits, and the
value term pushes V(S) there down without limit (measured: Q drifted to −290 within 3.5k updates on
simple_reference, greedy agreement with the expert fell to chance).
"""
from __future__ import annotations

from typing import Callable, Optional

import torch

from rllib_mil.algorithms.utils import interpolation_gradient_penalty
from rllib_mil.modules.mixers import Mixer

Phi = Callable[[torch.Tensor], torch.Tensor]


def chi2_phi(x: torch.Tensor, coef: float = 0.5) -> torch.Tensor:
    """χ² regulariser of IQ-Learn, φ(x) = x + c·x² with c = 1/2 (paper §4.3.2; MAMQL's code uses c = 1/4)."""
    return x + coef * x**2


def _check(name: str, t: Optional[torch.Tensor], shape: tuple) -> None:
    """Shape check; ``None`` entries of ``shape`` match anything."""
    if t is None:
        raise ValueError(f"mifq_loss: {name} is required")
    ok = t.dim() == len(shape) and all(s is None or s == d for s, d in zip(shape, t.shape))
    if not ok:
        want = str(tuple("?" if s is None else s for s in shape)).replace("'", "")
        raise ValueError(f"mifq_loss: {name} must have shape {want}, got {tuple(t.shape)}")


def mifq_loss(
    *,
    q_taken_e: torch.Tensor,
    v_next_e: torch.Tensor,
    done_e: torch.Tensor,
    state_e: Optional[torch.Tensor],
    v_cur: torch.Tensor,
    v_next: torch.Tensor,
    done: torch.Tensor,
    state: Optional[torch.Tensor],
    next_state: Optional[torch.Tensor],
    r_mixer: Optional[Mixer],
    v_mixer: Optional[Mixer],
    gamma: float,
    phi: Phi = chi2_phi,
    q_taken_r: Optional[torch.Tensor] = None,
    v_next_r: Optional[torch.Tensor] = None,
    done_r: Optional[torch.Tensor] = None,
    state_r: Optional[torch.Tensor] = None,
    chi2_coef: float = 0.5,
    replay_weight: Optional[torch.Tensor] = None,
    replay_weight_clip: float = float("inf"),
    value_is_expert: Optional[torch.Tensor] = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Eq. 9. Returns ``(loss, terms)``; ``terms`` holds detached scalars for logging.

    Expert rows (Be of them): ``q_taken_e (Be, n)`` = Q_i(o_i, a_i^E), ``v_next_e (Be, n)`` = V_i(o_i')
    (online or target net, the caller's choice), ``done_e (Be,)`` 1.0 where terminated, ``state_e (Be, s)``.
    Value rows (Bm, expert ∪ replay): ``v_cur (Bm, n)`` = V_i(o_i), ``v_next (Bm, n)`` = V_i(o_i'),
    ``done (Bm,)``, ``state`` / ``next_state (Bm, s)``. States may be ``None`` for mixers that ignore them.
    ``r_mixer`` / ``v_mixer``: ``None`` = independent sum over agents (IIQ); ``terms["r_tot_mean"]`` then reports
    the mean of Σ_i −r_i (what VDN would mix), though φ is applied per agent.
    Replay rows for the χ² regulariser (Br of them, all four or none): ``q_taken_r (Br, n)`` = Q_i(o_i, a_i),
    ``v_next_r (Br, n)``, ``done_r (Br,)``, ``state_r (Br, s)`` (may be ``None`` like the other states). When
    given, the reward term is E_expert[R^tot] + chi2_coef·E_{expert ∪ replay}[(R^tot)²] (``phi`` is then not
    used: chi2_coef = 0.5 is φ(x) = x + x²/2 split in two).
    ``replay_weight (Br, n)``, optional: importance ratios of the replay rows' χ² (π_i/μ_i per agent, no gradient;
    the mixed χ² uses their product over agents, IIQ each agent's own), clipped at ``replay_weight_clip``:
    E_{e ∪ r}[w·(R^tot)²] with w = 1 on expert rows.
    ``value_is_expert (Bm,)`` bool, optional, for logging only: splits the value term into ``value_term_expert``
    and ``value_term_replay`` (each the mean over its own rows; the loss uses the mean over all value rows).
    """
    _check("q_taken_e", q_taken_e, (None, None))
    Be, n = q_taken_e.shape
    _check("v_next_e", v_next_e, (Be, n))
    _check("done_e", done_e, (Be,))
    _check("v_cur", v_cur, (None, n))
    Bm = v_cur.shape[0]
    _check("v_next", v_next, (Bm, n))
    _check("done", done, (Bm,))

    # Local rewards by the inverse soft Bellman operator (eq. 4/5); terminated rows do not bootstrap.
    not_done_e = (1.0 - done_e.to(q_taken_e.dtype)).unsqueeze(-1)  # (Be,) -> (Be, 1), broadcasts over agents
    r = q_taken_e - gamma * not_done_e * v_next_e  # (Be, n)

    # Reward term: E_expert[φ(R^tot)] with R^tot = M_R(−R; S) (eq. 6, 9).
    if r_mixer is None:
        r_tot = (-r).sum(dim=-1)  # (Be,): reported only; IIQ applies φ per agent (J = Σ_i J_i, eq. 3/5)
    else:
        r_tot = r_mixer(-r, state_e)  # (Be, n) -> (Be,)
    replay = (q_taken_r, v_next_r, done_r)
    extra = {}
    if all(t is None for t in replay):
        if r_mixer is None:
            reward_term = phi(-r).sum(dim=-1).mean()  # (Be, n) -> (Be,) -> ()
        else:
            reward_term = phi(r_tot).mean()
    else:
        # χ² on expert ∪ replay rows (IQ-Learn): E_e[R^tot] + c·E_{e ∪ r}[(R^tot)²].
        _check("q_taken_r", q_taken_r, (None, n))
        Br = q_taken_r.shape[0]
        _check("v_next_r", v_next_r, (Br, n))
        _check("done_r", done_r, (Br,))
        not_done_r = (1.0 - done_r.to(q_taken_r.dtype)).unsqueeze(-1)  # (Br, 1)
        r_r = q_taken_r - gamma * not_done_r * v_next_r  # (Br, n)
        if replay_weight is not None:
            _check("replay_weight", replay_weight, (Br, n))
        if r_mixer is None:
            # Per agent, summed over agents (IIQ: J = Σ_i J_i).
            x_e, x_r = -r, -r_r  # (Be, n), (Br, n)
            w_r = 1.0 if replay_weight is None else replay_weight.clamp(max=replay_weight_clip)  # (Br, n): own ratio
            sq_e, sq_r = x_e.pow(2).sum(dim=-1), (w_r * x_r.pow(2)).sum(dim=-1)  # (Be,), (Br,)
            reward_term = x_e.sum(dim=-1).mean() + chi2_coef * torch.cat([sq_e, sq_r], dim=0).mean()
        else:
            r_tot_r = r_mixer(-r_r, state_r)  # (Br, n) -> (Br,)
            # (Br, n) -> (Br,): the joint action's ratio
            w_r = 1.0 if replay_weight is None else replay_weight.prod(dim=-1).clamp(max=replay_weight_clip)
            sq_e, sq_r = r_tot.pow(2), w_r * r_tot_r.pow(2)  # (Be,), (Br,)
            reward_term = r_tot.mean() + chi2_coef * torch.cat([sq_e, sq_r], dim=0).mean()
        extra["replay_reward_mean"] = r_r.detach().mean()
        # The χ² part on each kind of row (its own mean, before the row-count weighting of the loss).
        extra["chi2_term_expert"] = chi2_coef * sq_e.detach().mean()
        extra["chi2_term_replay"] = chi2_coef * sq_r.detach().mean()

    # Value term: E[V^tot(S) − γ(1−done)·V^tot(S')] estimates (1−γ)·E[V^tot(S0)] (eq. 9).
    if v_mixer is None:
        v_tot = v_cur.sum(dim=-1)  # (Bm, n) -> (Bm,): V^tot = Σ_i V_i is linear, so this equals Σ_i of the terms
        v_tot_next = v_next.sum(dim=-1)  # (Bm,)
    else:
        v_tot = v_mixer(v_cur, state)  # (Bm, n) -> (Bm,)
        v_tot_next = v_mixer(v_next, next_state)  # (Bm, n) -> (Bm,)
    not_done = 1.0 - done.to(v_cur.dtype)  # (Bm,)
    value_rows = v_tot - gamma * not_done * v_tot_next  # (Bm,)
    value_term = value_rows.mean()
    if value_is_expert is not None:
        _check("value_is_expert", value_is_expert, (Bm,))
        is_e = value_is_expert.bool()
        for name, rows in (("value_term_expert", is_e), ("value_term_replay", ~is_e)):
            if rows.any():
                extra[name] = value_rows.detach()[rows].mean()

    loss = reward_term + value_term
    terms = {
        "reward_term": reward_term.detach(),
        "value_term": value_term.detach(),
        "r_tot_mean": r_tot.detach().mean(),
        "v_tot_mean": v_tot.detach().mean(),
        "expert_reward_mean": r.detach().mean(),
        "loss": loss.detach(),
        **extra,
    }
    return loss, terms


def replay_chi2_input(q_taken: torch.Tensor, v_cur: torch.Tensor, chi2_replay) -> torch.Tensor:
    """What the χ² term reads on replay rows in place of Q_i(o_i, a_i) (both ``(B, n)``): the taken action's Q
    (``chi2_replay=True``, IQ-Learn), or the action-free V_i(o_i) (``"state"``), so that the quadratic anchors the
    state-only reward V_i(o_i) − γV_i(o_i') and its gradient at o_i is softmax(Q_i/α)-weighted whatever was taken."""
    return v_cur if chi2_replay == "state" else q_taken


def q_gradient_penalty(
    q_fn: Callable[[torch.Tensor], torch.Tensor],
    obs_e: torch.Tensor,
    obs_r: torch.Tensor,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Gradient penalty of IQ-Learn's online code (WGAN-GP form) on observations interpolated between expert and
    replay rows: E[(‖∇_o Σ_a Q_i(o, a)‖₂ − 1)²] per agent row (MIFQConfig.grad_penalty; not in the MIFQ paper).

    ``q_fn`` maps ``(B, n, d) -> (B, n, A)``; ``obs_e``, ``obs_r (B, n, d)`` are paired expert and replay rows.
    It keeps the recovered reward from separating expert and policy observations by memorising the few expert
    ones (the discriminator overfitting of adversarial imitation).
    """
    _check("obs_e", obs_e, (None, None, None))
    _check("obs_r", obs_r, tuple(obs_e.shape))
    # Row i of the shared net only sees agent i's obs, so the per-row norm is agent i's gradient.
    return interpolation_gradient_penalty(q_fn, obs_e, obs_r, generator)

"""Assertions shared by the algorithm test files (imported as ``from helpers import ...``)."""
import numpy as np

from rllib_mil.envs import ACTION_MASK


def assert_no_unavailable_action(episodes):
    """No action taken in these env-runner episodes was unavailable under its step's mask. Returns
    (steps, {agent: set of actions taken}, masks of the last episode (T, n_agents, n_actions))."""
    steps, chosen = 0, {}
    for ep in episodes:
        obs = ep.get_observations()
        actions = np.asarray(ep.get_actions())  # (T, n_agents)
        # (T + 1, n_agents, n_actions): a dict of arrays once numpy-ized, else a list of per-step dicts.
        masks = np.asarray(obs[ACTION_MASK] if isinstance(obs, dict) else [o[ACTION_MASK] for o in obs])
        assert actions.ndim == 2 and masks.shape[0] >= actions.shape[0]
        masks = masks[: actions.shape[0]]
        avail = np.take_along_axis(masks, actions[..., None], axis=-1)[..., 0]
        bad = np.argwhere(avail < 0.5)
        assert bad.size == 0, f"unavailable action sampled: t={bad[0][0]} agent={bad[0][1]} action=" \
                              f"{actions[tuple(bad[0])]} mask={masks[bad[0][0], bad[0][1]]}"
        steps += actions.shape[0]
        for agent in range(actions.shape[1]):
            chosen.setdefault(agent, set()).update(actions[:, agent].tolist())
    return steps, chosen, masks


def assert_rollouts_respect_masks(episodes, min_steps: int = 200) -> None:
    """Real env-runner episodes of simple_speaker_listener (the speaker has 3 real actions padded to 5): no
    unavailable action was ever taken, and every agent took each of its available actions (so a policy that
    ignored the mask would have shown it: with near-uniform sampling a padded action comes up on ~40% of the
    speaker's steps, and never doing so over 200+ steps has p < 1e-44)."""
    steps, chosen, masks = assert_no_unavailable_action(episodes)
    assert steps >= min_steps
    n_actions = masks.shape[-1]
    avail = [{int(a) for a in np.flatnonzero(masks[0, i] > 0.5)} for i in range(masks.shape[1])]
    assert n_actions == 5 and sorted(len(a) for a in avail) == [3, 5], avail
    for agent, agent_avail in enumerate(avail):
        assert chosen[agent] == agent_avail, (agent, chosen[agent], agent_avail)


def nan_loss(loss_fn):
    """``loss_fn`` (returning ``(loss, terms)``) with its loss turned into NaN: for non-finite-loss tests."""

    def wrapped(*args, **kwargs):
        loss, terms = loss_fn(*args, **kwargs)
        return loss * float("nan"), terms

    return wrapped


def rollout_steps(env, policy, seed: int = 0):
    """One episode of ``policy(obs) -> actions`` from ``env.reset(seed=seed)``: ``(reset info, steps)`` with one
    ``(obs, reward, terminated, truncated, info, next_obs)`` per step."""
    obs, reset_info = env.reset(seed=seed)
    steps = []
    while True:
        nxt, r, term, trunc, info = env.step(policy(obs))
        steps.append((obs, r, term, trunc, info, nxt))
        obs = nxt
        if term or trunc:
            return reset_info, steps

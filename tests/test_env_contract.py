"""The team-env contract, checked on every registered env id (a new env is tested by being registered).

MPE and SMAX run for real; the SMACv2 ids run their real adapter (watchdog child process included) against the
CONTRACT FAKE in tests/smacv2_fake.py, because StarCraft II cannot be installed here.
"""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from rllib_mil.envs import ACTION_MASK, INFO_AGENT_REWARDS, INFO_BATTLE_WON, OBS, STATE, TeamEnv, list_team_envs, make_team_env

# Per family: the env_config the contract runs with (SMACv2: the contract fake as backend).
FAMILY_CONFIG = {"smacv2": {"backend": "smacv2_fake:FakeSMACv2"}}
ENV_IDS = list_team_envs()


def contract_env(env_id: str) -> TeamEnv:
    return make_team_env(env_id, dict(FAMILY_CONFIG.get(env_id.split("/")[0], {})))


def play(env, seed: int, rng: np.random.Generator, max_steps: int = 10_000):
    """One episode with uniformly random available actions; returns the list of (obs, action, reward, term,
    trunc, info) and checks the per-step contract on the way."""
    obs, info = env.reset(seed=seed)
    assert isinstance(info, dict)
    out = []
    for _ in range(max_steps):
        assert obs in env.observation_space
        mask = obs[ACTION_MASK]
        assert set(np.unique(mask)) <= {0.0, 1.0}
        assert (mask.sum(axis=1) >= 1).all(), "every agent has at least one available action"
        assert (mask <= env.static_mask).all(), "the dynamic mask never opens a statically padded action"
        action = np.array([rng.choice(np.flatnonzero(row)) for row in mask])
        obs_next, reward, term, trunc, info = env.step(action)
        assert isinstance(reward, float) and isinstance(term, bool) and isinstance(trunc, bool)
        assert not (term and trunc)
        ar = info[INFO_AGENT_REWARDS]
        assert ar.shape == (env.n_agents,) and ar.dtype == np.float32
        assert reward == pytest.approx(float(ar.astype(np.float64).mean()), rel=1e-5, abs=1e-5)
        if INFO_BATTLE_WON in info:
            assert isinstance(info[INFO_BATTLE_WON], bool)
            assert not info[INFO_BATTLE_WON] or term, "battle_won only on the final step of a battle"
        out.append((obs, action, reward, term, trunc, info))
        obs = obs_next
        if term or trunc:
            break
    else:
        raise AssertionError(f"{env.env_id}: no episode end within {max_steps} steps")
    with pytest.raises(RuntimeError, match="reset"):
        env.step(action)
    return out


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_team_env_contract(env_id):
    env = contract_env(env_id)
    try:
        assert isinstance(env, TeamEnv) and env.env_id == env_id
        n, d, s, a = env.n_agents, env.obs_dim, env.state_dim, env.n_actions
        assert env.observation_space[OBS].shape == (n, d)
        assert env.observation_space[STATE].shape == (s,)
        assert env.observation_space[ACTION_MASK].shape == (n, a)
        assert env.action_space.nvec.tolist() == [a] * n and len(env.agent_names) == n
        spec = env.spec_dict()
        assert (spec["env_id"], spec["n_agents"], spec["obs_dim"], spec["state_dim"], spec["n_actions"]) == (
            env_id, n, d, s, a)
        rng = np.random.default_rng(0)
        first = play(env, seed=11, rng=rng)
        play(env, seed=12, rng=rng)
        if env_id.split("/")[0] != "smacv2":  # the fake is deterministic but owns no seed (smacv2 takes one at build)
            # reset(seed) reproduces the episode under the same actions
            again = env.reset(seed=11)[0]
            np.testing.assert_array_equal(again[STATE], first[0][0][STATE])
            for k in range(len(first) - 1):
                o2, r2, *_ = env.step(first[k][1])
                np.testing.assert_array_equal(o2[OBS], first[k + 1][0][OBS])
                assert r2 == pytest.approx(first[k][2])
    finally:
        env.close()


class FirstAvailableAction(gym.Wrapper):
    """For gymnasium's checker only: it samples some actions before the reset they are stepped after, which an env
    with state-dependent masks (attack targets in range, dead agents) rightly refuses. An unavailable agent action
    becomes that agent's first available one (deterministically, so the determinism checks still hold)."""

    def step(self, action):
        action = np.array(action)
        mask = self.env.unwrapped._mask
        for i, a in enumerate(action):
            if mask[i, a] <= 0:
                action[i] = np.flatnonzero(mask[i])[0]
        return self.env.step(action)


@pytest.mark.filterwarnings("ignore:.*infinity")  # the contract's Boxes are unbounded on purpose
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_env_checker(env_id):
    env = contract_env(env_id)
    try:
        check_env(FirstAvailableAction(env), skip_render_check=True)
    finally:
        env.close()

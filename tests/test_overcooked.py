"""Overcooked team envs (JaxMARL): per-agent (general-sum) rewards, soups, time limit, config, scripted cooks.

The shared contract (spaces, masks, seeding, gymnasium's checker) runs on every overcooked/... id in
tests/test_env_contract.py, because they are registered.
"""
import sys

import numpy as np
import pytest

from rllib_mil.data.experts import make_expert, play_episode
from rllib_mil.envs import ACTION_MASK, INFO_AGENT_REWARDS, INFO_SOUPS_DELIVERED, OBS, STATE, make_team_env
from rllib_mil.envs.overcooked import DOWN, INTERACT, LEFT, OVERCOOKED_ENV_IDS, RIGHT, STAY, UP, OvercookedTeamEnv
from helpers import rollout_steps

# cramped_room: agent 0 starts at (y=1, x=1) next to the onion pile at (1, 0); the pot is at (0, 2).
ONION_INTO_POT = [LEFT, INTERACT, RIGHT, UP, INTERACT]  # face the pile, take an onion, step right, face the pot, put


@pytest.fixture(scope="module")
def cramped():
    return make_team_env("overcooked/cramped_room")


def drive(env, agent0_actions, seed=0):
    """Agent 0 plays ``agent0_actions``, agent 1 stays; returns the list of (reward, info) per step."""
    env.reset(seed=seed)
    return [env.step(np.array([a, STAY]))[1::3] for a in agent0_actions]


def test_ids_dims_and_state(cramped):
    assert OVERCOOKED_ENV_IDS[0] == "overcooked/cramped_room" and len(OVERCOOKED_ENV_IDS) == 5
    assert (cramped.n_agents, cramped.n_actions) == (2, 6)
    assert (cramped.obs_dim, cramped.state_dim) == (4 * 5 * 26, 4 * 5 * 26 + 1)
    obs, _ = cramped.reset(seed=0)
    np.testing.assert_array_equal(obs[ACTION_MASK], np.ones((2, 6)))
    # the state is agent 0's view of the (fully observable) kitchen plus t / max_steps
    np.testing.assert_array_equal(obs[STATE][:-1], obs[OBS][0])
    assert obs[STATE][-1] == 0.0
    # each cook sees its own position plane first: the rows differ by that swap only
    view0, view1 = (obs[OBS][i].reshape(4, 5, 26) for i in range(2))
    np.testing.assert_array_equal(view0[..., 0], view1[..., 1])
    np.testing.assert_array_equal(view0[..., 10:], view1[..., 10:])


def test_shaped_reward_is_each_agents_own(cramped):
    steps = drive(cramped, ONION_INTO_POT)
    rewards = np.array([info[INFO_AGENT_REWARDS] for _, info in steps])
    # taking an onion from the pile earns nothing; putting it into the pot earns agent 0 (only) 3
    np.testing.assert_array_equal(rewards[:-1], 0.0)
    np.testing.assert_array_equal(rewards[-1], [3.0, 0.0])
    assert steps[-1][0] == pytest.approx(1.5)  # the team reward is the agents' mean
    for coef, expected in ((0.0, [0.0, 0.0]), (0.5, [1.5, 0.0])):
        env = make_team_env("overcooked/cramped_room", {"shaped_reward_coef": coef})
        np.testing.assert_array_equal(drive(env, ONION_INTO_POT)[-1][1][INFO_AGENT_REWARDS], expected)


def test_time_limit_is_truncation():
    env = make_team_env("overcooked/cramped_room", {"max_steps": 4})
    steps = rollout_steps(env, lambda o: np.array([DOWN, UP]))[1]
    assert [(s[2], s[3]) for s in steps] == [(False, False)] * 3 + [(False, True)]
    assert [s[4][INFO_SOUPS_DELIVERED] for s in steps] == [0] * 4
    assert steps[-1][5][STATE][-1] == pytest.approx(1.0)  # elapsed fraction t / max_steps
    with pytest.raises(RuntimeError, match="reset"):
        env.step(np.array([STAY, STAY]))
    assert make_team_env("overcooked/cramped_room").max_steps == 400  # JaxMARL's default


def test_config_validation_and_unknown_layout():
    with pytest.raises(ValueError, match=r"Unknown env_config key\(s\) \['shaped_reward'\].*allowed keys: "
                                         r"\['max_steps', 'random_reset', 'shaped_reward_coef'\]"):
        make_team_env("overcooked/cramped_room", {"shaped_reward": 1.0})
    with pytest.raises(ValueError, match="shaped_reward_coef.*>= 0"):
        make_team_env("overcooked/cramped_room", {"shaped_reward_coef": -1})
    with pytest.raises(ValueError, match="max_steps"):
        make_team_env("overcooked/cramped_room", {"max_steps": 0})
    with pytest.raises(ValueError, match="random_reset"):
        make_team_env("overcooked/cramped_room", {"random_reset": "yes"})
    with pytest.raises(ValueError, match="Unknown team env id 'overcooked/kitchen'"):
        make_team_env("overcooked/kitchen")
    with pytest.raises(ValueError, match="Unknown Overcooked layout"):
        OvercookedTeamEnv("overcooked/kitchen")


def test_missing_jaxmarl_names_the_extra(monkeypatch):
    from rllib_mil.envs import overcooked

    monkeypatch.setitem(sys.modules, "jaxmarl.environments.overcooked", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install -e \.\[smax\]"):
        overcooked.import_jaxmarl_overcooked()


def test_scripted_cooks_deliver_soups(cramped):
    ret, won, steps = play_episode(cramped, make_expert("scripted", cramped), seed=3, rng=None, record=True)
    assert won is None and len(steps) == 400 and steps[-1][5] and not steps[-1][4]
    soups = [info[INFO_SOUPS_DELIVERED] for *_, info in steps]
    assert soups[-1] >= 8  # measured: 10 in every episode
    assert soups == sorted(soups)  # a running count
    agent_returns = np.sum([info[INFO_AGENT_REWARDS] for *_, info in steps], axis=0)
    # both cooks get the delivery rewards; their shaped rewards (pot, plate, soup pickups) differ
    assert agent_returns.min() > 20 * soups[-1] and agent_returns[0] != agent_returns[1]
    assert ret == pytest.approx(agent_returns.mean(), rel=1e-5)

"""Greedy, decentralized evaluation of checkpoints, and checkpoints as demonstration experts.

A checkpoint's team module is run locally on a fresh team env: agent i's action depends only on its own
observation row (the shared Q network applied per agent), so this is decentralized execution.
"""

import os
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch

from rllib_mil.envs.contract import INFO_BATTLE_WON
from rllib_mil.envs.registry import make_team_env

MODULE_SUBDIR = os.path.join("learner_group", "learner", "rl_module", "default_policy")


def _checkpoint_dir(path: str) -> str:
    path = os.path.abspath(os.path.expanduser(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f"No checkpoint directory at {path}.")
    if not os.path.isdir(os.path.join(path, MODULE_SUBDIR)):
        raise ValueError(
            f"{path} is not an RLlib algorithm checkpoint (no {MODULE_SUBDIR}/ inside). Pass a "
            "`checkpoint_...` directory written by `rllib train file` or `algo.save_to_path()`."
        )
    return path


def checkpoint_config(path: str):
    """The AlgorithmConfig stored in an algorithm checkpoint (its constructor arguments)."""
    import pickle

    path = _checkpoint_dir(path)
    with open(os.path.join(path, "class_and_ctor_args.pkl"), "rb") as f:
        ctor = pickle.load(f)
    algo_cls = ctor["class"]
    (config_dict, *_), _kwargs = ctor["ctor_args_and_kwargs"]
    if not isinstance(config_dict, dict):  # an AlgorithmConfig already
        return config_dict
    return algo_cls.get_default_config().update_from_dict(config_dict)


def load_team_module(path: str):
    """(team RLModule on CPU in eval mode, algorithm config) of a checkpoint."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    path = _checkpoint_dir(path)
    config = checkpoint_config(path)
    module = RLModule.from_checkpoint(os.path.join(path, MODULE_SUBDIR))
    module.eval()
    return module, config


def _batch(team_obs: Dict[str, np.ndarray]) -> Dict[str, Any]:
    from ray.rllib.core.columns import Columns

    return {Columns.OBS: {k: torch.as_tensor(v)[None] for k, v in team_obs.items()}}


class CheckpointExpert:
    """A trained checkpoint used as demonstration expert (greedy or Boltzmann actions)."""

    def __init__(self, path: str, env_id: Optional[str] = None, stochastic: bool = False):
        from ray.rllib.core.columns import Columns

        self._actions_key = Columns.ACTIONS
        self.module, self.config = load_team_module(path)
        if env_id is not None and self.config.env != env_id:
            raise ValueError(
                f"Checkpoint {path} was trained on env {self.config.env!r}, not {env_id!r}: collect demos for "
                f"{self.config.env!r} or pass a checkpoint trained on {env_id!r}."
            )
        self.stochastic = stochastic
        self.name = f"checkpoint:{os.path.abspath(path)}"

    @torch.no_grad()
    def act(self, team_obs: Dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        batch = _batch(team_obs)
        out = self.module.forward_exploration(batch, t=0) if self.stochastic else self.module.forward_inference(batch)
        return out[self._actions_key][0].cpu().numpy().astype(np.int64)


def expert_from_arg(arg: str, env_id: str, env_config: Optional[Dict] = None):
    """`scripted` / `random` stay names; anything else is a checkpoint path."""
    if arg in ("scripted", "random"):
        return arg
    return CheckpointExpert(arg, env_id=env_id)


def run_episodes(env, policy, episodes: int, seed: int) -> Dict[str, Any]:
    """Mean/std team return (and win rate where the env reports one) of ``policy.act`` over episodes."""
    rng = np.random.default_rng(seed)
    returns, wins = [], []
    for k in range(episodes):
        obs, info = env.reset(seed=seed + k)
        total, done = 0.0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(policy.act(obs, rng))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
        if INFO_BATTLE_WON in info:
            wins.append(float(bool(info[INFO_BATTLE_WON])))
    res = {"episodes": episodes, "seed": seed, "return_mean": float(np.mean(returns)), "return_std": float(np.std(returns))}
    if wins:
        res["win_rate"] = float(np.mean(wins))
    return res


def evaluate_checkpoint(path: str, episodes: int = 10, seed: int = 0) -> Dict[str, Any]:
    """Greedy decentralized evaluation of a checkpoint on its own env."""
    expert = CheckpointExpert(path)
    env = make_team_env(expert.config.env, dict(expert.config.env_config or {}))
    try:
        res = run_episodes(env, expert, episodes, seed)
    finally:
        env.close()
    return {"checkpoint": os.path.abspath(path), "env": expert.config.env, **res}

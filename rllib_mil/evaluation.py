"""Greedy, decentralized evaluation of checkpoints, and checkpoints as demonstration experts.

A checkpoint's team module is run locally on a fresh team env: agent i's action depends only on its own
observation row (the shared Q network applied per agent), so this is decentralized execution.
"""

import os
from typing import Any, Dict, Optional

import numpy as np
import torch

from rllib_mil.data.experts import Expert
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
    try:
        config = checkpoint_config(path)
        module = RLModule.from_checkpoint(os.path.join(path, MODULE_SUBDIR))
    except Exception as e:  # unpickling / torch.load / msgpack errors of a damaged folder, whatever their type
        raise ValueError(
            f"Checkpoint {path} is damaged or unreadable ({type(e).__name__}: {str(e)[:200]}). Use another "
            "`checkpoint_...` folder of the run (Tune keeps `num_to_keep` of them) or re-save it."
        ) from None
    module.eval()
    return module, config


class ModulePolicy(Expert):
    """A team RLModule as an ``Expert``: greedy (``forward_inference``) or sampled (``forward_exploration``).

    Works with modules that return actions (MIFQ's Boltzmann / greedy Q) and with modules that return action
    distribution inputs (MAPPO), recurrent ones included: the recurrent state is carried from step to step and
    cleared by ``reset()`` at each episode start. Sampling draws its randomness from the ``rng`` passed to
    ``act``, so a seeded rollout is reproducible. Decentralized: the module applies its shared per-agent network
    to each agent's own observation row.
    """

    def __init__(self, module, stochastic: bool = False):
        self.module = module
        self.stochastic = stochastic
        self._state = None

    def reset(self) -> None:
        self._state = None

    @torch.no_grad()
    def act(self, team_obs: Dict[str, np.ndarray], rng: np.random.Generator) -> np.ndarray:
        from ray.rllib.core.columns import Columns
        from ray.rllib.utils.spaces.space_utils import batch as batch_structs

        module = self.module
        stateful = module.is_stateful()
        obs = {k: torch.as_tensor(v)[None] for k, v in team_obs.items()}  # (1, ...) batch of one
        batch: Dict[str, Any] = {Columns.OBS: obs}
        if stateful:
            if self._state is None:
                self._state = batch_structs([module.get_initial_state()])  # add the batch dim
                self._state = {k: torch.as_tensor(v) for k, v in self._state.items()}
            batch[Columns.OBS] = {k: v[:, None] for k, v in obs.items()}  # (1, T=1, ...)
            batch[Columns.STATE_IN] = self._state
        if self.stochastic:
            # Seed torch from rng inside a forked RNG: sampled actions depend on rng only, global state untouched.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.integers(2**63 - 1)))
                out = module.forward_exploration(batch, t=0)
                actions = out.get(Columns.ACTIONS)
                if actions is None:
                    dist = module.get_exploration_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
                    actions = dist.sample()
        else:
            out = module.forward_inference(batch)
            actions = out.get(Columns.ACTIONS)
            if actions is None:
                dist = module.get_inference_action_dist_cls().from_logits(out[Columns.ACTION_DIST_INPUTS])
                actions = dist.to_deterministic().sample()
        if stateful:
            self._state = out[Columns.STATE_OUT]
            actions = actions[:, 0]  # drop T
        return actions[0].cpu().numpy().astype(np.int64)


class CheckpointExpert(ModulePolicy):
    """A trained checkpoint used as demonstration expert (greedy or sampled actions)."""

    def __init__(self, path: str, env_id: Optional[str] = None, stochastic: bool = False):
        from rllib_mil.algorithms.registry import ALGORITHMS

        module, self.config = load_team_module(path)
        algo = getattr(self.config.algo_class, "__name__", str(self.config.algo_class))
        if algo not in {cls.__name__ for cls, _ in ALGORITHMS.values()}:
            raise ValueError(
                f"Checkpoint {path} comes from algorithm {algo!r}, which does not act in a team env: expert "
                f"checkpoints must come from one of {sorted(ALGORITHMS)} (e.g. `rllib train file "
                "tuned_examples/mappo_mpe_spread.yaml`)."
            )
        if env_id is not None and self.config.env != env_id:
            raise ValueError(
                f"Checkpoint {path} was trained on env {self.config.env!r}, not {env_id!r}: collect demos for "
                f"{self.config.env!r} or pass a checkpoint trained on {env_id!r}."
            )
        super().__init__(module, stochastic=stochastic)
        self.algo = algo
        self.name = f"checkpoint:{algo}:{os.path.abspath(path)}"


def expert_from_arg(arg: str, env_id: str, env_config: Optional[Dict] = None, stochastic: bool = False):
    """`scripted` / `random` stay names; anything else is a checkpoint path, checked against the target env."""
    if arg in ("scripted", "random"):
        if stochastic:
            raise ValueError(f"--stochastic applies to checkpoint experts, not to {arg!r}")
        return arg
    if not os.path.exists(os.path.expanduser(arg)) and os.sep not in arg:
        from rllib_mil.preflight import suggest

        raise ValueError(f"expert {arg!r} is neither `scripted`, `random` nor a checkpoint directory."
                         f"{suggest(arg, ('scripted', 'random'))} A checkpoint is given by its path.")
    expert = CheckpointExpert(arg, env_id=env_id, stochastic=stochastic)
    env = make_team_env(env_id, dict(env_config or {}))
    try:
        want, have = expert.module.observation_space, env.observation_space
        if any(want[k].shape != have[k].shape for k in have.spaces):
            shapes = lambda space: {k: space[k].shape for k in space.spaces}  # noqa: E731
            raise ValueError(
                f"Checkpoint {arg} was trained on {env_id} with observation shapes {shapes(want)}, but "
                f"env_config {dict(env_config or {})} gives {shapes(have)}: use the checkpoint's env_config "
                f"({dict(expert.config.env_config or {})}) or a checkpoint trained on this one."
            )
    finally:
        env.close()
    return expert


def run_episodes(env, policy, episodes: int, seed: int) -> Dict[str, Any]:
    """Mean/std team return (and win rate where the env reports one) of ``policy.act`` over episodes."""
    from rllib_mil.data.experts import episode_outcomes

    returns, wins = episode_outcomes(env, policy, episodes, seed)
    res = {"episodes": episodes, "seed": seed, "return_mean": float(returns.mean()), "return_std": float(returns.std())}
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

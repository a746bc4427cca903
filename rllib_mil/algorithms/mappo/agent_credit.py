"""Per-agent credit for MAPPO (``credit="agent"``): each agent's advantage comes from its own reward.

With the team reward (MAPPO's default) every agent gets one advantage Â, and an agent whose action pays off only
through its partner's later moves gets no signal of its own: in MPE simple_reference agent i's reward is the
partner's distance to i's goal landmark, so i's words earn i's reward, but the team advantage mixes it with the
partner's. With ``credit="agent"`` the team env's per-agent rewards (``info[INFO_AGENT_REWARDS]``) reach the
learner, the centralized critic has one value head per agent, V_i(s), and GAE runs per agent:

    δ_i,t = r_i,t + γ(1 − d_t)·V_i(s_t+1) − V_i(s_t),    Â_i,t = Σ_k (γλ)^k δ_i,t+k   (per episode chunk)

Two learner-connector pieces do it: ``AddAgentRewardsToBatch`` (a column beside RLlib's rewards, one row per
episode step including PPO's artificial bootstrap step, whose reward is 0) and ``AgentGAE``, which replaces
RLlib's ``GeneralAdvantageEstimation`` and writes ``(B, n)`` advantages and value targets. The per-step
recursion is RLlib's own ``compute_value_targets``, run once per agent column.
"""
from typing import Any, Dict, List

import numpy as np
from ray.rllib.connectors.common.numpy_to_tensor import NumpyToTensor
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.evaluation.postprocessing import Postprocessing
from ray.rllib.utils.numpy import convert_to_numpy
from ray.rllib.utils.postprocessing.value_predictions import compute_value_targets
from ray.rllib.utils.postprocessing.zero_padding import split_and_zero_pad_n_episodes, unpad_data_if_necessary
from ray.rllib.core.columns import Columns

from rllib_mil.data.schema import AGENT_REWARDS
from rllib_mil.envs.contract import INFO_AGENT_REWARDS


def episode_agent_rewards(infos: List[Any], length: int) -> np.ndarray:
    """Per-agent rewards of an episode chunk already elongated by PPO's bootstrap step: ``length`` rows, the
    reward of step t read from ``infos[t + 1]`` (the info the env returned with it), the last row 0."""
    rows = []
    for t in range(length - 1):
        info = infos[t + 1]
        if not isinstance(info, dict) or INFO_AGENT_REWARDS not in info:
            raise ValueError(
                f"MAPPO `credit='agent'` needs the team env's per-agent rewards in info[{INFO_AGENT_REWARDS!r}], "
                f"missing at step {t}; every team env of rllib_mil sets them (a custom env must too), or use "
                f"`credit='team'`."
            )
        rows.append(np.asarray(info[INFO_AGENT_REWARDS], np.float32))
    rows.append(np.zeros_like(rows[0]) if rows else np.zeros(0, np.float32))
    return np.stack(rows)  # (length, n)


class AddAgentRewardsToBatch(ConnectorV2):
    """Adds ``AGENT_REWARDS (B, n)`` to the train batch, row-aligned with RLlib's other columns (insert it after
    ``AddOneTsToEpisodesAndTruncate``)."""

    def __call__(self, *, rl_module, batch: Dict[str, Any], episodes, **kwargs):
        for sa_episode in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            n = len(sa_episode)
            rewards = episode_agent_rewards(sa_episode.get_infos(), n)
            self.add_n_batch_items(batch, AGENT_REWARDS, rewards, n, sa_episode)  # (n, agents) as one batched item
        return batch


def agent_gae(values: np.ndarray, agent_rewards: np.ndarray, terminateds: np.ndarray, truncateds: np.ndarray,
              gamma: float, lambda_: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-agent GAE on unpadded rows: ``values, agent_rewards (N, n)``, flags ``(N,)`` -> ``(advantages,
    value_targets)``, each ``(N, n)``; the advantages standardized over all N·n entries (as RLlib's GAE)."""
    targets = np.stack([
        compute_value_targets(values=values[:, i], rewards=agent_rewards[:, i], terminateds=terminateds,
                              truncateds=truncateds, gamma=gamma, lambda_=lambda_)
        for i in range(values.shape[1])
    ], axis=1)  # n x (N,) -> (N, n)
    adv = targets - values
    return (adv - adv.mean()) / max(1e-4, adv.std()), targets


class AgentGAE(ConnectorV2):
    """RLlib's ``GeneralAdvantageEstimation`` with one value and one reward per agent (see the module doc)."""

    def __init__(self, input_observation_space=None, input_action_space=None, *, gamma, lambda_):
        super().__init__(input_observation_space, input_action_space)
        self.gamma, self.lambda_ = gamma, lambda_
        self._to_tensor = None

    def __call__(self, *, rl_module, episodes, batch: Dict[str, Any], **kwargs):
        sa_episodes = list(self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False))
        device, results = None, {}
        for module_id, module_batch in batch.items():
            module = rl_module[module_id]
            values = module.compute_values(module_batch)  # (B, n) or (B, T, n), env units
            device = values.device
            lens = [len(e) for e in sa_episodes if e.module_id in (None, module_id)]
            stateful = module.is_stateful()

            def flat(x):
                """Unpadded rows: (B,) / (B, n) as they are; recurrent (B, T) -> (N,), (B, T, n) -> (N, n)."""
                x = convert_to_numpy(x)
                if not stateful:
                    return x
                if x.ndim == 2:
                    return unpad_data_if_necessary(lens, x)
                return np.stack([unpad_data_if_necessary(lens, x[..., i]) for i in range(x.shape[-1])], axis=1)

            adv, targets = agent_gae(flat(values), flat(module_batch[AGENT_REWARDS]),
                                     flat(module_batch[Columns.TERMINATEDS]).astype(np.float32),
                                     flat(module_batch[Columns.TRUNCATEDS]).astype(np.float32),
                                     self.gamma, self.lambda_)
            if stateful:  # back into RLlib's (B, T, n) zero-padded sequences
                T = module.model_config["max_seq_len"]
                adv = np.stack(split_and_zero_pad_n_episodes(adv, episode_lens=lens, max_seq_len=T), axis=0)
                targets = np.stack(split_and_zero_pad_n_episodes(targets, episode_lens=lens, max_seq_len=T), axis=0)
            results[module_id] = {Postprocessing.ADVANTAGES: adv, Postprocessing.VALUE_TARGETS: targets}
        if self._to_tensor is None:
            self._to_tensor = NumpyToTensor(as_learner_connector=True, device=device)
        for module_id, tensors in self._to_tensor(rl_module=rl_module, batch=results, episodes=episodes).items():
            batch[module_id].update(tensors)
        return batch

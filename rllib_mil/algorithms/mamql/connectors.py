"""Learner connector piece: each replay transition's per-agent rewards (the team env's ``info[INFO_AGENT_REWARDS]``
of the step) into the train batch, so the learner can compare the recovered rewards with the true ones."""
from typing import Any, Dict, List, Optional

import numpy as np
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.core.rl_module.rl_module import RLModule

from rllib_mil.envs.contract import INFO_AGENT_REWARDS

# Batch column: (B, n) true reward of each agent for the transition.
AGENT_REWARDS = "agent_rewards"


class AddAgentRewardsFromInfos(ConnectorV2):
    def __call__(self, *, rl_module: RLModule, batch: Dict[str, Any], episodes: List[Any],
                 explore: Optional[bool] = None, shared_data: Optional[dict] = None, **kwargs) -> Any:
        for ep in self.single_agent_episode_iterator(episodes, agents_that_stepped_only=False):
            # infos[t + 1] is what the env returned with the step from t: its rewards.
            infos = ep.get_infos(slice(1, len(ep) + 1))
            rewards = [np.asarray(info.get(INFO_AGENT_REWARDS, np.nan), np.float32) if isinstance(info, dict)
                       else np.float32(np.nan) for info in infos]
            self.add_n_batch_items(batch, AGENT_REWARDS, items_to_add=rewards, num_items=len(ep),
                                   single_agent_episode=ep)
        return batch

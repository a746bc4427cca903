"""The MIFQ team RLModule: one shared soft-Q network for all agents, plus V and R mixers.

Decentralized by construction: agent i's Q values depend only on its own local observation row
``obs[:, i]`` and its id (see ``SharedAgentQNet``). Only the mixers read the global ``state``, and they live
on the learner alone (``InferenceOnlyAPI``): env runners carry just the Q network.
"""

from typing import Any, Dict, List

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.schedules.scheduler import Scheduler

from rllib_mil.envs.contract import ACTION_MASK, OBS, team_dims
from rllib_mil.modules.agent_nets import SharedAgentQNet
from rllib_mil.modules.mixers import make_mixer
from rllib_mil.modules.soft import boltzmann_sample, greedy_actions

# forward_target output key.
TARGET_Q_VALUES = "target_q_values"


class MIFQTorchRLModule(TorchRLModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Team soft-Q module. ``model_config`` keys (filled from ``MIFQConfig``):

    hidden (list[int]), add_agent_id (bool), mixer ("mifq" | "vdn" | "none"), mixer_embed_dim (int),
    hypernet_hidden (int), mixer_normalize (bool), mixer_bias (bool), mixer_min_weight (float), mixer_shared (bool),
    rollout_alpha (float or schedule [[t, alpha], ...]: Boltzmann temperature of rollouts; the learner's soft
    values use ``MIFQConfig.alpha``). Defaults live in ``MIFQConfig`` only.
    """

    framework: str = "torch"

    @override(RLModule)
    def setup(self):
        mc = self.model_config
        self.n_agents, obs_dim, state_dim, n_actions = team_dims(self.observation_space, "MIFQ")
        self.q_net = SharedAgentQNet(
            obs_dim,
            self.n_agents,
            n_actions,
            hidden=tuple(mc["hidden"]),
            add_agent_id=mc["add_agent_id"],
        )
        mixer_kwargs = {}
        if mc["mixer"] == "mifq":
            mixer_kwargs = dict(
                embed_dim=mc["mixer_embed_dim"],
                hypernet_hidden=mc["hypernet_hidden"],
                normalize=mc["mixer_normalize"],
                bias=mc["mixer_bias"],
                min_weight=mc["mixer_min_weight"],
            )
        # V and R mixers (eq. 7 and 8); None = independent learning (IIQ). With `mixer_shared` both names refer
        # to one module (one set of hypernetworks); see MIFQConfig.mixer_shared.
        self.v_mixer = make_mixer(mc["mixer"], self.n_agents, state_dim, **mixer_kwargs)
        if mc["mixer_shared"]:
            self.r_mixer = self.v_mixer
        else:
            self.r_mixer = make_mixer(mc["mixer"], self.n_agents, state_dim, **mixer_kwargs)
        # Rollout temperature; a schedule over sampled env steps is allowed.
        self.alpha_schedule = Scheduler(mc["rollout_alpha"], framework="torch")

    # -- APIs ----------------------------------------------------------------------------------------------
    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        # Mixers and the target net never leave the learner.
        return ["v_mixer", "r_mixer", "_target_q_net"]

    @override(TargetNetworkAPI)
    def make_target_networks(self) -> None:
        self._target_q_net = make_target_network(self.q_net)

    @override(TargetNetworkAPI)
    def get_target_network_pairs(self):
        return [(self.q_net, self._target_q_net)]

    @override(TargetNetworkAPI)
    def forward_target(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        return {TARGET_Q_VALUES: self._target_q_net(batch[Columns.OBS][OBS])}

    # -- forward passes ------------------------------------------------------------------------------------
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, n, d) local observations -> (B, n, A) soft Q values."""
        return self.q_net(obs)

    @override(RLModule)
    def _forward_inference(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        # Greedy evaluation under the mask; actions (B, n) go straight to the env.
        q = self.q_net(batch[Columns.OBS][OBS])
        return {Columns.ACTIONS: greedy_actions(q, batch[Columns.OBS][ACTION_MASK])}

    @override(RLModule)
    def _forward_exploration(self, batch: Dict[str, Any], t: int = 0, **kwargs) -> Dict[str, Any]:
        # Boltzmann rollouts: a_i ~ softmax(Q_i / alpha) over available actions.
        self.alpha_schedule.update(t)
        alpha = float(self.alpha_schedule.get_current_value())
        q = self.q_net(batch[Columns.OBS][OBS])
        return {Columns.ACTIONS: boltzmann_sample(q, batch[Columns.OBS][ACTION_MASK], alpha)}

    @override(RLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        # The learner prepends expert rows to the replay rows and runs the Q network once over both
        # (MIFQTorchLearner.compute_loss_for_module), so there is nothing to precompute here.
        return {}

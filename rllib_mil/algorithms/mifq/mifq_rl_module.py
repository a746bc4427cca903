"""The MIFQ team RLModule: one shared soft-Q network for all agents (``TeamAgentModule``), plus V and R mixers
and a target Q network.

Decentralized by construction: agent i's Q values depend only on its own local observation row
``obs[:, i]`` and its id (see ``SharedAgentQNet`` / ``SharedAgentGRUNet``). Only the mixers read the global
``state``, and they live on the learner alone (``InferenceOnlyAPI``): env runners carry just the Q network.
"""

from typing import Any, Dict, List, Optional

import torch

from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override

from rllib_mil.envs.contract import OBS
from rllib_mil.modules.agent_nets import TwoTowerAgentNet
from rllib_mil.modules.mixers import make_mixer
from rllib_mil.modules.soft import with_policy_prior
from rllib_mil.modules.team_module import TeamAgentModule

# forward_target output key.
TARGET_Q_VALUES = "target_q_values"


class MIFQTorchRLModule(TeamAgentModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Team soft-Q module. ``model_config`` keys (filled from ``MIFQConfig``): those of ``TeamAgentModule``
    (hidden, add_agent_id, use_gru, gru_hidden, rollout_alpha: the Boltzmann temperature of rollouts; the
    learner's soft values use ``MIFQConfig.alpha``), and mixer ("mifq" | "vdn" | "none"), mixer_embed_dim (int),
    hypernet_hidden (int), mixer_normalize (bool), mixer_bias (bool), mixer_min_weight (float), mixer_shared
    (bool), prior_scale (float: α·β of ``policy_prior="bc"``, 0 = no prior). Defaults live in ``MIFQConfig`` only.

    With a prior the shared network has two heads per agent row, ``[Q_i(o, ·) | prior logits (o, ·)]``, and acting
    maximises / samples ``Q + prior_scale·log π0`` (``split_prior``, ``action_scores``).
    """

    @property
    def prior_scale(self) -> float:
        return float(self.model_config.get("prior_scale", 0.0) or 0.0)

    @override(TeamAgentModule)
    def agent_out_dim(self) -> int:
        return self.n_actions * (2 if self.prior_scale else 1)

    @override(TeamAgentModule)
    def make_agent_net(self) -> torch.nn.Module:
        mc = self.model_config
        if self.prior_scale and mc.get("prior_net", "shared") == "separate":
            # The prior's logits from their own network (same layout as the shared net's second head).
            return TwoTowerAgentNet(self.input_dim, self.n_agents, self.n_actions, hidden=tuple(mc["hidden"]),
                                    add_agent_id=mc["add_agent_id"])
        return super().make_agent_net()

    def split_prior(self, out: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """``q_net`` outputs ``(..., agent_out_dim)`` -> ``(Q (..., A), prior logits (..., A) or None)``."""
        if not self.prior_scale:
            return out, None
        return out[..., : self.n_actions], out[..., self.n_actions :]

    @override(TeamAgentModule)
    def action_scores(self, out: torch.Tensor) -> torch.Tensor:
        q, logits = self.split_prior(out)
        # The log-softmax over all actions differs from the one over available actions by a per-row constant,
        # which neither the argmax nor softmax over available actions sees.
        return q if logits is None else with_policy_prior(q, logits, None, self.prior_scale)

    @override(RLModule)
    def setup(self):
        super().setup()
        mc = self.model_config
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
        self.v_mixer = make_mixer(mc["mixer"], self.n_agents, self.state_dim, **mixer_kwargs)
        if mc["mixer_shared"]:
            self.r_mixer = self.v_mixer
        else:
            self.r_mixer = make_mixer(mc["mixer"], self.n_agents, self.state_dim, **mixer_kwargs)

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
        obs = batch[Columns.OBS][OBS]
        if self.use_gru:  # (B, T, n, d) whole-episode sequences from the zero state
            return {TARGET_Q_VALUES: self._target_q_net(obs, self.zero_state(obs))[0]}
        return {TARGET_Q_VALUES: self._target_q_net(obs)}

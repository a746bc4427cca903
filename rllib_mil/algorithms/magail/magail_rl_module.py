"""MAGAIL's team RLModule: MAPPO's (shared decentralized actor, centralized critic) plus a discriminator that
lives on the learner only, like the critic."""
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.mappo.mappo_rl_module import MAPPOTorchRLModule
from rllib_mil.envs.contract import team_dims
from rllib_mil.modules.agent_nets import _with_agent_id, mlp


class TeamDiscriminator(nn.Module):
    """D(o_i, a_i) for every agent with one shared net (+ one-hot agent id), or D(S, A) on the global state and
    the joint action (``centralized``). ``inputs`` builds the rows and ``forward`` maps them to logits with a
    trailing agent axis: ``(..., n, d + A [+ n]) -> (..., n)``, or ``(..., S + n·A) -> (..., 1)``. The two are
    apart so the gradient penalty can interpolate between expert and policy inputs."""

    def __init__(self, obs_dim: int, state_dim: int, n_agents: int, n_actions: int, hidden: Sequence[int],
                 activation: str, centralized: bool, add_agent_id: bool):
        super().__init__()
        self.n_agents, self.n_actions = n_agents, n_actions
        self.centralized, self.add_agent_id = centralized, add_agent_id
        if centralized:
            in_dim = state_dim + n_agents * n_actions
        else:
            in_dim = obs_dim + n_actions + (n_agents if add_agent_id else 0)
        self.net = mlp(in_dim, tuple(hidden), 1, activation)
        self.register_buffer("agent_ids", torch.eye(n_agents), persistent=False)  # (n, n)

    def inputs(self, obs: torch.Tensor, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """``obs (..., n, d)``, ``state (..., S)``, ``actions (..., n)`` int -> discriminator rows."""
        a = F.one_hot(actions.long(), self.n_actions).to(obs.dtype)  # (..., n, A)
        if self.centralized:
            return torch.cat([state.to(obs.dtype), a.flatten(-2)], dim=-1)  # (..., S + n*A)
        x = torch.cat([obs, a], dim=-1)  # (..., n, d + A)
        return _with_agent_id(x, self.agent_ids) if self.add_agent_id else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)  # (..., n, 1) per agent, (..., 1) centralized
        return out if self.centralized else out.squeeze(-1)  # (..., n) or (..., 1)

    def weights(self, mask: torch.Tensor) -> torch.Tensor:
        """Which logits count, from the action mask ``(..., n, A)``: agents with a real choice (per-agent), or
        every row (centralized): ``(..., n)`` / ``(..., 1)``."""
        choice = ((mask > 0).sum(dim=-1) > 1).to(mask.dtype)  # (..., n)
        return torch.ones_like(choice[..., :1]) if self.centralized else choice


class MAGAILTorchRLModule(MAPPOTorchRLModule):
    """``model_config`` adds disc_hidden (list[int]), disc_activation (str), disc_centralized (bool) to MAPPO's
    keys (filled from ``MAGAILConfig``)."""

    @override(RLModule)
    def setup(self):
        super().setup()
        if not self.inference_only:
            mc = self.model_config
            n, obs_dim, state_dim, A = team_dims(self.observation_space, "MAGAIL")
            self.discriminator = TeamDiscriminator(
                obs_dim, state_dim, n, A, hidden=mc["disc_hidden"], activation=mc["disc_activation"],
                centralized=bool(mc["disc_centralized"]), add_agent_id=mc["add_agent_id"])

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        return super().get_non_inference_attributes() + ["discriminator"]

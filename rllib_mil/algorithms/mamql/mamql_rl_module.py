"""MAMQL's team module: MIFQ's (shared per-agent soft-Q network, target net; no mixer) whose agent rows read the
global state (marginalized critics Q̄_i(s, a_i), ``agent_input="state"``), plus per-agent reward networks
R_i(s, a) on the learner (reward recovery)."""
from typing import List

import torch
import torch.nn.functional as F
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.mifq.mifq_rl_module import MIFQTorchRLModule
from rllib_mil.modules.agent_nets import SharedAgentQNet


class MAMQLTorchRLModule(MIFQTorchRLModule):
    """``model_config`` adds ``reward_hidden`` (list[int]): the reward network's MLP, one per agent row (shared
    weights, one-hot agent id) over the global state and the one-hot joint action."""

    @override(RLModule)
    def setup(self):
        super().setup()
        in_dim = self.state_dim + self.n_agents * self.n_actions
        self.reward_net = SharedAgentQNet(in_dim, self.n_agents, 1, hidden=tuple(self.model_config["reward_hidden"]),
                                          add_agent_id=True)

    def rewards(self, state: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """R_i(s, a): ``state (B, s)``, joint ``actions (B, n)`` -> ``(B, n)``."""
        joint = F.one_hot(actions.long(), self.n_actions).to(state.dtype).flatten(-2)  # (B, n, A) -> (B, n*A)
        x = torch.cat([state, joint], dim=-1)  # (B, s + n*A)
        rows = x.unsqueeze(-2).expand(*x.shape[:-1], self.n_agents, x.shape[-1])  # (B, n, s + n*A)
        return self.reward_net(rows).squeeze(-1)  # (B, n, 1) -> (B, n)

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        return super().get_non_inference_attributes() + ["reward_net"]

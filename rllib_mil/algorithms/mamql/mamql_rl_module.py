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
    weights, one-hot agent id), and ``reward_form``: "state_action" = R_i(s, a) over the global state and the one-hot
    joint action; "state" = g_i(s') over the state reached, plus a shaping network h_i(s) used only in the fit."""

    @override(RLModule)
    def setup(self):
        super().setup()
        hidden = tuple(self.model_config["reward_hidden"])
        self.reward_form = self.model_config.get("reward_form", "state_action")
        if self.reward_form == "state":
            self.reward_net = SharedAgentQNet(self.state_dim, self.n_agents, 1, hidden=hidden, add_agent_id=True)
            self.shaping_net = SharedAgentQNet(self.state_dim, self.n_agents, 1, hidden=hidden, add_agent_id=True)
        else:
            in_dim = self.state_dim + self.n_agents * self.n_actions
            self.reward_net = SharedAgentQNet(in_dim, self.n_agents, 1, hidden=hidden, add_agent_id=True)

    def _per_agent(self, net, x: torch.Tensor) -> torch.Tensor:
        rows = x.unsqueeze(-2).expand(*x.shape[:-1], self.n_agents, x.shape[-1])  # (B, d) -> (B, n, d)
        return net(rows).squeeze(-1)  # (B, n, 1) -> (B, n)

    def rewards(self, state: torch.Tensor, actions: torch.Tensor, next_state: torch.Tensor = None) -> torch.Tensor:
        """The recovered reward of each agent, ``(B, n)``: R_i(s, a) from ``state (B, s)`` and joint ``actions (B, n)``,
        or with ``reward_form="state"`` g_i(s') from ``next_state (B, s)``."""
        if self.reward_form == "state":
            if next_state is None:
                raise ValueError("reward_form='state' recovers a reward of the state reached: pass next_state")
            return self._per_agent(self.reward_net, next_state)
        joint = F.one_hot(actions.long(), self.n_actions).to(state.dtype).flatten(-2)  # (B, n, A) -> (B, n*A)
        return self._per_agent(self.reward_net, torch.cat([state, joint], dim=-1))  # (B, s + n*A) -> (B, n)

    def shaping(self, state: torch.Tensor, next_state: torch.Tensor, done: torch.Tensor, gamma: float):
        """γ(1 − d)·h_i(s') − h_i(s), ``(B, n)``, with ``reward_form="state"``; None for R_i(s, a) (no shaping term)."""
        if self.reward_form != "state":
            return None
        h = self._per_agent(self.shaping_net, torch.cat([state, next_state]))  # one pass: (2B, s) -> (2B, n)
        h_s, h_next = h.chunk(2)  # (B, n) each
        return gamma * (1.0 - done.to(state.dtype)).unsqueeze(-1) * h_next - h_s  # (B,) -> (B, 1) broadcast

    def fitted_rewards(self, state, actions, next_state, done, gamma: float) -> torch.Tensor:
        """What is fitted to the critic's r_i, ``(B, n)``: R_i(s, a), or g_i(s') + γ(1 − d)·h_i(s') − h_i(s)."""
        r = self.rewards(state, actions, next_state)
        shaping = self.shaping(state, next_state, done, gamma)
        return r if shaping is None else r + shaping

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        extra = ["reward_net", "shaping_net"] if self.reward_form == "state" else ["reward_net"]
        return super().get_non_inference_attributes() + extra

"""The MAPPO team RLModule: a shared decentralized actor and a centralized critic on the global state.

Actor: one network shared by all agents (MLP, or encoder -> GRU -> head with ``use_gru``) on each agent's own
observation row plus its one-hot id; unavailable actions get a large negative logit, so they are never sampled.
Critic: an MLP on the team env's global ``state`` (centralized training), in normalised units when value
normalisation is on. Only the actor travels to the env runners (``InferenceOnlyAPI``).

The joint action distribution is RLlib's ``TorchMultiCategorical`` over the agents (independent per-agent
categoricals), so env runners sample, compute log-probs and act greedily in evaluation with stock connectors.
"""

from typing import Any, Dict, List

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.distribution.torch.torch_distribution import TorchMultiCategorical
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, ValueFunctionAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.annotations import override
from torch import nn

from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE, team_dims
from rllib_mil.modules.agent_nets import FactoredLogits, SharedAgentGRUNet, SharedAgentQNet, mlp
from rllib_mil.modules.normalization import ValueNormalizer
from rllib_mil.modules.soft import masked_q

# Recurrent state key (per agent GRU hidden state, (B, n, H)).
GRU_STATE = "h"


class MAPPOTorchRLModule(TorchRLModule, ValueFunctionAPI, InferenceOnlyAPI):
    """Team actor-critic module. ``model_config`` keys (filled from ``MAPPOConfig``, where defaults live):

    actor_hidden (list[int]), critic_hidden (list[int]), activation (str), add_agent_id (bool),
    action_factors (None or list[int]: one logit head per factor, see ``FactoredLogits``),
    use_gru (bool), gru_hidden (int), max_seq_len (int, for RLlib's sequence batching),
    value_normalization (bool), credit ("team": one value V(s); "agent": one per agent, V_i(s)),
    input_norm (bool: LayerNorm on the actor's and the critic's input rows), actor_out_gain (None or float: initial
    orthogonal gain of the actor's output layer).
    """

    framework: str = "torch"

    @override(RLModule)
    def setup(self):
        mc = self.model_config
        self.n_agents, obs_dim, state_dim, self.n_actions = team_dims(self.observation_space, "MAPPO")
        nvec = getattr(self.action_space, "nvec", None)
        if nvec is None or list(nvec) != [self.n_actions] * self.n_agents:
            raise ValueError(
                f"MAPPO needs a MultiDiscrete([{self.n_actions}] * {self.n_agents}) joint action space matching "
                f"the action mask, got {self.action_space}."
            )
        factors = mc.get("action_factors")
        self.factored = None
        if factors:
            self.factored = FactoredLogits(factors)
            if self.factored.out_dim != self.n_actions:
                raise ValueError(
                    f"MAPPO `action_factors`={list(factors)} describe {self.factored.out_dim} actions, but the env has "
                    f"{self.n_actions}; set factors whose product is {self.n_actions} (MPE simple_reference: [5, 10]) "
                    f"or `action_factors: null`."
                )
        n_out = self.n_actions if self.factored is None else self.factored.in_dim
        self.use_gru = bool(mc["use_gru"])
        if self.use_gru:
            self.actor = SharedAgentGRUNet(
                obs_dim, self.n_agents, n_out, hidden=tuple(mc["actor_hidden"]),
                gru_hidden=mc["gru_hidden"], add_agent_id=mc["add_agent_id"], activation=mc["activation"],
            )
        else:
            self.actor = SharedAgentQNet(
                obs_dim, self.n_agents, n_out, hidden=tuple(mc["actor_hidden"]),
                add_agent_id=mc["add_agent_id"], activation=mc["activation"],
            )
        # MAPPO's feature normalisation: LayerNorm over each agent's observation row (Identity when off).
        self.actor_in_norm = nn.LayerNorm(obs_dim) if mc.get("input_norm") else nn.Identity()
        if mc.get("actor_out_gain") is not None:
            # Orthogonal init of the output layer with a small gain: the first policy is near uniform.
            head = [m for m in self.actor.modules() if isinstance(m, nn.Linear)][-1]
            nn.init.orthogonal_(head.weight, gain=float(mc["actor_out_gain"]))
            nn.init.zeros_(head.bias)
        if not self.inference_only:
            # credit "agent": one value head per agent, V_i(s) (agent_credit.py); "team": one V(s)
            self.agent_values = mc.get("credit", "team") == "agent"
            n_values = self.n_agents if self.agent_values else 1
            self.critic = mlp(state_dim, tuple(mc["critic_hidden"]), n_values, mc["activation"])
            if mc.get("input_norm"):
                self.critic = nn.Sequential(nn.LayerNorm(state_dim), self.critic)
            self.value_normalizer = ValueNormalizer() if mc["value_normalization"] else None
        self.action_dist_cls = TorchMultiCategorical.get_partial_dist_cls(input_lens=[self.n_actions] * self.n_agents)

    # -- APIs ----------------------------------------------------------------------------------------------
    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        return ["critic", "value_normalizer"]

    @override(RLModule)
    def get_initial_state(self) -> Dict[str, Any]:
        return {GRU_STATE: self.actor.initial_state()} if self.use_gru else {}

    @override(RLModule)
    def get_inference_action_dist_cls(self):
        return self.action_dist_cls

    @override(RLModule)
    def get_exploration_action_dist_cls(self):
        return self.action_dist_cls

    @override(RLModule)
    def get_train_action_dist_cls(self):
        return self.action_dist_cls

    # -- forward passes ------------------------------------------------------------------------------------
    def masked_logits(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        """Per-agent logits ``(..., n, A)`` with unavailable actions masked (+ the next GRU state)."""
        obs, mask = self.actor_in_norm(batch[Columns.OBS][OBS]), batch[Columns.OBS][ACTION_MASK]
        out: Dict[str, Any] = {}
        if self.use_gru:
            logits, h = self.actor(obs, batch[Columns.STATE_IN][GRU_STATE])  # (B, T, n, A), (B, n, H)
            out[Columns.STATE_OUT] = {GRU_STATE: h}
        else:
            logits = self.actor(obs)  # (B, n, A)
        if self.factored is not None:
            logits = self.factored(logits)  # (..., n, sum f) -> (..., n, A)
        out["logits"] = masked_q(logits, mask)
        return out

    @override(RLModule)
    def _forward(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        out = self.masked_logits(batch)
        # (..., n, A) -> (..., n*A): the flat layout TorchMultiCategorical splits back per agent.
        out[Columns.ACTION_DIST_INPUTS] = out.pop("logits").flatten(-2)
        return out

    def normalized_values(self, batch: Dict[str, Any]) -> torch.Tensor:
        """Critic output on the global state, ``(...)`` (``(..., n)`` with per-agent credit); in normalised units
        when value normalisation is on."""
        v = self.critic(batch[Columns.OBS][STATE])  # (..., s) -> (..., n or 1)
        return v if self.agent_values else v.squeeze(-1)  # (..., n) or (...)

    @override(ValueFunctionAPI)
    def compute_values(self, batch: Dict[str, Any], embeddings=None) -> torch.Tensor:
        # Returns in env units (GAE and value targets are computed from these).
        v = self.normalized_values(batch)
        return v if self.value_normalizer is None else self.value_normalizer.denormalize(v)

"""The team agent module every value- or policy-based imitation learner here acts with.

One network shared by all agents (MLP, or encoder -> GRU -> head with ``use_gru``; one-hot agent id appended) maps
each agent's own observation row to one score per action (soft Q values for MIFQ, logits for BC). Acting is
decentralized by construction; on the env runners the module acts greedily under the action mask
(``forward_inference``) or samples softmax(score / temperature) under it (``forward_exploration``), carrying one
GRU state per agent when recurrent. Subclasses add what only their learner needs (mixers, target networks).

``model_config`` keys: hidden (list[int]), add_agent_id (bool), agent_input ("obs" | "state" | "state+obs"), use_gru (bool), gru_hidden (int), rollout_alpha
(float or schedule [[t, value], ...], the sampling temperature), exploration ("boltzmann", the default, or "epsilon":
ε-greedy with ``epsilon``, a float or schedule [[t, value], ...], as QMIX's agents explore).
"""
from typing import Any, Dict

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.schedules.scheduler import Scheduler

from rllib_mil.data.team_replay import BEHAVIOUR_LOGP
from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE, team_dims
from rllib_mil.modules.agent_nets import SharedAgentGRUNet, SharedAgentQNet
from rllib_mil.modules.soft import action_logp, boltzmann_sample, epsilon_greedy, greedy_actions

# What each agent row of the shared network reads (model_config["agent_input"]): its own observation ("obs",
# decentralized), the global state ("state": MAMQL's marginalized critics Q_i(s, a_i), centralized acting), or both.
AGENT_INPUTS = ("obs", "state", "state+obs")
# Recurrent state key (per-agent GRU hidden state, (B, n, H)).
GRU_STATE = "h"
# How the env runners explore (model_config["exploration"]).
EXPLORATIONS = ("boltzmann", "epsilon")


class TeamAgentModule(TorchRLModule):
    """Shared per-agent scoring network ``q_net`` plus masked greedy / Boltzmann acting (see module docstring)."""

    framework: str = "torch"

    @override(RLModule)
    def setup(self):
        mc = self.model_config
        self.n_agents, self.obs_dim, self.state_dim, self.n_actions = team_dims(
            self.observation_space, type(self).__name__)
        self.use_gru = bool(mc.get("use_gru", False))
        self.agent_input = mc.get("agent_input", "obs")
        if self.agent_input not in AGENT_INPUTS:
            raise ValueError(f"agent_input must be one of {AGENT_INPUTS}, got {self.agent_input!r}")
        in_dim = {"obs": self.obs_dim, "state": self.state_dim, "state+obs": self.state_dim + self.obs_dim}
        self.input_dim = in_dim[self.agent_input]
        self.q_net = self.make_agent_net()
        self.exploration = mc.get("exploration", "boltzmann")
        if self.exploration not in EXPLORATIONS:
            raise ValueError(f"exploration must be one of {EXPLORATIONS}, got {self.exploration!r}")
        # Rollout temperature (Boltzmann) or ε (ε-greedy); a schedule over sampled env steps is allowed.
        key = "epsilon" if self.exploration == "epsilon" else "rollout_alpha"
        self.explore_schedule = Scheduler(mc[key], framework="torch")

    def make_agent_net(self) -> torch.nn.Module:
        """The shared per-agent network ``q_net``: ``(..., n, input_dim) -> (..., n, agent_out_dim())`` (recurrent:
        also takes and returns the per-agent GRU state)."""
        return self.shared_agent_net(self.input_dim, self.agent_out_dim(), recurrent=self.use_gru)

    def shared_agent_net(self, in_dim: int, out_dim: int, recurrent: bool) -> torch.nn.Module:
        """A per-agent network shared by all agents, ``(..., n, in_dim) -> (..., n, out_dim)``, with the module's
        ``hidden`` / ``gru_hidden`` / ``add_agent_id``: an MLP, or encoder -> GRU -> head when ``recurrent``."""
        mc = self.model_config
        if recurrent:
            return SharedAgentGRUNet(in_dim, self.n_agents, out_dim, hidden=tuple(mc["hidden"]),
                                     gru_hidden=mc["gru_hidden"], add_agent_id=mc["add_agent_id"])
        return SharedAgentQNet(in_dim, self.n_agents, out_dim, hidden=tuple(mc["hidden"]),
                               add_agent_id=mc["add_agent_id"])

    def agent_out_dim(self) -> int:
        """Outputs per agent row of ``q_net`` (one score per action; distributional agents return more)."""
        return self.n_actions

    def action_scores(self, out: torch.Tensor) -> torch.Tensor:
        """``q_net`` outputs ``(..., agent_out_dim)`` -> one score per action ``(..., A)`` that acting maximises."""
        return out

    @override(RLModule)
    def get_initial_state(self) -> Dict[str, Any]:
        return {GRU_STATE: self.q_net.initial_state()} if self.use_gru else {}

    # -- scores --------------------------------------------------------------------------------------------
    def q_values(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, n, d) local observations -> (B, n, A) scores; recurrent: (B, T, n, d) whole-episode sequences, run
        from the zero state (rllib_mil.data.sequences) -> (B, T, n, A)."""
        if self.use_gru:
            return self.q_net(obs, self.zero_state(obs))[0]
        return self.q_net(obs)

    def agent_inputs(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """What the shared network reads per agent row: ``obs (..., n, d)`` and ``state (..., s)`` ->
        ``(..., n, input_dim)`` (``agent_input``: own obs, the state repeated for each agent, or both)."""
        if self.agent_input == "obs":
            return obs
        rows = state.unsqueeze(-2).expand(*state.shape[:-1], self.n_agents, state.shape[-1])  # (..., s) -> (..., n, s)
        return rows if self.agent_input == "state" else torch.cat([rows, obs], dim=-1)

    def zero_state(self, obs: torch.Tensor) -> torch.Tensor:
        return obs.new_zeros(obs.shape[0], self.n_agents, self.q_net.gru_hidden)  # (B, n, H)

    @property
    def acting_net(self) -> torch.nn.Module:
        """The network that acts (env runners, greedy evaluation): ``q_net``; a subclass may act with another copy."""
        return self.q_net

    def _rollout_q(self, batch: Dict[str, Any]) -> tuple[torch.Tensor, Dict[str, Any]]:
        """Scores of the env runners' batch (recurrent: (B, 1, n, d) with the carried state) and extra outputs."""
        obs = self.agent_inputs(batch[Columns.OBS][OBS], batch[Columns.OBS][STATE])
        if not self.use_gru:
            return self.action_scores(self.acting_net(obs)), {}
        q, h = self.acting_net(obs, batch[Columns.STATE_IN][GRU_STATE])  # (B, T, n, A), (B, n, H)
        return self.action_scores(q), {Columns.STATE_OUT: {GRU_STATE: h}}

    def _exploration_q(self, batch: Dict[str, Any], t: int) -> tuple[torch.Tensor, Dict[str, Any]]:
        """Scores that exploration samples from at env step ``t``; a hook for subclasses that act with another net
        some of the time (IGM-DA's β-mixture)."""
        return self._rollout_q(batch)

    # -- acting --------------------------------------------------------------------------------------------
    @override(RLModule)
    def _forward_inference(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        # Greedy under the mask; actions (B, n) go straight to the env.
        q, out = self._rollout_q(batch)
        return {Columns.ACTIONS: greedy_actions(q, batch[Columns.OBS][ACTION_MASK]), **out}

    @override(RLModule)
    def _forward_exploration(self, batch: Dict[str, Any], t: int = 0, **kwargs) -> Dict[str, Any]:
        # a_i ~ softmax(score_i / temperature) over available actions, or ε-greedy under the mask.
        self.explore_schedule.update(t)
        value = float(self.explore_schedule.get_current_value())
        q, out = self._exploration_q(batch, t)
        mask = batch[Columns.OBS][ACTION_MASK]
        if self.exploration == "epsilon":
            actions, logp = epsilon_greedy(q.detach(), mask, value)
            return {Columns.ACTIONS: actions, BEHAVIOUR_LOGP: logp, **out}
        actions = boltzmann_sample(q, mask, value)
        return {Columns.ACTIONS: actions, BEHAVIOUR_LOGP: action_logp(q.detach(), mask, value, actions), **out}

    @override(RLModule)
    def _forward_train(self, batch: Dict[str, Any], **kwargs) -> Dict[str, Any]:
        # The learners sample their expert rows themselves and run `q_values` on them (and on replay rows).
        return {}

"""The team Q module of the value-decomposition algorithms (QMIX, QPLEX, DMIX) and of their IGM-DA mode.

Built on the shared ``TeamAgentModule`` (one per-agent network for all agents, masked acting, optional GRU) with
what only the learner needs: the mixer (each algorithm's subclass builds its own in ``make_mixer``), target
copies of the TD-trained agent network and of the mixer, and, in IGM-DA mode, the expert agents.

* Plain mode: ``q_net`` reads each agent's local observation; it is trained by TD through the mixer and acts.
* IGM-DA mode (``igm_da``): ``expert_net`` reads the global state with the agent's own observation and id (full
  sight) and is trained by TD through the mixer; ``q_net`` (the learner agents, local observation only) is trained
  to imitate the expert agents' greedy actions and is the only network that acts, so the env runners collect data
  with the learner agents (DAgger) and evaluation measures them. Mixers, expert and target nets never leave the
  learner (``InferenceOnlyAPI``).
* β-mixture DAgger (``dagger_beta`` > 0, Ross et al.'s π_i = β·π* + (1 − β)·π̂_i): at each env step each battle is
  played by the expert agents (on the global state, which the team view carries) with probability β and by the
  learner agents otherwise, ε-greedy either way; the expert agents then also travel to the env runners. With
  ``expert_gru`` their recurrent state travels too (``EXPERT_GRU_STATE``), stepped at every env step whoever plays,
  so the expert agents that take over mid-battle have read the whole battle so far.
"""
from typing import Any, Dict, List

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.annotations import override
from ray.rllib.utils.schedules.scheduler import Scheduler
from torch import nn

from rllib_mil.envs.contract import OBS, STATE
from rllib_mil.modules.team_module import TeamAgentModule

# forward_target output key: the target TD net's outputs (B, n, td_out_dim).
TARGET_TD_OUT = "target_td_out"
# Recurrent state key of the expert agents on the env runners (expert_gru with the β-mixture), (B, n, H).
EXPERT_GRU_STATE = "h_expert"


class ValueDecompositionModule(TeamAgentModule, TargetNetworkAPI, InferenceOnlyAPI):
    """``model_config`` keys: those of ``TeamAgentModule`` plus igm_da (bool), mixer_embed_dim (int),
    hypernet_hidden (int) and each algorithm's own (defaults live in the configs only)."""

    @override(RLModule)
    def setup(self):
        super().setup()
        mc = self.model_config
        self.igm_da = bool(mc.get("igm_da", False))
        self.expert_gru = self.igm_da and bool(mc.get("expert_gru", False))
        if self.igm_da:
            # Expert agents: (global state, own obs, one-hot id) per agent, the full-sight view of IGM-DA's Figure 2;
            # with expert_gru over its history (then trained on whole episodes, as the recurrent learner agents).
            self.expert_net = self.shared_agent_net(self.state_dim + self.obs_dim, self.td_out_dim(),
                                                    recurrent=self.expert_gru)
        self.mixer = self.make_mixer()
        # Probability that the expert agents play a battle's step (a float or a schedule over sampled env steps).
        self.beta_schedule = Scheduler(mc.get("dagger_beta") or 0.0, framework="torch") if self.igm_da else None
        # The env runners carry the expert agents' recurrent state only where they may act.
        self.expert_acts_recurrent = self.expert_gru and bool(mc.get("dagger_beta"))
        # act_with_target: the target agents (polyak average of the acting agents) act. The full module builds its
        # target copy here so that a checkpoint restores it and evaluation acts with it.
        self.act_with_target = bool(mc.get("act_with_target", False)) and not self.igm_da
        if self.act_with_target and not self.inference_only:
            self.make_target_networks()

    # -- hooks of each algorithm ---------------------------------------------------------------------------
    def make_mixer(self) -> nn.Module:
        raise NotImplementedError

    def td_out_dim(self) -> int:
        """Outputs per agent row of the TD-trained net (one Q per action; DMIX: quantiles of each)."""
        return self.n_actions

    def td_scores(self, out: torch.Tensor) -> torch.Tensor:
        """TD net outputs ``(..., td_out_dim)`` -> expected Q per action ``(..., A)``."""
        return out

    # -- TeamAgentModule hooks -----------------------------------------------------------------------------
    def agent_out_dim(self) -> int:
        # In IGM-DA mode the acting net (learner agents) scores actions and imitates; otherwise it is the TD net.
        return self.n_actions if self.model_config.get("igm_da", False) else self.td_out_dim()

    def action_scores(self, out: torch.Tensor) -> torch.Tensor:
        return out if self.model_config.get("igm_da", False) else self.td_scores(out)

    # -- the TD-trained agents -----------------------------------------------------------------------------
    @property
    def td_net(self) -> nn.Module:
        return self.expert_net if self.igm_da else self.q_net

    def td_inputs(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """``obs (B, n, d)``, ``state (B, s)`` -> the TD net's agent rows ``(B, n, d_in)``."""
        if not self.igm_da:
            return self.agent_inputs(obs, state)
        rows = state.unsqueeze(-2).expand(*state.shape[:-1], self.n_agents, state.shape[-1])  # (..., s) -> (..., n, s)
        return torch.cat([rows, obs], dim=-1)  # (..., n, s + d)

    @property
    def td_recurrent(self) -> bool:
        """Whether the TD-trained agents are recurrent: the acting net with use_gru, or IGM-DA's expert_gru."""
        return (self.use_gru and not self.igm_da) or self.expert_gru

    def td_values(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """(B, n, d) / (B, s) -> (B, n, td_out_dim); recurrent: whole episodes (B, T, n, d) / (B, T, s), run
        from the zero state -> (B, T, n, td_out_dim). Feed-forward nets act on the last dims either way."""
        x = self.td_inputs(obs, state)
        return self.td_net(x, self.zero_state(x))[0] if self.td_recurrent else self.td_net(x)

    def target_td_values(self, obs: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        x = self.td_inputs(obs, state)
        return self._target_td_net(x, self.zero_state(x))[0] if self.td_recurrent else self._target_td_net(x)

    @property
    def target_mixer(self) -> nn.Module:
        return self._target_mixer

    # -- acting (env runners) ------------------------------------------------------------------------------
    @property
    def acting_net(self) -> nn.Module:
        # On the env runners (inference-only) q_net already holds the target agents' weights (get_state).
        return self._target_td_net if self.act_with_target and not self.inference_only else self.q_net

    @override(RLModule)
    def get_initial_state(self) -> Dict[str, Any]:
        state = super().get_initial_state()
        if self.expert_acts_recurrent:
            state[EXPERT_GRU_STATE] = self.expert_net.initial_state()
        return state

    def _rollout_q(self, batch: Dict[str, Any]) -> tuple[torch.Tensor, Dict[str, Any]]:
        q, out = super()._rollout_q(batch)
        if self.expert_acts_recurrent:  # greedy evaluation: the expert state passes through, so every step's
            out[Columns.STATE_OUT][EXPERT_GRU_STATE] = batch[Columns.STATE_IN][EXPERT_GRU_STATE]  # keys match
        return q, out

    def _expert_q(self, batch: Dict[str, Any], out: Dict[str, Any]) -> torch.Tensor:
        """The expert agents' action scores on the env runners' batch, shaped as the learner agents' (recurrent:
        stepped from the carried state, whose update goes into ``out``)."""
        obs = batch[Columns.OBS]
        x = self.td_inputs(obs[OBS], obs[STATE])
        if not self.expert_acts_recurrent:
            return self.td_scores(self.expert_net(x))
        q_expert, h = self.expert_net(x, batch[Columns.STATE_IN][EXPERT_GRU_STATE])  # (B, 1, n, out), (B, n, H)
        out[Columns.STATE_OUT][EXPERT_GRU_STATE] = h
        return self.td_scores(q_expert)

    def _exploration_q(self, batch: Dict[str, Any], t: int) -> tuple[torch.Tensor, Dict[str, Any]]:
        q, out = self._rollout_q(batch)  # learner agents: (B, n, A), recurrent (B, 1, n, A)
        if not self.igm_da:
            return q, out
        self.beta_schedule.update(t)
        beta = float(self.beta_schedule.get_current_value())
        if beta > 0.0 or self.expert_acts_recurrent:  # a recurrent expert steps even at β = 0: whole history
            q_expert = self._expert_q(batch, out)  # same shape as q
        if beta <= 0.0:
            return q, out
        # One draw per battle (row of the batch) and step: the whole team follows the expert agents or not.
        use_expert = torch.rand(q.shape[0], device=q.device) < beta  # (B,)
        use_expert = use_expert.view(-1, *([1] * (q.dim() - 1)))  # (B, 1, ..., 1)
        return torch.where(use_expert, q_expert.to(q.dtype), q), out

    # -- APIs ----------------------------------------------------------------------------------------------
    @override(RLModule)
    def get_state(self, components=None, *, not_components=None, inference_only: bool = False, **kwargs):
        state = super().get_state(components, not_components=not_components, inference_only=inference_only,
                                  **kwargs)
        if inference_only and self.act_with_target and not self.inference_only:
            # What the env runners act with: the target agents' weights, under the acting net's names.
            for key, value in self._target_td_net.state_dict().items():
                if f"q_net.{key}" in state:
                    state[f"q_net.{key}"] = value.detach().cpu().numpy()
        return state

    @override(InferenceOnlyAPI)
    def get_non_inference_attributes(self) -> List[str]:
        mc = self.model_config
        # The expert agents stay on the learner unless the β-mixture lets them act.
        extra = ["expert_net"] if mc.get("igm_da", False) and not mc.get("dagger_beta") else []
        return ["mixer", "_target_td_net", "_target_mixer"] + extra

    @override(TargetNetworkAPI)
    def make_target_networks(self) -> None:
        self._target_td_net = make_target_network(self.td_net)
        self._target_mixer = make_target_network(self.mixer)

    @override(TargetNetworkAPI)
    def get_target_network_pairs(self):
        return [(self.td_net, self._target_td_net), (self.mixer, self._target_mixer)]

    @override(TargetNetworkAPI)
    def forward_target(self, batch: Dict[str, Any]) -> Dict[str, Any]:
        obs = batch[Columns.OBS]
        return {TARGET_TD_OUT: self.target_td_values(obs[OBS], obs[STATE])}

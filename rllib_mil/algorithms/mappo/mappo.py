"""MAPPO (Yu et al. 2022) over a team env, on RLlib's new API stack: the expert trainer of the imitation papers.

RLlib's PPO drives it unchanged (sampling, GAE connector, minibatch epochs, KL/entropy schedules); what MAPPO
adds lives in the team module and the loss:

* a decentralized actor shared by all agents on each agent's own observation + id, unavailable actions masked
  (``mappo_rl_module.py``), optionally recurrent (``use_gru``);
* a centralized critic on the global state, trained on normalised value targets (``value_normalization``);
* per-agent clipped ratios with the shared team advantage, Huber value loss (``mappo_loss.py``).

Trained checkpoints are demonstration experts: ``rllib demos collect --expert <checkpoint>``.
"""
import math
from typing import Any, Dict, Optional, Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.algorithms.ppo.ppo import PPO, PPOConfig
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override
from typing_extensions import Self

from rllib_mil.modules.agent_nets import ACTIVATIONS
from rllib_mil.algorithms.fault import HungEnvRunnerGuard
from rllib_mil.algorithms.utils import set_provided, validate_common_settings


class MAPPOConfig(PPOConfig):
    """Configuration of MAPPO. PPO's settings (``lr``, ``clip_param``, ``num_epochs``, ``minibatch_size``,
    ``lambda_``, ``entropy_coeff``, ``use_kl_loss``, ...) keep their meaning; defaults below follow MAPPO's MPE
    settings where they differ from RLlib's PPO.

    Example:
        >>> from rllib_mil.algorithms.mappo import MAPPOConfig
        >>> config = MAPPOConfig().environment("mpe/simple_spread").env_runners(num_env_runners=2)
        >>> algo = config.build_algo()   # doctest: +SKIP
        >>> algo.train()                 # doctest: +SKIP
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MAPPO)
        # fmt: off
        # __sphinx_doc_begin__
        # Shared decentralized actor: hidden sizes of the per-agent MLP (with use_gru: of the encoder before the
        # GRU), activation, one-hot agent id appended to each agent's own observation.
        self.actor_hidden = [64, 64]
        self.activation = "relu"
        self.add_agent_id = True
        # Factored actions: None = one categorical over the env's actions. A list [f_0, f_1, ...] whose product is
        # the number of actions reads the action as a = a_0 + f_0 * (a_1 + f_1 * ...) and gives each part its own
        # head (a product of independent categoricals). MPE simple_reference: [5, 10] (move + 5 * word), as the
        # MAPPO authors' MPE env, which hands that task a MultiDiscrete([5, 10]) action.
        self.action_factors = None
        # Recurrent actor: encoder -> GRU(gru_hidden) -> logits, one hidden state per agent; RLlib trains it on
        # sequences of up to max_seq_len steps (MPE episodes are 25 steps long).
        self.use_gru = False
        self.gru_hidden = 64
        self.max_seq_len = 25
        # Centralized critic: MLP on the team env's global state.
        self.critic_hidden = [128, 128]
        # LayerNorm over each input row (the agent's observation for the actor, the state for the critic) before
        # the first layer: the MAPPO authors' `use_feature_normalization`.
        self.input_norm = False
        # Initial scale of the actor's output layer: None = PyTorch's default init; the MAPPO authors initialise it
        # orthogonally with gain 0.01, so the first policy is close to uniform over the available actions.
        self.actor_out_gain = None
        # Train the critic on running-normalised value targets (MAPPO's ValueNorm); GAE uses denormalised values.
        self.value_normalization = True
        # Huber loss threshold of the value loss (normalised units); None = squared error.
        self.vf_huber_delta = 10.0
        # Credit: "team" = one advantage from the team reward for every agent (MAPPO); "agent" = each agent's
        # advantage from its own reward (info["agent_rewards"]) and its own value head V_i(s) on the central critic
        # (agent_credit.py). "agent" gives a speaker credit for what its words make the partner do (MPE
        # simple_reference); with identical per-agent rewards (SMAX) it equals "team" up to the critic's heads.
        self.credit = "team"
        # Positive signalling (Eccles et al. 2019; mappo_loss.py), for actions that include a message: with
        # action_factors, `signal_factor` is the index of the factor that is a message (simple_reference: 1, the
        # word); the message's batch entropies and their difference (an estimate of the mutual information between
        # what an agent sees and what it says) are then logged, and signal_bias_coeff > 0 adds
        # signal_bias_coeff * L^ps to the loss. signal_target_entropy: H_target in nats (None = half of ln #words).
        self.signal_factor = None
        self.signal_bias_coeff = 0.0
        self.signal_target_entropy = None
        # __sphinx_doc_end__
        # fmt: on
        # Overrides of PPO defaults (MAPPO's MPE settings, scaled to a few CPUs).
        self.lr = 7e-4
        self.gamma = 0.99
        self.lambda_ = 0.95
        self.clip_param = 0.2
        self.entropy_coeff = 0.01
        self.vf_loss_coeff = 1.0
        # Per-step cap on the value loss; MAPPO uses the Huber loss instead, so no cap by default.
        self.vf_clip_param = float("inf")
        self.use_kl_loss = False
        self.kl_coeff = 0.0
        self.num_epochs = 10
        self.train_batch_size_per_learner = 2000
        self.minibatch_size = 500
        self.grad_clip = 10.0
        self.grad_clip_by = "global_norm"
        self.num_env_runners = 2
        # Greedy evaluation, one env per evaluation runner: with N parallel envs and a duration counted in episodes,
        # the first episodes to finish are the short ones, which biases the metrics when episode lengths vary
        # (SMAX: quick wins; measured 0.86 win rate over 32-episode evaluations with 32 envs vs 0.71 on 200
        # sequential battles of the same checkpoint).
        self.evaluation(evaluation_config=AlgorithmConfig.overrides(explore=False, num_envs_per_env_runner=1))
        from rllib_mil.callbacks import TeamMetricsCallback

        self.callbacks(TeamMetricsCallback)

    @override(PPOConfig)
    def training(
        self,
        *,
        actor_hidden=NotProvided,
        activation: Optional[str] = NotProvided,
        add_agent_id: Optional[bool] = NotProvided,
        action_factors=NotProvided,
        use_gru: Optional[bool] = NotProvided,
        gru_hidden: Optional[int] = NotProvided,
        max_seq_len: Optional[int] = NotProvided,
        critic_hidden=NotProvided,
        value_normalization: Optional[bool] = NotProvided,
        input_norm: Optional[bool] = NotProvided,
        actor_out_gain: Optional[float] = NotProvided,
        vf_huber_delta: Optional[float] = NotProvided,
        credit: Optional[str] = NotProvided,
        signal_factor: Optional[int] = NotProvided,
        signal_bias_coeff: Optional[float] = NotProvided,
        signal_target_entropy: Optional[float] = NotProvided,
        **kwargs,
    ) -> Self:
        """Sets MAPPO's settings (see ``__init__``) and PPO's (passed through)."""
        super().training(**kwargs)
        set_provided(
            self,
            actor_hidden=actor_hidden,
            activation=activation,
            add_agent_id=add_agent_id,
            action_factors=action_factors,
            use_gru=use_gru,
            gru_hidden=gru_hidden,
            max_seq_len=max_seq_len,
            critic_hidden=critic_hidden,
            value_normalization=value_normalization, input_norm=input_norm, actor_out_gain=actor_out_gain,
            vf_huber_delta=vf_huber_delta,
            credit=credit,
            signal_factor=signal_factor, signal_bias_coeff=signal_bias_coeff,
            signal_target_entropy=signal_target_entropy,
        )
        return self

    @override(PPOConfig)
    def validate(self) -> None:
        validate_common_settings(self)
        super().validate()
        if self.activation not in ACTIVATIONS:
            self._value_error(f"Unknown `activation`={self.activation!r}; choose one of {sorted(ACTIVATIONS)}.")
        if self.use_gru and not self.actor_hidden:
            self._value_error("`use_gru=True` needs at least one encoder layer in `actor_hidden`, e.g. [64].")
        if self.action_factors is not None:
            f = self.action_factors
            if (not isinstance(f, (list, tuple)) or len(f) < 2
                    or any(isinstance(x, bool) or not isinstance(x, int) or x < 2 for x in f)):
                self._value_error(
                    f"`action_factors` must be None or a list of at least two integers >= 2 whose product is the "
                    f"number of actions (e.g. [5, 10] for MPE simple_reference), got {f!r}."
                )
        if int(self.max_seq_len) < 1:  # gru_hidden: validate_common_settings
            self._value_error(f"`max_seq_len` must be >= 1, got {self.max_seq_len}.")
        if self.vf_huber_delta is not None and not self.vf_huber_delta > 0:
            self._value_error(f"`vf_huber_delta` must be > 0 (or None for squared error), got {self.vf_huber_delta}.")
        if not isinstance(self.input_norm, bool):
            self._value_error(f"`input_norm` must be true or false, got {self.input_norm!r}.")
        if self.actor_out_gain is not None and not (
                isinstance(self.actor_out_gain, (int, float)) and not isinstance(self.actor_out_gain, bool)
                and self.actor_out_gain > 0):
            self._value_error(f"`actor_out_gain` must be a number > 0 (the MAPPO authors use 0.01) or null, got "
                              f"{self.actor_out_gain!r}.")
        if self.credit not in ("team", "agent"):
            self._value_error(f"`credit` must be 'team' (one team advantage) or 'agent' (each agent's own reward "
                              f"and value head), got {self.credit!r}.")
        if self.credit == "agent" and not self.add_default_connectors_to_learner_pipeline:
            self._value_error("`credit='agent'` replaces PPO's GAE connector piece; keep "
                              "`add_default_connectors_to_learner_pipeline=True`.")
        self._validate_signalling()
        if not self.use_critic or not self.use_gae:
            self._value_error(
                "MAPPO needs its centralized critic and GAE: keep `use_critic=True` and `use_gae=True`."
            )

    def _validate_signalling(self) -> None:
        k, coeff, target = self.signal_factor, self.signal_bias_coeff, self.signal_target_entropy
        if k is not None:
            if self.action_factors is None:
                self._value_error("`signal_factor` names one of `action_factors`; set `action_factors` too (e.g. "
                                  "[5, 10] and signal_factor 1 for MPE simple_reference's words).")
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self.action_factors):
                self._value_error(f"`signal_factor` must be an index into `action_factors` "
                                  f"{list(self.action_factors)} (0..{len(self.action_factors) - 1}), got {k!r}.")
        if isinstance(coeff, bool) or not isinstance(coeff, (int, float)) or not coeff >= 0:
            self._value_error(f"`signal_bias_coeff` must be a number >= 0 (0 = off), got {coeff!r}.")
        if coeff > 0 and k is None:
            self._value_error("`signal_bias_coeff` > 0 needs `signal_factor`: the index of the message factor in "
                              "`action_factors`.")
        if target is not None:
            top = math.log(self.action_factors[k]) if k is not None else float("inf")
            if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 <= target <= top:
                self._value_error(f"`signal_target_entropy` must be None or a number of nats in [0, ln #words = "
                                  f"{top:.3f}], got {target!r}.")

    @property
    def signal_target(self) -> float:
        """H_target in nats: signal_target_entropy, or half of ln(#words)."""
        if self.signal_target_entropy is not None:
            return float(self.signal_target_entropy)
        return 0.5 * math.log(self.action_factors[self.signal_factor])

    @override(PPOConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_mil.algorithms.mappo.mappo_rl_module import MAPPOTorchRLModule

        return RLModuleSpec(module_class=MAPPOTorchRLModule, model_config=self.model_config)

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {
            "actor_hidden": list(self.actor_hidden),
            "activation": self.activation,
            "add_agent_id": self.add_agent_id,
            "action_factors": None if self.action_factors is None else list(self.action_factors),
            "use_gru": self.use_gru,
            "gru_hidden": self.gru_hidden,
            "max_seq_len": self.max_seq_len,
            "critic_hidden": list(self.critic_hidden),
            "value_normalization": self.value_normalization,
            "input_norm": self.input_norm,
            "actor_out_gain": self.actor_out_gain,
            "credit": self.credit,
        }

    @override(PPOConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.mappo.mappo_learner import MAPPOTorchLearner

        return MAPPOTorchLearner


class MAPPO(HungEnvRunnerGuard, PPO):
    """MAPPO: PPO's training step on the team env; the module and loss are MAPPO's."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> MAPPOConfig:
        return MAPPOConfig()

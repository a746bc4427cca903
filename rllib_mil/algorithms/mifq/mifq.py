"""MIFQ: Multi-agent Inverse Factorized soft-Q learning (Bui, Mai, Nguyen 2024), on RLlib's new API stack.

Also registers the paper's ablations as their own algorithm names:
IIQ (independent IQ-Learn, no mixer) and IQVDN (IQ-Learn with a VDN sum mixer).

Each training iteration:
1. env runners roll out Boltzmann policies softmax(Q_i/alpha) under the action masks (one shared Q network),
2. the sampled team episodes go into an ``EpisodeReplayBuffer``,
3. ``num_updates_per_iteration`` times: a replay batch is sampled and the learner joins it with an expert batch
   drawn from its on-device ``ExpertBuffer``, then minimises eq. 9 (``mifq_loss.py``),
4. the Q network (only) is synced back to the env runners.
"""

import logging
from typing import Any, Dict, Optional, Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override
from typing_extensions import Self

from rllib_mil.algorithms.imitation import ImitationAlgorithm, ImitationConfig
from rllib_mil.modules.mixers import MIXERS
from rllib_mil.algorithms.utils import set_provided
from rllib_mil.data.team_replay import TEAM_REPLAY_BUFFER

logger = logging.getLogger(__name__)

# Choices of MIFQConfig.value_rows.
VALUE_ROWS = ("all", "expert", "replay")
# Choices of MIFQConfig.chi2_replay ("state": the action-free anchor). `x in CHI2_REPLAY` with x = 1 is True too,
# but YAML gives bools, and preflight type-checks against the default's type.
CHI2_REPLAY = (True, False, "state")
# Policy prior of the soft-Q policy (MIFQConfig.policy_prior).
POLICY_PRIORS = (None, "bc")
# Where the policy prior's logits come from (MIFQConfig.prior_net).
PRIOR_NETS = ("shared", "separate")
# When the policy prior trains (MIFQConfig.prior_training).
PRIOR_TRAINING = ("always", "warm_start")
# Fewest warm-start updates (MIFQConfig.pretrain_offline_updates) per training iteration.
WARM_START_CHUNK = 500


class MIFQConfig(ImitationConfig):
    """Configuration of MIFQ (and of IIQ / IQVDN, which differ only in ``mixer``).

    Example:
        >>> from rllib_mil.algorithms.mifq import MIFQConfig
        >>> config = (
        ...     MIFQConfig()
        ...     .environment("mpe/simple_spread")
        ...     .training(expert_data={"expert": "scripted", "episodes": 128}, alpha=0.01)
        ...     .env_runners(num_env_runners=2)
        ... )
        >>> algo = config.build_algo()   # doctest: +SKIP
        >>> algo.train()                 # doctest: +SKIP
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MIFQ)

        # fmt: off
        # __sphinx_doc_begin__
        # Expert rows per update: `expert_batch_size`; replay rows per update: `train_batch_size_per_learner`.
        # (expert_data, expert_batch_size, hidden, add_agent_id, use_gru, gru_hidden, offline and
        # num_updates_per_iteration: see ImitationConfig.)
        # Soft-value temperature alpha: V_i = alpha * logsumexp(Q_i / alpha) (section 4.1). It sets the Q gap that
        # expresses a preference between actions (about alpha * log-odds); 0.01 made those gaps smaller than the
        # network's fitting noise once replay rows enter (README "Online MIFQ").
        self.alpha = 0.1
        # Rollout temperature (float or schedule [[t, value], ...]); None = alpha. Evaluation is greedy.
        self.rollout_alpha = None
        # "mifq": state-conditioned two-layer monotone mixers (eq. 7/8), "vdn": sum, "none": independent (IIQ).
        self.mixer = "mifq"
        self.mixer_embed_dim = 32
        self.hypernet_hidden = 64
        # Normalised non-negative mixer weights and no hypernetwork biases (see README "Deviations"): the
        # paper's literal mixers let eq. 9 collapse (R^tot ignores Q, V^tot -> -inf). False/True = paper.
        self.mixer_normalize = True
        self.mixer_bias = False
        # With mixer_normalize: uniform share of each agent's mixing weight (0 = free, 1 = VDN-like average).
        self.mixer_min_weight = 0.5
        # One mixer (one set of hypernetworks) for both R^tot and V^tot, instead of the paper's two (psi_R, psi_V).
        # With two mixers eq. 9 is unbounded below: agents' rewards can diverge in opposite directions that
        # cancel in R^tot while the V mixer weights the agents differently (the paper's ELU mixers then sit at
        # their floor of -1 = argmin phi). With one mixer a linear or positively homogeneous mixer gives
        # J >= E[(R^tot)^2]/2, as for VDN (see README "Deviations"). False = paper.
        self.mixer_shared = True
        # V(S') in the inverse Bellman operator from a target Q network (polyak `tau` every
        # `target_network_update_freq` sampled env steps), or from the online network.
        self.use_target_network = True
        self.target_network_update_freq = 0
        self.tau = 0.005
        # Rows whose recovered reward enters the chi^2 regulariser: False = expert rows only (eq. 9 as written,
        # phi(R^tot) on expert rows); True = expert and replay rows, E_e[R^tot] + 1/2 E_{e+r}[(R^tot)^2], as in
        # IQ-Learn's reference code. Without it nothing bounds Q on states the expert never visits and the
        # value term drags Q down without limit (see README "Deviations"). "state" = an action-free anchor: the
        # chi^2 on replay rows uses the state-only reward V_i(o_i) - gamma V_i(o_i') instead of Q_i(o_i, a_i) -
        # gamma V_i(o_i'), so it bounds V on replay states without penalising the action taken there.
        self.chi2_replay = True
        # Weight c of the chi^2 regulariser, phi(x) = x + c x^2 (IQ-Learn's 1/(4 alpha_chi) with its alpha_chi = 0.5;
        # MAMQL's code uses 1/4).
        self.chi2_coef = 0.5
        # Rows of the value term E[V^tot(S) - gamma V^tot(S')]: "all" = expert and replay rows (IQ-Learn's online
        # form), "replay" = replay rows only (eq. 9 as written, Algorithm 1), "expert" = expert rows only
        # (IQ-Learn's offline form; replay rows then enter only through chi2_replay). README "Deviations" 3 and
        # "Online MIFQ" hold the measurements.
        self.value_rows = "all"
        # V(S') inside the value term: "online" = the Q network being trained (gradient flows through it, so the
        # sum over a trajectory telescopes to (1-gamma)V(S0) as in IQ-Learn's derivation), "target" = the target
        # network (no gradient: each row then pushes V(S) down with full weight and nothing pushes back).
        self.value_next = "target"
        # Weight of a behaviour-cloning term on expert rows, bc_coef * E_expert[-log softmax(Q_i/alpha)(a_i)]
        # (not in the paper; 0 = eq. 9 alone). It grounds the actions the expert never took: in eq. 9 they get a
        # gradient only through V's softmax weight, which vanishes once they fall below the max.
        self.bc_coef = 0.0
        # Temperature tau of that term's softmax(Q_i/tau); None = alpha.
        self.bc_temperature = None
        # Policy prior: None = the soft-Q policy softmax(Q_i/alpha) (the paper's); "bc" = a KL-regularised soft-Q
        # policy pi_i ∝ pi0_i(a|o)^prior_weight * exp(Q_i(o, a)/alpha) whose prior pi0 is behaviour cloning on the
        # expert rows (a second head of the shared agent net, trained by cross-entropy in the same update). V_i
        # becomes alpha*log sum_a pi0^beta exp(Q_i/alpha) and r_i = Q_i - gamma V_i(o') as before. Where the replay
        # rows flatten Q (on the learner's own states the chi^2 fixed point gives every taken action the same
        # penalty), the policy falls back to the prior instead of to uniform (README "Online MIFQ", fifth round).
        # Not in the paper (None = the paper's policy).
        self.policy_prior = "bc"
        self.prior_weight = 1.0
        # Where the prior's logits come from: "shared" = a second head of the agent net (the trunk is trained by both
        # losses), "separate" = their own network of the same size, trained by the behaviour-cloning loss alone
        # (feed-forward agents only).
        self.prior_net = "shared"
        # When the prior trains: "always" = in every update; "warm_start" = only in the offline warm-start updates
        # (pretrain_offline_updates), then it stays fixed, so the online phase is soft-Q learning KL-regularised
        # towards a fixed behaviour-cloning policy and long runs cannot over-fit the prior to a few demonstrations
        # (needs prior_net="separate": a shared trunk would keep moving it; README "Online MIFQ", eighth round).
        self.prior_training = "always"
        # Weight of IQ-Learn's gradient penalty on observations interpolated between expert and replay rows,
        # E[(|grad_o sum_a Q_i(o, a)| - 1)^2] (0 = off; online only).
        self.grad_penalty = 0.0
        # Importance-weight each replay row's chi^2 by pi(A|S)/mu(A|S) (current policy softmax(Q/alpha) over the env
        # runners' behaviour, product over agents), clipped at `replay_is_clip`. Without it the chi^2 and value
        # terms on replay rows balance at r(s, a) = -pi(a|s)/mu(a|s) for the action taken, a penalty that hits
        # whatever the policy now prefers hardest and so rotates its argmax; with it they balance at a penalty
        # that depends on the state only (README "Online MIFQ"). Not in the paper.
        self.replay_is_weights = False
        self.replay_is_clip = 10.0
        # Learning rate of the mixers' hypernetworks (Algorithm 1's lambda_omega; the Q network uses `lr`, lambda_theta).
        # None = one optimizer with `lr` for both.
        self.mixer_lr = None
        # Offline mode (ImitationConfig.offline): every update uses expert rows only (the value term then runs on
        # expert rows whatever `value_rows` says), and the target network schedule (`target_network_update_freq`)
        # counts learner updates instead of sampled env steps.
        # Online runs: a warm start of this many offline updates (expert rows only, as `offline=True`) before the
        # first env step is sampled, done in chunks of at least WARM_START_CHUNK updates per iteration (0 = none, the
        # paper's Algorithm 1). The BC prior and Q then fit the demonstrations before the env runners act, so the
        # first replay rows come from a near-expert policy, and the run has as many updates as BC's 10 000 at the
        # MPE benchmark's budget: it lifted online MIFQ at 128 demonstrations from 0.87 / 0.33 to 0.94 / 0.38
        # (simple_reference / simple_spread, BC 0.96 / 0.38; README "Online MIFQ", seventh round).
        self.pretrain_offline_updates = 6500
        # Env steps collected before the first learner update.
        self.num_steps_sampled_before_learning_starts = 1000
        # A small buffer of recent env steps: the chi^2 fixed point on replay rows gives the taken action the reward
        # -pi(a|s)/mu(a|s) (pi current policy, mu the buffer's), so stale rows (mu far from pi) distort it.
        self.replay_buffer_config = {"type": TEAM_REPLAY_BUFFER, "capacity": 2_000}
        # __sphinx_doc_end__
        # fmt: on

        # Overrides of AlgorithmConfig defaults (more in ImitationConfig).
        self.gamma = 0.99
        self.lr = 1e-4
        self.train_batch_size_per_learner = 128
        # Sample several steps per env runner round trip (the default "auto" means 1 for off-policy).
        self.rollout_fragment_length = 50

    @override(AlgorithmConfig)
    def training(
        self,
        *,
        alpha: Optional[float] = NotProvided,
        rollout_alpha=NotProvided,
        mixer: Optional[str] = NotProvided,
        mixer_embed_dim: Optional[int] = NotProvided,
        hypernet_hidden: Optional[int] = NotProvided,
        mixer_normalize: Optional[bool] = NotProvided,
        mixer_bias: Optional[bool] = NotProvided,
        mixer_min_weight: Optional[float] = NotProvided,
        mixer_shared: Optional[bool] = NotProvided,
        use_target_network: Optional[bool] = NotProvided,
        target_network_update_freq: Optional[int] = NotProvided,
        tau: Optional[float] = NotProvided,
        chi2_replay: Optional[bool] = NotProvided,
        chi2_coef: Optional[float] = NotProvided,
        value_rows: Optional[str] = NotProvided,
        value_next: Optional[str] = NotProvided,
        pretrain_offline_updates: Optional[int] = NotProvided,
        bc_coef: Optional[float] = NotProvided,
        bc_temperature: Optional[float] = NotProvided,
        grad_penalty: Optional[float] = NotProvided,
        mixer_lr: Optional[float] = NotProvided,
        replay_is_weights: Optional[bool] = NotProvided,
        replay_is_clip: Optional[float] = NotProvided,
        policy_prior: Optional[str] = NotProvided,
        prior_weight: Optional[float] = NotProvided,
        prior_net: Optional[str] = NotProvided,
        prior_training: Optional[str] = NotProvided,
        num_steps_sampled_before_learning_starts: Optional[int] = NotProvided,
        replay_buffer_config: Optional[dict] = NotProvided,
        **kwargs,
    ) -> Self:
        """Sets MIFQ's training settings; see ``__init__`` for each one's meaning and default."""
        super().training(**kwargs)
        set_provided(
            self,
            alpha=alpha,
            rollout_alpha=rollout_alpha,
            mixer=mixer,
            mixer_embed_dim=mixer_embed_dim,
            hypernet_hidden=hypernet_hidden,
            mixer_normalize=mixer_normalize,
            mixer_bias=mixer_bias,
            mixer_min_weight=mixer_min_weight,
            mixer_shared=mixer_shared,
            use_target_network=use_target_network,
            target_network_update_freq=target_network_update_freq,
            tau=tau,
            chi2_replay=chi2_replay,
            chi2_coef=chi2_coef,
            value_rows=value_rows,
            value_next=value_next,
            pretrain_offline_updates=pretrain_offline_updates,
            bc_coef=bc_coef,
            bc_temperature=bc_temperature,
            grad_penalty=grad_penalty,
            mixer_lr=mixer_lr,
            replay_is_weights=replay_is_weights,
            replay_is_clip=replay_is_clip,
            policy_prior=policy_prior,
            prior_weight=prior_weight,
            prior_net=prior_net,
            prior_training=prior_training,
            num_steps_sampled_before_learning_starts=num_steps_sampled_before_learning_starts,
        )
        self.update_replay_buffer_config(replay_buffer_config)
        return self

    @override(AlgorithmConfig)
    def validate(self) -> None:
        super().validate()
        if self.mixer not in MIXERS:
            self._value_error(f"Unknown `mixer`={self.mixer!r}; choose one of {sorted(MIXERS)}.")
        if self.mixer_min_weight and not self.mixer_normalize:
            self._value_error(
                f"`mixer_min_weight`={self.mixer_min_weight} needs `mixer_normalize=True`; for the paper's mixers "
                "(eq. 7/8 as written) set mixer_normalize=False, mixer_bias=True, mixer_min_weight=0."
            )
        if not isinstance(self.mixer_shared, bool):
            self._value_error(f"`mixer_shared` must be True or False, got {self.mixer_shared!r}.")
        if self.value_rows not in VALUE_ROWS:
            self._value_error(
                f"`value_rows` must be one of {VALUE_ROWS} (rows of the value term: expert and replay, expert only, "
                f"or replay only as eq. 9 writes it), got {self.value_rows!r}."
            )
        if self.value_next not in ("online", "target"):
            self._value_error(
                f"`value_next` must be 'online' or 'target' (the net giving V(S') in the value term), got "
                f"{self.value_next!r}."
            )
        if not (isinstance(self.bc_coef, (int, float)) and self.bc_coef >= 0):
            self._value_error(f"`bc_coef` must be a number >= 0 (0 = no behaviour-cloning term), got {self.bc_coef!r}.")
        if self.bc_temperature is not None and not (
            isinstance(self.bc_temperature, (int, float)) and self.bc_temperature > 0
        ):
            self._value_error(f"`bc_temperature` must be > 0 or None (= alpha), got {self.bc_temperature!r}.")
        if not (isinstance(self.grad_penalty, (int, float)) and self.grad_penalty >= 0):
            self._value_error(f"`grad_penalty` must be a number >= 0 (0 = off), got {self.grad_penalty!r}.")
        if not (isinstance(self.pretrain_offline_updates, int) and self.pretrain_offline_updates >= 0):
            self._value_error(
                f"`pretrain_offline_updates` must be an integer >= 0, got {self.pretrain_offline_updates!r}.")
        if self.use_gru and self.grad_penalty:
                self._value_error("`grad_penalty` is not available with `use_gru=True` (it perturbs single "
                                  "observations, not sequences); set grad_penalty=0 or use_gru=False.")
        if self.chi2_replay not in CHI2_REPLAY:
            self._value_error(
                f"`chi2_replay` must be True, False or 'state' (chi^2 on replay rows: on Q(s, a), none, or on the "
                f"action-free V(s)), got {self.chi2_replay!r}.")
        if self.mixer_lr is not None and not (isinstance(self.mixer_lr, (int, float)) and self.mixer_lr > 0):
            self._value_error(f"`mixer_lr` must be > 0 or None (= lr), got {self.mixer_lr!r}.")
        if not isinstance(self.replay_is_weights, bool):
            self._value_error(f"`replay_is_weights` must be True or False, got {self.replay_is_weights!r}.")
        if self.replay_is_weights and (self.use_gru or self.chi2_replay is not True):
            self._value_error("`replay_is_weights=True` weights the chi^2 of replay transitions: it needs "
                              "chi2_replay=True and use_gru=False.")
        if not (isinstance(self.chi2_coef, (int, float)) and self.chi2_coef > 0):
            self._value_error(f"`chi2_coef` (weight of the chi^2 regulariser) must be a number > 0, got "
                              f"{self.chi2_coef!r}.")
        if not (isinstance(self.replay_is_clip, (int, float)) and self.replay_is_clip > 0):
            self._value_error(f"`replay_is_clip` must be a number > 0, got {self.replay_is_clip!r}.")
        if self.mixer_lr is not None and self.mixer == "none":
            self._value_error("`mixer_lr` is set but `mixer='none'` has no mixer parameters; unset mixer_lr.")
        if self.policy_prior not in POLICY_PRIORS:
            self._value_error(f"`policy_prior` must be one of {POLICY_PRIORS} (None = softmax(Q/alpha), 'bc' = "
                              f"a behaviour-cloning prior), got {self.policy_prior!r}.")
        if not (isinstance(self.prior_weight, (int, float)) and self.prior_weight > 0):
            self._value_error(f"`prior_weight` (exponent beta of the policy prior) must be a number > 0, got "
                              f"{self.prior_weight!r}.")
        if self.prior_net not in PRIOR_NETS:
            self._value_error(f"`prior_net` must be one of {PRIOR_NETS} (the prior's logits from a second head of "
                              f"the agent net, or from their own net), got {self.prior_net!r}.")
        if self.prior_net == "separate" and (self.policy_prior != "bc" or self.use_gru):
            self._value_error("`prior_net='separate'` needs policy_prior='bc' and use_gru=False (a feed-forward "
                              "prior net); set prior_net='shared'.")
        if self.prior_training not in PRIOR_TRAINING:
            self._value_error(f"`prior_training` must be one of {PRIOR_TRAINING}, got {self.prior_training!r}.")
        if self.prior_training == "warm_start" and (self.prior_net != "separate" or self.offline
                                                    or not self.pretrain_offline_updates):
            self._value_error("`prior_training='warm_start'` fixes the prior after the offline warm start: it needs "
                              "prior_net='separate' (a shared trunk would keep moving the prior), "
                              "pretrain_offline_updates > 0 and offline=False; or set prior_training='always'.")
        if not self.alpha > 0:
            self._value_error(f"`alpha` (soft-value temperature) must be > 0, got {self.alpha}.")
        self.validate_episode_replay()
        for name in ("expert_batch_size", "num_updates_per_iteration"):
            if int(getattr(self, name)) < 1:
                self._value_error(f"`{name}` must be >= 1, got {getattr(self, name)}.")

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_mil.algorithms.mifq.mifq_rl_module import MIFQTorchRLModule

        return RLModuleSpec(module_class=MIFQTorchRLModule, model_config=self.model_config)

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {
            "mixer": self.mixer,
            "mixer_embed_dim": self.mixer_embed_dim,
            "hypernet_hidden": self.hypernet_hidden,
            "mixer_normalize": self.mixer_normalize,
            "mixer_bias": self.mixer_bias,
            "mixer_min_weight": self.mixer_min_weight,
            "mixer_shared": self.mixer_shared,
            "rollout_alpha": self.alpha if self.rollout_alpha is None else self.rollout_alpha,
            "prior_scale": self.alpha * self.prior_weight if self.policy_prior == "bc" else 0.0,
            "prior_net": self.prior_net,
        }

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.mifq.mifq_learner import MIFQTorchLearner

        return MIFQTorchLearner


class IIQConfig(MIFQConfig):
    """Independent IQ-Learn (paper section 4.1.2): MIFQ without mixers, J = sum_i J_i."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or IIQ)
        self.mixer = "none"


class IQVDNConfig(MIFQConfig):
    """IQ-Learn with a VDN sum mixer for both V and R (paper section 5.3)."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or IQVDN)
        self.mixer = "vdn"


class MIFQ(ImitationAlgorithm):
    """MIFQ algorithm: sampling, replay and learner updates; the loss lives in ``mifq_learner.py``."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> MIFQConfig:
        return MIFQConfig()

    @override(Algorithm)
    def training_step(self) -> None:
        if self.config.offline:
            return self._offline_training_step(self.config.num_updates_per_iteration)
        left = self.config.pretrain_offline_updates - self._n_offline_updates
        if left > 0:
            # Warm start (pretrain_offline_updates): large chunks, so that a small num_updates_per_iteration does not
            # turn it into thousands of iterations; the updates and their order do not depend on the chunk size.
            return self._offline_training_step(min(left, max(self.config.num_updates_per_iteration, WARM_START_CHUNK)))
        # 1-2) Sample team episodes in parallel on the env runners and store them.
        sampled = self.sample_into_replay()
        if sampled < self.config.num_steps_sampled_before_learning_starts:
            return

        # 3-4) Learner updates on replay rows (the learner adds the expert rows itself), then the Q network (only)
        # goes back to the env runners.
        def draw():
            if self.config.use_gru:  # whole episodes, padded (rllib_mil/data/sequences.py)
                return {"batch": self.sample_replay_sequences(self.config.total_train_batch_size)}
            return {"batch": self.sample_replay_transitions(self.config.total_train_batch_size)}

        # The target-network schedule counts sampled env steps (see DQNLearner), after any offline pre-training
        # updates so that it keeps increasing.
        self.replay_updates(draw, timestep=sampled + self._n_offline_updates)

class IIQ(MIFQ):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> IIQConfig:
        return IIQConfig()


class IQVDN(MIFQ):
    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> IQVDNConfig:
        return IQVDNConfig()

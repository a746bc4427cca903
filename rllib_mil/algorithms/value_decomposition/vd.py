"""Shared config and training loop of the value-decomposition RL algorithms (QMIX, QPLEX, DMIX) and their IGM-DA
mode (``QMIX-DA``, ``QPLEX-DA``, ``DMIX-DA``: Hong, Jin, Tang, "Rethinking Individual Global Max in Cooperative
Multi-Agent Reinforcement Learning", text in ../shared/papers/igm-da-paper.txt).

Each training iteration:
1. the env runners act ε-greedily with the acting agents (local observations; in IGM-DA mode the learner agents,
   so the data follow the learner's policy as in DAgger) and the team episodes go into an ``EpisodeReplayBuffer``,
2. ``num_updates_per_iteration`` times a replay batch of ``train_batch_size_per_learner`` transitions (with
   ``use_gru``: whole episodes) is drawn and
   the learner minimises its TD loss (each algorithm's learner), plus in IGM-DA mode the teach loss,
3. the acting network (only) is synced back to the env runners.
"""
from typing import Any, Dict, Optional

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.utils.annotations import override
from typing_extensions import Self

from rllib_mil.algorithms.imitation import TeamAlgorithm, TeamConfig
from rllib_mil.algorithms.utils import set_provided
from rllib_mil.data.team_replay import TEAM_REPLAY_BUFFER
from rllib_mil.algorithms.value_decomposition.vd_loss import BOOTSTRAP_ACTIONS, TEACH_LOSSES


class ValueDecompositionConfig(TeamConfig):
    """Settings every value-decomposition algorithm shares; each algorithm's config adds its mixer's."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class)
        # fmt: off
        # __sphinx_doc_begin__
        # (hidden, add_agent_id, agent_input, num_updates_per_iteration, checkpoint_replay_buffer: see TeamConfig.)
        # Double Q-learning: the bootstrap action a* = argmax of the online agents at S', valued by the target agents.
        self.double_q = True
        # Exploration of the env runners: "epsilon" (epsilon-greedy under the action mask, QMIX's) or "boltzmann"
        # (softmax(Q / rollout_alpha)). `epsilon` is annealed linearly over env steps of each env runner (PyMARL:
        # 1.0 -> 0.05 over 50k steps).
        self.exploration = "epsilon"
        self.epsilon = [[0, 1.0], [50_000, 0.05]]
        self.rollout_alpha = 0.1
        # Mixer sizes (hypernetworks of the global state).
        self.mixer_embed_dim = 32
        self.hypernet_hidden = 64
        # Target agents and mixer: polyak `tau` every `target_network_update_freq` sampled env steps (0 = every update).
        self.tau = 0.005
        self.target_network_update_freq = 0
        # Act with the target agents (the polyak average of the TD-trained agents' weights, which the TD targets use)
        # on the env runners and in greedy evaluation, instead of the latest weights. Measured with
        # benchmarks/vd_churn.py: fewer relapses in one SMAX run of six, as many or more in the other five. Not in
        # IGM-DA mode: there the learner agents act, trained by the teach loss, and have no target copy.
        self.act_with_target = False
        # IGM-DA mode (the -DA algorithms set it): expert agents on (global state, own obs) trained by TD through the
        # mixer; learner agents on the local obs trained by the teach loss to take the expert agents' greedy
        # actions; the learner agents act (DAgger) and are what evaluation measures.
        self.igm_da = False
        # Teach loss: "mse" = (q_learner - onehot(expert argmax))^2 over available actions (the authors' code),
        # "ce" = cross-entropy to the expert's argmax, "q" = (q_learner - Q_expert)^2 (value distillation: over the
        # states a local observation cannot tell apart the learner then takes the action of best expected expert
        # value, not the expert's most frequent argmax; not in the paper). `teach_coef` weighs it against the TD loss.
        self.teach_loss = "mse"
        self.teach_coef = 1.0
        # Whose greedy actions a* the TD target bootstraps with: "td" = the TD-trained agents' own (double Q; in
        # IGM-DA mode the expert agents', the paper's form), "learner" = IGM-DA's learner agents' (the expert agents
        # then evaluate the policy that actually acts instead of a global-state policy no local agent can carry
        # out, and the teach loss is the improvement step; not in the paper).
        self.bootstrap_actions = "td"
        # IGM-DA: probability that the expert agents (global state) play a battle's step instead of the learner
        # agents, a float or a schedule [[env_step, beta], ...] (classic DAgger's β-mixture, e.g. 1 -> 0). 0 = the
        # paper's IGM-DA, where only the learner agents collect.
        self.dagger_beta = 0.0
        # IGM-DA with `use_gru`: the expert agents are recurrent too (a GRU over the history of (global state, own
        # obs), as PyMARL's agents) instead of feed-forward on the current global state. With dagger_beta > 0 the
        # env runners carry their recurrent state beside the learner agents'.
        self.expert_gru = False
        # The TD targets use reward * reward_scale (returns, win rates and evaluation are unchanged). SMAX's team
        # return is at most 2 (damage fraction + win bonus) where SMAC normalises it to 20, the scale PyMARL's lr was
        # tuned on; QPLEX on SMAX needs 10 (qmix README, Results: "Why runs win and then lose again").
        self.reward_scale = 1.0
        # Env steps collected before the first learner update.
        self.num_steps_sampled_before_learning_starts = 1000
        self.replay_buffer_config = {"type": TEAM_REPLAY_BUFFER, "capacity": 100_000}
        # __sphinx_doc_end__
        # fmt: on

        # Overrides of AlgorithmConfig defaults.
        self.gamma = 0.99
        self.lr = 5e-4
        self.train_batch_size_per_learner = 256
        self.num_updates_per_iteration = 4
        self.num_envs_per_env_runner = 8
        self.rollout_fragment_length = 25

    @override(AlgorithmConfig)
    def training(
        self,
        *,
        double_q: Optional[bool] = NotProvided,
        exploration: Optional[str] = NotProvided,
        epsilon=NotProvided,
        rollout_alpha=NotProvided,
        mixer_embed_dim: Optional[int] = NotProvided,
        hypernet_hidden: Optional[int] = NotProvided,
        tau: Optional[float] = NotProvided,
        target_network_update_freq: Optional[int] = NotProvided,
        act_with_target: Optional[bool] = NotProvided,
        igm_da: Optional[bool] = NotProvided,
        teach_loss: Optional[str] = NotProvided,
        teach_coef: Optional[float] = NotProvided,
        bootstrap_actions: Optional[str] = NotProvided,
        dagger_beta=NotProvided,
        expert_gru: Optional[bool] = NotProvided,
        reward_scale: Optional[float] = NotProvided,
        num_steps_sampled_before_learning_starts: Optional[int] = NotProvided,
        replay_buffer_config: Optional[dict] = NotProvided,
        **kwargs,
    ) -> Self:
        """Sets the value-decomposition settings; see ``__init__`` for each one's meaning and default."""
        super().training(**kwargs)
        set_provided(
            self, double_q=double_q, exploration=exploration, epsilon=epsilon, rollout_alpha=rollout_alpha,
            mixer_embed_dim=mixer_embed_dim, hypernet_hidden=hypernet_hidden, tau=tau,
            target_network_update_freq=target_network_update_freq, act_with_target=act_with_target, igm_da=igm_da,
            teach_loss=teach_loss, teach_coef=teach_coef, bootstrap_actions=bootstrap_actions, dagger_beta=dagger_beta,
            expert_gru=expert_gru, reward_scale=reward_scale,
            num_steps_sampled_before_learning_starts=num_steps_sampled_before_learning_starts,
        )
        self.update_replay_buffer_config(replay_buffer_config)
        return self

    @override(AlgorithmConfig)
    def validate(self) -> None:
        super().validate()
        from rllib_mil.modules.team_module import EXPLORATIONS

        if self.exploration not in EXPLORATIONS:
            self._value_error(f"`exploration` must be one of {EXPLORATIONS}, got {self.exploration!r}.")
        if self.agent_input != "obs":
            self._value_error("The acting agents of QMIX / QPLEX / DMIX read their own observation "
                              "(decentralized execution): keep agent_input='obs'; IGM-DA's expert agents read the "
                              "global state (igm_da=True).")
        for name in ("igm_da", "double_q", "expert_gru", "act_with_target"):
            if not isinstance(getattr(self, name), bool):
                self._value_error(f"`{name}` must be True or False, got {getattr(self, name)!r}.")
        if self.teach_loss not in TEACH_LOSSES:
            self._value_error(f"`teach_loss` must be one of {TEACH_LOSSES}, got {self.teach_loss!r}.")
        if self.bootstrap_actions not in BOOTSTRAP_ACTIONS:
            self._value_error(f"`bootstrap_actions` must be one of {BOOTSTRAP_ACTIONS}, "
                              f"got {self.bootstrap_actions!r}.")
        if self.bootstrap_actions == "learner" and not self.igm_da:
            self._value_error("`bootstrap_actions: learner` bootstraps with IGM-DA's learner agents; it needs "
                              "igm_da=True (a -DA algorithm such as QMIX-DA). Remove it or use the -DA algorithm.")
        if isinstance(self.reward_scale, bool) or not (isinstance(self.reward_scale, (int, float))
                                                         and self.reward_scale > 0):
            self._value_error(f"`reward_scale` must be a number > 0, got {self.reward_scale!r}.")
        if not (isinstance(self.teach_coef, (int, float)) and self.teach_coef > 0):
            self._value_error(f"`teach_coef` must be a number > 0, got {self.teach_coef!r}.")
        try:
            sched = isinstance(self.dagger_beta, (list, tuple))
            betas = [float(v) for _, v in self.dagger_beta] if sched else [float(self.dagger_beta)]
            beta_ok = all(0.0 <= b <= 1.0 for b in betas) and not isinstance(self.dagger_beta, bool)
        except (TypeError, ValueError):
            betas, beta_ok = [], False
        if not beta_ok:
            self._value_error(f"`dagger_beta` must be a probability in [0, 1] or a schedule [[env_step, beta], ...] "
                              f"of them, got {self.dagger_beta!r}.")
        if any(betas) and not self.igm_da:
            self._value_error("`dagger_beta` lets IGM-DA's expert agents act; it needs igm_da=True (a -DA "
                              "algorithm such as QMIX-DA). Remove it or use the -DA algorithm.")
        if self.act_with_target and self.igm_da:
            self._value_error("`act_with_target` lets the target agents act, but in IGM-DA mode the learner agents "
                              "act and they have no target copy (the teach loss trains them). Remove it, or use "
                              "the base algorithm (QMIX, QPLEX, DMIX).")
        if self.expert_gru and not (self.igm_da and self.use_gru):
            self._value_error("`expert_gru` makes IGM-DA's expert agents recurrent; it needs igm_da=True (a -DA "
                              "algorithm) and use_gru=True. Set those or remove `expert_gru`.")
        self.validate_episode_replay()

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {
            "exploration": self.exploration,
            "epsilon": self.epsilon,
            "rollout_alpha": self.rollout_alpha,
            "mixer_embed_dim": self.mixer_embed_dim,
            "hypernet_hidden": self.hypernet_hidden,
            "igm_da": self.igm_da,
            "dagger_beta": self.dagger_beta,
            "expert_gru": self.expert_gru,
            "act_with_target": self.act_with_target,
        }


class ValueDecomposition(TeamAlgorithm):
    """Sampling, replay and learner updates; the loss lives in each algorithm's learner."""

    @override(Algorithm)
    def training_step(self) -> None:
        sampled = self.sample_into_replay()
        if sampled < self.config.num_steps_sampled_before_learning_starts:
            return

        def draw():
            if self.config.use_gru:  # whole episodes, padded (rllib_mil/data/sequences.py)
                return {"batch": self.sample_replay_sequences(self.config.total_train_batch_size)}
            return {"batch": self.sample_replay_transitions(self.config.total_train_batch_size)}

        self.replay_updates(draw, timestep=sampled)

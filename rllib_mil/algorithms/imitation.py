"""What every imitation algorithm here shares (MIFQ, IIQ, IQVDN, BC, MASQIL, MAGAIL): the demonstrations setting and its
resolution, the shared agent network settings, offline mode, the on-device expert buffer on the learner, and
expert-only updates.

* ``ImitationConfig``: ``expert_data``, ``expert_batch_size``, ``hidden``, ``add_agent_id``, ``use_gru``,
  ``gru_hidden``, ``offline``, ``num_updates_per_iteration``, ``checkpoint_replay_buffer``, with their validation.
* ``resolve_expert_data(config)``: the demonstrations file, generated and cached on request, validated against
  the env (run on the driver first, so a mismatch fails before any remote learner starts).
* ``ExpertDataLearner``: a learner mixin that loads the demonstrations into an ``ExpertBuffer`` on its device and
  draws transitions or whole episodes from it with its own seeded generator.
* ``ImitationAlgorithm``: resolves the demonstrations on the driver first; offline runs get no replay buffer and
  train by ``_offline_training_step``; checkpoints carry the replay buffer and the offline-update counter.
* ``expert_only_updates(algo, n_updates, first_update)``: learner updates that use expert rows alone (offline
  mode), each marked by a one-row batch, followed by the weight sync to the env runners.
"""
import os
from typing import Any, Callable, Dict, Optional, Union

import numpy as np
import torch
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.annotations import override
from ray.rllib.utils.serialization import deserialize_type
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.metrics import (
    ALL_MODULES,
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_AGENT_STEPS_SAMPLED_LIFETIME,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_RESULTS,
    REPLAY_BUFFER_SAMPLE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)
from typing_extensions import Self

from rllib_mil.data.demos import ensure_demos, read_demos
from rllib_mil.data.experts import EXPERT_NAMES
from rllib_mil.data.expert_buffer import ExpertBuffer
from rllib_mil.envs.registry import make_team_env
from rllib_mil.algorithms.fault import HungEnvRunnerGuard
from rllib_mil.algorithms.utils import set_provided, validate_common_settings

# Batch key of an expert-only update: no replay rows, the learner draws expert rows only.
EXPERT_ONLY = "expert_only"
# Algorithm / learner state keys beyond RLlib's (checkpoints).
REPLAY_BUFFER = "replay_buffer"
OFFLINE_UPDATES = "n_offline_updates"
EXPERT_SAMPLER = "expert_sampler_rng"
REPLAY_SAMPLER = "replay_sampler_rng"
# Result key: learner updates on expert rows alone so far (offline mode, or an online run's warm start).
NUM_OFFLINE_UPDATES_LIFETIME = "num_offline_updates_lifetime"


class TeamConfig(AlgorithmConfig):
    """Settings every off-policy team algorithm here shares (the imitation algorithms and the value-decomposition RL
    algorithms): the shared agent network, updates per iteration, replay checkpoints, greedy one-env evaluation and
    the team metrics. Subclasses add their own and call ``super().training``."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class)
        # Shared per-agent network: MLP hidden sizes (with use_gru: the encoder before the GRU), one-hot agent id
        # appended to each agent's own observation.
        self.hidden = [128, 128]
        self.add_agent_id = True
        # What each agent row reads: "obs" (its own observation: decentralized acting), "state" (the global state:
        # centralized critics Q_i(s, a_i) as MAMQL's, acting needs the state) or "state+obs".
        self.agent_input = "obs"
        # Recurrent agents: encoder `hidden` -> GRU(gru_hidden) -> head, one hidden state per agent. Updates then
        # train on whole episodes run from the zero state, and `expert_batch_size` (and the replay batch
        # `train_batch_size_per_learner`) count episodes instead of transitions (rllib_mil/data/sequences.py).
        self.use_gru = False
        self.gru_hidden = 64
        # Learner updates per training iteration.
        self.num_updates_per_iteration = 32
        # Checkpoints carry the replay buffer (RLlib's new stack saves none) and the expert sampler's RNG, so a
        # restored run (`rllib train file --resume`, Tune's PBT, fault recovery) continues on the same data
        # instead of refilling the buffer. Off: smaller checkpoints, the buffer starts empty after a restore.
        self.checkpoint_replay_buffer = True

        # Overrides of AlgorithmConfig defaults every imitation algorithm wants: clipped gradients, greedy
        # evaluation, the team metrics (win rate), and no minimum of env steps or time per iteration.
        self.grad_clip = 10.0
        self.grad_clip_by = "global_norm"
        # Greedy evaluation, one env per evaluation runner: with N parallel envs and a duration counted in episodes,
        # the first episodes to finish are the short ones, which biases the metrics when episode lengths vary
        # (SMAX: quick wins; measured 0.86 win rate over 32-episode evaluations with 32 envs vs 0.71 on 200
        # sequential battles of the same checkpoint).
        self.evaluation(evaluation_config=AlgorithmConfig.overrides(explore=False, num_envs_per_env_runner=1))
        from rllib_mil.callbacks import TeamMetricsCallback

        self.callbacks(TeamMetricsCallback)
        self.min_sample_timesteps_per_iteration = 0
        self.min_time_s_per_iteration = None

    @override(AlgorithmConfig)
    def training(
        self,
        *,
        hidden=NotProvided,
        add_agent_id: Optional[bool] = NotProvided,
        agent_input: Optional[str] = NotProvided,
        use_gru: Optional[bool] = NotProvided,
        gru_hidden: Optional[int] = NotProvided,
        num_updates_per_iteration: Optional[int] = NotProvided,
        checkpoint_replay_buffer: Optional[bool] = NotProvided,
        **kwargs,
    ) -> Self:
        """Sets the shared team settings; see ``__init__`` for each one's meaning and default."""
        super().training(**kwargs)
        set_provided(
            self,
            hidden=hidden,
            add_agent_id=add_agent_id,
            agent_input=agent_input,
            use_gru=use_gru,
            gru_hidden=gru_hidden,
            num_updates_per_iteration=num_updates_per_iteration,
            checkpoint_replay_buffer=checkpoint_replay_buffer,
        )
        return self

    @override(AlgorithmConfig)
    def validate(self) -> None:
        validate_common_settings(self)
        super().validate()
        if not isinstance(self.use_gru, bool):
            self._value_error(f"`use_gru` must be True or False, got {self.use_gru!r}.")
        from rllib_mil.modules.team_module import AGENT_INPUTS

        if self.agent_input not in AGENT_INPUTS:
            self._value_error(f"`agent_input` must be one of {AGENT_INPUTS} (what each agent row reads), got "
                              f"{self.agent_input!r}.")
        if self.use_gru:
            if not self.hidden:
                self._value_error("`use_gru=True` needs at least one encoder layer in `hidden`, e.g. [64].")
        if not isinstance(self.checkpoint_replay_buffer, bool):
            self._value_error(f"`checkpoint_replay_buffer` must be True or False, got {self.checkpoint_replay_buffer!r}.")
        value = self.num_updates_per_iteration
        if not (isinstance(value, int) and value >= 1):
            self._value_error(f"`num_updates_per_iteration` must be an integer >= 1, got {value!r}.")

    def update_replay_buffer_config(self, value) -> None:
        """``training(replay_buffer_config=...)``: update, not replace, so a YAML can change only the capacity."""
        if value is not NotProvided:
            self.replay_buffer_config = {**self.replay_buffer_config, **value}

    def validate_episode_replay(self) -> None:
        """Checks of the algorithms that sample team episodes into a uniform ``EpisodeReplayBuffer`` (MIFQ and its
        family, QMIX and its family): the buffer type and a sampling fragment of several steps."""
        from rllib_mil.data.team_replay import TEAM_REPLAY_BUFFER, TeamEpisodeReplayBuffer

        name = self.algo_class.__name__ if self.algo_class else "This algorithm"
        kind = self.replay_buffer_config.get("type")
        # After Tune's round trip through a dict, update_from_dict has put the class in place of its path.
        if kind != TEAM_REPLAY_BUFFER and not (isinstance(kind, type) and issubclass(kind, TeamEpisodeReplayBuffer)):
            self._value_error(
                f"{name} stores team episodes and samples their steps uniformly: `replay_buffer_config['type']` must "
                f"be {TEAM_REPLAY_BUFFER!r} (RLlib's EpisodeReplayBuffer plus flat transition arrays; the "
                f"prioritized buffer stores weights differently and there is no TD error to prioritise by here). "
                f"Leave `type` out of replay_buffer_config to keep it, got {kind!r}.")
        if self.rollout_fragment_length == "auto":
            self._value_error(
                "Set `rollout_fragment_length` to a number of steps (e.g. 25): 'auto' means 1 step per env "
                "runner round trip for off-policy algorithms, which makes sampling crawl.")

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {
            "hidden": list(self.hidden),
            "add_agent_id": self.add_agent_id,
            "agent_input": self.agent_input,
            "use_gru": self.use_gru,
            "gru_hidden": self.gru_hidden,
        }


class ImitationConfig(TeamConfig):
    """Settings every imitation algorithm shares; subclasses add their own and call ``super().training``."""

    # Whether the algorithm can learn from the demonstrations alone (`offline=True`); SQIL-style methods cannot.
    offline_capable = True

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class)
        # Demonstrations: a Parquet path (see rllib_mil/data), or a dict asking for them to be generated once and
        # cached: {"expert": "scripted" | "random" | CHECKPOINT, "episodes": 128, "seed": 0}.
        self.expert_data: Union[str, Dict[str, Any], None] = None
        # Expert rows per update (drawn uniformly from the on-device expert buffer); with use_gru, episodes.
        self.expert_batch_size = 128
        # Offline mode, for users who only have a dataset: no env sampling for training and no replay buffer;
        # env runners only evaluate (`evaluation_interval`).
        self.offline = False

    @override(TeamConfig)
    def training(
        self,
        *,
        expert_data: Optional[Union[str, Dict[str, Any]]] = NotProvided,
        expert_batch_size: Optional[int] = NotProvided,
        offline: Optional[bool] = NotProvided,
        **kwargs,
    ) -> Self:
        """Sets the shared imitation settings; see ``__init__`` for each one's meaning and default."""
        super().training(**kwargs)
        if expert_data is not NotProvided:
            expert_data = absolute_expert_data(expert_data)
        set_provided(self, expert_data=expert_data, expert_batch_size=expert_batch_size, offline=offline)
        return self

    def _validate_expert_data_spec(self) -> None:
        spec = self.expert_data
        if spec is None or isinstance(spec, (str, os.PathLike)):
            return
        if not isinstance(spec, dict):
            self._value_error(f"`expert_data` must be a Parquet path or a dict {{expert, episodes, seed}}, got {spec!r}.")
        unknown = set(spec) - {"expert", "episodes", "seed"}
        if unknown:
            self._value_error(f"Unknown key(s) {sorted(unknown)} in `expert_data`; allowed: expert, episodes, seed.")
        nested = {k: v for k, v in spec.items() if isinstance(v, dict)}
        if nested:
            key, value = next(iter(nested.items()))
            example = [{**spec, key: v} for v in (next(iter(value.values())) if len(value) == 1 else [])][:2]
            self._value_error(
                f"`expert_data` has a search space inside it ({key}: {value}); a search space must be the whole value "
                f"of a config key. Search over whole specs instead, e.g. `expert_data: {{grid_search: {example}}}`.")
        for key, low in (("episodes", 1), ("seed", 0)):
            value = spec.get(key, low)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                self._value_error(f"`expert_data.{key}` must be an integer >= {low}, got {value!r}.")
        if not isinstance(spec.get("expert", "scripted"), (str, os.PathLike)):
            self._value_error(f"`expert_data.expert` must be 'scripted', 'random' or a checkpoint path, got "
                              f"{spec['expert']!r}.")

    @override(TeamConfig)
    def update_from_dict(self, config_dict) -> Self:
        # YAML files, --config and Tune's dict round trip set `expert_data` here, not through training().
        super().update_from_dict(config_dict)
        self.expert_data = absolute_expert_data(self.expert_data)
        return self

    @override(TeamConfig)
    def validate(self) -> None:
        super().validate()
        name = self.algo_class.__name__ if self.algo_class else "This algorithm"
        if self.expert_data is None and not self.in_evaluation:
            self._value_error(
                f"{name} imitates demonstrations but `expert_data` is not set. Set "
                "`config.training(expert_data='demos.parquet')` (see `rllib demos collect`) or "
                "`expert_data={'expert': 'scripted', 'episodes': 128}` to generate them once and cache them."
            )
        self._validate_expert_data_spec()
        if not isinstance(self.offline, bool):
            self._value_error(f"`offline` must be True or False, got {self.offline!r}.")
        value = self.expert_batch_size
        if not (isinstance(value, int) and value >= 1):
            self._value_error(f"`expert_batch_size` must be an integer >= 1, got {value!r}.")


class TeamAlgorithm(HungEnvRunnerGuard, Algorithm):
    """Base of the off-policy team algorithms: the replay sampler is seeded from ``config.seed`` and checkpointed
    with the replay buffer (``checkpoint_replay_buffer``); hung env runners are restarted (HungEnvRunnerGuard)."""

    @override(Algorithm)
    def _create_local_replay_buffer_if_necessary(self, config):
        spec = getattr(config, "replay_buffer_config", None)  # on-policy algorithms (MAGAIL) have none
        if not spec or spec.get("no_local_replay_buffer"):
            return None
        # Built here, not by RLlib: after Tune's round trip through a dict, `type` is the class (update_from_dict
        # deserializes class paths), which RLlib 2.60's builder cannot take. validate_episode_replay checked it.
        kind = spec["type"]
        buffer_cls = deserialize_type(kind) if isinstance(kind, str) else kind
        buffer = buffer_cls(**{k: v for k, v in spec.items() if k != "type"},
                            metrics_num_episodes_for_smoothing=config.metrics_num_episodes_for_smoothing)
        # RLlib seeds the episode buffer's sampler from the OS (seed=None): runs with the same `seed` would draw
        # different replay rows. Seed it from the config (its state is checkpointed, see get_state).
        buffer.rng = np.random.default_rng(config.seed)
        return buffer

    @override(Algorithm)
    def get_state(self, components=None, *, not_components=None, **kwargs) -> Dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        if (self.config.checkpoint_replay_buffer and self.local_replay_buffer is not None
                and self._check_component(REPLAY_BUFFER, components, not_components)):
            state[REPLAY_BUFFER] = self.local_replay_buffer.get_state()
        if self.local_replay_buffer is not None and hasattr(self.local_replay_buffer, "rng"):
            state[REPLAY_SAMPLER] = self.local_replay_buffer.rng.bit_generator.state
        return state

    def sample_into_replay(self) -> int:
        """One round of sampling on the env runners, stored in the replay buffer; returns the env steps sampled over
        the run so far."""
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, env_runner_results = synchronous_parallel_sample(
                worker_set=self.env_runner_group,
                concat=True,
                sample_timeout_s=self.config.sample_timeout_s,
                _uses_new_env_runners=True,
                _return_metrics=True,
            )
        self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
            self.local_replay_buffer.add(episodes)
        return self.metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)

    def replay_updates(self, draw: Callable[[], Dict[str, Any]], timestep: int) -> None:
        """``num_updates_per_iteration`` learner updates, each on ``draw()`` (the kwargs of ``LearnerGroup.update``:
        ``batch=`` of replay transitions or sequences), then the weight sync to the env runners. ``timestep``
        drives the target-network schedule (DQNLearner counts sampled env steps). The learner's metrics are reduced
        once, after the last update (LastUpdateMetrics)."""
        n_updates = self.config.num_updates_per_iteration
        for k in range(1, n_updates + 1):
            with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
                replay = draw()
            with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
                learner_results = self.learner_group.update(
                    **replay,
                    timesteps={
                        NUM_ENV_STEPS_SAMPLED_LIFETIME: timestep,
                        NUM_AGENT_STEPS_SAMPLED_LIFETIME: self.metrics.peek(
                            (ENV_RUNNER_RESULTS, NUM_AGENT_STEPS_SAMPLED_LIFETIME), default={}
                        ),
                    },
                    _no_metrics_reduce=k < n_updates,
                )
        self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        self.metrics.aggregate([self.local_replay_buffer.get_metrics()], key=REPLAY_BUFFER_RESULTS)
        # Only the acting network goes back to the env runners (inference_only drops mixers and target nets).
        sync_env_runner_weights(self, learner_results)

    def sample_replay_transitions(self, n_rows: int) -> MultiAgentBatch:
        """``n_rows`` one-step transitions of the replay buffer, drawn uniformly with replacement, as the train batch
        the learner connectors would build from them (rllib_mil/data/team_replay.py), without building episodes."""
        rows = self.local_replay_buffer.sample_transitions(n_rows)
        return MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(rows)}, n_rows)

    def sample_replay_sequences(self, n_episodes: int) -> MultiAgentBatch:
        """``n_episodes`` whole episodes of the replay buffer, drawn uniformly with replacement and padded
        (rllib_mil/data/sequences.py), for recurrent learners."""
        from rllib_mil.data.sequences import SEQ_VALID, episode_arrays, pad_sequences

        stored = [ep for ep in self.local_replay_buffer.episodes if len(ep) > 0]
        pick = self.local_replay_buffer.rng.integers(len(stored), size=n_episodes)
        seqs = pad_sequences([episode_arrays(stored[i]) for i in pick])
        return MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(seqs)}, int(seqs[SEQ_VALID].sum()))

    @override(Algorithm)
    def set_state(self, state: Dict[str, Any]) -> None:
        super().set_state(state)
        if REPLAY_BUFFER in state and self.local_replay_buffer is not None:
            self.local_replay_buffer.set_state(state[REPLAY_BUFFER])
        if REPLAY_SAMPLER in state and self.local_replay_buffer is not None:
            self.local_replay_buffer.rng.bit_generator.state = state[REPLAY_SAMPLER]


class ImitationAlgorithm(TeamAlgorithm):
    """Base of the imitation algorithms: the demonstrations are resolved and validated on the driver before
    anything else starts, offline runs get no replay buffer, and ``_n_offline_updates`` counts expert-only
    updates (their target-network schedule)."""

    @override(Algorithm)
    def setup(self, config: AlgorithmConfig) -> None:
        # Generate once and cache, and validate against the env, here: a mismatch then fails with a clear message
        # instead of inside a remote learner.
        resolve_expert_data(config)
        super().setup(config)
        self._n_offline_updates = 0

    @override(TeamAlgorithm)
    def _create_local_replay_buffer_if_necessary(self, config):
        # Offline: no replay buffer at all (nothing would fill it).
        if config.get("offline"):
            return None
        return super()._create_local_replay_buffer_if_necessary(config)

    @override(TeamAlgorithm)
    def get_state(self, components=None, *, not_components=None, **kwargs) -> Dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state[OFFLINE_UPDATES] = self._n_offline_updates
        return state

    @override(TeamAlgorithm)
    def set_state(self, state: Dict[str, Any]) -> None:
        super().set_state(state)
        self._n_offline_updates = state.get(OFFLINE_UPDATES, self._n_offline_updates)

    def _offline_training_step(self, n_updates: Optional[int] = None) -> None:
        """``n_updates`` (default ``num_updates_per_iteration``) learner updates on expert rows only; the learner
        draws them from its on-device buffer. Their lifetime count is the result's ``num_offline_updates_lifetime``."""
        n = n_updates or self.config.num_updates_per_iteration
        expert_only_updates(self, n, first_update=self._n_offline_updates)
        self._n_offline_updates += n
        self.metrics.log_value(NUM_OFFLINE_UPDATES_LIFETIME, n, reduce="lifetime_sum")


def absolute_expert_data(spec):
    """``expert_data`` with its file paths (a Parquet file, or a checkpoint as ``expert``) made absolute.

    Tune runs each trial in a directory of its own, so a path relative to where the user started the run would
    name nothing there. Inside a trial, Tune's ``TUNE_ORIG_WORKING_DIR`` is that starting directory."""
    base = os.environ.get("TUNE_ORIG_WORKING_DIR") or os.getcwd()

    def absolute(path):
        return os.path.normpath(os.path.join(base, os.path.expanduser(str(path))))

    if isinstance(spec, (str, os.PathLike)):
        return absolute(spec)
    if isinstance(spec, dict) and isinstance(spec.get("expert"), (str, os.PathLike)) \
            and str(spec["expert"]) not in EXPERT_NAMES:
        return {**spec, "expert": absolute(spec["expert"])}
    return spec


def resolve_expert_data(config) -> str:
    """Path of the demonstrations named by ``config.expert_data``, generated and cached when it asks for it,
    validated against ``config.env`` (raises ``DemoValidationError`` naming the mismatch)."""
    spec = config.expert_data
    if not isinstance(config.env, str):
        raise ValueError(
            "Imitation needs `env` to be a registered team-env id (e.g. 'mpe/simple_spread'), so the demonstrations "
            f"can be checked against it; got {config.env!r}. See rllib_mil.envs.list_team_envs()."
        )
    env_config = dict(config.env_config or {})
    if isinstance(spec, dict):  # its keys and values are checked by ImitationConfig.validate()
        path = ensure_demos(
            config.env,
            env_config,
            expert=spec.get("expert", "scripted"),
            episodes=int(spec.get("episodes", 128)),
            seed=int(spec.get("seed", 0)),
        )
    else:
        path = str(spec)
    env = make_team_env(config.env, env_config)
    try:
        read_demos(path, env=env)
    finally:
        env.close()
    return path


class ExpertDataLearner:
    """Learner mixin: ``build_expert_data()`` (call it in ``build``) loads the demonstrations onto the learner's
    device; ``expert_rows`` / ``expert_sequences`` draw from them with a generator seeded by ``config.seed`` and
    the learner index."""

    def build_expert_data(self) -> None:
        path = resolve_expert_data(self.config)
        self._expert = ExpertBuffer.from_path(path, device=self._device)
        self._expert_gen = torch.Generator(device=self._device)
        self._expert_gen.manual_seed(int(self.config.seed or 0) + 10_007 * self._learner_index)

    def get_state(self, components=None, *, not_components=None, **kwargs) -> Dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state[EXPERT_SAMPLER] = self._expert_gen.get_state()  # which expert rows come next
        return state

    def set_state(self, state: Dict[str, Any]) -> None:
        super().set_state(state)
        if EXPERT_SAMPLER in state:
            self._expert_gen.set_state(state[EXPERT_SAMPLER])

    def expert_rows(self, n: int) -> Dict[str, torch.Tensor]:
        """``n`` expert transitions, keyed by the schema's column names."""
        return self._expert.sample(n, generator=self._expert_gen)

    def expert_sequences(self, n: int) -> Dict[str, torch.Tensor]:
        """``n`` whole expert episodes in the padded layout of rllib_mil.data.sequences."""
        return self._expert.sample_sequences(n, generator=self._expert_gen)


def expert_only_updates(algo, n_updates: int, first_update: int) -> None:
    """``n_updates`` learner updates on expert rows alone, then the weight sync to the env runners.

    The target-network schedule (where there is one) counts updates: update k gets timestep ``first_update + k``.
    """
    marker = MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch({EXPERT_ONLY: np.zeros(1, np.float32)})}, 1)
    for k in range(1, n_updates + 1):
        with algo.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = algo.learner_group.update(
                batch=marker, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: first_update + k},
                _no_metrics_reduce=k < n_updates)
    algo.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
    # Nothing samples for training, but the env runners' network must be the trained one: `get_module()`,
    # exported policies and evaluation on the training env runners read it.
    sync_env_runner_weights(algo, learner_results)


def sync_env_runner_weights(algo, learner_results) -> None:
    """Send the learner's inference part (the agent network only) to the env runners."""
    with algo.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
        algo.env_runner_group.sync_weights(
            from_worker_or_learner_group=algo.learner_group,
            policies=set(learner_results[0].keys()) - {ALL_MODULES},
            inference_only=True,
        )

"""BC: behaviour cloning of a team's demonstrations with one shared decentralized policy network.

The shared agent network (MLP or GRU, on each agent's own observation plus its id; ``TeamAgentModule``) maps
o_i to action logits, trained by the masked log-likelihood of the expert's actions (``bc_loss.bc_term``). BC is
offline by construction: no env step is sampled for training and no replay buffer exists, every update draws
expert rows (or, with ``use_gru``, whole expert episodes) from the learner's on-device buffer, so it runs on the
learner alone and its Tune trial asks for no env-runner CPUs beyond evaluation (``num_env_runners=0``). The env
runners evaluate the greedy policy (``evaluation_interval``); ``rllib evaluate`` works on its checkpoints.
"""
from typing import Any, Dict, Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override

from rllib_mil.algorithms.imitation import ImitationAlgorithm, ImitationConfig


class BCConfig(ImitationConfig):
    """Configuration of BC.

    Example:
        >>> from rllib_mil.algorithms.bc import BCConfig
        >>> config = (BCConfig().environment("mpe/simple_spread")
        ...           .training(expert_data={"expert": "scripted", "episodes": 128}))
        >>> algo = config.build_algo()   # doctest: +SKIP
    """

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or BC)
        # BC never samples the env for training (ImitationConfig.offline must stay True).
        self.offline = True
        # Overrides of AlgorithmConfig / ImitationConfig defaults (benchmarks/bc_reference.py's settings).
        self.lr = 1e-3
        self.expert_batch_size = 128
        self.num_updates_per_iteration = 100
        self.num_env_runners = 0

    @override(ImitationConfig)
    def validate(self) -> None:
        super().validate()
        if self.offline is not True:
            self._value_error("BC learns from the demonstrations alone: `offline` must be True (it samples no env "
                              "steps for training). For online imitation use MIFQ.")

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_mil.modules.team_module import TeamAgentModule

        return RLModuleSpec(module_class=TeamAgentModule, model_config=self.model_config)

    @property
    @override(ImitationConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        # Exploration samples softmax(logits): the policy BC fits.
        return super()._model_config_auto_includes | {"rollout_alpha": 1.0}

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.bc.bc_learner import BCTorchLearner

        return BCTorchLearner


class BC(ImitationAlgorithm):
    """Behaviour cloning: expert-only learner updates, then the policy synced to the (evaluation) env runners."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> BCConfig:
        return BCConfig()

    @override(Algorithm)
    def training_step(self) -> None:
        self._offline_training_step()

"""MAGAIL (Song et al. 2018, "Multi-Agent Generative Adversarial Imitation Learning"): a baseline of the MIFQ
paper (§5.3), as MAPPO trained on a discriminator's reward.

* A discriminator D(o_i, a_i), one net shared by the agents (+ one-hot id; ``disc_centralized=True``: D(S, A) on
  the global state and joint action), learns to tell the expert's rows from the agents' own
  (``magail_loss.discriminator_loss``), with its own optimizer and ``disc_lr`` on the learner.
* Its reward −log(1 − D) (``disc_reward="gail"``; ``"airl"``: log D − log(1 − D)) replaces the env reward in
  the learner connector pipeline, right before GAE, so env runners and episodes stay untouched and the true
  return is still what the env runners report.
* Everything else is MAPPO's: decentralized shared actor (MLP or GRU), centralized critic, PPO epochs.

Online by construction (`offline` must stay False); the demonstrations come through ``expert_data`` like every
imitation algorithm here (ImitationConfig).
"""
from typing import Any, Dict, Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override
from typing_extensions import Self

from rllib_mil.algorithms.imitation import ImitationAlgorithm, ImitationConfig
from rllib_mil.algorithms.magail.magail_loss import REWARD_TYPES
from rllib_mil.algorithms.mappo.mappo import MAPPO, MAPPOConfig
from rllib_mil.modules.agent_nets import ACTIVATIONS
from rllib_mil.algorithms.utils import set_provided


class MAGAILConfig(MAPPOConfig, ImitationConfig):
    """Configuration of MAGAIL: MAPPO's settings (``actor_hidden``, ``critic_hidden``, ``lr``, ``num_epochs``,
    ``minibatch_size``, ``entropy_coeff`` ...), the shared imitation settings (``expert_data``,
    ``expert_batch_size``, ``use_gru`` ...) and the discriminator's below."""

    offline_capable = False

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MAGAIL)
        # fmt: off
        # __sphinx_doc_begin__
        # Discriminator: MLP hidden sizes and activation; per agent on (o_i, one-hot a_i, one-hot id) with shared
        # weights, or centralized on (S, one-hot joint action).
        self.disc_hidden = [64, 64]
        self.disc_activation = "relu"
        self.disc_centralized = False
        # Its own Adam optimizer and learning rate.
        self.disc_lr = 1e-3
        # Discriminator steps per training iteration: it trains on the first this-many minibatches of the PPO
        # epochs (40 = every minibatch of MAPPO's 10 epochs x 4 minibatches). Measured on simple_spread (128
        # demos): 4 steps at lr 3e-4 leave D at chance (accuracy 0.55 after 30k env steps) while the policy
        # drifts on noise to a return of -52 (random: -24); 40 steps at lr 1e-3 reach accuracy 0.8 and learn.
        self.disc_updates_per_iteration = 40
        # WGAN-GP gradient penalty on expert/policy interpolates (0 = off, as in MAGAIL).
        self.disc_grad_penalty = 0.0
        # The reward that replaces the env's: "gail" = -log(1 - D), "airl" = log D - log(1 - D).
        self.disc_reward = "gail"
        # __sphinx_doc_end__
        # fmt: on
        # Expert rows per discriminator step, as many as the policy rows of a 500-row minibatch.
        self.expert_batch_size = 500

    @override(MAPPOConfig)
    def training(
        self,
        *,
        disc_hidden=NotProvided,
        disc_activation=NotProvided,
        disc_centralized=NotProvided,
        disc_lr=NotProvided,
        disc_updates_per_iteration=NotProvided,
        disc_grad_penalty=NotProvided,
        disc_reward=NotProvided,
        **kwargs,
    ) -> Self:
        """Sets the discriminator's settings (see ``__init__``), MAPPO's and the shared imitation settings."""
        super().training(**kwargs)
        set_provided(
            self,
            disc_hidden=disc_hidden,
            disc_activation=disc_activation,
            disc_centralized=disc_centralized,
            disc_lr=disc_lr,
            disc_updates_per_iteration=disc_updates_per_iteration,
            disc_grad_penalty=disc_grad_penalty,
            disc_reward=disc_reward,
        )
        return self

    @override(MAPPOConfig)
    def validate(self) -> None:
        super().validate()
        if self.offline:
            self._value_error("MAGAIL learns from the contrast between expert rows and the agents' own rollouts: it "
                              "cannot run offline. Set offline=False, or use BC / MIFQ with offline=True.")
        if self.credit != "team":
            self._value_error("MAGAIL's discriminator gives one team imitation reward per step, so it trains with "
                              "`credit='team'`; per-agent credit (`credit='agent'`) would read the env's rewards instead.")
        if self.disc_reward not in REWARD_TYPES:
            self._value_error(f"Unknown `disc_reward`={self.disc_reward!r}; choose one of {list(REWARD_TYPES)}.")
        if self.disc_activation not in ACTIVATIONS:
            self._value_error(f"Unknown `disc_activation`={self.disc_activation!r}; choose one of {sorted(ACTIVATIONS)}.")
        if not (isinstance(self.disc_updates_per_iteration, int) and self.disc_updates_per_iteration >= 1):
            self._value_error(f"`disc_updates_per_iteration` must be an integer >= 1, got "
                              f"{self.disc_updates_per_iteration!r}.")
        if not self.disc_grad_penalty >= 0 or not self.disc_lr > 0:
            self._value_error("`disc_grad_penalty` must be >= 0 and `disc_lr` > 0.")

    @override(MAPPOConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_mil.algorithms.magail.magail_rl_module import MAGAILTorchRLModule

        return RLModuleSpec(module_class=MAGAILTorchRLModule, model_config=self.model_config)

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> Dict[str, Any]:
        return super()._model_config_auto_includes | {
            "disc_hidden": list(self.disc_hidden),
            "disc_activation": self.disc_activation,
            "disc_centralized": bool(self.disc_centralized),
        }

    @override(MAPPOConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.magail.magail_learner import MAGAILTorchLearner

        return MAGAILTorchLearner


class MAGAIL(MAPPO, ImitationAlgorithm):
    """MAGAIL: MAPPO's training step; the demonstrations are resolved and checked on the driver first."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> MAGAILConfig:
        return MAGAILConfig()

"""MAMQL: Multi-Agent Marginal Q-Learning from demonstrations (arXiv 2503.04679; ../shared/papers/mamql-*).

Per-agent marginalized critics Q̄_i(s, a_i) (one network shared by the agents, with their one-hot id; it never sees
the other agents' actions, so training on sampled joint actions estimates the marginal over them), generalized
Boltzmann policies π_i(a_i|s) ∝ exp(λ·Q̄_i(s, a_i)) with rationality λ = 1/``alpha``, the per-agent inverse soft-Q
loss with χ² on expert and replay rows (online by default: the env runners' Boltzmann rollouts fill the replay),
offline mode (``offline=True``), and per-agent reward networks R_i(s, a) fitted to Q̄_i(s, a_i) − γV̄_i(s') for
reward recovery (``rllib rewards export``). General-sum: nothing here sums the agents' rewards; each agent's loss
and recovered reward are its own.

It runs on MIFQ's machinery (replay, expert buffer, target network, offline mode, checkpoints): MAMQL is MIFQ
with no mixer (J = Σ_i J_i, so each agent's gradient comes from its own J_i) and ``agent_input="state"``.
"""
from typing import Optional, Type, Union

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core.learner import Learner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.utils.annotations import override
from typing_extensions import Self

from rllib_mil.algorithms.mifq.mifq import MIFQ, MIFQConfig
from rllib_mil.algorithms.utils import set_provided


class MAMQLConfig(MIFQConfig):
    """MAMQL's settings: MIFQConfig's (see there) with these defaults changed, plus the reward networks'."""

    def __init__(self, algo_class=None):
        super().__init__(algo_class=algo_class or MAMQL)
        # fmt: off
        # __sphinx_doc_begin__
        # Marginalized critics: per-agent Q_i(s, a_i) on the global state ("obs" = each agent's own observation,
        # decentralized; "state+obs" = both). Acting then reads the state too (centralized execution).
        self.agent_input = "state"
        # No mixer: each agent minimises its own inverse soft-Q loss (general-sum).
        self.mixer = "none"
        # Policies: Boltzmann over Q_i KL-regularised towards a behaviour-cloning prior, pi_i ~ pi0_i^beta exp(Q_i/alpha)
        # (MIFQConfig.policy_prior, inherited: "bc"). Without it online MAMQL fell to half its offline score, the
        # replay-row flattening found for MIFQ (README "Results"). None = the paper's softmax(Q_i/alpha).
        # Rationality lambda of the Boltzmann policies is 1 / alpha (the paper's code: lambda = 1, alpha = 1;
        # alpha = 0.1 is MIFQ's measured default, see the MIFQ README "Deviations" 4).
        # Reward networks R_i(s, a) (state + one-hot joint action + agent id): MLP sizes and loss weight.
        self.reward_hidden = [128, 128]
        self.reward_coef = 1.0
        # Form of the recovered reward. "state" (default): a reward of the state reached, g_i(s'), plus a shaping term,
        # fitted as g_i(s') + gamma (1 - d) h_i(s') - h_i(s) ~ r_i (AIRL's disentangled reward): an inverse soft-Q
        # reward is defined only up to such shaping, which h absorbs, so g can track a true reward of the state;
        # `rllib rewards export` reports g_i(s'). Measured online on simple_reference and Overcooked, it tracks the
        # true rewards better than R(s, a) (README "Reward recovery"). "state_action" (the paper's): R_i(s, a).
        self.reward_form = "state"
        # No offline warm start (MIFQConfig.pretrain_offline_updates): MAMQL's results were measured without one.
        self.pretrain_offline_updates = 0
        # __sphinx_doc_end__
        # fmt: on

    @override(AlgorithmConfig)
    def training(self, *, reward_hidden=NotProvided, reward_coef: Optional[float] = NotProvided,
                 reward_form: Optional[str] = NotProvided, **kwargs) -> Self:
        """Sets MAMQL's settings (and every MIFQConfig.training() one)."""
        super().training(**kwargs)
        set_provided(self, reward_hidden=reward_hidden, reward_coef=reward_coef, reward_form=reward_form)
        return self

    @override(AlgorithmConfig)
    def validate(self) -> None:
        super().validate()
        if self.mixer != "none":
            self._value_error(f"MAMQL learns per-agent (general-sum) critics: `mixer` must be 'none', got "
                              f"{self.mixer!r}. For a team mixer use MIFQ.")
        if not (isinstance(self.reward_coef, (int, float)) and self.reward_coef >= 0):
            self._value_error(f"`reward_coef` must be a number >= 0 (0 = no reward recovery), got {self.reward_coef!r}.")
        if self.reward_form not in ("state_action", "state"):
            self._value_error(f"`reward_form` must be 'state_action' (R_i(s, a), the paper's) or 'state' (g_i(s') plus "
                              f"a shaping term), got {self.reward_form!r}.")

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        from rllib_mil.algorithms.mamql.mamql_rl_module import MAMQLTorchRLModule

        return RLModuleSpec(module_class=MAMQLTorchRLModule, model_config=self.model_config)

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self):
        return super()._model_config_auto_includes | {"reward_hidden": list(self.reward_hidden),
                                                      "reward_form": self.reward_form}

    @override(AlgorithmConfig)
    def get_default_learner_class(self) -> Union[Type[Learner], str]:
        from rllib_mil.algorithms.mamql.mamql_learner import MAMQLTorchLearner

        return MAMQLTorchLearner


class MAMQL(MIFQ):
    """Sampling, replay and updates as MIFQ's; the loss lives in ``mamql_learner.py``."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> MAMQLConfig:
        return MAMQLConfig()

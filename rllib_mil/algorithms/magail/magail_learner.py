"""MAGAIL learner: MAPPO's learner (GAE, clipped per-agent ratios, value normalisation) whose env reward is
replaced, before advantage estimation, by the discriminator's imitation reward (a learner connector), plus the
discriminator's own update on expert rows against the batch's policy rows, with its own optimizer."""
from typing import Any, Dict

import torch
from ray.rllib.connectors.connector_v2 import ConnectorV2
from ray.rllib.connectors.learner.general_advantage_estimation import GeneralAdvantageEstimation
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import Learner
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.annotations import override
from ray.rllib.utils.typing import ModuleID, TensorType

from rllib_mil.algorithms.imitation import ExpertDataLearner
from rllib_mil.algorithms.magail.magail_loss import discriminator_loss, imitation_reward
from rllib_mil.algorithms.mappo.mappo_learner import MAPPOTorchLearner
from rllib_mil.algorithms.mifq.mifq_learner import EXPERT_ROWS
from rllib_mil.algorithms.utils import interpolation_gradient_penalty, raise_if_not_finite
from rllib_mil.data import schema
from rllib_mil.data.sequences import SEQ_ACTIONS, SEQ_MASK, SEQ_OBS, SEQ_STATE, SEQ_VALID
from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE

# The env's own reward, kept beside the imitation reward that replaces Columns.REWARDS (for logging only).
ENV_REWARDS = "env_rewards"
DISC_OPTIMIZER = "discriminator"
# Metric keys beyond MAPPO's (see the algorithm README).
DISC_REWARD_MEAN = "disc_reward_mean"
ENV_REWARD_MEAN = "env_reward_mean"
DISC_GRAD_PENALTY = "disc_grad_penalty"
POLICY_ROWS = "policy_rows"


class DiscriminatorReward(ConnectorV2):
    """Learner connector piece, placed right before GAE: every module's ``Columns.REWARDS`` becomes the team
    imitation reward of its discriminator (no gradient); the env reward moves to ``ENV_REWARDS``. The extra
    bootstrap step RLlib appends to each episode chunk gets a reward too, which GAE never uses."""

    def __init__(self, input_observation_space=None, input_action_space=None, *, reward_type: str = "gail"):
        super().__init__(input_observation_space, input_action_space)
        self.reward_type = reward_type

    @override(ConnectorV2)
    def __call__(self, *, rl_module, batch: Dict[str, Any], episodes, **kwargs):
        for module_id, mb in batch.items():
            disc = rl_module[module_id].unwrapped().discriminator
            obs = mb[Columns.OBS]
            with torch.no_grad():
                x = disc.inputs(obs[OBS], obs[STATE], mb[Columns.ACTIONS])  # (..., n, in) / (..., in)
                reward = imitation_reward(disc(x), disc.weights(obs[ACTION_MASK]), self.reward_type)  # (...)
            mb[ENV_REWARDS] = mb[Columns.REWARDS]
            mb[Columns.REWARDS] = reward.to(mb[Columns.REWARDS].dtype)
        return batch


class MAGAILTorchLearner(ExpertDataLearner, MAPPOTorchLearner):
    @override(MAPPOTorchLearner)
    def build(self) -> None:
        super().build()
        self.build_expert_data()
        pipeline = self._learner_connector
        if pipeline is None or not any(isinstance(c, GeneralAdvantageEstimation) for c in pipeline.connectors):
            raise ValueError("MAGAIL replaces the env reward before GAE: keep RLlib's default learner connectors "
                             "(`add_default_connectors_to_learner_pipeline=True`).")
        pipeline.insert_before(GeneralAdvantageEstimation, DiscriminatorReward(reward_type=self.config.disc_reward))
        self._disc_updates_left = 0

    @override(TorchLearner)
    def configure_optimizers_for_module(self, module_id: ModuleID, config=None) -> None:
        # Actor and critic keep PPO's optimizer and lr; the discriminator gets its own (disc_lr).
        disc = list(self._module[module_id].unwrapped().discriminator.parameters())
        in_disc = {id(p) for p in disc}
        rest = [p for p in self.get_parameters(self._module[module_id]) if id(p) not in in_disc]
        self.register_optimizer(module_id=module_id, optimizer=torch.optim.Adam(rest), params=rest,
                                lr_or_lr_schedule=config.lr)
        self.register_optimizer(module_id=module_id, optimizer_name=DISC_OPTIMIZER, optimizer=torch.optim.Adam(disc),
                                params=disc, lr_or_lr_schedule=config.disc_lr)

    @override(Learner)
    def update(self, *args, **kwargs):
        # One call = one training iteration's epochs over a fresh batch: the discriminator trains on its first
        # `disc_updates_per_iteration` minibatches (with 10 PPO epochs it would otherwise see each row 10 times).
        self._disc_updates_left = self.config.disc_updates_per_iteration
        return super().update(*args, **kwargs)

    @override(MAPPOTorchLearner)
    def compute_loss_for_module(
        self, *, module_id: ModuleID, config, batch: Dict[str, Any], fwd_out: Dict[str, TensorType]
    ) -> TensorType:
        loss = super().compute_loss_for_module(module_id=module_id, config=config, batch=batch, fwd_out=fwd_out)
        with torch.no_grad():
            valid = _valid_rows(batch)
            sel = (lambda x: x[valid])  # noqa: E731
            metrics = {DISC_REWARD_MEAN: sel(batch[Columns.REWARDS]).mean()}
            if ENV_REWARDS in batch:
                metrics[ENV_REWARD_MEAN] = sel(batch[ENV_REWARDS]).mean()
        if self._disc_updates_left > 0:
            self._disc_updates_left -= 1
            d_loss, terms = self.discriminator_loss(self.module[module_id].unwrapped(), config, batch)
            loss = loss + d_loss
            metrics.update(terms)
        metrics["loss"] = loss.detach()  # MAPPO's loss plus the discriminator's when it trained
        self.metrics.log_dict(metrics, key=module_id, window=1)
        return loss

    def discriminator_loss(self, module, config, batch):
        """Eq. (1) of magail_loss.py on ``expert_batch_size`` expert rows (with ``use_gru``: the steps of as many
        whole episodes) against the batch's valid policy rows, plus the optional gradient penalty."""
        disc = module.discriminator
        valid = _valid_rows(batch)  # (B[, T]) bool
        pick = (lambda x: x[valid])  # noqa: E731  (B[, T], ...) -> (Np, ...)
        obs = batch[Columns.OBS]
        x_p = disc.inputs(pick(obs[OBS]), pick(obs[STATE]), pick(batch[Columns.ACTIONS]))  # (Np, ...)
        w_p = disc.weights(pick(obs[ACTION_MASK]))  # (Np, k)
        e = self._expert_policy_rows(config)
        x_e = disc.inputs(e[OBS], e[STATE], e[schema.ACTIONS])  # (Ne, ...)
        w_e = disc.weights(e[ACTION_MASK])  # (Ne, k)
        loss, terms = discriminator_loss(disc(x_e), disc(x_p), w_e, w_p)
        terms[EXPERT_ROWS], terms[POLICY_ROWS] = float(x_e.shape[0]), float(x_p.shape[0])
        if config.disc_grad_penalty:
            k = min(x_e.shape[0], x_p.shape[0])
            gp = interpolation_gradient_penalty(disc, x_e[:k], x_p[:k], self._expert_gen)
            loss = loss + config.disc_grad_penalty * gp
            terms[DISC_GRAD_PENALTY] = gp.detach()
        raise_if_not_finite("MAGAIL discriminator", loss, terms, "Lower `disc_lr` or set `disc_grad_penalty`.")
        return loss, terms

    def _expert_policy_rows(self, config) -> Dict[str, torch.Tensor]:
        """Expert transitions keyed OBS, STATE, ACTION_MASK, ACTIONS: drawn rows, or the real steps of drawn whole
        episodes with ``use_gru`` (where ``expert_batch_size`` counts episodes)."""
        if not config.use_gru:
            rows = self.expert_rows(config.expert_batch_size)
            return {k: rows[k] for k in (OBS, STATE, ACTION_MASK, schema.ACTIONS)}
        seq = self.expert_sequences(config.expert_batch_size)
        valid = seq[SEQ_VALID] > 0  # (B, T)
        return {OBS: seq[SEQ_OBS][:, :-1][valid], STATE: seq[SEQ_STATE][:, :-1][valid],  # (N, ...)
                ACTION_MASK: seq[SEQ_MASK][:, :-1][valid], schema.ACTIONS: seq[SEQ_ACTIONS][valid]}


def _valid_rows(batch) -> torch.Tensor:
    """Rows that are real steps, ``(B[, T])`` bool: RLlib's loss mask (without the bootstrap step and the zero
    padding), or every row."""
    valid = batch.get(Columns.LOSS_MASK)
    if valid is None:
        valid = torch.ones(batch[Columns.ACTIONS].shape[:-1], dtype=torch.bool, device=batch[Columns.ACTIONS].device)
    return valid.bool()

"""How much can a reinforcement-learning signal add to the behaviour-cloning prior at the imitation budget?

Online MIFQ's only advantage over offline MIFQ and BC is a reinforcement-learning signal: on the learner's own
states its policy π ∝ π0·exp(Q/α) is the BC prior π0 tilted by Q, and Q there is learned from the recovered reward.
This script replaces the recovered reward by the environment's true team reward, everything else unchanged (the
same network with its BC prior head, mixer, target network, expert ∪ replay rows, env runners, budget and
evaluation), and measures the result. It is an upper bound for any reward-recovery method on the same machinery:
no recovered reward carries more information about the task than the true one. If this oracle does not beat BC by
the margin issue 7 asks for at a budget, online MIFQ cannot be expected to either.

The oracle's loss is KL-regularised soft Q-learning towards π0 on joint values (``masqil_loss.soft_td_loss`` with
the env reward in place of SQIL's constant), plus the prior's BC loss on expert rows:

    Q^tot(S, A) = M(Q_1(o_1, a_1), …; S),   V_i(o') = α·log Σ_a π0(a|o')·exp(Q'_i(o', a)/α)   (Q': target net)
    L = mean over expert ∪ replay rows of (Q^tot(S, A) − r − γ(1 − d)·M(V_1(o_1'), …; S'))²   (no gradient in M(V))  +  NLL of π0 on expert rows

Usage (rows in the format of benchmarks/mifq_mpe.py, method name ``MIFQ-oracle``; every mifq_mpe.py option works):

    python benchmarks/mifq_reward_oracle.py --tasks mpe/simple_reference --seeds 0 --demos 16 \\
        --out benchmarks/results/mifq_reward_oracle.jsonl
    python benchmarks/mifq_reward_oracle.py ... --config '{"policy_prior": null}'   # soft Q-learning from scratch
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ORACLE = "MIFQ-oracle"


def oracle_classes():
    """(Algorithm class, Config class) of ``MIFQ-oracle``: MIFQ's algorithm and config with the oracle learner."""
    from typing import Any, Dict

    import torch
    from ray.rllib.core.columns import Columns

    from rllib_mil.algorithms.bc.bc_loss import bc_term
    from rllib_mil.algorithms.masqil.masqil_loss import soft_td_loss
    from rllib_mil.algorithms.mifq.mifq import MIFQ, MIFQConfig
    from rllib_mil.algorithms.mifq.mifq_learner import (
        EXPERT_ROWS, PRIOR_NLL, Q_ABS_MAX, Q_MEAN, REPLAY_ROWS, MIFQTorchLearner)
    from rllib_mil.algorithms.utils import raise_if_not_finite
    from rllib_mil.data import schema
    from rllib_mil.modules.soft import soft_value

    class OracleRewardLearner(MIFQTorchLearner):
        def expert_rows(self, n: int) -> Dict[str, torch.Tensor]:
            rows = super().expert_rows(n)
            self._expert_reward = rows[schema.REWARD]  # (n_e,) team reward of the sampled expert rows
            return rows

        def compute_loss_for_module(self, *, module_id, config, batch: Dict[str, Any], fwd_out):
            if config.use_gru:
                raise ValueError("the reward oracle runs feed-forward agents only")
            module = self.module[module_id].unwrapped()
            rows = self.loss_rows(module, config, batch, online_next=False)
            q, _, prior_logits = self.policy_scores(module, rows.q, rows.mask)  # (B, n, A) each
            q_taken = q.gather(-1, rows.actions.unsqueeze(-1)).squeeze(-1)  # (B, n, 1) -> (B, n)
            q_tot = module.v_mixer(q_taken, rows.state)  # (B, n) -> (B,)
            with torch.no_grad():
                scores_next = self.policy_scores(module, rows.q_next, rows.mask_next)[1]  # (B, n, A), target net
                v_next = soft_value(scores_next, rows.mask_next, config.alpha)  # (B, n)
                v_tot_next = module.v_mixer(v_next, rows.state_next)  # (B, n) -> (B,); MIFQ has no target mixer
            parts = [self._expert_reward] + ([batch[Columns.REWARDS]] if rows.n_r else [])
            reward = torch.cat([p.to(q_tot.dtype) for p in parts])  # (B,): expert rows, then replay rows
            loss, terms = soft_td_loss(q_tot, v_tot_next, reward, rows.done, config.gamma)
            if prior_logits is not None:
                prior_nll = bc_term(prior_logits[: rows.n_e], rows.actions[: rows.n_e], rows.mask[: rows.n_e], 1.0)
                loss = loss + prior_nll
                terms = {**terms, PRIOR_NLL: prior_nll.detach(), "loss": loss.detach()}
            raise_if_not_finite("MIFQ-oracle", loss, terms, "Lower `lr`.")

            def metrics():
                q_avail = q.masked_select(rows.mask > 0.5)
                return {**terms, Q_MEAN: q_avail.mean(), Q_ABS_MAX: q_avail.abs().max(),
                        EXPERT_ROWS: float(rows.n_e), REPLAY_ROWS: float(rows.n_r),
                        "reward_expert_mean": reward[: rows.n_e].mean(),
                        "reward_replay_mean": reward[rows.n_e:].mean() if rows.n_r else torch.tensor(float("nan"))}

            self.log_loss_metrics(module_id, metrics)
            return loss

    class OracleConfig(MIFQConfig):
        def __init__(self, algo_class=None):
            super().__init__(algo_class=algo_class or MIFQ)
            # Online from the first step, as the README's oracle rows were measured (before MIFQ's warm start;
            # --config '{"pretrain_offline_updates": 6500}' adds it).
            self.pretrain_offline_updates = 0

        def get_default_learner_class(self):
            return OracleRewardLearner

    return MIFQ, OracleConfig


def main(argv=None) -> int:
    import mifq_mpe

    argv = list(sys.argv[1:] if argv is None else argv)
    if "--methods" not in argv and "--algos" not in argv:
        argv += ["--methods", ORACLE]
    from rllib_mil.algorithms import registry

    registry.ALGORITHMS[ORACLE] = oracle_classes()  # for mifq_mpe.py's grid, in this process only
    return mifq_mpe.main(argv)


if __name__ == "__main__":
    sys.exit(main())

"""MAGAIL: the discriminator loss and reward by hand, the learner connector that swaps the env reward for the
discriminator's before GAE, the discriminator learning to tell expert rows from the agents' own, and the
config's refusals. The registry loop (tests/test_imitation.py) covers training, evaluation and checkpoints."""
import math

import pytest
import torch
import torch.nn.functional as F
from ray.rllib.core.columns import Columns

import rllib_mil  # noqa: F401
from rllib_mil.algorithms.magail import MAGAILConfig
from rllib_mil.algorithms.magail.magail_learner import ENV_REWARDS, DiscriminatorReward
from rllib_mil.algorithms.magail.magail_loss import discriminator_loss, imitation_reward
from rllib_mil.envs.contract import ACTION_MASK, OBS, STATE

MODULE_ID = "default_policy"
DEMOS = {"expert": "scripted", "episodes": 16, "seed": 0}


def config(**training):
    return (
        MAGAILConfig()
        .environment("mpe/simple_spread")
        .training(**{"expert_data": DEMOS, "train_batch_size_per_learner": 200, "minibatch_size": 100,
                     "num_epochs": 2, "expert_batch_size": 100, **training})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=25)
        .debugging(seed=0)
    )


def test_discriminator_loss_and_rewards_by_hand():
    le = torch.tensor([[2.0, -1.0]], requires_grad=True)  # (Be=1, k=2)
    lp = torch.tensor([[0.5, 3.0], [-2.0, 0.0]], requires_grad=True)  # (Bp=2, k=2)
    we = torch.ones(1, 2)
    wp = torch.tensor([[1.0, 0.0], [1.0, 1.0]])  # agent 1 of row 0 had no choice
    loss, terms = discriminator_loss(le, lp, we, wp)
    log_d = lambda x: math.log(1 / (1 + math.exp(-x)))  # noqa: E731
    expected = -(log_d(2.0) + log_d(-1.0)) / 2 - (math.log(1 - math.exp(log_d(0.5))) + math.log(1 - math.exp(log_d(-2.0)))
                                                  + math.log(1 - math.exp(log_d(0.0)))) / 3
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5)
    assert float(terms["disc_accuracy"]) == pytest.approx((1 / 2 + 1 / 3) / 2)  # expert 2.0 > 0; policy -2.0 < 0
    loss.backward()
    assert float(lp.grad[0, 1]) == 0.0  # weight 0: no gradient
    assert float(le.grad[0, 0]) < 0 and float(lp.grad[0, 0]) > 0  # expert logits pushed up, policy logits down
    # GAIL's reward -log(1 - D) = softplus(l) >= 0 rises with D; AIRL's is the logit. Team reward = weighted mean.
    logits = torch.tensor([[0.0, 2.0], [-3.0, 1.0]])
    w = torch.tensor([[1.0, 1.0], [0.0, 1.0]])
    gail = imitation_reward(logits, w, "gail")
    assert torch.allclose(gail, torch.tensor([(math.log(2) + F.softplus(torch.tensor(2.0)).item()) / 2,
                                              F.softplus(torch.tensor(1.0)).item()]))
    assert torch.allclose(imitation_reward(logits, w, "airl"), torch.tensor([1.0, 1.0]))
    assert float(imitation_reward(logits, torch.zeros(2, 2)).abs().sum()) == 0.0
    with pytest.raises(ValueError, match="unknown imitation reward"):
        imitation_reward(logits, w, "wasserstein")


@pytest.mark.parametrize("centralized", [False, True])
def test_connector_swaps_the_env_reward_for_the_discriminators(build, centralized):
    algo = build(config(disc_centralized=centralized))
    learner = algo.learner_group._learner
    module = learner.module[MODULE_ID].unwrapped()
    assert not hasattr(algo.env_runner.module, "discriminator")  # learner only, like the critic
    B, n, A = 6, 3, 5
    g = torch.Generator().manual_seed(0)
    obs = {OBS: torch.randn(B, n, 18, generator=g), STATE: torch.randn(B, module.observation_space[STATE].shape[0], generator=g),
           ACTION_MASK: torch.ones(B, n, A)}
    actions = torch.randint(0, A, (B, n), generator=g)
    env_r = torch.randn(B, generator=g)
    batch = {MODULE_ID: {Columns.OBS: obs, Columns.ACTIONS: actions, Columns.REWARDS: env_r.clone()}}
    out = DiscriminatorReward(reward_type="gail")(rl_module=learner.module, batch=batch, episodes=[])[MODULE_ID]
    disc = module.discriminator
    logits = disc(disc.inputs(obs[OBS], obs[STATE], actions))
    assert logits.shape == ((B, 1) if centralized else (B, n))
    assert torch.allclose(out[Columns.REWARDS], F.softplus(logits).mean(dim=-1).detach())
    assert torch.equal(out[ENV_REWARDS], env_r)
    # and it sits right before GAE in the learner's pipeline
    names = [type(c).__name__ for c in learner._learner_connector.connectors]
    assert names.index("DiscriminatorReward") == names.index("GeneralAdvantageEstimation") - 1


def test_discriminator_separates_expert_from_policy_and_policy_trains_on_its_reward(build):
    algo = build(config(disc_lr=3e-3))
    for _ in range(8):
        stats = algo.train()["learners"][MODULE_ID]
    # the scripted expert's (o, a) rows are easy to tell from a near-random policy's
    assert float(stats["disc_expert_prob"]) > float(stats["disc_policy_prob"]) + 0.1, stats
    assert float(stats["disc_accuracy"]) > 0.6
    assert float(stats["expert_rows"]) == 100 and float(stats["policy_rows"]) > 0
    # the PPO batch carried the imitation reward (>= 0), not the env reward (negative distances in spread)
    assert float(stats["disc_reward_mean"]) > 0 > float(stats["env_reward_mean"])
    assert "disc_grad_penalty" not in stats
    gp = build(config(disc_grad_penalty=10.0)).train()["learners"][MODULE_ID]
    assert math.isfinite(float(gp["disc_grad_penalty"]))


def test_policy_updates_go_on_after_the_discriminators_minibatches(build):
    # 2 epochs x 2 minibatches = 4 PPO updates and the discriminator takes only the first, so the other three have an
    # optimizer without gradients (the tuned example's 40 of 40+ minibatches; this once failed in the clip step).
    algo = build(config(disc_updates_per_iteration=1))
    disc = algo.learner_group._learner.module[MODULE_ID].unwrapped().discriminator
    before = [p.detach().clone() for p in disc.parameters()]
    stats = algo.train()["learners"][MODULE_ID]
    assert math.isfinite(float(stats["loss"])) and math.isfinite(float(stats["disc_accuracy"]))
    assert any(not torch.equal(b, p) for b, p in zip(before, disc.parameters()))


@pytest.mark.parametrize("bad, match", [
    ({"offline": True}, "cannot run offline"),
    ({"disc_reward": "wgan"}, "disc_reward"),
    ({"disc_activation": "swish2"}, "disc_activation"),
    ({"disc_updates_per_iteration": 0}, "disc_updates_per_iteration"),
    ({"disc_lr": 0.0}, "disc_lr"),
    ({"credit": "agent"}, "credit='team'"),
])
def test_config_refusals_name_the_fix(bad, match):
    with pytest.raises(ValueError, match=match):
        config(**bad).validate()

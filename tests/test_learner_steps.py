"""The learners' fused gradient step and in-place polyak update (algorithms/utils.py) against RLlib's own code:
same clipped gradients, same target weights, and RLlib's path whenever a gradient is not finite."""
import copy

import pytest
import torch
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.torch_utils import update_target_network

from rllib_mil.algorithms.mifq import MIFQConfig
from rllib_mil.algorithms.utils import global_norm, polyak_
from rllib_mil.modules.agent_nets import SharedAgentQNet

MID = "default_policy"


@pytest.fixture(scope="module")
def learner(ray_session):
    algo = (MIFQConfig().environment("mpe/simple_spread")
            .training(expert_data={"expert": "scripted", "episodes": 4, "seed": 0}, offline=True, expert_batch_size=32,
                      num_updates_per_iteration=2, grad_clip=0.5)
            .env_runners(num_env_runners=0).debugging(seed=0).build_algo())
    yield algo.learner_group._learner
    algo.stop()


def clone(grads):  # the keys are the Parameters themselves: copy the values only
    return {k: v.clone() for k, v in grads.items()}


def random_grads(learner, scale):
    g = torch.Generator().manual_seed(0)
    return {pid: torch.randn(p.shape, generator=g) * scale for pid, p in learner._params.items()}


@pytest.mark.parametrize("scale", [1e-3, 10.0])  # below and above the clip threshold
def test_clipping_matches_rllib(learner, scale):
    config = learner.config.get_config_for_module(MID)
    grads = random_grads(learner, scale)
    ours = learner.postprocess_gradients_for_module(module_id=MID, config=config,
                                                   module_gradients_dict=clone(grads))
    learner._global_norms = {}
    theirs = TorchLearner.postprocess_gradients_for_module(learner, module_id=MID, config=config,
                                                          module_gradients_dict=clone(grads))
    assert ours.keys() == theirs.keys()
    for pid in ours:
        torch.testing.assert_close(ours[pid], theirs[pid])
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in ours.values()]))
    assert float(total) == pytest.approx(min(0.5, float(global_norm(list(grads.values())))), rel=1e-4)


def test_fast_step_matches_rllib_step(learner):
    """The same gradients applied by the fused step and by RLlib's apply_gradients give the same weights."""
    config = learner.config.get_config_for_module(MID)
    module = learner.module[MID]
    start = copy.deepcopy(module.state_dict())
    opt_state = copy.deepcopy(learner.get_optimizer(MID).state_dict())
    after = []
    for step in (learner.apply_gradients, lambda g: TorchLearner.apply_gradients(learner, g)):
        module.load_state_dict(start)
        learner.get_optimizer(MID).load_state_dict(opt_state)
        grads = learner.postprocess_gradients_for_module(
            module_id=MID, config=config, module_gradients_dict=random_grads(learner, 1.0))
        step(grads)
        after.append(copy.deepcopy(module.state_dict()))
    for k in after[0]:
        torch.testing.assert_close(after[0][k], after[1][k])
    assert any(not torch.equal(after[0][k], start[k]) for k in start)  # the step did something


def test_non_finite_gradients_take_rllibs_path(learner, monkeypatch):
    calls = []
    monkeypatch.setattr(TorchLearner, "apply_gradients", lambda self, g: calls.append(g))
    config = learner.config.get_config_for_module(MID)
    grads = random_grads(learner, 1.0)
    grads[next(iter(grads))].view(-1)[0] = float("nan")
    learner.apply_gradients(learner.postprocess_gradients_for_module(
        module_id=MID, config=config, module_gradients_dict=grads))
    assert len(calls) == 1  # RLlib's nan handling (zeroing or skipping, per torch_skip_nan_gradients) decides
    learner.apply_gradients(learner.postprocess_gradients_for_module(
        module_id=MID, config=config, module_gradients_dict=random_grads(learner, 1.0)))
    assert len(calls) == 1  # finite: the fused step


def test_polyak_matches_rllib():
    torch.manual_seed(0)
    main, target = SharedAgentQNet(6, 3, 5), SharedAgentQNet(6, 3, 5)
    reference = copy.deepcopy(target)
    polyak_(main, target, 0.05)
    update_target_network(main_net=main, target_net=reference, tau=0.05)
    for (k, a), (_, b) in zip(target.state_dict().items(), reference.state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)
    with pytest.raises(ValueError, match="state-dict keys"):
        polyak_(main, SharedAgentQNet(6, 3, 5, hidden=(8,)), 0.05)


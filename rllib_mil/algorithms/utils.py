"""Small pieces shared by the algorithm learners."""
from __future__ import annotations

from typing import Callable, Mapping

import torch


def set_provided(config, **values) -> None:
    """Set each setting given a value (RLlib's ``training(...)`` convention: ``NotProvided`` = leave it)."""
    from ray.rllib.algorithms.algorithm_config import NotProvided

    for name, value in values.items():
        if value is not NotProvided:
            setattr(config, name, value)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_common_settings(config) -> None:
    """Range checks of RLlib's own settings that every team algorithm uses, run before RLlib's ``validate()``
    (which accepts e.g. a negative learning rate, or fails much later with an unrelated message). Each failure is
    ``config._value_error`` naming the key and what it takes."""
    err = config._value_error
    lr = config.lr
    if isinstance(lr, (list, tuple)):  # a schedule [[env_step, lr], ...]
        if not lr or not all(isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_number(v) and v >= 0 for v in p)
                             for p in lr):
            err(f"`lr` schedule must be [[env_step, lr], ...] with numbers >= 0, got {lr!r}.")
    elif not (_is_number(lr) and lr > 0):
        err(f"`lr` must be a number > 0 (or a schedule [[env_step, lr], ...]), got {lr!r}.")
    if not (_is_number(config.gamma) and 0 <= config.gamma <= 1):
        err(f"`gamma` (the discount) must be a number in [0, 1], got {config.gamma!r}.")
    for key, low in (("num_env_runners", 0), ("num_envs_per_env_runner", 1), ("train_batch_size_per_learner", 1),
                     ("minibatch_size", 1), ("num_epochs", 1)):
        value = getattr(config, key, None)
        if value is not None and not (_is_int(value) and value >= low):
            err(f"`{key}` must be an integer >= {low}, got {value!r}.")
    fragment = config.rollout_fragment_length
    if fragment != "auto" and not (_is_int(fragment) and fragment >= 1):
        err(f"`rollout_fragment_length` must be an integer >= 1 or \"auto\", got {fragment!r}.")
    # Layer sizes: lists of hidden widths, and single widths.
    for key in ("hidden", "actor_hidden", "critic_hidden", "disc_hidden", "reward_hidden"):
        value = getattr(config, key, None)
        if value is not None and not (isinstance(value, (list, tuple)) and all(_is_int(h) and h >= 1 for h in value)):
            err(f"`{key}` must be a list of layer widths, integers >= 1 (e.g. [64, 64]), got {value!r}.")
    for key in ("gru_hidden", "mixer_embed_dim", "hypernet_hidden"):
        value = getattr(config, key, None)
        if value is not None and not (_is_int(value) and value >= 1):
            err(f"`{key}` must be an integer >= 1, got {value!r}.")


class LastUpdateMetrics:
    """Learner mixin: an iteration's loss metrics come from its last update. The training loops pass RLlib's
    ``_no_metrics_reduce=True`` to every update but the last (imitation.replay_updates / expert_only_updates), and
    the metrics are logged with window 1, so only the last update's values were ever reported; computing and
    logging them on the other updates cost about 1.5 ms of a 20 ms update at 128 rows (docs/performance.md)."""

    _metrics_due = True

    def update(self, *args, _no_metrics_reduce: bool = False, **kwargs):
        self._metrics_due = not _no_metrics_reduce
        return super().update(*args, _no_metrics_reduce=_no_metrics_reduce, **kwargs)

    def log_loss_metrics(self, module_id: str, metrics: Callable[[], Mapping[str, object]]) -> None:
        """Log ``metrics()`` (computed without gradient) under ``module_id``, on the update that reports."""
        if self._metrics_due:
            with torch.no_grad():
                self.metrics.log_dict(dict(metrics()), key=module_id, window=1)


class FusedGradientStep:
    """TorchLearner mixin: global-norm clipping, the finiteness check and the optimizer step over all gradients at
    once (``torch._foreach_*``), where RLlib clips and checks one tensor at a time (about 30 ``isfinite`` calls and
    as many multiplies per update for a small team net: 1 ms of an 8 ms update at 128 rows, docs/performance.md).

    The fast path is taken only when every optimizer's global gradient norm is finite (then every gradient is;
    a norm that overflows with finite gradients takes RLlib's path, after the same clipping RLlib does). Anything else
    (a non-finite gradient, clipping by value or per-tensor norm, learning-rate schedulers, AMP grad scalers) goes
    through RLlib's own code unchanged, so its nan/inf handling (``torch_skip_nan_gradients``) stays as it is.
    """

    _global_norms: dict = {}

    def postprocess_gradients_for_module(self, *, module_id, config=None, module_gradients_dict):
        if config is None or config.grad_clip_by != "global_norm" or config.log_gradients:
            return super().postprocess_gradients_for_module(
                module_id=module_id, config=config, module_gradients_dict=module_gradients_dict)
        norms = []
        for optimizer_name, optimizer in self.get_optimizers_for_module(module_id):
            # As RLlib: each optimizer's parameters are clipped by their own global norm.
            grads = [g for g in self.filter_param_dict_for_optimizer(
                param_dict=module_gradients_dict, optimizer=optimizer).values() if g is not None]
            if not grads:  # nothing to step in this update (MAGAIL's discriminator after its minibatches)
                continue
            norm = global_norm(grads)
            norms.append(norm)
            if config.grad_clip:
                # Same coefficient as RLlib's clip_gradients: min(1, clip / (norm + 1e-6)), no host sync.
                coeff = (config.grad_clip / torch.clamp(norm + 1e-6, min=config.grad_clip)).clamp(max=1.0)
                torch._foreach_mul_(grads, coeff)
                if getattr(self, "_metrics_due", True):
                    self.metrics.log_value((module_id, f"gradients_{optimizer_name}_global_norm"), norm, window=1)
        self._global_norms = {**self._global_norms, module_id: torch.stack(norms) if norms else torch.zeros(1)}
        return dict(module_gradients_dict)

    def apply_gradients(self, gradients_dict) -> None:
        norms = self._global_norms
        self._global_norms = {}
        fast = (
            self._lr_scheduler_classes is None
            and self._grad_scalers is None
            and set(norms) == set(self._module_optimizers)
        )
        if fast:
            # One host sync for the whole update instead of one per gradient tensor.
            fast = bool(torch.isfinite(torch.cat([n.float().reshape(-1) for n in norms.values()])).all())
        if not fast:
            return super().apply_gradients(gradients_dict)
        for pid, grad in gradients_dict.items():
            self._params[pid].grad = grad
        for module_id, optimizer_names in self._module_optimizers.items():
            for optimizer_name in optimizer_names:
                self.get_optimizer(module_id, optimizer_name).step()


def global_norm(tensors) -> torch.Tensor:
    """L2 norm over all elements of ``tensors`` (non-finite if any element is), one fused kernel per dtype/device."""
    if not tensors:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(tensors)))


class InPlacePolyak:
    """DQNLearner mixin: the polyak target update ``target <- tau * main + (1 - tau) * target`` done in place over
    the state dicts with one fused ``lerp``, where RLlib's ``update_target_network`` builds a new state dict and
    loads it (about 0.5 ms per update for a small team net). Same schedule, counters and metrics as DQNLearner."""

    def after_gradient_based_update(self, *, timesteps) -> None:
        from ray.rllib.core.learner.learner import Learner
        from ray.rllib.core.rl_module.apis import TargetNetworkAPI
        from ray.rllib.utils.metrics import LAST_TARGET_UPDATE_TS, NUM_ENV_STEPS_SAMPLED_LIFETIME, NUM_TARGET_UPDATES

        Learner.after_gradient_based_update(self, timesteps=timesteps)  # skip DQNLearner's: replaced below
        timestep = timesteps.get(NUM_ENV_STEPS_SAMPLED_LIFETIME, 0)
        for module_id, module in self.module._rl_modules.items():
            config = self.config.get_config_for_module(module_id)
            if (timestep - self.last_update_ts_by_mid[module_id] < config.target_network_update_freq
                    or not isinstance(module.unwrapped(), TargetNetworkAPI)):
                continue
            for main_net, target_net in module.unwrapped().get_target_network_pairs():
                polyak_(main_net, target_net, config.tau)
            self.metrics.log_value((module_id, NUM_TARGET_UPDATES), 1, reduce="lifetime_sum")
            self.last_update_ts_by_mid[module_id] = timestep
            self.metrics.log_value((module_id, LAST_TARGET_UPDATE_TS), timestep, reduce="max")


@torch.no_grad()
def polyak_(main_net: torch.nn.Module, target_net: torch.nn.Module, tau: float) -> None:
    """``target <- tau * main + (1 - tau) * target`` for every state-dict entry, in place (RLlib's
    ``update_target_network`` without building and loading a new state dict)."""
    main, target = main_net.state_dict(), target_net.state_dict()
    if main.keys() != target.keys():
        raise ValueError("polyak update: main and target networks have different state-dict keys")
    floats = [k for k in target if target[k].is_floating_point()]
    if floats:
        torch._foreach_lerp_([target[k] for k in floats], [main[k] for k in floats], float(tau))
    for k in target.keys() - set(floats):
        target[k].copy_(main[k])


def raise_if_not_finite(algo: str, loss: torch.Tensor, terms: Mapping[str, torch.Tensor], fix: str) -> None:
    """A non-finite loss stops training with the loss terms and a fix named (checkpoints already written stay)."""
    if torch.isfinite(loss):
        return
    parts = ", ".join(f"{k} {float(v):.4g}" for k, v in terms.items() if k != "loss")
    raise FloatingPointError(
        f"{algo} loss is not finite ({float(loss.detach())}; {parts}). {fix} Checkpoints already written are kept and "
        "can be restored."
    )


def interpolation_gradient_penalty(fn, x_a: torch.Tensor, x_b: torch.Tensor, generator=None) -> torch.Tensor:
    """WGAN-GP penalty E[(‖∇_x Σ fn(x)‖₂ − 1)²] on rows x interpolated between paired rows of ``x_a`` and ``x_b``
    (same shape ``(B, ..., d)``; the norm runs over the last dim, so each agent row of a shared per-agent net
    gets its own). Keeps a learned reward or discriminator from separating the two kinds of rows by memorising
    the few expert ones."""
    if x_a.shape != x_b.shape:
        raise ValueError(f"gradient penalty: paired rows must have the same shape, got {tuple(x_a.shape)} and "
                         f"{tuple(x_b.shape)}")
    B = x_a.shape[0]
    eps = torch.rand((B,) + (1,) * (x_a.dim() - 1), generator=generator, device=x_a.device).to(x_a.dtype)
    x = (eps * x_a + (1 - eps) * x_b).detach().requires_grad_(True)  # (B, ..., d)
    (grad,) = torch.autograd.grad(fn(x).sum(), x, create_graph=True)  # (B, ..., d)
    return (grad.norm(dim=-1) - 1.0).pow(2).mean()

"""Env runners that hang, not only those that crash, are restarted.

RLlib restarts an env runner whose process died (``restart_failed_env_runners``), but one that hangs inside
``sample()`` (a stuck simulator, a deadlocked env) is never marked unhealthy: ``sample_timeout_s`` only drops its
result, and every later iteration waits that long for it again. ``HungEnvRunnerGuard`` closes the gap: before each
training step (where RLlib probes the runners it already knows are unhealthy) every healthy remote env runner gets
a ``ping``. An actor runs one call at a time, so a runner still stuck in an earlier ``sample()`` cannot answer
within ``env_runner_health_probe_timeout_s``: it is killed, Ray restarts its process (``max_restarts``), and RLlib's
own probe brings it back with the current weights and connector states.
"""
import logging
from typing import List

import ray
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.env.env_runner_group import EnvRunnerGroup
from ray.rllib.utils.annotations import override

logger = logging.getLogger(__name__)

# Result key: hung env runners killed (and so restarted) over the run.
HUNG_ENV_RUNNERS_KILLED = "num_hung_env_runners_killed_lifetime"


def kill_hung_env_runners(env_runner_group: EnvRunnerGroup, timeout_s: float) -> List[int]:
    """Pings the healthy remote env runners; those that do not answer within ``timeout_s`` are killed (Ray restarts
    them) and marked unhealthy. Returns their ids."""
    manager = env_runner_group._worker_manager
    healthy = manager.healthy_actor_ids()
    if not healthy:
        return []
    answers = manager.foreach_actor("ping", healthy_only=True, timeout_seconds=timeout_s)
    answered = {r.actor_id for r in answers}
    hung = [i for i in healthy if i not in answered]
    for actor_id in hung:
        logger.warning(
            "Env runner %d did not answer a health probe within %.0f s (stuck in sample()?): killing it; Ray "
            "restarts it and it rejoins with the current weights. Raise `env_runner_health_probe_timeout_s` if its "
            "env is just slow.", actor_id, timeout_s)
        ray.kill(manager._actors[actor_id], no_restart=False)
        manager.set_actor_state(actor_id, healthy=False)
    return hung


class HungEnvRunnerGuard(Algorithm):
    """Algorithm mixin (put it before the RLlib algorithm class): hung env runners are restarted like crashed ones
    when ``restart_failed_env_runners`` is on."""

    @override(Algorithm)
    def restore_env_runners(self, env_runner_group: EnvRunnerGroup) -> List[int]:
        if self.config.restart_failed_env_runners and env_runner_group.num_remote_env_runners() > 0:
            hung = kill_hung_env_runners(env_runner_group, self.config.env_runner_health_probe_timeout_s)
            self.metrics.log_value(HUNG_ENV_RUNNERS_KILLED, len(hung), reduce="lifetime_sum")
        return super().restore_env_runners(env_runner_group)

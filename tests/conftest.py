"""Shared fixtures of the integration tests (tests/test_algorithms.py, tests/test_cli.py).

* ``demo_cache``: one ``RLLIB_MIL_CACHE`` directory for the whole session, so ``expert_data={"expert": ...,
  "episodes": ...}`` demonstrations are generated once and reused (in-process and by the CLI subprocesses).
* ``ray_session``: one local Ray instance (2 CPUs, no dashboard) shared by every in-process test.
* ``build``: ``build(config)`` builds an algorithm on that instance and stops it at teardown.
"""
import os

import pytest
import torch

# In-process env runners and learners step tiny batches: on a 2-core machine torch's intra-op threads only
# add synchronisation (measured: a 500-step PPO sample took 11 s with the default threads, 0.9 s with one).
# Ray's remote workers already get OMP_NUM_THREADS=1.
torch.set_num_threads(1)

from rllib_mil.data.demos import CACHE_ENV_VAR


@pytest.fixture(scope="session")
def demo_cache(tmp_path_factory):
    """Session-wide demonstrations cache; exported as $RLLIB_MIL_CACHE (before Ray starts, so its workers
    inherit it too)."""
    path = tmp_path_factory.mktemp("rllib_mil_demo_cache")
    old = os.environ.get(CACHE_ENV_VAR)
    os.environ[CACHE_ENV_VAR] = str(path)
    yield path
    if old is None:
        os.environ.pop(CACHE_ENV_VAR, None)
    else:
        os.environ[CACHE_ENV_VAR] = old


@pytest.fixture(scope="session")
def ray_session(demo_cache):
    """One local Ray instance for the whole session."""
    import ray

    started = False
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True)
        started = True
    yield
    if started:
        ray.shutdown()


@pytest.fixture
def build(ray_session):
    """build(config) -> algorithm, stopped at teardown (for tests that build their own)."""
    algos = []

    def _build(config):
        algo = config.build_algo()
        algos.append(algo)
        return algo

    yield _build
    for algo in algos:
        algo.stop()


@pytest.fixture(scope="session")
def cli_env(demo_cache):
    env = dict(os.environ)
    env["RLLIB_MIL_CACHE"] = str(demo_cache)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("RAY_ADDRESS", None)  # the CLI starts its own local Ray
    return env

"""Team envs whose game is a pair of jitted JAX functions (SMAX, Overcooked): the key and game-state bookkeeping
they share, so each wrapper only turns the functions' outputs into a :class:`TeamStep`."""
from __future__ import annotations

import importlib
from typing import Callable

import numpy as np

from rllib_mil.envs.base import TeamEnv


def start_ray(**kwargs):
    """``ray.init(**kwargs)`` without JAX's fork warning. Once a JAX env has been built in this process (the CLI's
    checks build one before Ray starts), JAX warns at every fork that a deadlock may follow. Ray starts its
    processes with ``subprocess``, whose child execs at once and runs no JAX code, so the warning does not apply
    there; elsewhere it still shows."""
    import warnings

    import ray

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        return ray.init(**kwargs)


def import_jaxmarl(module: str, what: str):
    """``jaxmarl.environments.<module>`` for the ``what`` team envs, or an ImportError that says how to install it."""
    try:
        return importlib.import_module(f"jaxmarl.environments.{module}")
    except ImportError as e:
        raise ImportError(
            f"The {what} team envs need JaxMARL. Install the extra: `pip install -e .[smax]` "
            f"(or `pip install jaxmarl`). Import failed with: {e}"
        ) from e


class JaxTeamEnv(TeamEnv):
    """A :class:`TeamEnv` over ``reset(key) -> (game_state, *outs)`` and
    ``step(key, game_state, actions) -> (key, game_state, *outs)``, both jitted (compiled once per process and
    shared by every instance). Subclasses call :meth:`_set_game` in ``__init__`` and use :meth:`_game_reset` /
    :meth:`_game_step` in their hooks; every random draw flows from the gymnasium generator, so
    ``reset(seed=s)`` is reproducible."""

    def _set_game(self, reset_fn: Callable, step_fn: Callable) -> None:
        self._reset_fn, self._step_fn = reset_fn, step_fn
        self._key = None
        self._state = None

    def _game_reset(self, rng: np.random.Generator) -> list[np.ndarray]:
        """A new game from a key drawn from ``rng``; returns ``reset``'s outputs after the game state, on the host."""
        import jax

        self._key, reset_key = jax.random.split(jax.random.PRNGKey(int(rng.integers(2**31 - 1))))
        self._state, *outs = self._reset_fn(reset_key)
        return [np.asarray(o) for o in outs]

    def _game_step(self, actions: np.ndarray) -> tuple:
        """One step with the joint ``actions`` ``(n_agents,)``; returns ``step``'s outputs after the key and the
        game state, on the host (one device-to-host copy)."""
        import jax

        out = self._step_fn(self._key, self._state, actions.astype(np.int32))
        self._key, self._state = out[0], out[1]
        return jax.device_get(out[2:])

    def close(self) -> None:
        self._state = None
        super().close()

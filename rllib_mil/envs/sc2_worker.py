"""The watchdog's child process for the smacv2 team envs (see smacv2.py): owns one smacv2 backend env and its
StarCraft II, and answers ``(cmd, arg)`` requests on a socket. Run by path (``python sc2_worker.py FD``), so it
imports only the standard library, numpy and the backend, not this package (and Ray, torch) behind it.
"""
import os
import sys

if __name__ == "__main__":
    # Run by path, Python puts this folder first on sys.path, where smacv2.py would shadow the real smacv2.
    sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import importlib  # noqa: E402
import traceback  # noqa: E402
from multiprocessing.connection import Connection
from typing import Any, Callable

import numpy as np


def load_backend(path: str) -> Callable[..., Any]:
    """The callable named ``module:callable``."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


def _snapshot(env) -> tuple:
    return (np.asarray(env.get_obs(), dtype=np.float32), np.asarray(env.get_state(), dtype=np.float32),
            np.asarray(env.get_avail_actions(), dtype=np.float32))


def _child_main(conn, backend: str, kwargs: dict) -> None:
    """Child process: owns one backend env (and its StarCraft II); answers (cmd, arg) requests on ``conn``."""
    env = None
    while True:
        try:
            cmd, arg = conn.recv()
        except (EOFError, OSError):
            break
        try:
            if cmd == "close":
                if env is not None:
                    env.close()
                conn.send(("ok", None))
                break
            if env is None:
                env = load_backend(backend)(**kwargs)
            if cmd == "reset":
                env.reset()
                version = getattr(env, "version", None)
                build = getattr(version, "game_version", None) or (str(version) if version is not None else "unknown")
                conn.send(("ok", (*_snapshot(env), str(build))))
            elif cmd == "step":
                reward, terminated, info = env.step(list(arg))
                conn.send(("ok", (float(reward), bool(terminated), dict(info or {}), *_snapshot(env))))
            else:
                conn.send(("error", f"unknown command {cmd!r}"))
        except Exception:  # noqa: BLE001 - reported to the parent, which decides
            conn.send(("error", traceback.format_exc()))


if __name__ == "__main__":
    _conn = Connection(int(sys.argv[1]))
    _child_main(_conn, *_conn.recv())

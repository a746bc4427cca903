"""Front-door checks of ``rllib train file``: everything that can be checked before Tune starts a trial, each
problem one ``ConfigError`` naming the key, the bad value and the fix (the CLI prints it, exit code 2).

Order (cheapest first): config value types, the env id and its construction (a missing StarCraft II fails here),
``config.validate()`` (ranges), the demonstrations (path, schema, match with the env; generated and cached on
first use), stop criteria, the storage path. Cluster resources are checked once Ray is up (``check_resources``).
"""
from __future__ import annotations

import difflib
import numbers
import os
import tempfile
from typing import Any, Dict, Mapping


class ConfigError(ValueError):
    """A user-facing configuration problem; the message says what is wrong and how to fix it."""


def suggest(key: str, valid) -> str:
    close = difflib.get_close_matches(key, list(valid), n=3)
    return f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


# Settings whose number may also be a schedule [[timestep, value], ...] (RLlib's learning-rate / entropy schedules).
SCHEDULE_KEYS = {"lr", "entropy_coeff"}
# Settings that take a value of another kind besides their default's (MIFQConfig.chi2_replay: True/False/"state").
OTHER_KINDS = {"chi2_replay": {"string"}}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, numbers.Number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "list"
    if isinstance(value, Mapping):
        return "mapping"
    return type(value).__name__


def check_value_types(source: str, run: str, values: Dict[str, Any], defaults) -> None:
    """Each value must have its default's kind (bool, number, string, list, mapping); defaults of None or of other
    types accept anything. YAML reads ``1e-3`` (no dot) as a string: the message says so."""
    for key, value in values.items():
        default = getattr(defaults, key, None)
        want, got = _kind(default), _kind(value)
        if default is None or want not in ("bool", "number", "string", "list", "mapping") or want == got:
            continue
        if want == "number" and got == "list" and key in SCHEDULE_KEYS or got in OTHER_KINDS.get(key, ()):
            continue
        hint = ""
        if want == "number" and isinstance(value, str):
            try:
                float(value)
                hint = (f" YAML reads {value} as text (a float needs a dot before the exponent): write "
                        f"{float(value)!r}.")
            except ValueError:
                pass
        if want == "bool" and isinstance(value, str):
            hint = " Write true or false without quotes."
        raise ConfigError(f"{source}: config key {key!r} of {run} must be a {want} (default {default!r}), got "
                          f"{value!r} ({got}).{hint}")


def check_env(source: str, env_id, env_config) -> None:
    """The env id is a registered team env and builds with its env_config (without StarCraft II the SMACv2 ids
    fail here with the install message)."""
    from rllib_mil.envs import list_team_envs, make_team_env
    from rllib_mil.envs.contract import EnvUnavailable

    if not isinstance(env_id, str):
        raise ConfigError(f"{source}: `env` must be a registered team-env id (string), got {env_id!r}.")
    ids = list_team_envs()
    if env_id not in ids:
        families = sorted({i.split("/")[0] for i in ids})
        raise ConfigError(f"{source}: unknown env {env_id!r}.{suggest(env_id, ids)} Registered team envs "
                          f"({', '.join(families)}): see `python -c \"import rllib_mil; "
                          f"print(rllib_mil.envs.list_team_envs())\"`.")
    if env_config is not None and not isinstance(env_config, Mapping):
        raise ConfigError(f"{source}: `env_config` must be a mapping, got {env_config!r}.")
    try:
        env = make_team_env(env_id, dict(env_config or {}))
    except (EnvUnavailable, ImportError) as e:  # the game or its package is missing here, not a bad env_config
        raise ConfigError(f"{source}: env {env_id!r} is not available on this machine: {e}") from None
    except (RuntimeError, TypeError, ValueError, KeyError) as e:
        raise ConfigError(f"{source}: env {env_id!r} cannot be built with env_config {dict(env_config or {})}: "
                          f"{e}") from None
    env.close()


def check_validate(source: str, config) -> None:
    """The algorithm's own ``validate()`` (ranges, combinations); its messages already name the fix."""
    try:
        config.validate()
    except ValueError as e:
        raise ConfigError(f"{source}: {e}") from None


def check_demos(source: str, config) -> None:
    """Imitation algorithms: the demonstrations exist, parse, have finite values and match the env (generated
    and cached first when ``expert_data`` asks for it)."""
    if getattr(config, "expert_data", None) is None:
        return
    from rllib_mil.algorithms.imitation import resolve_expert_data

    spec = config.expert_data
    if isinstance(spec, str) and not os.path.exists(os.path.expanduser(spec)):
        raise ConfigError(f"{source}: `expert_data` file {spec!r} does not exist. Record demonstrations with "
                          f"`rllib demos collect --env {config.env} --out {spec}`, or set `expert_data: "
                          "{expert: scripted, episodes: 128}` to generate them on first use.")
    try:
        resolve_expert_data(config)
    except (ValueError, OSError) as e:
        raise ConfigError(f"{source}: `expert_data`: {e}") from None


# Result keys a stop criterion may name: top-level keys of an RLlib result, and the env-runner metrics under
# `env_runners/` and `evaluation/env_runners/` (RLlib's and this package's). Other nested keys must start with a
# known section; `learners/...` keys depend on the algorithm and are not checked further.
STOP_TOP_KEYS = {"training_iteration", "num_env_steps_sampled_lifetime", "num_env_steps_trained_lifetime",
                 "num_episodes_lifetime", "time_total_s", "timesteps_total", "time_this_iter_s",
                 "iterations_since_restore", "time_since_restore"}
ENV_RUNNER_KEYS = {"episode_return_mean", "episode_return_max", "episode_return_min", "episode_len_mean",
                   "episode_len_max", "episode_len_min", "episode_duration_sec_mean", "num_episodes",
                   "num_episodes_lifetime", "num_env_steps_sampled", "num_env_steps_sampled_lifetime",
                   "num_agent_steps_sampled_lifetime", "win_rate", "expert_score"}
STOP_SECTIONS = {"env_runners", "evaluation", "learners", "timers", "perf", "fault_tolerance"}


def check_stop(source: str, stop) -> None:
    """Every stop key names a metric the results carry (a misspelled one would otherwise train forever)."""
    if not isinstance(stop, Mapping):
        raise ConfigError(f"{source}: `stop` must be a mapping of result key -> threshold, got {stop!r}.")
    known = STOP_TOP_KEYS | {f"env_runners/{k}" for k in ENV_RUNNER_KEYS} | {
        f"evaluation/env_runners/{k}" for k in ENV_RUNNER_KEYS}
    for key, value in stop.items():
        if not isinstance(value, numbers.Number) or isinstance(value, bool):
            raise ConfigError(f"{source}: stop criterion {key!r} must be a number, got {value!r}.")
        parts = str(key).split("/")
        # learners/<module>/<metric> (and timers/..., perf/...) depend on the algorithm: the section is checked.
        ok = key in known or (len(parts) > 1 and parts[0] in STOP_SECTIONS - {"env_runners", "evaluation"})
        if key in STOP_TOP_KEYS and value <= 0:  # counters and times: a threshold <= 0 stops at once
            raise ConfigError(f"{source}: stop criterion {key!r} must be > 0 (a count or a time), got {value!r}.")
        if not ok:
            raise ConfigError(
                f"{source}: unknown stop key {key!r}.{suggest(str(key), known)} A stop key must name a result "
                f"metric, or the run never stops: e.g. training_iteration, num_env_steps_sampled_lifetime, "
                "env_runners/episode_return_mean, evaluation/env_runners/win_rate, learners/<module>/<metric>.")


def check_storage(source: str, storage: str) -> None:
    """The storage path can be created and written to."""
    try:
        os.makedirs(storage, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=storage, prefix=".rllib_mil_write_check"):
            pass
    except OSError as e:
        raise ConfigError(f"{source}: storage path {storage!r} is not writable ({e.strerror or e}). Pass "
                          "--storage-path to a writable folder (or set `storage_path:` in the YAML).") from None


def check_resources(run: str, config, wait_s: float = 0.0) -> None:
    """Fail at once, instead of a trial PENDING forever, when the cluster cannot hold one trial. On a cluster
    that may still be growing (KubeRay workers starting, the autoscaler adding pods) wait up to ``wait_s`` for the
    resources to appear first."""
    import time

    import ray

    from rllib_mil.algorithms.registry import get_algorithm

    algo_cls, _ = get_algorithm(run)
    need = algo_cls.default_resource_request(config).required_resources
    deadline, said = time.monotonic() + wait_s, False
    while True:
        have = ray.cluster_resources()
        short = {res: amount for res, amount in need.items() if amount > have.get(res, 0.0) + 1e-9}
        if not short or time.monotonic() >= deadline:
            break
        if not said:
            print(f"waiting up to {wait_s:.0f} s for the cluster to offer {short} (has {have})", flush=True)
            said = True
        time.sleep(5.0)
    if short:
        res, amount = next(iter(short.items()))
        raise ConfigError(
            f"One {run} trial needs {amount:g} {res} but the Ray cluster has {have.get(res, 0.0):g} "
            f"(main process {config.num_cpus_for_main_process:g} CPU + {config.num_env_runners} env runners x "
            f"{config.num_cpus_per_env_runner:g} CPU + learners; GPUs: num_gpus_per_learner="
            f"{config.num_gpus_per_learner}). Lower `num_env_runners` / `num_cpus_per_env_runner` / "
            "`num_gpus_per_learner`, or connect to a bigger cluster with --address."
        )

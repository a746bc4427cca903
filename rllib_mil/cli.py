"""The ``rllib`` command (Ray 2.60 ships none): ``train file``, ``evaluate``, ``demos collect|info``, ``report``.

``rllib train file X.yaml`` keeps RLlib's classic tuned-example format::

    experiment-name:
      run: MIFQ                      # a registered algorithm (rllib_mil or RLlib)
      env: mpe/simple_spread         # a registered team-env id
      stop: {training_iteration: 100}
      config: {...}                  # AlgorithmConfig keys; unknown keys are rejected by name
      checkpoint_config: {checkpoint_frequency: 10, checkpoint_at_end: true}
      storage_path: ~/ray_results
"""

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, List, Optional

from rllib_mil.preflight import (ConfigError, check_demos, check_env, check_resources, check_stop, check_storage,
                                 check_validate, check_value_types)
from rllib_mil.preflight import suggest as _suggest

EXPERIMENT_KEYS = {"run", "env", "stop", "config", "checkpoint_config", "storage_path", "num_samples"}
CHECKPOINT_CONFIG_KEYS = {
    "checkpoint_frequency",
    "checkpoint_at_end",
    "num_to_keep",
    "checkpoint_score_attribute",
    "checkpoint_score_order",
}
# Tune search-space dicts that may stand in for a config value.
SEARCH_SPACE_KEYS = {"grid_search", "choice", "uniform", "loguniform", "randint", "quniform"}


def _is_search_space(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in SEARCH_SPACE_KEYS


def _to_search_space(key: str, value):
    from ray import tune

    (kind, arg), = value.items()
    try:
        if kind == "grid_search":
            return tune.grid_search(list(arg))
        if kind == "choice":
            return tune.choice(list(arg))
        return getattr(tune, kind)(*arg)
    except (TypeError, ValueError) as e:
        forms = "grid_search: [a, b, ...], choice: [a, b, ...], uniform/loguniform/randint: [low, high], quniform: [low, high, q]"
        raise ConfigError(f"config key {key!r}: bad search space {value!r} ({e}). Forms: {forms}.") from None


def _absolute_expert_data_space(value):
    from rllib_mil.algorithms.imitation import absolute_expert_data

    (kind, arg), = value.items()
    if kind in ("grid_search", "choice") and isinstance(arg, list):
        return {kind: [absolute_expert_data(v) for v in arg]}
    return value


def search_candidates(search: Dict[str, Any]) -> Dict[str, list]:
    """The values of each searched key to check before Tune starts: every grid / choice value, a distribution's
    lower bound."""
    from ray.tune.search.sample import Categorical, Domain

    out = {}
    for key, space in search.items():
        if isinstance(space, dict) and "grid_search" in space:
            out[key] = list(space["grid_search"])
        elif isinstance(space, Categorical):
            out[key] = list(space.categories)
        elif isinstance(space, Domain) and getattr(space, "lower", None) is not None:
            out[key] = [space.lower]
    return out


def search_probes(config, search: Dict[str, Any]) -> list:
    """Configs that together hold every searched value (one key varied at a time, the others at their first):
    ``validate()`` and the demonstrations check run on each, so a bad grid value fails before any trial starts."""
    candidates = search_candidates(search)
    if not candidates:
        return [config]
    first = {key: values[0] for key, values in candidates.items()}
    probes = []
    for key, values in candidates.items():
        for value in values[1:] if probes else values:
            probes.append(config.copy(copy_frozen=False).update_from_dict({**first, key: value}))
    return probes


def load_experiments(path: str) -> Dict[str, Dict[str, Any]]:
    """Read and check a tuned-example YAML; raise ConfigError naming any bad key."""
    import yaml

    if not os.path.exists(path):
        raise ConfigError(f"No such file: {path}")
    with open(path) as f:
        try:
            doc = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not doc:
        raise ConfigError(f"{path}: expected a mapping `name: {{run, env, stop, config, ...}}`.")
    for name, exp in doc.items():
        if not isinstance(exp, dict):
            raise ConfigError(f"{path}: experiment {name!r} must be a mapping with keys {sorted(EXPERIMENT_KEYS)}.")
        for key in exp:
            if key not in EXPERIMENT_KEYS:
                raise ConfigError(
                    f"{path}: unknown key {key!r} in experiment {name!r}.{_suggest(key, EXPERIMENT_KEYS)} "
                    f"Allowed keys: {sorted(EXPERIMENT_KEYS)}."
                )
        if "run" not in exp:
            raise ConfigError(f"{path}: experiment {name!r} has no `run:` (the algorithm name, e.g. MIFQ).")
        n = exp.get("num_samples", 1)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{path}: `num_samples` of {name!r} must be an integer >= 1 (trials per experiment), "
                              f"got {n!r}.")
        for key in exp.get("checkpoint_config") or {}:
            if key not in CHECKPOINT_CONFIG_KEYS:
                raise ConfigError(
                    f"{path}: unknown key {key!r} in `checkpoint_config` of {name!r}."
                    f"{_suggest(key, CHECKPOINT_CONFIG_KEYS)} Allowed: {sorted(CHECKPOINT_CONFIG_KEYS)}."
                )
    return doc


# Keys `update_from_dict` translates or handles specially (see AlgorithmConfig._translate_special_keys).
SPECIAL_CONFIG_KEYS = {
    "callbacks", "framework", "input", "lambda", "num_workers", "create_env_on_driver",
    "custom_eval_function", "num_cpus_for_driver", "multiagent", "model",
}


def valid_config_keys(config) -> set:
    """Every key `update_from_dict` really applies: attributes, settable properties, special keys."""
    import inspect

    props = {
        name
        for name, member in inspect.getmembers(type(config))
        if isinstance(member, property) and member.fset is not None
    }
    return set(vars(config)) | props | SPECIAL_CONFIG_KEYS


def build_config(exp: Dict[str, Any], source: str = "config"):
    """(algorithm config, Tune param overrides) for one experiment; unknown config keys are rejected by name
    (``AlgorithmConfig.update_from_dict`` would silently drop them)."""
    from rllib_mil.algorithms.registry import get_algorithm

    try:
        _, config_cls = get_algorithm(exp["run"])
    except ValueError as e:
        raise ConfigError(f"{source}: `run: {exp['run']}`: {e}") from None
    config = config_cls()
    raw = dict(exp.get("config") or {})
    if "env" in exp:
        raw.setdefault("env", exp["env"])
    valid = valid_config_keys(config)
    search: Dict[str, Any] = {}
    plain: Dict[str, Any] = {}
    for key, value in raw.items():
        if key not in valid:
            raise ConfigError(
                f"{source}: unknown config key {key!r} for {exp['run']}.{_suggest(key, valid)} "
                f"It is not a setting of {config_cls.__name__}; check the spelling or the algorithm's README."
            )
        if _is_search_space(value):
            if key == "expert_data":  # its files are made absolute here, as a plain value is by ImitationConfig
                value = _absolute_expert_data_space(value)
            try:
                search[key] = _to_search_space(key, value)
            except ConfigError as e:
                raise ConfigError(f"{source}: {e}") from None
        else:
            plain[key] = value
    check_value_types(source, exp["run"], {k: v for k, v in plain.items() if k != "env"}, config)
    config.update_from_dict(plain)
    return config, search


# Columns of Tune's status table (result key -> header), in order; a column shows once any trial reports it
# (win rates only on games with a win). Tune would otherwise show its defaults and the first four top-level
# numbers of the result (num_training_step_calls_per_iteration, always 1, among them) and no return.
STATUS_COLUMNS = {
    "training_iteration": "iter",
    "num_env_steps_sampled_lifetime": "env steps",
    "num_offline_updates_lifetime": "offline updates",
    "env_runners/episode_return_mean": "return",
    "evaluation/env_runners/episode_return_mean": "greedy eval return",
    "env_runners/win_rate": "win rate",
    "evaluation/env_runners/win_rate": "greedy eval win rate",
    "evaluation/env_runners/expert_score": "greedy eval score (expert 1, random 0)",
    "time_total_s": "time (s)",
}


def use_status_columns() -> None:
    """Make Tune's status table (its new terminal output, ray.tune.experimental.output) show STATUS_COLUMNS only."""
    try:
        from ray.tune.experimental import output

        output.DEFAULT_COLUMNS.clear()
        output.DEFAULT_COLUMNS.update(STATUS_COLUMNS)
        output._infer_user_metrics = lambda trials, limit=4: []
    except (ImportError, AttributeError):  # another Tune layout: keep its own table rather than fail the run
        pass


def json_flag(flag: str, text: Optional[str], example: str) -> Optional[Dict[str, Any]]:
    """The JSON object a command-line flag carries (None when not given); anything else is a ConfigError that names
    the flag and shows the form."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigError(f"{flag} is not valid JSON ({e}): give an object with double-quoted keys, e.g. "
                          f"{flag} '{example}'.") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag} must be a JSON object, got {type(value).__name__} {text!r}: e.g. {flag} "
                          f"'{example}'.")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {value}")
    return value


def _resolve_storage(path: Optional[str]) -> str:
    return os.path.abspath(os.path.expanduser(path or "~/ray_results"))


def cmd_train_file(args) -> int:
    import ray
    from ray import tune
    from ray.tune.error import TuneError

    import rllib_mil  # noqa: F401  (registers envs and algorithms)
    from rllib_mil.envs.jax_env import start_ray

    experiments = load_experiments(args.file)
    stop_override = json_flag("--stop", args.stop, '{"training_iteration": 2}')
    config_override = json_flag("--config", args.config, '{"num_env_runners": 0}')
    for name, exp in experiments.items():
        if config_override is not None:
            # --config overrides the file's config keys (checked by the same rules).
            exp = {**exp, "config": {**(exp.get("config") or {}), **config_override}}
        source = f"{args.file} [{name}]" + (" + --config" if args.config else "")
        config, search = build_config(exp, source=source)
        stop = stop_override if stop_override is not None else (exp.get("stop") or {})
        ckpt = exp.get("checkpoint_config") or {}
        storage = _resolve_storage(args.storage_path or exp.get("storage_path"))
        # Everything that can fail before a trial starts fails here, one message each (exit code 2).
        check_env(source, config.env, config.env_config)
        probes = search_probes(config, search)
        for probe in probes:
            check_validate(source, probe)
            check_demos(source, probe)
        config = probes[0]  # a complete config (searched keys at their first value; Tune's search overrides them)
        check_stop(source + (" --stop" if stop_override is not None else ""), stop)
        check_storage(source, storage)
        # An existing cluster (--address, or RAY_ADDRESS as `ray job submit` sets it) may still be growing.
        on_cluster = bool(args.address or os.environ.get("RAY_ADDRESS"))
        if not ray.is_initialized():
            start_ray(address=args.address, ignore_reinit_error=True, log_to_driver=True)
        check_resources(exp["run"], config, wait_s=args.resource_wait if on_cluster else 0.0)
        if search:
            param_space = config.to_dict()
            param_space.update(search)
        else:
            param_space = config
        print(f"== {name}: {exp['run']} on {config.env} -> {storage}/{name}", flush=True)
        use_status_columns()
        exp_dir = os.path.join(storage, name)
        if args.resume and tune.Tuner.can_restore(exp_dir):
            # Tune's experiment state: finished trials stay finished, the others restart from their latest
            # checkpoint (errored ones too), with the searcher's and scheduler's state.
            print(f"== resuming {exp_dir}", flush=True)
            if args.stop or args.config:
                # Tune restores each trial with the stop criteria and config it was started with.
                print("== --resume continues with the stop criteria and config the experiment was started with; "
                      "the --stop / --config given now are not applied (to change them, start a new experiment: "
                      "another --storage-path, or without --resume after moving the old one away)", flush=True)
            try:
                tuner = tune.Tuner.restore(exp_dir, trainable=exp["run"], param_space=param_space,
                                           resume_errored=True)
            except ValueError as e:
                if "param_space" not in str(e):
                    raise
                # The config's keys changed since the run started (a newer rllib-mil added or renamed a setting):
                # Tune only accepts the stored keys, so continue with the stored config.
                print("== the config's settings differ from the stored run's (rllib-mil changed since it started); "
                      "resuming with the stored config, --config overrides are not applied", flush=True)
                tuner = tune.Tuner.restore(exp_dir, trainable=exp["run"], resume_errored=True)
        else:
            if args.resume:
                print(f"== nothing to resume at {exp_dir}: starting it", flush=True)
            metric = args.metric or default_metric(config)
            tuner = tune.Tuner(
                exp["run"],
                param_space=param_space,
                tune_config=tune.TuneConfig(
                    num_samples=args.num_samples or exp.get("num_samples", 1),
                    scheduler=make_scheduler(args, search, metric, source),
                    metric=metric if args.scheduler else None,
                    mode=args.mode if args.scheduler else None,
                ),
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=storage,
                    stop=stop,
                    verbose=args.verbose,
                    checkpoint_config=tune.CheckpointConfig(**ckpt),
                ),
            )
        try:
            results = tuner.fit()
        except TuneError as e:  # Tune itself stopped (not a trial): one line, and where the state is kept
            cause = trial_error_message(e)
            cause = cause if len(cause) <= 400 else cause[:400] + " ..."  # Tune's messages may hold a whole result
            raise ConfigError(f"Tune stopped the run: {cause} The experiment state is under "
                              f"{exp_dir}; after fixing the cause, continue with the same command plus --resume.") \
                from None
        failed = [r for r in results if r.error]
        for r in results:
            _print_result(r)
        unfinished = _unfinished_trials(results)
        if unfinished and not failed:
            # Ctrl-C (or SIGUSR1): Tune saved the experiment's state; its own hint names its Python API.
            print(f"rllib: interrupted: {len(unfinished)} trial(s) did not finish; the state is saved under {exp_dir}. "
                  "Continue with the same command plus --resume.", file=sys.stderr)
            return 130
        if failed:
            # The cause, last and on its own: what the trial raised (e.g. a non-finite loss and its fix), not
            # the Ray/Tune traceback around it.
            for r in failed:
                last = (f" Last good checkpoint: {r.checkpoint.path} (continue with --resume)." if r.checkpoint
                        else " No checkpoint was written before the failure.")
                print(f"rllib: trial {os.path.basename(r.path)} failed: {trial_error_message(r.error)}{last}",
                      file=sys.stderr)
            return 1
    return 0


def _unfinished_trials(results) -> list:
    """Trials that neither failed nor ended (their last result is not ``done``): ``Tuner.fit`` returned because the
    run was interrupted (Tune marks the interrupted trials TERMINATED all the same)."""
    return [r for r in results if not r.error and not (r.metrics or {}).get("done")]


def default_metric(config) -> str:
    """The metric a scheduler ranks trials by: the greedy evaluation return when the config evaluates, else the
    return of the training rollouts."""
    if config.evaluation_interval:
        return "evaluation/env_runners/episode_return_mean"
    return "env_runners/episode_return_mean"


def make_scheduler(args, search: Dict[str, Any], metric: str, source: str):
    """ASHA (early stopping of weak trials) or PBT (weak trials copy a strong trial's checkpoint and perturb the
    YAML's sampled settings, e.g. lr and alpha), or None (Tune's FIFO)."""
    from ray.tune.schedulers import ASHAScheduler, PopulationBasedTraining

    if not args.scheduler:
        return None
    # Iterations without the metric (before the first finished episode, between evaluations) are skipped by the
    # schedulers instead of failing the trial.
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    if args.scheduler == "asha":
        return ASHAScheduler(time_attr="training_iteration", grace_period=args.grace_period, reduction_factor=2)
    # PBT mutates sampled (continuous or choice) settings; grid_search values are fixed per trial.
    mutations = {k: v for k, v in search.items() if not (isinstance(v, dict) and "grid_search" in v)}
    if not mutations:
        raise ConfigError(
            f"{source}: --scheduler pbt perturbs the config's sampled settings, but it has none. Give the settings "
            "to explore as search spaces, e.g. `lr: {loguniform: [0.0001, 0.001]}` and `alpha: {uniform: [0.05, 0.2]}`.")
    # require_attrs=False: PBT checks the metric itself (TUNE_DISABLE_STRICT_METRIC_CHECKING does not reach it) and
    # would fail the whole run at the first iteration without an evaluation (evaluation_interval > 1, MIFQ's warm start).
    return PopulationBasedTraining(time_attr="training_iteration", perturbation_interval=args.pbt_interval,
                                   hyperparam_mutations=mutations, synch=getattr(args, "pbt_synch", False),
                                   require_attrs=False)


def trial_error_message(error) -> str:
    """The innermost exception line of a failed trial's error (Tune wraps it in Ray's task-error text)."""
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        head = ln.split(":", 1)[0]
        if head.endswith(("Error", "Exception")) and " " not in head and head not in ("RayTaskError", "TuneError"):
            return ln
    return lines[-1] if lines else repr(error)


def _print_result(result) -> None:
    m = result.metrics or {}
    ret = m.get("env_runners", {}).get("episode_return_mean")
    ev = m.get("evaluation", {}).get("env_runners", {}).get("episode_return_mean")
    ckpt = result.checkpoint.path if result.checkpoint else None
    print(
        f"trial {result.path}: iterations={m.get('training_iteration')} return_mean={ret} "
        f"eval_return_mean={ev} checkpoint={ckpt}",
        flush=True,
    )


def cmd_evaluate(args) -> int:
    from rllib_mil.evaluation import evaluate_checkpoint

    res = evaluate_checkpoint(args.checkpoint, episodes=args.episodes, seed=args.seed)
    print(json.dumps(res, indent=2))
    return 0


def cmd_rewards_export(args) -> int:
    from rllib_mil.rewards import export_rewards

    res = export_rewards(args.checkpoint, args.demos, args.out)
    print(json.dumps(res, indent=2))
    return 0


def cmd_demos_collect(args) -> int:
    import rllib_mil  # noqa: F401
    from rllib_mil.data.demos import collect_demos

    env_config = json_flag("--env-config", args.env_config, '{"N": 3}') or {}
    if args.sizes:  # checked before anything is collected
        bad = [n for n in args.sizes if not 1 <= n <= args.episodes]
        if bad:
            raise ConfigError(f"--sizes {bad}: each size must be in 1..--episodes ({args.episodes}).")
    if args.address:
        os.environ["RAY_ADDRESS"] = args.address
    # collect_demos checks the expert (env, algorithm, obs shapes) before any runner starts.
    t0 = time.perf_counter()
    path = collect_demos(args.env, env_config, args.expert, args.episodes, args.seed, args.out,
                         num_env_runners=args.num_env_runners, stochastic=args.stochastic, epsilon=args.epsilon)
    elapsed = time.perf_counter() - t0
    print(f"wrote {path}: {args.episodes} episodes in {elapsed:.1f} s ({args.episodes / elapsed:.1f} episodes/s, "
          f"{args.num_env_runners or 'no'} env runners)")
    if args.sizes:
        from rllib_mil.data.demos import write_subsets

        for sub in write_subsets(path, args.sizes):
            print(f"wrote {sub}")
    return 0


def cmd_demos_info(args) -> int:
    from rllib_mil.data.demos import demos_info

    print(demos_info(args.path))
    return 0


def cmd_report(args) -> int:
    from rllib_mil.report import benchmark_report, experiment_report

    jsonl = [p for p in args.paths if p.endswith(".jsonl")]
    dirs = [p for p in args.paths if not p.endswith(".jsonl")]
    for path in jsonl:
        name = os.path.splitext(os.path.basename(path))[0]
        print(benchmark_report(path, args.docs, name=name, title=f"Benchmark results ({name})",
                               overwrite=args.overwrite))
    if dirs:
        print(experiment_report(dirs, args.docs, overwrite=args.overwrite))
    print(f"(tables and PNGs written to {os.path.abspath(args.docs)})")
    return 0


def make_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rllib", description="rllib-mil: multi-agent imitation learning on RLlib")
    sub = p.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train an algorithm")
    train_sub = train.add_subparsers(dest="train_command", required=True)
    tf = train_sub.add_parser("file", help="run the experiments of a tuned-example YAML")
    tf.add_argument("file")
    tf.add_argument("--stop", help='JSON stop criteria overriding the file\'s, e.g. \'{"training_iteration": 2}\'')
    tf.add_argument("--config", help="JSON config overrides, e.g. '{\"num_env_runners\": 0}'")
    tf.add_argument("--storage-path", help="where results and checkpoints go (default ~/ray_results)")
    tf.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    tf.add_argument("-v", "--verbose", type=int, default=1, help="Tune verbosity 0-3 (1 = status table)")
    tf.add_argument("--num-samples", type=positive_int, default=None,
                    help="trials per experiment (each samples the YAML's search spaces; grid values repeat per sample)")
    tf.add_argument("--scheduler", choices=["asha", "pbt"], default=None,
                    help="asha: stop weak trials early; pbt: weak trials copy strong ones and perturb sampled settings")
    tf.add_argument("--metric", default=None, help="metric the scheduler ranks trials by (default: greedy eval "
                    "return when the config evaluates, else the rollout return)")
    tf.add_argument("--mode", choices=["max", "min"], default="max")
    tf.add_argument("--grace-period", type=int, default=2, help="ASHA: iterations before a trial can be stopped")
    tf.add_argument("--pbt-interval", type=int, default=4, help="PBT: iterations between perturbations")
    tf.add_argument("--pbt-synch", action="store_true",
                    help="PBT: synchronous rounds (every trial reaches the interval before the weakest copy the "
                         "strongest); slower, but each round compares all trials even when they cannot all run at once")
    tf.add_argument("--resource-wait", type=float, default=600.0,
                    help="on an existing cluster: seconds to wait for the resources of one trial to appear "
                         "(KubeRay workers starting, autoscaling) before failing; a local Ray fails at once")
    tf.add_argument("--resume", action="store_true",
                    help="continue the experiment found under the storage path (unfinished trials from their "
                         "latest checkpoint); start it when there is none")
    tf.set_defaults(func=cmd_train_file)

    ev = sub.add_parser("evaluate", help="greedy, decentralized evaluation of a checkpoint")
    ev.add_argument("checkpoint")
    ev.add_argument("--episodes", type=positive_int, default=10)
    ev.add_argument("--seed", type=int, default=0)
    ev.set_defaults(func=cmd_evaluate)

    demos = sub.add_parser("demos", help="expert demonstrations (Parquet)")
    demos_sub = demos.add_subparsers(dest="demos_command", required=True)
    dc = demos_sub.add_parser("collect", help="record expert episodes into a Parquet dataset")
    dc.add_argument("--env", required=True, help="team-env id, e.g. mpe/simple_spread")
    dc.add_argument("--env-config", default=None, help="JSON env config, e.g. '{\"N\": 3}'")
    dc.add_argument("--expert", default="scripted",
                    help="scripted | random | path to a checkpoint of a team algorithm (e.g. MAPPO)")
    dc.add_argument("--episodes", type=int, default=128, help="trajectories to record (episode k reset with seed+k)")
    dc.add_argument("--seed", type=int, default=0)
    dc.add_argument("--out", required=True, help="Parquet file to write (atomically)")
    dc.add_argument("--stochastic", action="store_true",
                    help="sample the checkpoint expert's actions instead of taking its greedy ones")
    dc.add_argument("--epsilon", type=float, default=0.0,
                    help="chance that an agent takes a random available action instead of the expert's, per step "
                         "(demonstrations of graded quality, e.g. for `rllib rewards export`)")
    dc.add_argument("--num-env-runners", type=int, default=0,
                    help="parallel Ray workers (1 CPU each); 0 = collect in this process")
    dc.add_argument("--address", default=None, help="Ray cluster to run the env runners on (default: local)")
    dc.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="also write the first n episodes for each n as <out stem>_<n>ep.parquet (nested sets for "
                         "sweeps over the number of demonstrations, e.g. --sizes 1 2 4 8 16 32 64)")
    dc.set_defaults(func=cmd_demos_collect)
    di = demos_sub.add_parser("info", help="summarise a dataset")
    di.add_argument("path")
    di.set_defaults(func=cmd_demos_info)
    rw = sub.add_parser("rewards", help="recovered rewards (MAMQL)")
    rw_sub = rw.add_subparsers(dest="rewards_command", required=True)
    rx = rw_sub.add_parser("export", help="recovered per-agent rewards on demonstrations, beside the true ones, and "
                                          "their Pearson correlation per agent")
    rx.add_argument("checkpoint")
    rx.add_argument("--demos", required=True, nargs="+",
                    help="episodes (Parquet) of the checkpoint's env; several files are pooled. Mix qualities "
                         "(expert, `demos collect --epsilon 0.5`, `--expert random`): on expert episodes alone an "
                         "inverse soft-Q reward is nearly constant by construction")
    rx.add_argument("--out", default=None, help="output Parquet (default: inside the checkpoint folder)")
    rx.set_defaults(func=cmd_rewards_export)

    rp = sub.add_parser("report", help="results tables + learning-curve PNGs from benchmark .jsonl or Tune dirs")
    rp.add_argument("paths", nargs="+", help="benchmark results (.jsonl) and/or `rllib train file` output folders")
    rp.add_argument("--docs", default="docs", help="where the markdown tables and PNGs go")
    rp.add_argument("--overwrite", action="store_true",
                    help="replace pages in --docs that were written from other inputs (refused by default)")
    rp.set_defaults(func=cmd_report)
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = make_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, ValueError, OSError) as e:  # OSError: missing files, unwritable --out paths
        # User-facing problems: one clear line, no traceback.
        print(f"rllib: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The `rllib` command, driven as users run it: the installed console script, in a subprocess.

One real (distributed: 2 remote env runners) training run, its checkpoint evaluated; config errors that must
fail by name before Ray starts; a resource request the cluster cannot hold; demonstrations collect / info.
The subprocesses share the session's demonstrations cache ($RLLIB_MIL_CACHE).
"""
import glob
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest
import yaml

import rllib_mil  # noqa: F401
from rllib_mil.cli import build_config, load_experiments
from rllib_mil.data import schema as S
from rllib_mil.data.demos import collect_demos, read_demos
from rllib_mil.data.experts import EXPERT_NAMES

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPREAD = "mpe/simple_spread"
EXP = "cli-smoke"
STOP_ITERS = 4
NUM_ENV_RUNNERS = 2
FRAGMENT = 25

SMOKE_CONFIG = {
    "env_config": {"N": 3},
    "expert_data": {"expert": "scripted", "episodes": 4, "seed": 0},
    "num_env_runners": NUM_ENV_RUNNERS,
    "num_cpus_per_env_runner": 0.5,
    "rollout_fragment_length": FRAGMENT,
    "num_steps_sampled_before_learning_starts": 2 * NUM_ENV_RUNNERS * FRAGMENT,
    "num_updates_per_iteration": 2,
    "expert_batch_size": 32,
    "train_batch_size_per_learner": 64,
    "pretrain_offline_updates": 0,  # no warm start: online from the first iteration
    "restart_failed_env_runners": False,
    "seed": 0,
}


def rllib_script():
    """The installed `rllib` console script (next to this Python)."""
    path = os.path.join(os.path.dirname(sys.executable), "rllib")
    assert os.path.isfile(path), f"`rllib` console script not installed next to {sys.executable}"
    return path


@pytest.fixture(scope="session")
def no_ray_env(cli_env, tmp_path_factory):
    """Env in which any attempt to start or connect to Ray fails loudly (a sitecustomize that poisons
    `ray.init`): for errors that must be reported before Ray starts."""
    d = tmp_path_factory.mktemp("no_ray")
    (d / "sitecustomize.py").write_text(textwrap.dedent("""
        import ray
        import ray._private.worker as _worker

        def _no_ray(*args, **kwargs):
            raise RuntimeError("TEST: ray.init must not be called for this command")

        ray.init = _no_ray
        _worker.init = _no_ray
    """))
    env = dict(cli_env)
    env["PYTHONPATH"] = os.pathsep.join([str(d)] + [p for p in [env.get("PYTHONPATH")] if p])
    return env


def run_cli(args, env, timeout=120, cwd=REPO):
    """Run `rllib ARGS` (in ``cwd``) in its own process group; on timeout, fail after killing that group (the CLI and the
    Ray processes it started), so nothing is left running."""
    proc = subprocess.Popen(
        [rllib_script(), *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # our own child's group (its leader is not reaped yet)
        except ProcessLookupError:
            pass
        out, err = proc.communicate()
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        pytest.fail(f"`rllib {' '.join(args)}` did not finish within {timeout}s\n{explain(result)}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def explain(proc):
    """Exit code and output tails, for assertion messages."""
    return (
        f"exit code {proc.returncode}\n--- stdout ---\n{proc.stdout[-6000:]}\n"
        f"--- stderr ---\n{proc.stderr[-6000:]}"
    )


def write_yaml(path, exp_name=EXP, **exp):
    doc = {exp_name: {"run": "MIFQ", "env": SPREAD, "stop": {"training_iteration": STOP_ITERS}, **exp}}
    doc[exp_name].setdefault("config", dict(SMOKE_CONFIG))
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


# ------------------------------------------------------------------------------------------------ train + evaluate
@pytest.fixture(scope="module")
def smoke_run(cli_env, tmp_path_factory):
    """The one real training run: `rllib train file` with 2 remote env runners, checkpoint at end."""
    d = tmp_path_factory.mktemp("cli_train")
    cfg = write_yaml(d / "smoke.yaml", checkpoint_config={"checkpoint_at_end": True})
    storage = d / "results"
    proc = run_cli(["train", "file", cfg, "--storage-path", str(storage), "-v", "1"], cli_env, timeout=420)
    return proc, storage


def test_train_file_distributed_smoke(smoke_run):
    proc, storage = smoke_run
    assert proc.returncode == 0, explain(proc)
    trials = [p for p in glob.glob(str(storage / EXP / "*")) if os.path.isdir(p)]
    assert len(trials) == 1, (trials, explain(proc))
    trial = trials[0]
    checkpoints = glob.glob(os.path.join(trial, "checkpoint_*"))
    assert len(checkpoints) == 1, explain(proc)
    assert os.path.isdir(os.path.join(checkpoints[0], "learner_group", "learner", "rl_module", "default_policy"))

    with open(os.path.join(trial, "result.json")) as f:
        results = [json.loads(line) for line in f if line.strip()]
    assert [r["training_iteration"] for r in results] == list(range(1, STOP_ITERS + 1))
    last = results[-1]
    assert last["training_iteration"] == STOP_ITERS
    assert math.isfinite(last["learners"]["default_policy"]["loss"])
    assert last["learners"]["default_policy"]["expert_rows"] > 0
    # The distributed path: both remote env runners healthy and sampling every iteration.
    assert last["config"]["num_env_runners"] == NUM_ENV_RUNNERS
    assert last["fault_tolerance"]["num_healthy_workers"] == NUM_ENV_RUNNERS
    assert last["num_env_steps_sampled_lifetime"] >= STOP_ITERS * NUM_ENV_RUNNERS * FRAGMENT
    # The CLI's summary line names the trial, the iterations and the checkpoint.
    assert f"iterations={STOP_ITERS}" in proc.stdout and checkpoints[0] in proc.stdout, explain(proc)
    # Tune's status table shows env steps and the return, not Tune's first four top-level numbers.
    table = proc.stdout[proc.stdout.rindex("Trial status"):]
    assert "env steps" in table and "return" in table, explain(proc)
    assert "num_training_step_calls" not in table, explain(proc)


def test_evaluate_checkpoint_of_cli_run(smoke_run, cli_env):
    proc, storage = smoke_run
    assert proc.returncode == 0, explain(proc)
    (checkpoint,) = glob.glob(str(storage / EXP / "*" / "checkpoint_*"))
    ev = run_cli(["evaluate", checkpoint, "--episodes", "2"], cli_env)
    assert ev.returncode == 0, explain(ev)
    res = json.loads(ev.stdout[ev.stdout.index("{"):])
    assert res["episodes"] == 2 and res["env"] == SPREAD
    assert math.isfinite(res["return_mean"])


def test_checkpoint_as_demonstration_expert(smoke_run, cli_env, tmp_path):
    proc, storage = smoke_run
    assert proc.returncode == 0, explain(proc)
    (checkpoint,) = glob.glob(str(storage / EXP / "*" / "checkpoint_*"))
    out = tmp_path / "from_ckpt.parquet"
    col = run_cli(["demos", "collect", "--env", SPREAD, "--expert", checkpoint, "--episodes", "2", "--out", str(out)],
                  cli_env)
    assert col.returncode == 0, explain(col)
    demos = read_demos(out)
    assert demos.n_episodes == 2 and checkpoint in demos.metadata[S.META_EXPERT]
    assert demos.metadata[S.META_EXPERT_ACTIONS] == "greedy"
    # Sampled actions, collected on 2 parallel Ray env runners.
    out2 = tmp_path / "sampled.parquet"
    col = run_cli(["demos", "collect", "--env", SPREAD, "--expert", checkpoint, "--episodes", "4", "--stochastic",
                   "--num-env-runners", "2", "--out", str(out2)], cli_env)
    assert col.returncode == 0, explain(col)
    assert "episodes/s" in col.stdout and "2 env runners" in col.stdout, explain(col)
    info = run_cli(["demos", "info", str(out2)], cli_env)
    assert info.returncode == 0 and '"stochastic"' in info.stdout, explain(info)
    assert read_demos(out2).n_episodes == 4
    # An output path that cannot be written: one clear line, no traceback, nothing written.
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    col = run_cli(["demos", "collect", "--env", SPREAD, "--expert", checkpoint, "--episodes", "1",
                   "--out", str(blocker / "d.parquet")], cli_env)
    assert col.returncode == 2 and "cannot write demonstrations" in col.stderr, explain(col)
    assert "Traceback" not in col.stderr, explain(col)
    # The same checkpoint (trained with N=3) cannot act in a 4-agent spread: refused before any rollout.
    bad = tmp_path / "bad.parquet"
    col = run_cli(["demos", "collect", "--env", SPREAD, "--env-config", '{"N": 4}', "--expert", checkpoint,
                   "--episodes", "1", "--out", str(bad)], cli_env)
    assert col.returncode == 2, explain(col)
    assert "observation shapes" in col.stderr and "Traceback" not in col.stderr, explain(col)
    assert not bad.exists()


def test_report_of_cli_run(smoke_run, cli_env, tmp_path):
    proc, storage = smoke_run
    assert proc.returncode == 0, explain(proc)
    rep = run_cli(["report", str(storage / EXP), "--docs", str(tmp_path)], cli_env)
    assert rep.returncode == 0, explain(rep)
    assert f"| {STOP_ITERS} |" in rep.stdout, explain(rep)  # the trial's iterations are in the table
    assert (tmp_path / "experiment_report.md").is_file() and (tmp_path / "experiment_curves.png").stat().st_size > 0
    empty = run_cli(["report", str(tmp_path / "nothing")], cli_env)
    assert empty.returncode == 2 and "No Tune trials" in empty.stderr, explain(empty)


# ------------------------------------------------------------------------------------------------ config errors
@pytest.mark.parametrize(
    "exp,extra_args,named,suggested",
    [
        ({"config": {**SMOKE_CONFIG, "lrr": 0.1}}, [], "'lrr'", "'lr'"),
        ({"stopp": {"training_iteration": 1}}, [], "'stopp'", "'stop'"),
        ({"checkpoint_config": {"checkpoint_freq": 2}}, [], "'checkpoint_freq'", "'checkpoint_frequency'"),
        ({}, ["--config", '{"num_env_runner": 0}'], "'num_env_runner'", "'num_env_runners'"),
    ],
    ids=["config-key", "experiment-key", "checkpoint_config-key", "--config-key"],
)
def test_unknown_key_fails_before_ray(exp, extra_args, named, suggested, tmp_path, no_ray_env):
    cfg = write_yaml(tmp_path / "bad.yaml", **exp)
    proc = run_cli(["train", "file", cfg, "--storage-path", str(tmp_path / "results"), *extra_args], no_ray_env,
                   timeout=60)
    assert proc.returncode == 2, explain(proc)
    assert "ray.init must not be called" not in proc.stderr, explain(proc)
    err = proc.stderr
    assert "rllib: error:" in err and "unknown" in err and named in err and suggested in err, explain(proc)
    assert "Traceback" not in err, explain(proc)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("argv, flag", [
    (["train", "file", "x.yaml", "--num-samples", "0"], "--num-samples"),
    (["train", "file", "x.yaml", "--num-samples", "-1"], "--num-samples"),  # Tune would read -1 as "forever"
    (["evaluate", "ckpt", "--episodes", "0"], "--episodes"),
])
def test_counts_on_the_command_line_must_be_positive(argv, flag, capsys):
    from rllib_mil.cli import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert f"argument {flag}: must be an integer >= 1" in capsys.readouterr().err


def test_too_big_resource_request_fails_at_once(tmp_path, cli_env):
    # 2x the machine's CPUs for the env runners alone (8 on the 2-CPU CI machine).
    runners = max(8, 4 * (os.cpu_count() or 1))
    cfg = write_yaml(tmp_path / "big.yaml", config={**SMOKE_CONFIG, "num_env_runners": runners})
    # A trial PENDING forever would hit the timeout.
    proc = run_cli(["train", "file", cfg, "--storage-path", str(tmp_path / "results")], cli_env, timeout=90)
    assert proc.returncode == 2, explain(proc)
    m = re.search(r"needs ([\d.]+) CPU but the Ray cluster has ([\d.]+)", proc.stderr)
    assert m, explain(proc)
    assert float(m.group(1)) >= 1 + 0.5 * runners > float(m.group(2))
    assert "num_env_runners" in proc.stderr and "Traceback" not in proc.stderr, explain(proc)
    assert not glob.glob(str(tmp_path / "results" / EXP / "MIFQ_*")), "a trial was started"


def test_train_file_offline_tuned_example(cli_env, tmp_path):
    """The offline tuned example through the user's command: learner updates on expert rows only, no env step
    sampled for training, greedy evaluation on the env runner with the trained weights. The demonstrations are a
    file named relative to where the user runs the command (Tune runs the trial in a directory of its own)."""
    cfg = os.path.join(REPO, "tuned_examples", "mifq_mpe_reference_offline.yaml")
    collect_demos("mpe/simple_reference", {}, "scripted", 2, 0, tmp_path / "demos" / "reference.parquet")
    small = {"expert_data": os.path.join("demos", "reference.parquet"), "num_updates_per_iteration": 3,
             "evaluation_interval": 2, "evaluation_duration": 1}
    proc = run_cli(["train", "file", cfg, "--stop", json.dumps({"training_iteration": 2}), "--config",
                    json.dumps(small), "--storage-path", "results"], cli_env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    (result_file,) = glob.glob(str(tmp_path / "results" / "mifq-mpe-reference-offline" / "MIFQ_*" / "result.json"))
    with open(result_file) as f:
        last = [json.loads(line) for line in f if line.strip()][-1]
    assert last["training_iteration"] == 2
    assert last.get("num_env_steps_sampled_lifetime", 0) == 0
    learner = last["learners"]["default_policy"]
    assert learner["replay_rows"] == 0 and learner["expert_rows"] == 128 and math.isfinite(learner["loss"])
    assert math.isfinite(last["evaluation"]["env_runners"]["episode_return_mean"])


def test_train_file_igm_da_tuned_example(cli_env, tmp_path):
    """The IGM-DA tuned example through the user's command: both experiments (QMIX, QMIX-DA) on SMAX 8m with sight 0
    train, evaluate the acting agents greedily (win rate) and log the teach loss for QMIX-DA; no JAX fork warning."""
    cfg = os.path.join(REPO, "tuned_examples", "igm_da_smax_8m.yaml")
    small = {"num_env_runners": 0, "num_envs_per_env_runner": 4, "num_steps_sampled_before_learning_starts": 50,
             "num_updates_per_iteration": 2, "train_batch_size_per_learner": 32, "evaluation_interval": 3,
             "evaluation_duration": 1}
    proc = run_cli(["train", "file", cfg, "--stop", json.dumps({"training_iteration": 3}), "--config",
                    json.dumps(small), "--storage-path", str(tmp_path / "results")], cli_env, timeout=300)
    assert proc.returncode == 0, explain(proc)
    # the driver built a JAX env (the front-door checks) before starting Ray: no fork warning from JAX for Ray's start
    assert "os.fork() was called" not in proc.stdout + proc.stderr, explain(proc)
    for exp, algo in (("qmix-smax-8m-sight0", "QMIX_"), ("qmix-da-smax-8m-sight0", "QMIX-DA_")):
        (result_file,) = glob.glob(str(tmp_path / "results" / exp / f"{algo}*" / "result.json"))
        with open(result_file) as f:
            last = [json.loads(line) for line in f if line.strip()][-1]
        learner = last["learners"]["default_policy"]
        assert math.isfinite(learner["td_loss"]) and learner["replay_rows"] == 32
        assert ("teach_loss" in learner) == (algo == "QMIX-DA_")
        assert 0.0 <= last["evaluation"]["env_runners"]["win_rate"] <= 1.0


def test_tuned_examples_are_valid_configs():
    files = sorted(glob.glob(os.path.join(REPO, "tuned_examples", "*.yaml")))
    assert files
    for path in files:
        for name, exp in load_experiments(path).items():
            config, _ = build_config(exp, source=f"{path} [{name}]")
            assert config.env == exp["env"]
            config.validate()
            # A checkpoint expert is named relative to the repository root, where the README's commands run.
            spec = (exp.get("config") or {}).get("expert_data")
            if isinstance(spec, dict) and spec.get("expert") not in (None, *EXPERT_NAMES):
                assert os.path.isfile(os.path.join(REPO, spec["expert"], "rllib_checkpoint.json")), (path, spec)


# ------------------------------------------------------------------------------------------------ demos
def test_demos_collect_and_info(tmp_path, cli_env):
    out = tmp_path / "spread.parquet"
    proc = run_cli(["demos", "collect", "--env", SPREAD, "--expert", "scripted", "--episodes", "3", "--seed", "0",
                    "--sizes", "1", "2", "--out", str(out)], cli_env)
    assert proc.returncode == 0, explain(proc)
    assert out.is_file() and str(out) in proc.stdout
    demos = read_demos(out)
    assert demos.env_id == SPREAD and demos.n_episodes == 3 and demos.metadata[S.META_EXPERT] == "scripted"
    for n in (1, 2):  # nested subsets for sweeps over the number of demonstrations
        sub = tmp_path / f"spread_{n}ep.parquet"
        assert str(sub) in proc.stdout and read_demos(sub).n_episodes == n

    info = run_cli(["demos", "info", str(out)], cli_env)
    assert info.returncode == 0, explain(info)
    assert f'"{SPREAD}"' in info.stdout, explain(info)
    assert re.search(r"^\s*episodes\s+3\s*$", info.stdout, re.M), explain(info)


def test_demos_collect_with_missing_checkpoint_expert_fails(tmp_path, cli_env):
    out = tmp_path / "x.parquet"
    proc = run_cli(["demos", "collect", "--env", SPREAD, "--expert", "/nonexistent", "--episodes", "1",
                    "--out", str(out)], cli_env)
    assert proc.returncode == 2, explain(proc)
    assert "rllib: error:" in proc.stderr and "/nonexistent" in proc.stderr, explain(proc)
    assert "checkpoint" in proc.stderr.lower() and "Traceback" not in proc.stderr, explain(proc)
    assert not out.exists() and not list(tmp_path.iterdir())

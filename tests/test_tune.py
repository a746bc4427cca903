"""Tune through `rllib train file`: a YAML search space under ASHA, an interrupted experiment resumed where it
stopped (`--resume`), and the PBT contract: after a trial restores another trial's checkpoint with perturbed
settings, the perturbed settings are the ones in effect (optimizer lr, soft-value temperature)."""
import glob
import json
import os
import signal
import subprocess
import time

import pytest

from test_cli import explain, no_ray_env, rllib_script, run_cli, write_yaml  # noqa: F401 (fixture)

import rllib_mil  # noqa: F401
from rllib_mil.algorithms.mifq import MIFQConfig
from rllib_mil.data.demos import collect_demos

TINY = {
    "env_config": {"N": 3},
    "expert_data": {"expert": "scripted", "episodes": 4, "seed": 0},
    "num_env_runners": 0,
    "rollout_fragment_length": 25,
    "num_steps_sampled_before_learning_starts": 25,
    "num_updates_per_iteration": 2,
    "expert_batch_size": 32,
    "train_batch_size_per_learner": 32,
    "pretrain_offline_updates": 0,  # no warm start: online from the first iteration
    "seed": 0,
}


def results_of(trial_dir):
    with open(os.path.join(trial_dir, "result.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_search_space_under_asha(tmp_path, cli_env):
    """A YAML search space under ASHA: a grid over datasets (a file named relative to where the command runs, although
    Tune runs each trial in a directory of its own, and a generated demo count) and a sampled temperature."""
    collect_demos("mpe/simple_spread", {"N": 3}, "scripted", 2, 0, tmp_path / "demos" / "two.parquet")
    grid = [os.path.join("demos", "two.parquet"), {"expert": "scripted", "episodes": 3, "seed": 0}]
    cfg = write_yaml(tmp_path / "asha.yaml", exp_name="asha", stop={"training_iteration": 4},
                     config={**TINY, "expert_data": {"grid_search": grid}, "alpha": {"uniform": [0.05, 0.2]}})
    proc = run_cli(["train", "file", cfg, "--storage-path", "r", "--scheduler", "asha", "--grace-period", "1",
                    "--metric", "env_runners/episode_return_mean"], cli_env, timeout=420, cwd=tmp_path)
    assert proc.returncode == 0, explain(proc)
    trials = sorted(p for p in glob.glob(str(tmp_path / "r" / "asha" / "*")) if os.path.isdir(p))
    assert len(trials) == 2, explain(proc)
    configs = [results_of(t)[-1]["config"] for t in trials]
    used = sorted((c["expert_data"] for c in configs), key=str)
    assert used == sorted([str(tmp_path / "demos" / "two.parquet"), grid[1]], key=str)  # the grid
    assert all(0.05 <= c["alpha"] <= 0.2 for c in configs) and configs[0]["alpha"] != configs[1]["alpha"]  # sampled
    assert "AsyncHyperBand" in proc.stdout or "ASHA" in proc.stdout, explain(proc)


def test_bad_value_in_a_grid_fails_before_ray(tmp_path, no_ray_env):
    """Every grid value is checked before Ray starts: a dataset that does not exist is named, absolute."""
    grid = [{"expert": "scripted", "episodes": 2, "seed": 0}, "missing.parquet"]
    cfg = write_yaml(tmp_path / "bad.yaml", exp_name="bad", config={**TINY, "expert_data": {"grid_search": grid}})
    proc = run_cli(["train", "file", cfg, "--storage-path", "r"], no_ray_env, cwd=tmp_path)
    assert proc.returncode == 2, explain(proc)
    assert f"`expert_data` file '{tmp_path / 'missing.parquet'}' does not exist" in proc.stderr, explain(proc)
    alpha = write_yaml(tmp_path / "alpha.yaml", exp_name="alpha", config={**TINY, "alpha": {"grid_search": [0.1, -1]}})
    proc = run_cli(["train", "file", alpha], no_ray_env, cwd=tmp_path)
    assert proc.returncode == 2 and "alpha" in proc.stderr and "Traceback" not in proc.stderr, explain(proc)


def test_interrupted_experiment_resumes_from_its_checkpoint(tmp_path, cli_env):
    # >= 0.5 s per iteration, so the Ctrl-C below lands well before the 12th iteration however fast the machine
    cfg = write_yaml(tmp_path / "resume.yaml", exp_name="resume", stop={"training_iteration": 12},
                     checkpoint_config={"checkpoint_frequency": 1}, config={**TINY, "min_time_s_per_iteration": 0.5})
    storage = tmp_path / "r"
    args = ["train", "file", cfg, "--storage-path", str(storage)]
    proc = subprocess.Popen([rllib_script(), *args], env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.time() + 300
    while not glob.glob(str(storage / "resume" / "*" / "checkpoint_000001")) and time.time() < deadline:
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: Tune saves the experiment state and stops
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Continue with the same command plus --resume" in out, out[-3000:]
    (trial,) = [p for p in glob.glob(str(storage / "resume" / "*")) if os.path.isdir(p)]
    first = [r["training_iteration"] for r in results_of(trial)]
    assert 2 <= len(first) < 12, out[-3000:]
    # the same command plus --resume; a --stop given again is the stored one, and the CLI says it is not re-read
    again = run_cli([*args, "--resume", "--stop", '{"training_iteration": 12}'], cli_env, timeout=420)
    assert again.returncode == 0, explain(again)
    assert "resuming" in again.stdout and "--stop / --config given now are not applied" in again.stdout, explain(again)
    iters = [r["training_iteration"] for r in results_of(trial)]
    # the same trial, continued from its latest checkpoint up to the stop criterion (no restart at 1)
    assert iters[-1] == 12 and iters.count(1) == 1, iters
    nothing = run_cli(["train", "file", cfg, "--storage-path", str(tmp_path / "fresh"), "--resume", "--stop",
                       '{"training_iteration": 1}'], cli_env, timeout=300)
    assert nothing.returncode == 0 and "nothing to resume" in nothing.stdout, explain(nothing)


def test_pbt_through_the_cli_exploits_and_perturbs(tmp_path, cli_env):
    """`--scheduler pbt` end to end: two trials, a synchronous perturbation round every 2 iterations (so each round
    compares both trials even when the machine runs them one at a time); the weaker trial restores the stronger
    one's checkpoint and continues with a perturbed lr (its results show the change, Tune logs the exploit), and
    both reach the stop criterion. The default metric, the greedy evaluation return, exists only every second
    iteration (as in tuned_examples/tune_mifq_mpe.yaml): PBT waits for it instead of failing the run."""
    cfg = write_yaml(tmp_path / "pbt.yaml", exp_name="pbt", stop={"training_iteration": 8},
                     config={**TINY, "lr": {"loguniform": [0.0001, 0.001]}, "evaluation_interval": 2,
                             "evaluation_duration": 1, "evaluation_duration_unit": "episodes"})
    proc = run_cli(["train", "file", cfg, "--storage-path", str(tmp_path / "r"), "--scheduler", "pbt",
                    "--pbt-interval", "2", "--pbt-synch", "--num-samples", "2"],
                   cli_env, timeout=600)
    assert proc.returncode == 0, explain(proc)
    trials = sorted(p for p in glob.glob(str(tmp_path / "r" / "pbt" / "*")) if os.path.isdir(p))
    assert len(trials) == 2, explain(proc)
    runs = [results_of(t) for t in trials]
    assert all(r[-1]["training_iteration"] == 8 for r in runs), [[x["training_iteration"] for x in r] for r in runs]
    # Some trial changed its lr mid-run: PBT's exploit (copy the other's checkpoint) + explore (perturb).
    lrs = [[x["config"]["lr"] for x in r] for r in runs]
    assert any(len(set(lr)) > 1 for lr in lrs), lrs
    policies = glob.glob(str(tmp_path / "r" / "pbt" / "pbt_policy_*.txt")) + glob.glob(
        str(tmp_path / "r" / "pbt" / "pbt_global.txt"))
    assert policies, os.listdir(tmp_path / "r" / "pbt")


def test_perturbed_settings_are_in_effect_after_restore(build, tmp_path):
    """What PBT does on exploit: a new trial with the perturbed config restores another trial's checkpoint."""
    base = (MIFQConfig().environment("mpe/simple_spread").training(**{k: v for k, v in TINY.items()
                                                                        if k not in ("env_config", "num_env_runners",
                                                                                     "rollout_fragment_length", "seed")})
            .env_runners(num_env_runners=0, rollout_fragment_length=25).debugging(seed=0))
    donor = build(base.copy().training(lr=1e-3, alpha=0.1))
    for _ in range(2):
        donor.train()
    donor.save_to_path(str(tmp_path / "ckpt"))
    perturbed = build(base.copy().training(lr=2e-4, alpha=0.05))
    perturbed.restore_from_path(str(tmp_path / "ckpt"))
    result = perturbed.train()
    learner = perturbed.learner_group._learner
    (optim,) = [o for _, o in learner.get_optimizers_for_module("default_policy")]
    assert optim.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert learner.config.alpha == 0.05 and perturbed.config.alpha == 0.05
    assert result["training_iteration"] == 3  # the donor's counters came along


def test_tune_stopping_the_run_is_one_line(tmp_path, ray_session, monkeypatch, capsys):
    """An error of Tune itself (not of a trial: e.g. a scheduler's check) ends the command with one `rllib: error`
    line naming the cause, shortened, and where the experiment state is, instead of Tune's traceback."""
    from ray import tune
    from ray.tune.error import TuneError

    from rllib_mil import cli

    def fit(self):
        raise TuneError("Traceback (most recent call last):\n  ...\nRuntimeError: Cannot find metric m in " + "x" * 900)

    monkeypatch.setattr(tune.Tuner, "fit", fit)
    cfg = write_yaml(tmp_path / "t.yaml", exp_name="t", stop={"training_iteration": 1}, config=TINY)
    rc = cli.main(["train", "file", cfg, "--storage-path", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("rllib: error: Tune stopped the run: RuntimeError: Cannot find metric m in xxx"), err
    assert err.endswith(f"under {tmp_path / 'r' / 't'}; after fixing the cause, continue with the same command plus "
                        "--resume."), err
    assert len(err) < 700, len(err)

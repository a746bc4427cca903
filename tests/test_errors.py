"""Bad input at the front door: every case below runs through the `rllib` command's entry point and must end with
exit code 2 and one message naming the problem and the fix, no traceback. The same run writes docs/errors.md
(input -> message), so the page cannot drift: the test fails when the committed page differs from what the
command prints now (regenerate it with RLLIB_MIL_WRITE_DOCS=1 python -m pytest tests/test_errors.py).
"""
import math
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

import rllib_mil  # noqa: F401
from rllib_mil.cli import main
from rllib_mil.data.demos import ensure_demos

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC = os.path.join(REPO, "docs", "errors.md")
BASE = {"run": "MIFQ", "env": "mpe/simple_spread", "stop": {"training_iteration": 1},
        "config": {"expert_data": {"expert": "scripted", "episodes": 2, "seed": 0}, "num_env_runners": 0}}


def exp(run=None, env=None, stop=None, drop=(), **config):
    e = {**BASE, "config": {**BASE["config"], **config}}
    if run is not None:
        e["run"] = run
    if env is not None:
        e["env"] = env
    if stop is not None:
        e["stop"] = stop
    for key in drop:
        e.pop(key)
    return {"bad-input": e}


def nan_demos(src, dst):
    """A copy of a demonstrations file with one NaN in the first observation."""
    table = pq.read_table(src)
    obs = table.column("obs").to_pylist()
    obs[0][0] = math.nan
    i = table.schema.get_field_index("obs")
    table = table.set_column(i, table.schema.field(i), pa.array(obs, type=table.schema.field(i).type))
    pq.write_table(table, dst)


def cases(tmp):
    """(title, what the user wrote, argv, expected fragments of the message)."""
    spread = ensure_demos("mpe/simple_spread", {}, expert="scripted", episodes=2, seed=0)
    nan_path = str(tmp / "nan_demos.parquet")
    nan_demos(spread, nan_path)
    corrupt = tmp / "checkpoint_000000"
    (corrupt / "learner_group" / "learner" / "rl_module" / "default_policy").mkdir(parents=True)
    (corrupt / "class_and_ctor_args.pkl").write_bytes(b"not a pickle")
    train = ["train", "file"]
    not_rows = tmp / "not_rows.jsonl"
    not_rows.write_text('{"bad": 1}\n')
    rows = tmp / "results.jsonl"
    rows.write_text('{"task": "mpe/simple_spread", "algo": "BC", "seed": 0, "score": 0.5}\n')
    (tmp / "pages").mkdir()
    (tmp / "pages" / "results_results.md").write_text("# my own notes\n")
    return [
        ("YAML syntax error", "bad-input: {run: MIFQ, env: [mpe/simple_spread", None, ["not valid YAML"]),
        ("missing `run`", exp(drop=("run",)), None, ["has no `run:`"]),
        ("unknown algorithm", exp(run="MIFQQ"), None, ["Unknown algorithm 'MIFQQ'", "MIFQ"]),
        ("unknown env id", exp(env="mpe/simple_sprad"), None, ["unknown env 'mpe/simple_sprad'",
                                                                "Did you mean 'mpe/simple_spread'"]),
        ("unknown experiment key", {"bad-input": {**BASE, "stopp": {"training_iteration": 1}}}, None,
         ["unknown key 'stopp'", "'stop'"]),
        ("unknown config key", exp(lrr=0.1), None, ["unknown config key 'lrr'", "'lr'"]),
        ("wrong value type", exp(num_env_runners="two"), None, ["'num_env_runners'", "must be a number"]),
        ("a number YAML reads as text", "bad-input: {run: MIFQ, env: mpe/simple_spread, stop: {training_iteration: "
         "1}, config: {lr: 1e-3, expert_data: {expert: scripted, episodes: 2}}}", None,
         ["'lr'", "must be a number", "write 0.001"]),
        ("wrong type of a flag", exp(use_gru="yes"), None, ["'use_gru'", "must be a bool", "true or false"]),
        ("out-of-range value", exp(alpha=-1.0), None, ["`alpha`", "must be > 0"]),
        ("negative learning rate", exp(lr=-0.1), None, ["`lr`", "must be a number > 0"]),
        ("discount out of range", exp(gamma=1.5), None, ["`gamma`", "[0, 1]"]),
        ("negative number of env runners", exp(num_env_runners=-1), None, ["`num_env_runners`", "integer >= 0"]),
        ("a layer width of 0", exp(hidden=[64, 0]), None, ["`hidden`", "integers >= 1"]),
        ("`--config` not JSON", exp(), ["--config", "{num_env_runners: 0}"],
         ["--config is not valid JSON", "double-quoted keys", '{"num_env_runners": 0}']),
        ("`--config` not a JSON object", exp(), ["--config", "[1, 2]"], ["--config must be a JSON object"]),
        ("`num_samples` not a positive integer", {"bad-input": {**BASE, "num_samples": 0}}, None,
         ["`num_samples`", "integer >= 1"]),
        ("bad search space", exp(lr={"uniform": [0.1]}), None, ["bad search space", "uniform"]),
        ("misspelled stop key", exp(stop={"training_iterations": 2}), None,
         ["unknown stop key 'training_iterations'", "'training_iteration'", "never stops"]),
        ("stop value not a number", exp(stop={"training_iteration": "ten"}), None, ["must be a number"]),
        ("stop count not positive", exp(stop={"training_iteration": 0}), None, ["'training_iteration'", "must be > 0"]),
        ("missing demonstrations file", exp(expert_data=str(tmp / "no_such_demos.parquet")), None,
         ["does not exist", "rllib demos collect"]),
        ("demonstrations of another env", exp(env="mpe/simple_reference", expert_data=spread), None,
         ["expert_data", "mpe/simple_spread"]),
        ("demonstrations of another agent count", exp(env_config={"N": 4}, expert_data=spread), None,
         ["expert_data", "agents"]),
        ("NaN in demonstrations", exp(expert_data=nan_path), None, ["NaN"]),
        ("a search space inside `expert_data`", exp(expert_data={"expert": "scripted", "episodes": {
            "grid_search": [4, 16]}}), None, ["search space inside", "grid_search", "'episodes': 16"]),
        ("demonstration count not a positive integer", exp(expert_data={"expert": "scripted", "episodes": 0}), None,
         ["`expert_data.episodes`", "integer >= 1"]),
        ("env_config of the wrong type", exp(env_config=[3]), None, ["env_config", "mapping"]),
        ("StarCraft II missing (SMACv2 env)", exp(env="smacv2/protoss_5_vs_5", expert_data=None), None,
         ["is not available on this machine", "SC2PATH", "smax/"]),
        ("unwritable storage path", exp(), ["--storage-path", "/proc/rllib_results"], ["not writable",
                                                                                      "--storage-path"]),
        ("too few CPUs for one trial", exp(num_env_runners=8), None, ["needs", "CPU", "num_env_runners"]),
        ("unknown MAPPO credit", {"bad-input": {"run": "MAPPO", "env": "mpe/simple_reference",
                                                "stop": {"training_iteration": 1},
                                                "config": {"credit": "speaker", "num_env_runners": 0}}}, None,
         ["`credit`", "'team'", "'agent'"]),
        ("MAPPO message factor without factored actions", {"bad-input": {
            "run": "MAPPO", "env": "mpe/simple_reference", "stop": {"training_iteration": 1},
            "config": {"signal_factor": 1, "signal_bias_coeff": 0.1, "num_env_runners": 0}}}, None,
         ["`signal_factor`", "`action_factors`"]),
        ("DAgger's β-mixture on a non-IGM-DA algorithm", {"bad-input": {
            "run": "QMIX", "env": "mpe/simple_spread", "stop": {"training_iteration": 1},
            "config": {"dagger_beta": 0.5, "num_env_runners": 0}}}, None, ["`dagger_beta`", "QMIX-DA"]),
        ("target agents acting in IGM-DA mode", {"bad-input": {
            "run": "QMIX-DA", "env": "mpe/simple_spread", "stop": {"training_iteration": 1},
            "config": {"act_with_target": True, "num_env_runners": 0}}}, None, ["`act_with_target`", "QMIX"]),
        ("learner-agent bootstrap without IGM-DA", {"bad-input": {
            "run": "QMIX", "env": "mpe/simple_spread", "stop": {"training_iteration": 1},
            "config": {"bootstrap_actions": "learner", "num_env_runners": 0}}}, None,
         ["`bootstrap_actions: learner`", "QMIX-DA"]),
        ("MIFQ prior fixed after the warm start on the shared head", exp(prior_training="warm_start"), None,
         ["`prior_training='warm_start'`", "prior_net='separate'"]),
        ("noise level out of range (`rllib demos collect --epsilon`)", None,
         ["demos", "collect", "--env", "mpe/simple_spread", "--episodes", "1", "--epsilon", "1.5", "--out",
          str(tmp / "noisy.parquet")], ["epsilon must be a number in [0, 1]"]),
        ("unknown expert name (`rllib demos collect --expert`)", None,
         ["demos", "collect", "--env", "mpe/simple_spread", "--episodes", "1", "--expert", "scriptd", "--out",
          str(tmp / "e.parquet")], ["'scriptd'", "Did you mean 'scripted'"]),
        ("subsets larger than the collection (`rllib demos collect --sizes`)", None,
         ["demos", "collect", "--env", "mpe/simple_spread", "--episodes", "2", "--sizes", "4", "--out",
          str(tmp / "s.parquet")], ["--sizes [4]", "1..--episodes (2)"]),
        ("not a results file (`rllib report`)", None, ["report", str(not_rows), "--docs", str(tmp / "rep")],
         ["line 1 is not a benchmark results row", "'task'"]),
        ("a page another input wrote (`rllib report`)", None, ["report", str(rows), "--docs", str(tmp / "pages")],
         ["not written by `rllib report`", "nothing was written", "--overwrite"]),
        ("damaged checkpoint (`rllib evaluate`)", None, ["evaluate", str(corrupt)], ["damaged or unreadable"]),
        ("not a checkpoint (`rllib evaluate`)", None, ["evaluate", str(tmp)], ["not an RLlib algorithm checkpoint"]),
    ], train


def test_bad_inputs_fail_at_the_front_door_and_docs_errors_md_is_current(tmp_path, capsys, ray_session):
    rows, train = cases(tmp_path)
    assert len(rows) >= 15
    page = ["# Errors at the front door", "",
            "What `rllib` answers to bad input (exit code 2, no traceback). Generated by `tests/test_errors.py`, "
            "which runs every case below; regenerate with `RLLIB_MIL_WRITE_DOCS=1 python -m pytest "
            "tests/test_errors.py`.", ""]
    for n, (title, doc, argv, fragments) in enumerate(rows):
        if argv is None or argv[0].startswith("--"):  # a YAML, and flags after it
            path = tmp_path / f"case{n}.yaml"
            path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
            argv = train + [str(path), "--storage-path", str(tmp_path / "results")] + (argv or [])
            shown = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False, width=200).strip()
        else:
            shown = "rllib " + " ".join(argv)
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 2, (title, err)
        assert "Traceback" not in err and err.startswith("rllib: error:"), (title, err)
        for fragment in fragments:
            assert fragment in err, (title, fragment, err)
        clean = lambda s: s.replace(str(tmp_path), "<tmp>").replace(os.environ.get("RLLIB_MIL_CACHE", "\0"), "<cache>")  # noqa: E731
        page += [f"## {n + 1}. {title}", "", "```yaml" if argv[0] == "train" else "```", clean(shown), "```", "",
                 "```text", clean(err.strip()), "```", ""]
    text = "\n".join(page)
    if os.environ.get("RLLIB_MIL_WRITE_DOCS"):
        with open(DOC, "w") as f:
            f.write(text)
    assert os.path.exists(DOC) and open(DOC).read() == text, (
        "docs/errors.md differs from what the command prints now; regenerate it with "
        "RLLIB_MIL_WRITE_DOCS=1 python -m pytest tests/test_errors.py")

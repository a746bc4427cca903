"""`rllib report` on benchmark rows in the paper's layout (methods as rows, tasks as columns): one table per demo
count, a demo-count table and plot, score curves and Q-magnitude plots."""
import json
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rllib_mil.report import benchmark_report


def _row(task, algo, demos, seed, score):
    return {"task": task, "algo": algo, "demos": demos, "seed": seed, "score": score, "return": -10 - seed,
            "expert_return": -7.0, "random_return": -28.0, "env_steps": 800, "updates_per_iteration": 50,
            "replay_batch": 64, "lr": 5e-4, "alpha": 0.01, "eval_episodes": 5, "wall_s": 1.0,
            "curve": [[100, -20.0, 1.5], [200, -15.0, 2.5]]}


def test_benchmark_report_per_demo_count(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = [_row(t, a, d, s, 0.1 * d / 4 + 0.2 * s) for t in ("mpe/simple_spread", "mpe/simple_reference")
            for a in ("MIFQ", "BC") for d in (4, 16) for s in (0, 1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = benchmark_report(str(path), str(tmp_path / "docs"), name="bench", title="t")
    assert "**4 demonstrations**" in table and "**16 demonstrations**" in table
    # 4 demos: scores 0.1 and 0.3 -> 0.20 ± 0.10; 16 demos: 0.4 and 0.6 -> 0.50 ± 0.10.
    section4, section16 = table.split("**16 demonstrations**")
    assert "0.20 ± 0.10 (-10.5; n=2)" in section4 and "0.50" not in section4
    assert "0.50 ± 0.10 (-10.5; n=2)" in section16
    # methods as rows (the paper's order: BC before MIFQ), tasks as columns, expert first and random last
    lines = section4.strip().splitlines()
    header = next(ln for ln in lines if ln.startswith("| method"))
    assert header == "| method | mpe/simple_spread | mpe/simple_reference |"
    body = [ln.split(" | ")[0] for ln in lines[lines.index(header) + 2:] if ln.startswith("|")]
    assert body == ["| expert (return)", "| BC", "| MIFQ", "| random (return)"]
    # score vs demo count: methods x (task, demos), mean over seeds
    demo_table = section16.split("**Score vs number of demonstrations**")[1]
    assert "| method | simple_spread 4 | simple_spread 16 | simple_reference 4 | simple_reference 16 |" in demo_table
    assert "| MIFQ | 0.20 | 0.50 | 0.20 | 0.50 |" in demo_table
    for png in ("bench_curves.png", "bench_q.png", "bench_demos.png"):
        assert (tmp_path / "docs" / png).stat().st_size > 0, png
    md = (tmp_path / "docs" / "bench_results.md").read_text()
    assert "bench_demos.png" in md and "bench_q.png" in md


def test_benchmark_report_shows_win_rates(tmp_path):
    path = tmp_path / "rows.jsonl"
    rows = []
    for s, w in ((0, 0.5), (1, 0.7)):
        r = _row("smax/smacv2_5_units", "MIFQ", 128, s, 0.8)
        r.update(win_rate=w, expert_win_rate=0.68)
        rows.append(r)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = benchmark_report(str(path), str(tmp_path / "docs"), name="smax", title="t")
    assert "0.80 ± 0.00 (-10.5; win 0.60 ± 0.10; n=2)" in table and "-7.0 (win 0.68)" in table


def test_benchmark_report_of_rl_rows_without_an_expert(tmp_path):
    """RL benchmark rows (benchmarks/igm_da_smax.py): no expert line, score = greedy win rate, win-rate curves."""
    path = tmp_path / "rows.jsonl"
    rows = []
    for algo, wins in (("QMIX", (0.2, 0.4)), ("QMIX-DA", (0.6, 0.8))):
        for s, w in enumerate(wins):
            rows.append({"task": "smax/3m", "algo": algo, "seed": s, "score": w, "win_rate": w, "return": 1.0 + w,
                         "random_return": 0.1, "random_win_rate": 0.0, "env_steps": 1000, "wall_s": 2.0,
                         "curve": [[500, w / 2, 0.3], [1000, w, 0.4]], "curve_label": "greedy win rate",
                         "budget": "Budget: 1000 env steps."})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = benchmark_report(str(path), str(tmp_path / "docs"), name="igm", title="t")
    body = [ln.split(" | ")[0] for ln in table.splitlines() if ln.startswith("| ") and not ln.startswith("| method")]
    assert body == ["| QMIX", "| QMIX-DA", "| random (return)"]
    assert "0.30 ± 0.10 (1.3; win 0.30 ± 0.10; n=2)" in table and "0.70 ± 0.10" in table
    assert "score = greedy win rate" in table and "Budget: 1000 env steps." in table
    assert (tmp_path / "docs" / "igm_curves.png").stat().st_size > 0


def test_experiment_report_reads_result_json_over_a_misaligned_progress_csv(tmp_path):
    """After --resume Tune appends progress.csv rows under the first session's header; result.json stays right."""
    from rllib_mil.report import experiment_report

    trial = tmp_path / "exp" / "MAPPO_x_00000"
    trial.mkdir(parents=True)
    results = [{"training_iteration": i, "num_env_steps_sampled_lifetime": 100 * i,
                "env_runners": {"episode_return_mean": float(i)}} for i in (1, 2, 2, 3)]  # iteration 2 repeated
    (trial / "result.json").write_text("".join(json.dumps(r) + "\n" for r in results))
    (trial / "progress.csv").write_text(
        "training_iteration,num_env_steps_sampled_lifetime,env_runners/episode_return_mean\n1,100,1.0\n2,-5.0,200\n")
    table = experiment_report([str(tmp_path / "exp")], str(tmp_path / "docs"))
    assert "| MAPPO_x_00000 | 3 | 300 | 3.00 | - |" in table


def _benchmark_script(name):
    """Import benchmarks/<name>.py (a script folder, not a package)."""
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convergence_steps_to_threshold():
    """benchmarks/convergence.py: env steps at the first curve point whose normalized score reaches the threshold."""
    conv = _benchmark_script("convergence")
    row = {"task": "t", "algo": "A", "seed": 0, "demos": 4, "score": 0.9, "expert_return": -10.0,
           "random_return": -30.0, "curve": [[500, -30.0, 1.0], [1000, -15.0, 1.0], [1500, -13.9, 1.0], [2000, -12.0, 1.0]]}
    assert conv.steps_to(row, 0.8) == 1500  # (-13.9 + 30) / 20 = 0.805; -15 gives 0.75
    assert conv.steps_to(row, 0.95) is None
    late = {**row, "algo": "B", "curve": [[500, -30.0, 1.0], [3000, -13.0, 1.0]]}
    never = {**row, "algo": "C", "curve": [[500, -30.0, 1.0]]}
    table = conv.table([row, late, never], 0.8)
    assert "| t | 4 | A | 1500 | 1/1 | 1500 | 1.00 |" in table and "| t | 4 | B | 3000 | 1/1 | 3000 | 2.00 |" in table
    assert "| t | 4 | C | never | 0/1 | – | – |" in table


def test_vd_churn_counts_flips_gaps_and_relapses():
    """benchmarks/vd_churn.py: churn counts live agent rows whose greedy available action changed (dead agents, with
    one action, are left out); gap is best minus second-best available Q; a relapse is a fall below 0.5 after 0.9."""
    vc = _benchmark_script("vd_churn")
    assert vc.relapses([0.0, 1.0, 0.4, 0.95, 0.2, 0.6]) == 2 and vc.relapses([0.95, 0.6, 0.95]) == 0

    class Fixed:  # a "network" that returns the same scores for any input
        def __init__(self, q):
            self.q = torch.tensor([q])  # (1, n, A)

        def __call__(self, x):
            return self.q

    module = SimpleNamespace(agent_inputs=lambda o, s: o, td_scores=lambda q: q)
    now = Fixed([[1.0, 0.5, 0.0], [0.0, 2.0, 1.9], [9.0, 0.0, 0.0]])
    before = Fixed([[0.0, 1.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 9.0]])
    mask = np.array([[1, 1, 1], [1, 1, 1], [0, 0, 1]], dtype=np.float32)  # agent 2 is dead: only its no-op
    states = [(np.zeros((3, 4), np.float32), np.zeros(5, np.float32), mask)]
    churn, gap, q_scale = vc.churn_and_gap(module, now, before, states)
    assert churn == pytest.approx(0.5)  # agent 0 flips (1 -> 0), agent 1 keeps action 1
    assert gap == pytest.approx((0.5 + 0.1) / 2) and q_scale == pytest.approx(1.5)


def test_message_use_mutual_information():
    """benchmarks/message_use.py: I(word; goal) is log2(3) for a word that names the goal, 0 for an unrelated one."""
    import math

    mu = _benchmark_script("message_use")
    naming = [(g, g) for g in range(3)] * 4
    unrelated = [(g, w) for g in range(3) for w in range(4)]
    assert mu.mutual_information(naming) == pytest.approx(math.log2(3))
    assert mu.mutual_information(unrelated) == pytest.approx(0.0, abs=1e-12)
    assert 0 < mu.mutual_information([(0, 0), (0, 0), (1, 1), (1, 0)]) < 1


def test_reward_oracle_trains_on_the_env_reward(ray_session):
    """benchmarks/mifq_reward_oracle.py: soft Q-learning towards the BC prior on the env's team reward, on expert and
    replay rows (MIFQ's machinery otherwise)."""
    import math

    import numpy as np
    import pyarrow.parquet as pq

    from rllib_mil.data.demos import ensure_demos

    _, config_cls = _benchmark_script("mifq_reward_oracle").oracle_classes()
    demos = ensure_demos("mpe/simple_spread", {}, expert="scripted", episodes=2, seed=0)
    algo = (config_cls().environment("mpe/simple_spread")
            .training(expert_data=demos, num_steps_sampled_before_learning_starts=100, expert_batch_size=32,
                      train_batch_size_per_learner=16)
            .env_runners(num_env_runners=0, num_envs_per_env_runner=2, rollout_fragment_length=25)
            .debugging(seed=0).build_algo())
    try:
        stats = [algo.train() for _ in range(3)][-1]["learners"]["default_policy"]
    finally:
        algo.stop()
    demo_reward = pq.read_table(demos, columns=["reward"]).column("reward").to_numpy()
    # The expert rows carry the demonstrations' rewards, the replay rows the env's (spread's are always < 0).
    assert demo_reward.min() <= float(stats["reward_expert_mean"]) <= demo_reward.max() < 0
    assert float(stats["reward_replay_mean"]) < 0
    assert float(stats["expert_rows"]) == 32 and float(stats["replay_rows"]) == 16
    for key in ("loss", "td_error_abs_mean", "prior_nll", "q_abs_max"):
        assert math.isfinite(float(stats[key])), key
    assert np.isfinite(demo_reward).all()


def test_policy_parts_read_the_policy_the_prior_and_q(build):
    """benchmarks/mifq_policy_parts.py: with Q's output layer zeroed the policy acts as the prior alone, with the
    prior's zeroed it acts as Q alone; the module's own action_scores is restored after each reading."""
    import torch

    from rllib_mil.algorithms.mifq import MIFQConfig
    from rllib_mil.envs import make_team_env

    greedy_return = _benchmark_script("mifq_policy_parts").greedy_return
    algo = build(MIFQConfig().environment("mpe/simple_spread")
                 .training(expert_data={"expert": "scripted", "episodes": 2, "seed": 0}, prior_net="separate",
                           pretrain_offline_updates=0)
                 .env_runners(num_env_runners=0).debugging(seed=0))
    module, env = algo.get_module(), make_team_env("mpe/simple_spread")
    scores = type(module).action_scores
    readings = lambda: {part: greedy_return(env, module, part, 2, 7) for part in ("policy", "prior", "q")}  # noqa: E731
    first = readings()
    assert type(module).action_scores is scores and len(set(first.values())) > 1  # three different policies
    towers = module.q_net.first, module.q_net.second
    for zeroed, same_as in ((towers[0], "prior"), (towers[1], "q")):
        last = list(zeroed.modules())[-1]  # the tower's output layer
        with torch.no_grad():
            saved = [p.clone() for p in last.parameters()]
            for p in last.parameters():
                p.zero_()
            got = readings()
            for p, v in zip(last.parameters(), saved):
                p.copy_(v)
        assert got["policy"] == got[same_as], (zeroed, got)


def test_spread_gap_splits_the_env_reward():
    """benchmarks/spread_gap.py: approach + stopping (distance) and the collision pairs add up to the env's own team
    return, episode by episode (mpe2 simple_spread, local_ratio 0.5: each colliding pair costs 1/n per step)."""
    from rllib_mil.data.experts import make_expert
    from rllib_mil.envs import make_team_env

    gap = _benchmark_script("spread_gap")
    env = make_team_env("mpe/simple_spread", {"N": 3, "max_cycles": 25})
    for name in ("scripted", "random"):  # random play collides often, the scripted expert rarely
        r = gap.profile(env, make_expert(name, env), 4, 10_000, 3)
        collision_loss = -(r["return"] + r["approach_loss"] + r["stopping_loss"])
        assert collision_loss == pytest.approx(r["collision_loss"], abs=1e-9)
        assert collision_loss == pytest.approx(r["colliding_pair_steps"] / 3, abs=1e-4)
        assert len(r["distance_per_step"]) == 25 and r["stopping_loss"] == pytest.approx(12.5 * r["final_distance"])
        if name == "scripted":  # it reaches its landmarks within the episode, so arrived agents' speeds exist
            assert 0.0 <= r["speed_when_arrived"] < 2.0
    env.close()


def test_spread_gap_writes_one_row_per_policy(tmp_path):
    """--out keeps the split as JSON rows (the numbers quoted in the MAPPO README come from such rows)."""
    out = tmp_path / "gap.jsonl"
    _benchmark_script("spread_gap").main([os.path.join(os.path.dirname(__file__), "..", "benchmarks", "experts",
                                                       "mappo_mpe_spread_actor128_10m"),
                                          "--episodes", "2", "--out", str(out)])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["policy"] for r in rows] == ["checkpoint", "scripted"]
    for r in rows:
        assert r["episodes"] == 2 and r["seed"] == 10_000 and len(r["distance_per_step"]) == 25
        assert r["return"] == pytest.approx(-(r["approach_loss"] + r["stopping_loss"] + r["collision_loss"]))


def test_a_report_never_replaces_a_page_another_input_wrote(tmp_path):
    """Each page records the input it was written from (first line); the same input rewrites it, another input (or
    a page not written by `rllib report`) is refused with nothing written, unless overwrite."""
    docs = tmp_path / "docs"
    a, b = tmp_path / "a" / "rows.jsonl", tmp_path / "b" / "rows.jsonl"  # same name, so the same page name
    for path, score in ((a, 0.25), (b, 0.75)):
        path.parent.mkdir()
        path.write_text(json.dumps(_row("mpe/simple_spread", "MIFQ", 4, 0, score)) + "\n")
    benchmark_report(str(a), str(docs), name="rows", title="t")
    page = docs / "rows_results.md"
    assert page.read_text().splitlines()[0] == "<!-- written by `rllib report` from: ../a/rows.jsonl -->"
    benchmark_report(str(a), str(docs), name="rows", title="t")  # regenerating from the same input is fine
    before = {p.name: p.read_bytes() for p in docs.iterdir()}
    with pytest.raises(ValueError, match=r"was written from \.\./a/rows\.jsonl.*nothing was written.*--overwrite"):
        benchmark_report(str(b), str(docs), name="rows", title="t")
    assert {p.name: p.read_bytes() for p in docs.iterdir()} == before  # no page and no PNG replaced
    benchmark_report(str(b), str(docs), name="rows", title="t", overwrite=True)
    assert "0.75" in page.read_text() and "../b/rows.jsonl" in page.read_text()
    notes = docs / "notes_results.md"
    notes.write_text("# my own notes\n")
    (tmp_path / "notes.jsonl").write_text(json.dumps(_row("mpe/simple_spread", "MIFQ", 4, 0, 0.5)) + "\n")
    with pytest.raises(ValueError, match="not written by `rllib report`"):
        benchmark_report(str(tmp_path / "notes.jsonl"), str(docs), name="notes", title="t")
    assert notes.read_text() == "# my own notes\n"


def test_rows_without_the_table_keys_name_the_line_and_the_keys(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(_row("mpe/simple_spread", "MIFQ", 4, 0, 0.5)) + "\n" + '{"bad": 1}\n')
    with pytest.raises(ValueError, match=r"line 2 is not a benchmark results row: it lacks \['task', 'algo', 'seed', "
                                         r"'score'\]"):
        benchmark_report(str(path), str(tmp_path / "docs"), name="rows", title="t")
    assert not (tmp_path / "docs").exists()


def test_rows_with_only_the_table_keys_make_a_table(tmp_path):
    # no raw return, no random reference, no wall time: the score table still comes out, without those parts
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps({"task": "smax/3m", "algo": "QMIX", "seed": s, "score": w}) + "\n"
                            for s, w in ((0, 0.5), (1, 0.7))))
    table = benchmark_report(str(path), str(tmp_path / "docs"), name="bare", title="t")
    assert "| QMIX | 0.60 ± 0.10 (n=2) |" in table and "random" not in table and "wall time" not in table


def test_mappo_experts_save_every_and_evaluate(ray_session, tmp_path):
    """benchmarks/mappo_experts.py: --save-every keeps a checkpoint per budget, and --evaluate scores a saved
    checkpoint exactly as the run scored it at its end (same greedy policy, same episode seeds)."""
    import json

    script = _benchmark_script("mappo_experts")
    ck, rows = tmp_path / "ck", tmp_path / "rows.jsonl"
    common = ["--eval-episodes", "2", "--out", str(rows), "--checkpoints", str(ck)]
    script.main(["--tasks", "mpe/simple_spread", "--seeds", "0", "--max-steps", "4000", "--save-every", "2000",
                 "--config", '{"num_envs_per_env_runner": 80}', *common])
    assert sorted(p.name for p in ck.iterdir()) == ["simple_spread-seed0", "simple_spread-seed0-2000",
                                                    "simple_spread-seed0-4000"]
    script.main(["--evaluate", str(ck / "simple_spread-seed0"), str(ck / "simple_spread-seed0-2000"), *common])
    trained, final, early = (json.loads(line) for line in rows.read_text().splitlines())
    assert trained["env_steps"] == 4000 and final["task"] == early["task"] == "mpe/simple_spread"
    for key in ("return", "sampled_return", "expert_return", "random_return", "score"):
        assert final[key] == trained[key], key
    assert early["expert_return"] == trained["expert_return"] and early["return"] != trained["return"]

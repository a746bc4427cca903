"""Time to quality and memory of the README's default runs (issue 13).

For each MPE tuned example of MIFQ (its settings unchanged: 2 env runners, online defaults, the YAML's stop), in one
process: wall time and env steps until the greedy evaluation return first reaches 0.9 of the run's final
expert-normalized score, the whole run's wall time, and the peak resident memory of the driver (which holds the
local learner), of each env runner and of the evaluation runner. Also the bytes of the on-device expert buffer per
1000 demonstration episodes for MPE and SMAX.

    python benchmarks/time_to_quality.py --out benchmarks/results/time_to_quality.jsonl
    python benchmarks/time_to_quality.py --tasks spread --eval-every 2     # one task, denser curve

score = (R − R_random) / (R_expert − R_random), with the scripted expert's and random play's greedy returns measured
on the same evaluation seeds.
"""
import argparse
import json
import os
import resource
import time

TUNED = {"spread": "tuned_examples/mifq_mpe_spread.yaml", "reference": "tuned_examples/mifq_mpe_reference.yaml",
         "speaker_listener": "tuned_examples/mifq_mpe_speaker_listener.yaml"}


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def greedy_return(algo, env, episodes, seed):
    from rllib_mil.evaluation import ModulePolicy, run_episodes

    return run_episodes(env, ModulePolicy(algo.get_module()), episodes, seed)["return_mean"]


def run_task(name, args):
    from rllib_mil.cli import build_config, load_experiments
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import run_episodes
    from rllib_mil.data.experts import make_expert

    path = TUNED[name]
    (exp_name, exp), = load_experiments(path).items()
    config, _ = build_config(exp, source=path)
    config.evaluation(evaluation_interval=None)  # greedy evaluation here, on fixed seeds, outside the timed loop
    stop = int(exp["stop"]["num_env_steps_sampled_lifetime"])
    env = make_team_env(config.env, dict(config.env_config or {}))
    r_expert = run_episodes(env, make_expert("scripted", env), args.episodes, args.seed)["return_mean"]
    r_random = run_episodes(env, make_expert("random", env), args.episodes, args.seed)["return_mean"]
    algo = config.build_algo()
    curve, train_s, it = [], 0.0, 0
    t_start = time.perf_counter()
    while True:
        t = time.perf_counter()
        res = algo.train()
        train_s += time.perf_counter() - t
        it += 1
        steps = int(res["num_env_steps_sampled_lifetime"])
        done = steps >= stop
        if it % args.eval_every == 0 or done:
            score = (greedy_return(algo, env, args.episodes, args.seed) - r_random) / (r_expert - r_random)
            curve.append((steps, round(train_s, 2), score))
            print(f"  {name}: {steps} env steps, {train_s:.0f} s training, score {score:.2f}", flush=True)
        if done:
            break
    wall_s = time.perf_counter() - t_start
    final = curve[-1][2]
    hit = next(((s, ts) for s, ts, sc in curve if sc >= 0.9 * final), (None, None)) if final > 0 else (None, None)
    runners = algo.env_runner_group.foreach_env_runner(
        lambda w: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024.0,
        local_env_runner=False)
    eval_runners = []
    if algo.eval_env_runner_group is not None:
        eval_runners = algo.eval_env_runner_group.foreach_env_runner(
            lambda w: __import__("resource").getrusage(__import__("resource").RUSAGE_SELF).ru_maxrss / 1024.0,
            local_env_runner=False)
    algo.stop()
    env.close()
    return {"task": config.env, "tuned_example": path, "env_steps": curve[-1][0], "train_s": round(train_s, 1),
            "wall_s_incl_eval": round(wall_s, 1), "final_score": final, "steps_to_0.9": hit[0],
            "train_s_to_0.9": hit[1], "curve": curve, "expert_return": r_expert, "random_return": r_random,
            "driver_peak_rss_mb": round(peak_rss_mb(), 1), "env_runner_peak_rss_mb": [round(x, 1) for x in runners],
            "eval_runner_peak_rss_mb": [round(x, 1) for x in eval_runners], "eval_episodes": args.episodes}


def expert_buffer_bytes():
    """Bytes of the on-device expert buffer per 1000 episodes (scripted demonstrations, 64 episodes measured)."""
    from rllib_mil.data.demos import ensure_demos
    from rllib_mil.data.expert_buffer import ExpertBuffer

    out = {}
    for env_id in ("mpe/simple_spread", "smax/smacv2_5_units"):
        buf = ExpertBuffer.from_path(ensure_demos(env_id, {}, expert="scripted", episodes=64, seed=0))
        nbytes = sum(t.numel() * t.element_size() for t in buf.tensors.values())
        out[env_id] = {"bytes_per_1k_episodes": int(nbytes / 64 * 1000), "transitions_per_episode": len(buf) / 64}
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=list(TUNED), choices=list(TUNED))
    p.add_argument("--eval-every", type=int, default=4, help="greedy evaluation every this many iterations")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=100_000)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    import ray
    import torch

    import rllib_mil  # noqa: F401

    torch.set_num_threads(1)  # this process samples envs too (the evaluation)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    rows = [run_task(name, args) for name in args.tasks]
    rows.append({"expert_buffer": expert_buffer_bytes(), "date": time.strftime("%Y-%m-%d")})
    for r in rows:
        print(json.dumps({k: v for k, v in r.items() if k != "curve"}))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

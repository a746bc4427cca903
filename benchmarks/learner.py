"""Learner updates per second: RLlib's MIFQ learner against a bare PyTorch loop computing the same loss on the same
tensors in the same process (issue 13). Printed as a ratio (target >= 0.8), since absolute numbers on a shared
machine are noise.

  rllib  ``LearnerGroup.update`` of offline MIFQ (expert rows from the on-device buffer, the MIFQ loss, Adam, grad
         clipping, polyak target update, metrics), as ``MIFQ.training_step`` calls it
  bare   a loop over the same module copy: draw rows from the same expert tensors, ``mifq_loss`` on them, backward,
         clip, Adam step, polyak target update; nothing else

    python benchmarks/learner.py                                    # simple_spread, batch 128 / 1024 / 4096, CPU
    python benchmarks/learner.py --batch 4096 --device cuda --out benchmarks/results/learner.jsonl
    python benchmarks/learner.py --replay        # online: flat replay draws vs RLlib's one-step episode draws
"""
import argparse
import copy
import functools
import json
import os
import time

import torch


def rllib_learner(task, batch, device, seed=0):
    from rllib_mil.algorithms.mifq import MIFQConfig

    cfg = (MIFQConfig().environment(task)
           .training(expert_data={"expert": "scripted", "episodes": 128, "seed": 0}, offline=True,
                     expert_batch_size=batch, num_updates_per_iteration=1)
           .env_runners(num_env_runners=0)
           .learners(num_learners=0, num_gpus_per_learner=1 if device == "cuda" else 0)
           .debugging(seed=seed))
    return cfg.build_algo()


def time_rllib(algo, updates):
    from rllib_mil.algorithms.imitation import expert_only_updates

    expert_only_updates(algo, 5, first_update=0)  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    expert_only_updates(algo, updates, first_update=5)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return updates / (time.perf_counter() - t)


def time_bare(algo, batch, updates):
    """The same computation without RLlib: the learner module's copy, the same expert tensors and loss."""
    from rllib_mil.algorithms.mifq.mifq_learner import MIFQTorchLearner
    from rllib_mil.algorithms.bc.bc_loss import bc_term
    from rllib_mil.algorithms.mifq.mifq_loss import chi2_phi, mifq_loss
    from rllib_mil.data import schema
    from rllib_mil.modules.soft import soft_value

    learner = algo.learner_group._learner
    config = algo.config
    module = copy.deepcopy(learner.module["default_policy"].unwrapped())
    expert = learner._expert
    policy_scores = MIFQTorchLearner.policy_scores
    gen = torch.Generator(device=expert.device).manual_seed(0)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    target, online = module._target_q_net, module.q_net

    def step():
        rows = expert.sample(batch, generator=gen)
        s, s2 = rows[schema.STATE], rows[schema.NEXT_STATE]
        o = module.agent_inputs(rows[schema.OBS], s)  # (B, n, d)
        o2 = module.agent_inputs(rows[schema.NEXT_OBS], s2)
        mask, mask2 = rows[schema.ACTION_MASK], rows[schema.NEXT_ACTION_MASK]
        # Q and the policy's scores (Q + α·β·log π0 under MIFQ's default BC prior) (B, n, A)
        q, scores, logits = policy_scores(module, module.q_values(o), mask)
        with torch.no_grad():
            scores2 = policy_scores(module, target(o2), mask2)[1]
        a = rows[schema.ACTIONS]
        q_taken = q.gather(-1, a.unsqueeze(-1)).squeeze(-1)  # (B, n)
        v = soft_value(scores, mask, config.alpha)
        v2 = soft_value(scores2, mask2, config.alpha)
        done = rows[schema.TERMINATED]
        loss, _ = mifq_loss(q_taken_e=q_taken, v_next_e=v2, done_e=done, state_e=s, v_cur=v, v_next=v2, done=done,
                            state=s, next_state=s2, r_mixer=module.r_mixer, v_mixer=module.v_mixer,
                            gamma=config.gamma, phi=functools.partial(chi2_phi, coef=config.chi2_coef))
        if logits is not None:
            loss = loss + bc_term(logits, a, mask, 1.0)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
        opt.step()
        with torch.no_grad():
            for p_t, p in zip(target.parameters(), online.parameters()):
                p_t.mul_(1 - config.tau).add_(p, alpha=config.tau)

    for _ in range(5):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(updates):
        step()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return updates / (time.perf_counter() - t)


def online_learner(task, replay_rows, seed=0):
    """Online MIFQ (its defaults) on one local env runner, its replay buffer filled by 4 sampling rounds."""
    from rllib_mil.algorithms.mifq import MIFQConfig

    cfg = (MIFQConfig().environment(task)
           .training(expert_data={"expert": "scripted", "episodes": 128, "seed": 0},
                     train_batch_size_per_learner=replay_rows, num_updates_per_iteration=1)
           .env_runners(num_env_runners=0, num_envs_per_env_runner=4, rollout_fragment_length=25)
           .learners(num_learners=0)
           .debugging(seed=seed))
    algo = cfg.build_algo()
    for _ in range(4):
        algo.sample_into_replay()
    return algo


def time_replay_updates(algo, updates, flat):
    """Updates/s of MIFQ's online update (expert rows + replay rows, the loss, Adam, target) with the replay rows
    drawn as flat transitions (``flat``, rllib-mil's TeamEpisodeReplayBuffer) or as RLlib 2.60 draws them: one-step
    episodes from ``EpisodeReplayBuffer.sample`` turned into a batch by the learner connector pipeline."""
    n = algo.config.total_train_batch_size

    def update():
        if flat:
            kwargs = {"batch": algo.sample_replay_transitions(n)}
        else:
            kwargs = {"episodes": algo.local_replay_buffer.sample(num_items=n, n_step=1, gamma=algo.config.gamma,
                                                                  sample_episodes=True)}
        algo.learner_group.update(**kwargs, timesteps={"num_env_steps_sampled_lifetime": 1000})

    for _ in range(5):
        update()
    t = time.perf_counter()
    for _ in range(updates):
        update()
    return updates / (time.perf_counter() - t)


def replay_main(args):
    """--replay: flat transition draws against RLlib's episode draws, in the same process, alternating."""
    algo = online_learner(args.task, args.replay_rows)
    flat, episodes = [], []
    for _ in range(args.repeats):
        flat.append(time_replay_updates(algo, args.updates, flat=True))
        episodes.append(time_replay_updates(algo, args.updates, flat=False))
    algo.stop()
    report(args, {"task": args.task, "mode": "online_replay", "replay_rows": args.replay_rows,
                  "expert_rows": algo.config.expert_batch_size, "updates": args.updates,
                  "flat_updates_per_s": round(median(flat), 1), "episode_updates_per_s": round(median(episodes), 1),
                  "speedup": round(median(flat) / median(episodes), 3)})


def median(xs):
    return sorted(xs)[len(xs) // 2]


def report(args, row):
    """Print one result row (with the machine facts) and append it to ``--out``."""
    row = {**row, "threads": args.threads, "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps(row) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mpe/simple_spread")
    p.add_argument("--batch", type=int, nargs="+", default=[128, 1024, 4096], help="expert rows per update")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3, help="alternating rllib/bare measurements; medians reported")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--replay", action="store_true",
                   help="online updates: replay rows drawn as flat transitions vs as RLlib's one-step episodes")
    p.add_argument("--replay-rows", type=int, default=64, help="replay rows per update with --replay")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import ray

    ray.init(num_cpus=1, num_gpus=1 if args.device == "cuda" else 0, include_dashboard=False, log_to_driver=False)
    import rllib_mil  # noqa: F401

    if args.replay:
        return replay_main(args)
    for b in args.batch:
        algo = rllib_learner(args.task, b, args.device)
        r, bare = [], []
        for _ in range(args.repeats):
            r.append(time_rllib(algo, args.updates))
            bare.append(time_bare(algo, b, args.updates))
        algo.stop()
        report(args, {"task": args.task, "batch": b, "device": args.device, "updates": args.updates,
                      "rllib_updates_per_s": round(median(r), 1), "bare_updates_per_s": round(median(bare), 1),
                      "ratio": round(median(r) / median(bare), 3)})


if __name__ == "__main__":
    main()

"""Learner updates per second: RLlib's MIFQ learner against a bare PyTorch loop computing the same loss on the same
tensors in the same process (issue 13). Printed as a ratio (target >= 0.8), since absolute numbers on a shared
machine are noise.

  rllib  ``LearnerGroup.update`` of offline MIFQ (expert rows from the on-device buffer, the MIFQ loss, Adam, grad
         clipping, polyak target update, metrics), as ``MIFQ.training_step`` calls it
  bare   a loop over the same module copy: draw rows from the same expert tensors, ``mifq_loss`` on them, backward,
         clip, Adam step, polyak target update; nothing else

    python benchmarks/learner.py                                    # simple_spread, batch 128 / 1024 / 4096, CPU
    python benchmarks/learner.py --batch 4096 --device cuda --out benchmarks/results/learner.jsonl
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
    from rllib_mil.algorithms.mifq.mifq_loss import chi2_phi, mifq_loss
    from rllib_mil.data import schema
    from rllib_mil.modules.soft import soft_value

    learner = algo.learner_group._learner
    config = algo.config
    module = copy.deepcopy(learner.module["default_policy"].unwrapped())
    expert = learner._expert
    gen = torch.Generator(device=expert.device).manual_seed(0)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=config.lr)
    target, online = module._target_q_net, module.q_net

    def step():
        rows = expert.sample(batch, generator=gen)
        s, s2 = rows[schema.STATE], rows[schema.NEXT_STATE]
        o = module.agent_inputs(rows[schema.OBS], s)  # (B, n, d)
        o2 = module.agent_inputs(rows[schema.NEXT_OBS], s2)
        q = module.q_values(o)  # (B, n, A)
        with torch.no_grad():
            q2 = target(o2)
        a = rows[schema.ACTIONS]
        q_taken = q.gather(-1, a.unsqueeze(-1)).squeeze(-1)  # (B, n)
        v = soft_value(q, rows[schema.ACTION_MASK], config.alpha)
        v2 = soft_value(q2, rows[schema.NEXT_ACTION_MASK], config.alpha)
        done = rows[schema.TERMINATED]
        loss, _ = mifq_loss(q_taken_e=q_taken, v_next_e=v2, done_e=done, state_e=s, v_cur=v, v_next=v2, done=done,
                            state=s, next_state=s2, r_mixer=module.r_mixer, v_mixer=module.v_mixer,
                            gamma=config.gamma, phi=functools.partial(chi2_phi, coef=config.chi2_coef))
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="mpe/simple_spread")
    p.add_argument("--batch", type=int, nargs="+", default=[128, 1024, 4096], help="expert rows per update")
    p.add_argument("--updates", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3, help="alternating rllib/bare measurements; medians reported")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import ray

    ray.init(num_cpus=1, num_gpus=1 if args.device == "cuda" else 0, include_dashboard=False, log_to_driver=False)
    import rllib_mil  # noqa: F401

    for b in args.batch:
        algo = rllib_learner(args.task, b, args.device)
        r, bare = [], []
        for _ in range(args.repeats):
            r.append(time_rllib(algo, args.updates))
            bare.append(time_bare(algo, b, args.updates))
        algo.stop()
        med = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
        row = {"task": args.task, "batch": b, "device": args.device, "updates": args.updates,
               "rllib_updates_per_s": round(med(r), 1), "bare_updates_per_s": round(med(bare), 1),
               "ratio": round(med(r) / med(bare), 3), "threads": args.threads,
               "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count()}
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()

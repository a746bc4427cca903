"""Behaviour-cloning reference: how far can *any* learner get by imitating the same 128 scripted demonstrations?

Offline BC (cross-entropy on the expert's actions under the action mask) with the network the imitation
algorithms use (``SharedAgentQNet``, [128, 128], agent id), on the demonstrations ``benchmarks/mifq_mpe.py``
uses (scripted, 128 episodes, seed 0). Reports greedy decentralized return and expert-normalized score on the
same evaluation seeds as ``mifq_mpe.py`` (R_expert and R_random measured in the same run), and the greedy
agreement with the expert's action on held-out expert states (32 episodes from other seeds; agents with a
single available action are left out).

    python benchmarks/bc_reference.py --seeds 0 1 2 --out benchmarks/results/bc_reference.jsonl
"""

import argparse
import json
import os
import sys
import time

TASKS = ["mpe/simple_spread", "mpe/simple_reference", "mpe/simple_speaker_listener"]


def run_one(task, seed, args):
    import numpy as np
    import torch

    from rllib_mil.algorithms.bc.bc_loss import bc_term
    from rllib_mil.data import schema as S
    from rllib_mil.data.demos import ensure_demos
    from rllib_mil.data.expert_buffer import ExpertBuffer
    from rllib_mil.data.experts import Expert, make_expert
    from rllib_mil.envs import make_team_env
    from rllib_mil.envs.contract import ACTION_MASK, OBS
    from rllib_mil.evaluation import run_episodes
    from rllib_mil.modules.agent_nets import SharedAgentQNet
    from rllib_mil.modules.soft import greedy_actions

    torch.manual_seed(seed)
    train = ExpertBuffer.from_path(ensure_demos(task, {}, "scripted", args.demos, 0))
    held = ExpertBuffer.from_path(ensure_demos(task, {}, "scripted", 32, 50_000))
    _, n, d = train.tensors[S.OBS].shape
    net = SharedAgentQNet(d, n, train.tensors[S.ACTION_MASK].shape[-1], hidden=(128, 128), add_agent_id=True)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    for _ in range(args.updates):
        b = train.sample(128, generator=gen)
        # Masked NLL of the expert's actions over agents with a real choice (the same term as MIFQ's bc_coef).
        loss = bc_term(net(b[S.OBS]), b[S.ACTIONS], b[S.ACTION_MASK], temperature=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
    wall = time.time() - t0
    net.eval()

    with torch.no_grad():
        mask = held.tensors[S.ACTION_MASK]
        agree = greedy_actions(net(held.tensors[S.OBS]), mask) == held.tensors[S.ACTIONS]  # (N, n)
        agreement = float(agree[(mask > 0).sum(-1) > 1].float().mean())

    class Greedy(Expert):
        name = "bc"

        @torch.no_grad()
        def act(self, team_obs, rng):
            q = net(torch.as_tensor(team_obs[OBS], dtype=torch.float32)[None])
            return greedy_actions(q, torch.as_tensor(team_obs[ACTION_MASK])[None])[0].numpy().astype(np.int64)

    env = make_team_env(task, {})
    final = run_episodes(env, Greedy(), args.eval_episodes, args.eval_seed)
    ret = final["return_mean"]
    r_exp = run_episodes(env, make_expert("scripted", env), args.eval_episodes, args.eval_seed)["return_mean"]
    r_rand = run_episodes(env, make_expert("random", env), args.eval_episodes, args.eval_seed)["return_mean"]
    env.close()
    return {
        "task": task, "algo": "BC", "seed": seed, "return": ret, "expert_return": r_exp, "random_return": r_rand,
        "score": (ret - r_rand) / (r_exp - r_rand), "win_rate": final.get("win_rate"), "heldout_agreement": agreement, "updates": args.updates,
        "demos": args.demos, "lr": args.lr, "eval_episodes": args.eval_episodes, "wall_s": wall,
        "budget": (f"Budget: offline BC, {args.updates} updates of 128 expert rows, lr={args.lr}, {args.demos} "
                   f"scripted-expert episodes; greedy decentralized evaluation on {args.eval_episodes} episodes."),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", nargs="+", default=TASKS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--demos", type=int, default=128)
    p.add_argument("--updates", type=int, default=10_000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-episodes", type=int, default=50)
    p.add_argument("--eval-seed", type=int, default=100_000, help="the same as benchmarks/mifq_mpe.py")
    p.add_argument("--out", default="benchmarks/results/bc_reference.jsonl")
    args = p.parse_args(argv)

    import torch

    import rllib_mil  # noqa: F401

    torch.set_num_threads(1)
    for task in args.tasks:
        for seed in args.seeds:
            row = run_one(task, seed, args)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

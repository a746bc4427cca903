"""Where a simple_spread policy loses return against the scripted expert: approach, stopping distance, collisions.

Plays a checkpoint (greedy, decentralized) and the scripted expert on the same episodes and splits each one's team
return. mpe2's spread reward with ``local_ratio`` 0.5 averaged over agents is
``r_t = -1/2 * D_t - 1/2 * mean_i(collisions_i,t)``, where ``D_t`` is the sum over landmarks of the nearest agent's
distance. The distance part is split into what the agents would lose standing at their final positions all
episode (``25 * D_T``, "stopping") and the excess of the way there (``sum_t D_t - 25 * D_T``, "approach").

    python benchmarks/spread_gap.py benchmarks/experts/mappo_mpe_spread_actor128_5m --episodes 100 \
        --out benchmarks/results/spread_gap.jsonl

With ``--out``, one JSON line per policy (the checkpoint and the scripted expert) is appended to that file.
"""

import argparse
import json
import os

import numpy as np

COLLISION_DIST = 0.3  # two agents of radius 0.15 touch
NEAR = 0.1  # an agent this close to its nearest landmark counts as "arrived" for the speed diagnostic


def spread_stats(team_obs, n: int):
    """(D_t, colliding pairs, whether two agents are nearest to the same landmark, speeds of the agents within
    ``NEAR`` of a landmark) from the agents' obs rows ``[vel(2), pos(2), landmark_rel(2n), ...]``."""
    from rllib_mil.envs.contract import OBS

    o = np.asarray(team_obs[OBS], dtype=np.float64)
    pos = o[:, 2:4]
    landmarks = pos[0] + o[0, 4:4 + 2 * n].reshape(n, 2)
    dist = np.linalg.norm(pos[:, None] - landmarks[None], axis=-1)  # (agents, landmarks)
    pair = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    pairs = int(((pair < COLLISION_DIST) & ~np.eye(n, dtype=bool)).sum() // 2)
    speed = np.linalg.norm(o[:, 0:2], axis=-1)
    arrived = speed[dist.min(1) < NEAR].tolist()
    return float(dist.min(0).sum()), pairs, len(set(dist.argmin(1).tolist())) < n, arrived


def profile(env, policy, episodes: int, seed: int, n: int) -> dict:
    from rllib_mil.data.experts import episode_rng, play_episode

    returns, dist_curves, pairs, shared, arrived = [], [], [], [], []
    for k in range(episodes):
        ret, _, steps = play_episode(env, policy, seed + k, episode_rng(seed, k), record=True)
        stats = [spread_stats(next_obs, n) for _, _, _, next_obs, *_ in steps]  # after each step, as the reward
        returns.append(ret)
        dist_curves.append([d for d, *_ in stats])
        pairs.append(sum(p for _, p, *_ in stats))
        shared.append(stats[-1][2])
        arrived.extend(v for *_, speeds in stats for v in speeds)
    d = np.asarray(dist_curves)  # (episodes, T)
    steps = d.shape[1]
    return {
        "return": float(np.mean(returns)),
        "distance_per_step": d.mean(0).round(3).tolist(),
        "final_distance": float(d[:, -1].mean()),
        "approach_loss": float(0.5 * (d.sum(1) - steps * d[:, -1]).mean()),  # return lost on the way
        "stopping_loss": float(0.5 * steps * d[:, -1].mean()),  # return lost standing where they end
        "colliding_pair_steps": float(np.mean(pairs)),
        "shared_landmark_at_end": float(np.mean(shared)),
        # an agent that has arrived but keeps moving circles or overshoots its landmark (the stopping loss)
        "speed_when_arrived": float(np.mean(arrived)) if arrived else float("nan"),
        # the rest of the return: each colliding pair costs 1/n per step
        "collision_loss": float(-(np.mean(returns) + 0.5 * d.sum(1).mean())),
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint")
    p.add_argument("--episodes", type=int, default=100)
    p.add_argument("--seed", type=int, default=10_000, help="episode k is reset with seed + k (mappo_experts.py's)")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--out", default=None, help="append one JSON line per policy to this file")
    args = p.parse_args(argv)

    import torch

    import rllib_mil  # noqa: F401  (registers the algorithms for checkpoint loading)
    from rllib_mil.data.experts import make_expert
    from rllib_mil.envs import make_team_env
    from rllib_mil.evaluation import ModulePolicy, load_team_module

    torch.set_num_threads(1)
    env = make_team_env("mpe/simple_spread", {"N": args.n, "max_cycles": 25})
    module, _ = load_team_module(args.checkpoint)
    rows = {name: profile(env, pol, args.episodes, args.seed, args.n)
            for name, pol in (("checkpoint", ModulePolicy(module)), ("scripted", make_expert("scripted", env)))}
    env.close()
    for name, r in rows.items():
        print(f"{name:10s} return {r['return']:.2f}  approach loss {r['approach_loss']:.2f}  stopping loss "
              f"{r['stopping_loss']:.2f}  collision loss {r['collision_loss']:.2f}"
              f"  final distance {r['final_distance']:.3f}  colliding pair-steps {r['colliding_pair_steps']:.2f}"
              f"  shared landmark at end {r['shared_landmark_at_end']:.2f}"
              f"  speed within {NEAR} of a landmark {r['speed_when_arrived']:.3f}")
        print("           distance per step: " + " ".join(f"{x:.2f}" for x in r["distance_per_step"]))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "a") as f:
            for name, r in rows.items():
                f.write(json.dumps({"policy": name, "checkpoint": args.checkpoint, "task": "mpe/simple_spread",
                                    "n": args.n, "episodes": args.episodes, "seed": args.seed, **r}) + "\n")


if __name__ == "__main__":
    main()

"""Do the agents of a simple_reference policy use their messages? (issue 8: MAPPO's plateau at ~0.47 of the scripted
expert on MPE simple_reference.)

Each agent of simple_reference sees the colour of the landmark its partner must reach and says one of 10 words;
its partner sees that word one step later. A team that communicates has (a) speakers whose word depends on the goal
colour they see, and (b) listeners whose move depends on the word they hear. For a policy (a checkpoint, or
"scripted" / "random"), over greedy rollouts:

  speaker_bits   mutual information I(word; goal) between the goal landmark an agent sees and the word it says,
                 in bits (max log2(3) = 1.58: a word that names the goal); 0 = the word ignores the goal
  listener_moves share of (step, agent) observations where the agent's greedy move changes when the heard word is
                 replaced by another of the words said in these rollouts (an intervention on the input; greedy
                 feed-forward policies only, null otherwise)

    python benchmarks/message_use.py scripted random /tmp/mappo1m/simple_reference-seed0 --episodes 50
"""
import argparse
import json
import math
import sys
from collections import Counter

import numpy as np

# simple_reference row: [vel(2), landmark_rel(3x2), goal_colour(3), heard_word(10)] (docs/experts.md)
GOAL, HEARD = slice(8, 11), slice(11, 21)


def mutual_information(pairs) -> float:
    n = len(pairs)
    joint, a, b = Counter(pairs), Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    return sum(c / n * math.log2(c * n / (a[x] * b[y])) for (x, y), c in joint.items())


def measure(policy_arg: str, episodes: int, seed: int) -> dict:
    from rllib_mil.envs import make_team_env
    from rllib_mil.envs.contract import OBS
    from rllib_mil.data.experts import make_expert
    from rllib_mil.evaluation import expert_from_arg

    env = make_team_env("mpe/simple_reference")
    policy = expert_from_arg(policy_arg, "mpe/simple_reference")
    if isinstance(policy, str):  # scripted / random
        policy = make_expert(policy, env)
    rng = np.random.default_rng(seed)
    said, observed = [], []  # (goal, word) per (step, agent); (team obs, agent) for the interventions
    returns = []
    for k in range(episodes):
        obs, _ = env.reset(seed=seed + k)
        if hasattr(policy, "reset"):
            policy.reset()
        done, ret = False, 0.0
        while not done:
            actions = policy.act(obs, rng)
            for i in range(env.n_agents):
                said.append((int(np.argmax(obs[OBS][i, GOAL])), int(actions[i]) // 5))
                if obs[OBS][i, HEARD].any():
                    observed.append(({key: np.array(v, copy=True) for key, v in obs.items()}, i, int(actions[i]) % 5))
            obs, r, term, trunc, _ = env.step(actions)
            ret += float(r)
            done = term or trunc
        returns.append(ret)
    words = sorted({w for _, w in said})
    changed = 0
    stateful = hasattr(policy, "module") and policy.module.is_stateful()
    # Only for deterministic, feed-forward policies: a random policy's move changes on every call, and a recurrent
    # one's also depends on its history.
    measurable = policy_arg != "random" and not stateful
    if len(words) > 1 and measurable:
        for team_obs, i, move in observed:
            heard = int(np.argmax(team_obs[OBS][i, HEARD]))
            for w in words:
                if w == heard:
                    continue
                swapped = {key: np.array(v, copy=True) for key, v in team_obs.items()}
                swapped[OBS][i, HEARD] = 0.0
                swapped[OBS][i, 11 + w] = 1.0
                if int(policy.act(swapped, rng)[i]) % 5 != move:
                    changed += 1
                    break
    env.close()
    return {"policy": policy_arg, "episodes": episodes, "seed": seed, "return": float(np.mean(returns)),
            "speaker_bits": mutual_information(said), "words_used": words,
            "listener_moves": (changed / max(1, len(observed)) if len(words) > 1 else 0.0) if measurable else None}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policies", nargs="+", help="checkpoint paths, or scripted / random")
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=10_000)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    for arg in args.policies:
        print(json.dumps(measure(arg, args.episodes, args.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

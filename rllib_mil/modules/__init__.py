"""Torch building blocks shared by the algorithms: agent nets, mixers, masked soft-Q helpers."""
from rllib_mil.modules.agent_nets import SharedAgentQNet
from rllib_mil.modules.mixers import (
    MIXERS,
    HyperMonotoneMixer,
    Mixer,
    SumMixer,
    WeightedSumMixer,
    make_mixer,
)
from rllib_mil.modules.soft import boltzmann_sample, greedy_actions, masked_q, soft_value

__all__ = [
    "SharedAgentQNet",
    "Mixer",
    "SumMixer",
    "WeightedSumMixer",
    "HyperMonotoneMixer",
    "MIXERS",
    "make_mixer",
    "masked_q",
    "soft_value",
    "boltzmann_sample",
    "greedy_actions",
]

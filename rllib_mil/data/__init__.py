"""Demonstrations: Parquet schema, collection, validation, caching, scripted experts, expert buffer."""
from rllib_mil.data import schema
from rllib_mil.data.demos import (
    DemoValidationError,
    Demos,
    collect_demos,
    default_cache_dir,
    demos_info,
    ensure_demos,
    read_demos,
)
from rllib_mil.data.experts import EXPERT_NAMES, Expert, RandomExpert, make_expert, run_episodes

__all__ = [
    "DemoValidationError",
    "Demos",
    "EXPERT_NAMES",
    "Expert",
    "ExpertBuffer",
    "RandomExpert",
    "collect_demos",
    "default_cache_dir",
    "demos_info",
    "ensure_demos",
    "make_expert",
    "read_demos",
    "run_episodes",
    "schema",
]


def __getattr__(name):
    # ExpertBuffer imports torch; load it only when asked for, so env runners / the CLI stay light.
    if name == "ExpertBuffer":
        from rllib_mil.data.expert_buffer import ExpertBuffer

        return ExpertBuffer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Episode metrics every team env shares: win rate (where the game reports ``battle_won``) and the
expert-normalized score (where the demonstrations carry the expert's and random play's returns)."""

from ray.rllib.callbacks.callbacks import RLlibCallback

from rllib_mil.envs.contract import INFO_BATTLE_WON

WIN_RATE = "win_rate"
# (R - R_random) / (R_expert - R_random) of each finished episode: 1 = as good as the demonstrator, 0 = random.
EXPERT_SCORE = "expert_score"
SMOOTHING = 100  # episodes, as RLlib's episode_return_mean


class TeamMetricsCallback(RLlibCallback):
    """Logs ``env_runners/win_rate`` (and ``evaluation/env_runners/win_rate``) for envs with ``battle_won``, and
    ``env_runners/expert_score`` (and the evaluation one) when the algorithm's ``expert_data`` has the returns of
    its expert and of random play in its metadata (demonstrations collected by this package)."""

    def __init__(self):
        super().__init__()
        self._reference = None  # (expert return, random return), False when there is none

    def _score_reference(self, env_runner):
        if self._reference is None:
            self._reference = False
            config = getattr(env_runner, "config", None)
            spec = getattr(config, "expert_data", None)
            if spec is not None:
                from rllib_mil.data.demos import cached_demos_path, score_reference

                try:
                    path = spec if isinstance(spec, str) else cached_demos_path(
                        config.env, dict(config.env_config or {}), spec.get("expert", "scripted"),
                        int(spec.get("episodes", 128)), int(spec.get("seed", 0)))
                    self._reference = score_reference(path) or False
                except Exception:  # never fail an episode over a metric
                    self._reference = False
        return self._reference

    def on_episode_end(self, *, episode, metrics_logger=None, env_runner=None, **kwargs) -> None:
        if metrics_logger is None:
            return
        info = episode.get_infos(-1)
        if isinstance(info, dict) and INFO_BATTLE_WON in info:
            metrics_logger.log_value(WIN_RATE, float(bool(info[INFO_BATTLE_WON])), window=SMOOTHING)
        reference = self._score_reference(env_runner)
        if reference:
            expert, random = reference
            metrics_logger.log_value(EXPERT_SCORE, (episode.get_return() - random) / (expert - random),
                                     window=SMOOTHING)

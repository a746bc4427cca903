"""Episode metrics every team env shares: win rate (where the game reports ``battle_won``)."""

from ray.rllib.callbacks.callbacks import RLlibCallback

from rllib_mil.envs.contract import INFO_BATTLE_WON

WIN_RATE = "win_rate"


class TeamMetricsCallback(RLlibCallback):
    """Logs ``env_runners/win_rate`` (and ``evaluation/env_runners/win_rate``) for envs with ``battle_won``."""

    def on_episode_end(self, *, episode, metrics_logger=None, **kwargs) -> None:
        if metrics_logger is None:
            return
        info = episode.get_infos(-1)
        if isinstance(info, dict) and INFO_BATTLE_WON in info:
            metrics_logger.log_value(WIN_RATE, float(bool(info[INFO_BATTLE_WON])), window=100)

from rllib_mil.algorithms.dmix.dmix import DMIX, DMIXDA, DMIXConfig, DMIXDAConfig

__all__ = ["DMIX", "DMIXDA", "DMIXConfig", "DMIXDAConfig"]

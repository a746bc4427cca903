from rllib_mil.algorithms.qmix.qmix import QMIX, QMIXDA, QMIXConfig, QMIXDAConfig

__all__ = ["QMIX", "QMIXDA", "QMIXConfig", "QMIXDAConfig"]

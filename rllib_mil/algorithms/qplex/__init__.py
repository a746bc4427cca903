from rllib_mil.algorithms.qplex.qplex import QPLEX, QPLEXDA, QPLEXConfig, QPLEXDAConfig

__all__ = ["QPLEX", "QPLEXDA", "QPLEXConfig", "QPLEXDAConfig"]

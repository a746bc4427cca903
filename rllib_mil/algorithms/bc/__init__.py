from rllib_mil.algorithms.bc.bc import BC, BCConfig

__all__ = ["BC", "BCConfig"]

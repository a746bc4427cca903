from rllib_mil.algorithms.masqil.masqil import MASQIL, MASQILConfig

__all__ = ["MASQIL", "MASQILConfig"]

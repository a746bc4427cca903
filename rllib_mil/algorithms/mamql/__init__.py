from rllib_mil.algorithms.mamql.mamql import MAMQL, MAMQLConfig

__all__ = ["MAMQL", "MAMQLConfig"]

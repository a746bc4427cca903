from rllib_mil.algorithms.magail.magail import MAGAIL, MAGAILConfig

__all__ = ["MAGAIL", "MAGAILConfig"]

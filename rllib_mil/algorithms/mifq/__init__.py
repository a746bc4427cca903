from rllib_mil.algorithms.mifq.mifq import IIQ, IQVDN, MIFQ, IIQConfig, IQVDNConfig, MIFQConfig

__all__ = ["MIFQ", "MIFQConfig", "IIQ", "IIQConfig", "IQVDN", "IQVDNConfig"]

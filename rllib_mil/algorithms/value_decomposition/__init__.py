"""Shared pieces of the value-decomposition algorithms (QMIX, QPLEX, DMIX) and their IGM-DA mode."""

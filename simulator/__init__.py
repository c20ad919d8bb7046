"""Synthetic card traffic for ledgerlane: a seeded world, a corpus of bad records, a traffic plan, a producer.

Everything except ``producer`` is pure and deterministic: the same seed and start give the same bytes.
"""

"""Shared code for ledgerlane: configuration, Spark session, table catalog, services, errors, CLI."""

__version__ = "0.1.0"

"""The data products of the batch lane, their tables and what each is built from.

One ``Product`` line per product. ``upstream`` are products read through the certification gate;
``sources`` are raw tables read at a pinned Delta version. Rerun planning walks this graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import ConfigError


@dataclass(frozen=True)
class Product:
    name: str
    table: str
    keys: tuple[str, ...]
    upstream: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()


_PRODUCTS = [
    Product("transactions_view", "silver.transactions_view", keys=("event_id",), sources=("bronze.admitted_events",)),
    Product("account_features", "gold.account_features", keys=("run_id", "account_id"),
            upstream=("transactions_view",)),
    Product("merchant_risk", "gold.merchant_risk", keys=("run_id", "merchant_id"),
            upstream=("transactions_view",), sources=("labels.label_events",)),
]

PRODUCTS: dict[str, Product] = {p.name: p for p in _PRODUCTS}
NAMES: tuple[str, ...] = tuple(p.name for p in _PRODUCTS)   # already in dependency order


def product(name: str) -> Product:
    """A product by its name or its table name (``transactions_view`` or ``silver.transactions_view``)."""
    for candidate in _PRODUCTS:
        if name in (candidate.name, candidate.table):
            return candidate
    raise ConfigError(f"unknown data product {name!r}: expected one of {', '.join(NAMES)}")


def dependents(name: str) -> set[str]:
    """Every product built, directly or transitively, from ``name``."""
    direct = {p.name for p in _PRODUCTS if name in p.upstream}
    return direct.union(*(dependents(child) for child in direct))


def ancestors(name: str) -> set[str]:
    """Every product ``name`` is built from, directly or transitively."""
    direct = set(product(name).upstream)
    return direct.union(*(ancestors(parent) for parent in direct))


def in_build_order(names: set[str] | list[str]) -> list[str]:
    wanted = set(names)
    return [name for name in NAMES if name in wanted]

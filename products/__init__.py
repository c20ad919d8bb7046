"""The data products, in dependency order, and the graph the rerun planner walks.

Each product is declared once, in its own module (``products/<name>.py``): its table, inputs, pure
transform, schema contract, checks and reconciliation totals. Adding a product is one new module
and one line in ``_PRODUCTS``.
"""

from __future__ import annotations

from common.errors import ConfigError
from products import account_features, merchant_risk, transactions_view
from products.model import Product

_PRODUCTS = [transactions_view.PRODUCT, account_features.PRODUCT, merchant_risk.PRODUCT]

PRODUCTS: dict[str, Product] = {p.name: p for p in _PRODUCTS}
NAMES: tuple[str, ...] = tuple(p.name for p in _PRODUCTS)   # in dependency order


def product(name: str) -> Product:
    """A product by its name or its table name (``transactions_view`` or ``silver.transactions_view``)."""
    for candidate in _PRODUCTS:
        if name in (candidate.name, candidate.table.name):
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

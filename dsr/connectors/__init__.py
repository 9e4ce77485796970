"""Connector registry: one class per store type (``sql``, ``redis``, ``http``, ``mamoru``).

See :class:`dsr.connectors.base.BaseConnector` for the contract and docs/dsr.md for an example.
"""

from __future__ import annotations

from dsr.connectors.base import BaseConnector, StoreError, StoreUnavailable, UnknownConnector
from governance.registry import Registry, UnknownName

__all__ = [
    "BaseConnector", "StoreError", "StoreUnavailable", "UnknownConnector", "connector_class",
    "connector_types", "connectors", "register",
]


def autoload() -> None:
    """Import the built-in connectors (called from ``DsrConfig.ready``)."""
    from dsr.connectors import http, mamoru, redis_store, sql  # noqa: F401


connectors: Registry[type[BaseConnector]] = Registry("connector type", base=BaseConnector, autoload=autoload)
register = connectors.register


def connector_types() -> list[str]:
    return connectors.names()


def connector_class(identifier: str) -> type[BaseConnector]:
    try:
        return connectors.get(identifier)
    except UnknownName as exc:
        raise UnknownConnector(
            f"unknown connector type {identifier!r}; known types: {', '.join(exc.known)}"
        ) from None

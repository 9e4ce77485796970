"""Connector registry: one class per store type (``sql``, ``redis``, ``http``, ``mamoru``).

See :class:`dsr.connectors.base.BaseConnector` for the contract and docs/dsr.md for an example.
"""

from __future__ import annotations

from dsr.connectors.base import BaseConnector, StoreError, StoreUnavailable, UnknownConnector

_registry: dict[str, type[BaseConnector]] = {}

__all__ = [
    "BaseConnector", "StoreError", "StoreUnavailable", "UnknownConnector", "connector_class",
    "connector_types", "register",
]


def register(cls: type[BaseConnector]) -> type[BaseConnector]:
    if not cls.identifier:
        raise ValueError(f"{cls.__name__} needs an identifier")
    _registry[cls.identifier] = cls
    return cls


def connector_types() -> list[str]:
    if not _registry:
        autoload()
    return sorted(_registry)


def connector_class(identifier: str) -> type[BaseConnector]:
    if not _registry:
        autoload()
    try:
        return _registry[identifier]
    except KeyError:
        raise UnknownConnector(
            f"unknown connector type {identifier!r}; known types: {', '.join(sorted(_registry))}"
        ) from None


def autoload() -> None:
    """Import the built-in connectors (called from ``DsrConfig.ready``)."""
    from dsr.connectors import http, mamoru, redis_store, sql  # noqa: F401

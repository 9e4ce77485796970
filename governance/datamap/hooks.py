"""What the data map needs to know from the apps that act on it (registry).

The data map (floor 2) validates strategies and inspects live stores, but the strategies and
connectors live in ``dsr`` (floor 3). ``dsr`` registers them here from ``DsrConfig.ready()``;
the data map never imports ``dsr``. Without registrations the built-in names still validate
and no store is inspected.

A strategy checker answers two questions::

    class StrategyChecker(Protocol):
        def options_problems(self, options: dict) -> list[str]: ...
        def column_problems(self, column: ColumnInfo, options: dict) -> list[SchemaNote]: ...

A store inspector reads the live schema of one store (``StoreSchema``) or raises
:class:`StoreNotInspectable` when the store cannot be reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

ERROR = "error"
WARNING = "warning"

# Generic column kinds compared across databases.
KIND_STRING = "string"
KIND_INTEGER = "integer"
KIND_NUMBER = "number"
KIND_DATETIME = "datetime"
KIND_BOOLEAN = "boolean"
KIND_BINARY = "binary"
KIND_JSON = "json"
KIND_OTHER = "other"


@dataclass(frozen=True)
class ColumnInfo:
    """One column as the live store has it."""

    name: str
    kind: str
    type_name: str = ""
    length: int | None = None
    nullable: bool = True
    primary_key: bool = False

    def as_dict(self) -> dict:
        return {"kind": self.kind, "type": self.type_name, "length": self.length,
                "nullable": self.nullable}


@dataclass(frozen=True)
class SchemaNote:
    """A problem (``error``) or a remark (``warning``) about a path of the data map."""

    severity: str
    message: str
    path: tuple = ()


@dataclass
class CollectionSchema:
    """The live shape of one collection; ``columns`` is None when the store has no schema.

    ``keys``: the column sets that identify one row (primary key first, then unique constraints
    and unique indexes); None when the store cannot say (no schema, a view). The data map's
    ``primary_key`` must contain one of them, or changing a row by it changes other rows too.
    """

    columns: dict[str, ColumnInfo] | None = None
    notes: list[SchemaNote] = field(default_factory=list)
    keys: list[tuple[str, ...]] | None = None


@dataclass
class StoreSchema:
    """What an inspector found: per collection name, its schema (missing: not found)."""

    description: str = ""
    collections: dict[str, CollectionSchema] = field(default_factory=dict)
    notes: list[SchemaNote] = field(default_factory=list)


class StoreNotInspectable(Exception):
    """The store cannot be reached or its settings cannot be resolved (a warning, not an error)."""


class StrategyChecker(Protocol):
    def options_problems(self, options: dict) -> list[str]: ...

    def column_problems(self, column: ColumnInfo, options: dict) -> list[SchemaNote]: ...


# store spec, resolved connection settings -> StoreSchema
Inspector = Callable[[Any, dict], StoreSchema]

_strategies: Callable[[], dict[str, StrategyChecker]] | None = None
_connector_types: Callable[[], list[str]] | None = None
_inspectors: dict[str, Inspector] = {}


def strategies_provide(provider: Callable[[], dict[str, StrategyChecker]]) -> None:
    """Register where the strategies come from (a callable: name -> checker)."""
    global _strategies
    _strategies = provider


def connector_types_provide(provider: Callable[[], list[str]]) -> None:
    global _connector_types
    _connector_types = provider


def inspector_register(connector_type: str, inspector: Inspector) -> None:
    _inspectors[connector_type] = inspector


def strategy_checkers() -> dict[str, StrategyChecker] | None:
    """Name -> checker, or None when no app registered strategies."""
    return _strategies() if _strategies is not None else None


def connector_types() -> list[str] | None:
    return _connector_types() if _connector_types is not None else None


def inspector_for(connector_type: str) -> Inspector | None:
    return _inspectors.get(connector_type)

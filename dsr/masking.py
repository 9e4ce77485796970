"""Masking strategies (registry): how an erasure changes one field's value.

A strategy computes the new value from the *original* value read in the access phase, so that
running an erasure node twice writes the same values (idempotent). Keys are per request: the same
value hashes the same way within one request and differently across requests.

Add one::

    @register
    class Uppercase(BaseStrategy):
        identifier = "uppercase"
        verbose_name = "Upper-case (example)"

        def mask(self, value, *, context):
            return None if value is None else str(value).upper()
"""

from __future__ import annotations

import hashlib
import hmac
import random
import string
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError

ROW_DELETE = "delete_row"
RETAIN = "retain"


class UnknownStrategy(DomainError):
    code = "unknown_strategy"
    title = _("Unknown masking strategy.")


@dataclass(frozen=True)
class MaskContext:
    """What a strategy may use: the request's secret and where the value sits."""

    secret: bytes
    node: str
    field: str
    row_key: str
    options: dict


class BaseStrategy:
    identifier: str = ""
    verbose_name: str = ""
    #: True when the strategy removes the whole row (connectors delete instead of update).
    deletes_row: bool = False
    #: True when the value stays as it is (legal hold).
    keeps_value: bool = False

    def mask(self, value, *, context: MaskContext):
        raise NotImplementedError(f"{type(self).__name__}.mask() must return the masked value")


_registry: dict[str, BaseStrategy] = {}


def register(cls: type[BaseStrategy]) -> type[BaseStrategy]:
    if not cls.identifier:
        raise ValueError(f"{cls.__name__} needs an identifier")
    _registry[cls.identifier] = cls()
    return cls


def strategy_names() -> list[str]:
    return sorted(_registry)


def strategy_get(name: str) -> BaseStrategy:
    try:
        return _registry[name]
    except KeyError:
        raise UnknownStrategy(
            f"unknown masking strategy {name!r}; known: {', '.join(strategy_names())}"
        ) from None


def _digest(context: MaskContext, value) -> str:
    return hmac.new(context.secret, str(value).encode("utf-8"), hashlib.sha256).hexdigest()


@register
class NullStrategy(BaseStrategy):
    identifier = "null"
    verbose_name = "Set to null"

    def mask(self, value, *, context):
        return None


@register
class HashStrategy(BaseStrategy):
    """Keyed SHA-256 (HMAC) of the value, hex; ``length`` option truncates."""

    identifier = "hash"
    verbose_name = "Keyed hash (stable within the request)"

    def mask(self, value, *, context):
        if value is None:
            return None
        digest = _digest(context, value)
        return digest[: int(context.options.get("length", 64))]


@register
class HmacStrategy(HashStrategy):
    identifier = "hmac"
    verbose_name = "HMAC-SHA256 (stable within the request)"


@register
class RandomRewriteStrategy(BaseStrategy):
    """Random letters of the same length (or ``length``), seeded per request, row and field."""

    identifier = "random_rewrite"
    verbose_name = "Random rewrite"

    def mask(self, value, *, context):
        if value is None:
            return None
        seed = _digest(context, f"{context.node}|{context.field}|{context.row_key}")
        rng = random.Random(seed)  # noqa: S311 - not a secret, only unlinkable from the original
        length = int(context.options.get("length", len(str(value)) or 8))
        text = "".join(rng.choice(string.ascii_lowercase) for _ in range(length))
        if isinstance(value, int) and not isinstance(value, bool):
            return int(rng.random() * 10**6)
        return text


@register
class DeleteRowStrategy(BaseStrategy):
    identifier = ROW_DELETE
    verbose_name = "Delete the whole row"
    deletes_row = True

    def mask(self, value, *, context):
        return None


@register
class RetainStrategy(BaseStrategy):
    identifier = RETAIN
    verbose_name = "Retain (legal hold)"
    keeps_value = True

    def mask(self, value, *, context):
        return value


@dataclass
class RowPlan:
    """What happens to one row: delete it, or update these fields."""

    key: dict
    delete: bool
    values: dict
    original: dict


def row_plan(*, collection, row: dict, secret: bytes, node: str) -> RowPlan | None:
    """Plan the erasure of one row from the collection's field strategies (None: nothing to do).

    A row with a retained field is never deleted: its other personal fields are masked instead
    (``delete_row`` falls back to ``null``), so only what the hold allows stays.
    """
    pk = collection.primary_key
    key = {name: row.get(name) for name in pk}
    row_key = "|".join(str(key[k]) for k in pk)
    strategies = {f.name: f.effective_strategy for f in collection.fields if f.effective_strategy}
    retained = any(s == RETAIN for s in strategies.values())
    if any(strategy_get(s).deletes_row for s in strategies.values()) and not retained:
        return RowPlan(key=key, delete=True, values={}, original=row)
    values = {}
    for name, strategy_name in strategies.items():
        if name not in row or name in pk:
            continue
        strategy = strategy_get(strategy_name)
        if strategy.keeps_value:
            continue
        if strategy.deletes_row:
            strategy = strategy_get("null")
        field = collection.field(name)
        context = MaskContext(secret=secret, node=node, field=name, row_key=row_key,
                              options=field.strategy_options if field else {})
        masked = strategy.mask(row[name], context=context)
        if masked != row[name]:
            values[name] = masked
    if not values:
        return None
    return RowPlan(key=key, delete=False, values=values, original=row)

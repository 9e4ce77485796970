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

Each strategy declares its ``Options`` (a pydantic model, ``governance.registry``); the data map
refuses unknown or invalid options when it loads (``options_problems``) and, when it can read the live schema, a strategy
whose output does not fit the column (``column_problems``: type, length, NOT NULL). The checks
reach the data map through ``governance.datamap.hooks`` (registered in ``DsrConfig.ready``).
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import random
import string
from dataclasses import dataclass, field

import pydantic
from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError
from governance.datamap import hooks
from governance.datamap.hooks import ColumnInfo, SchemaNote
from governance.registry import OptionsInvalid, Registry, StrictOptions

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
    #: The live column as introspected when the data map was loaded ({} when unknown).
    column: dict = field(default_factory=dict)


class BaseStrategy:
    identifier: str = ""
    verbose_name: str = ""
    #: True when the strategy removes the whole row (connectors delete instead of update).
    deletes_row: bool = False
    #: True when the value stays as it is (legal hold).
    keeps_value: bool = False
    #: The ``strategy_options`` it accepts (a ``StrictOptions`` model); None: no options.
    Options: type[StrictOptions] | None = None

    def mask(self, value, *, context: MaskContext):
        raise NotImplementedError(f"{type(self).__name__}.mask() must return the masked value")

    def options_problems(self, options: dict) -> list[str]:
        """What is wrong with ``strategy_options`` (empty: fine), each with the fix."""
        allowed = sorted(self.Options.model_fields) if self.Options is not None else []
        problems = []
        for name in sorted(set(options) - set(allowed)):
            close = difflib.get_close_matches(str(name), allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed: {', '.join(allowed) or 'none'}"
            problems.append(f"unknown option {name!r}; {hint}")
        try:
            strategies.options(self.identifier, {k: v for k, v in options.items() if k in allowed})
        except OptionsInvalid as exc:
            problems += exc.problems
        return problems

    def column_problems(self, column: ColumnInfo, options: dict) -> list[SchemaNote]:
        """What goes wrong when this strategy writes into ``column`` (empty: it fits)."""
        return []


def _replacement_hint(column: ColumnInfo) -> str:
    if column.kind == hooks.KIND_STRING:
        return "use hash or random_rewrite (or delete_row)"
    if column.kind == hooks.KIND_INTEGER:
        return "use random_rewrite (or delete_row)"
    return "use delete_row, or retain with a legal_basis"


def _text_fit_problems(column: ColumnInfo, options: dict) -> list[SchemaNote]:
    length = options.get("length")
    if column.kind != hooks.KIND_STRING:
        return [SchemaNote(hooks.ERROR, f"writes text but column {column.name} is {column.type_name}; "
                                        f"{_replacement_hint(column)}")]
    if length is not None and column.length is not None and length > column.length:
        return [SchemaNote(hooks.ERROR, f"length {length} does not fit column {column.name} "
                                        f"{column.type_name}; set strategy_options: {{length: {column.length}}}")]
    return []


strategies: Registry[BaseStrategy] = Registry("masking strategy", base=BaseStrategy, instantiate=True)


def register(cls: type[BaseStrategy]) -> type[BaseStrategy]:
    return strategies.register(cls)


def strategy_names() -> list[str]:
    return strategies.names()


def strategy_registry() -> dict[str, BaseStrategy]:
    """Name -> strategy (what the data map checks options and columns with)."""
    return dict(strategies.items())


def strategy_get(name: str) -> BaseStrategy:
    try:
        return strategies.get(name)
    except LookupError:
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

    def column_problems(self, column, options):
        if column.nullable:
            return []
        return [SchemaNote(hooks.ERROR, f"column {column.name} is NOT NULL, so setting it to null fails "
                                        f"at erasure time; {_replacement_hint(column)}")]


HASH_LENGTH = 64  # hex characters of HMAC-SHA256
HASH_MIN_LENGTH = 8
HASH_WEAK_LENGTH = 16


@register
class HashStrategy(BaseStrategy):
    """Keyed SHA-256 (HMAC) of the value, hex.

    ``length`` truncates; without it the digest is cut to the column's length when the data map
    knows it (``varchar(60)`` gets 60 characters), else 64. A truncated HMAC is still a keyed
    pseudonym; with n hex characters two different values collide with probability about
    ``k^2 / 2^(4n+1)`` over k values (n = 16: about 1 in 10^10 for a million values).
    """

    identifier = "hash"
    verbose_name = "Keyed hash (stable within the request)"

    class Options(StrictOptions):
        length: pydantic.StrictInt | None = pydantic.Field(default=None, ge=HASH_MIN_LENGTH, le=HASH_LENGTH)

    def mask(self, value, *, context):
        if value is None:
            return None
        return _digest(context, value)[: self.length(context.options, context.column)]

    @staticmethod
    def length(options: dict, column: dict | None) -> int:
        if options.get("length"):
            return int(options["length"])
        limit = (column or {}).get("length")
        return min(HASH_LENGTH, int(limit)) if limit else HASH_LENGTH

    def column_problems(self, column, options):
        problems = _text_fit_problems(column, options)
        if problems:
            return problems
        length = self.length(options, column.as_dict())
        if length < HASH_MIN_LENGTH:
            return [SchemaNote(hooks.ERROR, f"column {column.name} {column.type_name} holds only {length} "
                                            "characters, too few for a keyed hash; use random_rewrite")]
        if length < HASH_WEAK_LENGTH:
            return [SchemaNote(hooks.WARNING, f"the hash is cut to {length} characters to fit column "
                                              f"{column.name} {column.type_name}: different values may "
                                              "collide; consider random_rewrite")]
        return []


@register
class HmacStrategy(HashStrategy):
    identifier = "hmac"
    verbose_name = "HMAC-SHA256 (stable within the request)"


@register
class RandomRewriteStrategy(BaseStrategy):
    """Random letters of the same length (or ``length``), seeded per request, row and field."""

    identifier = "random_rewrite"
    verbose_name = "Random rewrite"

    class Options(StrictOptions):
        length: pydantic.StrictInt | None = pydantic.Field(default=None, ge=1)

    def mask(self, value, *, context):
        if value is None:
            return None
        seed = _digest(context, f"{context.node}|{context.field}|{context.row_key}")
        rng = random.Random(seed)  # noqa: S311 - not a secret, only unlinkable from the original
        length = int(context.options.get("length", len(str(value)) or 8))
        limit = context.column.get("length")
        length = min(length, int(limit)) if limit else length
        text = "".join(rng.choice(string.ascii_lowercase) for _ in range(length))
        if isinstance(value, int) and not isinstance(value, bool):
            return int(rng.random() * 10**6)
        return text

    def column_problems(self, column, options):
        if column.kind == hooks.KIND_INTEGER:
            return []  # integers are rewritten as integers
        return _text_fit_problems(column, options)


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
                              options=field.strategy_options if field else {},
                              column=getattr(field, "column", None) or {})
        masked = strategy.mask(row[name], context=context)
        if masked != row[name]:
            values[name] = masked
    if not values:
        return None
    return RowPlan(key=key, delete=False, values=values, original=row)

"""The connector contract.

A connector reads and changes one store's data for one data-subject request. It is created per
node execution with the store's resolved settings, used, and closed::

    @register
    class CsvConnector(BaseConnector):
        identifier = "csv"
        verbose_name = "CSV files (example)"

        def test_connection(self) -> str:
            return "ok" if Path(self.settings["dir"]).is_dir() else self.unavailable("no dir")

        def retrieve(self, collection, inputs):
            ...  # yield dict rows where any field in `inputs` has one of the values

Errors: raise :class:`StoreUnavailable` for anything worth retrying (connection refused,
timeouts, HTTP 429/503); it is retried with backoff up to the store's retry budget. Raise
:class:`StoreError` for everything else; the node then fails and the request needs attention.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError
from governance.datamap.spec import CollectionSpec
from governance.subjects.identities import (
    email_fold,
    email_search_forms,
    phone_fold,
    phone_region,
    phone_search_forms,
)


class StoreUnavailable(Exception):
    """The store could not be reached or asked us to come back later (retried; not sooner than
    ``retry_after`` seconds when the store said so)."""

    def __init__(self, *args, retry_after: float | None = None):
        super().__init__(*args)
        self.retry_after = retry_after


class StoreError(Exception):
    """The store answered with an error that a retry will not fix."""


class UnknownConnector(DomainError):
    code = "unknown_connector"
    title = _("Unknown connector type.")


class BaseConnector:
    """Base class for connectors. Subclasses set ``identifier`` and implement the methods."""

    identifier: str = ""
    verbose_name: str = ""

    def __init__(self, *, store_key: str, settings: dict, context: dict | None = None):
        self.store_key = store_key
        self.settings = settings
        self.context = context or {}

    def test_connection(self) -> str:
        """Check the store answers; return a short description or raise ``StoreUnavailable``."""
        raise NotImplementedError(f"{type(self).__name__} must implement test_connection()")

    def retrieve(self, collection: CollectionSpec, inputs: dict[str, list]) -> Iterator[dict]:
        """Yield the rows where any field named in ``inputs`` equals one of its values."""
        raise NotImplementedError(f"{type(self).__name__} must implement retrieve()")

    def mask(self, collection: CollectionSpec, plans: Iterable) -> int:
        """Apply ``RowPlan`` updates (``plan.key`` → ``plan.values``); return rows changed."""
        raise NotImplementedError(f"{type(self).__name__} must implement mask()")

    def delete(self, collection: CollectionSpec, plans: Iterable) -> int:
        """Delete the rows of ``RowPlan``s (``plan.key``); return rows deleted."""
        raise NotImplementedError(f"{type(self).__name__} must implement delete()")

    def retrieve_by_key(self, collection: CollectionSpec, rows: list[dict]) -> Iterator[dict]:
        """Yield the rows as they are now of ``rows`` (rows ``retrieve`` returned earlier), found by
        their primary key (``collection.primary_key``; a connector that addresses rows otherwise,
        like Redis with ``_key``, finds its locator in the same dicts). Rows that are gone are not
        yielded. Verification uses it to re-read every row the access phase found."""
        raise NotImplementedError(f"{type(self).__name__} must implement retrieve_by_key() (verification)")

    def rereads_by_key(self, collection: CollectionSpec) -> bool:
        """Whether ``retrieve_by_key`` finds a row whose searchable values were masked. When not,
        verification cannot tell a masked row from a deleted one and fails rather than pass."""
        return True

    def close(self) -> None:
        """Release connections. Called once after use, also after errors."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# --- identity matching -------------------------------------------------------------------------

@dataclass
class IdentityMatch:
    """How one input field is searched and how a found value is confirmed to be the subject's.

    ``email`` fields: ``forms`` are the lower-case forms of the address (Unicode and punycode
    domain); a stored value matches when, trimmed and lower-cased, it is the same address.
    ``phone`` fields: ``forms`` are the number in every format the field may hold (or the one
    it declares, ``format:`` in the data map); a stored value matches when it reads as the same
    E.164 number. Other fields (customer ids, references) are compared exactly.
    Connectors search with ``forms`` (a superset is fine) and keep a row only if
    :meth:`accepts` its value: a near miss (``a@b.jp.evil``, another person's phone) never matches.
    """

    name: str
    kind: str  # "email", "phone" or "" (exact)
    values: list  # the input values as given
    forms: list[str] = field(default_factory=list)
    keys: frozenset = frozenset()
    regions: tuple = ()

    def accepts(self, stored) -> bool:
        if stored is None:
            return False
        if self.kind == "email":
            return email_fold(stored) in self.keys
        if self.kind == "phone":
            return str(stored) in self.keys or any(
                phone_fold(stored, region=region) in self.keys for region in self.regions)
        return stored in self.values or str(stored) in {str(v) for v in self.values}


def identity_matches(collection: CollectionSpec, inputs: dict[str, list]) -> list[IdentityMatch]:
    """One :class:`IdentityMatch` per input field (see docs/datamap.md, "Identity matching")."""
    matches = []
    for name, raw in inputs.items():
        values = [v for v in raw if v is not None and v != ""]
        if not values:
            continue
        spec = collection.field(name)
        kind = spec.identity if spec is not None and spec.identity in {"email", "phone"} else ""
        if kind == "email":
            forms = sorted({f for v in values for f in email_search_forms(str(v))})
            matches.append(IdentityMatch(name, kind, values, forms, frozenset(email_fold(v) for v in values)))
        elif kind == "phone":
            stored_format = (getattr(spec, "format", "") or "any")
            forms = sorted({f for v in values for f in phone_search_forms(str(v), stored_format=stored_format)})
            regions = tuple(sorted({r for r in (phone_region(str(v)) for v in values) if r}))
            keys = frozenset(str(v) for v in values)
            matches.append(IdentityMatch(name, kind, values, forms, keys, regions))
        else:
            matches.append(IdentityMatch(name, "", values, list(values), frozenset()))
    return matches

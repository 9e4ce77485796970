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

from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError
from governance.datamap.spec import CollectionSpec


class StoreUnavailable(Exception):
    """The store could not be reached or asked us to come back later (retried)."""


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

    def close(self) -> None:
        """Release connections. Called once after use, also after errors."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

"""Use cases of the connector catalogue: add a store from a template, test a store's connection."""

from __future__ import annotations

from dataclasses import dataclass

import yaml

from dsr.catalogue import (
    CatalogueError,
    catalogue_service,
    catalogue_source,
    catalogue_store_document,
)
from dsr.connectors import StoreError, StoreUnavailable, connector_class
from governance.datamap.models import Store
from governance.datamap.selectors import StoreMisconfigured, store_connection_settings
from governance.datamap.services import DataMapLoad, datamap_load_report


class StoreExists(CatalogueError):
    """A store with that key is already in the data map (and replacing was not asked for)."""


def catalogue_store_add(*, slug: str, key: str, params: dict, secrets: dict, workspaces=(), shared=None,
                        allow_internal_hosts: bool = False, name: str = "", base_url: str = "",
                        replace: bool = False,
                        offline: bool = False, actor=None) -> DataMapLoad:
    """Add (or, with ``replace``, replace) the store ``key`` from catalogue service ``slug``.

    The store goes through the same load as a data-map file (format, graph and workspace checks;
    unless ``offline``, the connection test against the live API — a wrong key is refused, an
    unreachable API is a warning), in one transaction, recorded in the audit chain with the source
    ``catalogue:<slug>``. Secrets are stored encrypted under the store's data key and never shown.
    """
    service = catalogue_service(slug)
    if not replace and Store.objects.filter(key=key).exists():
        raise StoreExists(f"a store {key!r} is already in the data map; choose another key or replace it")
    document = catalogue_store_document(service=service, key=key, params=params, secrets=secrets,
                                        workspaces=workspaces, shared=shared,
                                        allow_internal_hosts=allow_internal_hosts, name=name, base_url=base_url)
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    return datamap_load_report(text=text, filename=catalogue_source(slug), actor=actor, offline=offline)


@dataclass(frozen=True)
class ConnectionTest:
    ok: bool
    message: str


def store_connection_test(*, store: Store) -> ConnectionTest:
    """Call the store's harmless read (``health_path`` for APIs) and say how it went."""
    try:
        settings = store_connection_settings(store=store)
        connector = connector_class(store.connector_type)(store_key=store.key, settings=settings)
        with connector:
            return ConnectionTest(True, connector.test_connection())
    except (StoreMisconfigured, StoreError, StoreUnavailable) as exc:
        return ConnectionTest(False, f"{type(exc).__name__}: {exc}")

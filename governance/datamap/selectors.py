"""Reads of the data map."""

from __future__ import annotations

from governance.datamap.graph import DataMapGraph
from governance.datamap.models import Store
from governance.datamap.spec import StoreSpec, env_resolve


class StoreMisconfigured(Exception):
    """A store's connection settings cannot be resolved (missing environment variable)."""


def datamap_specs() -> list[StoreSpec]:
    stores = Store.objects.prefetch_related("collections__fields")
    return [s.to_spec() for s in stores]


def datamap_graph() -> DataMapGraph:
    return DataMapGraph(datamap_specs())


def store_connection_settings(*, store: Store) -> dict:
    """Connection settings with secrets decrypted and ``${ENV}`` references resolved."""
    merged = {**store.connection, **store.secret_values()}
    try:
        return env_resolve(merged)
    except KeyError as exc:
        raise StoreMisconfigured(
            f"store {store.key!r}: environment variable {exc.args[0]} is not set"
        ) from exc

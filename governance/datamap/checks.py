"""System checks of the loaded data map (``manage.py check --database default``)."""

from __future__ import annotations

from django.apps import apps
from django.core.checks import Tags, Warning, register
from django.db import connections

W001 = "datamap.W001"


@register(Tags.database)
def datamap_store_scope_check(app_configs=None, databases=None, **kwargs) -> list[Warning]:
    """Stores that say neither ``workspaces`` nor ``shared`` while several workspaces exist."""
    if not databases or "default" not in databases:
        return []
    from governance.datamap.models import Store

    try:
        workspace = apps.get_model("subjects", "Workspace")
    except LookupError:
        return []
    # ``migrate`` runs database checks before it creates the tables: nothing to look at yet.
    existing = set(connections["default"].introspection.table_names())
    if not {workspace._meta.db_table, Store._meta.db_table} <= existing:
        return []
    if workspace.objects.count() < 2:
        return []
    return [
        Warning(
            f"store {store.key!r} says neither 'workspaces' nor 'shared': it is searched for the "
            "requests of every workspace",
            hint="Add 'shared: true' or the list of owning 'workspaces' to the store in the data map "
                 "(docs/datamap.md, Workspaces) and load it again.",
            obj=store, id=W001,
        )
        for store in Store.objects.filter(shared__isnull=True, workspaces=[])
    ]

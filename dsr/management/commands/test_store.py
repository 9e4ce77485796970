"""``manage.py test_store STORE``: connect to one store of the data map, check its live schema."""

from django.core.management.base import BaseCommand, CommandError

from dsr.connectors import StoreError, StoreUnavailable, connector_class
from dsr.schema_inspect import sqlite_missing_file
from governance.datamap import hooks
from governance.datamap.models import Store
from governance.datamap.schema import reference_notes, store_schema_notes
from governance.datamap.selectors import (
    StoreMisconfigured,
    datamap_specs,
    store_connection_settings,
)


class Command(BaseCommand):
    help = ("Check that a data-map store answers and that its collections, fields and erasure "
            "strategies fit the live schema.")

    def add_arguments(self, parser):
        parser.add_argument("store", help="Store key from the data map.")

    def handle(self, *args, store: str, **options):
        row = Store.objects.filter(key=store).first()
        if row is None:
            known = ", ".join(Store.objects.values_list("key", flat=True)) or "(none loaded)"
            raise CommandError(f"no store {store!r} in the data map; known: {known}")
        try:
            settings = store_connection_settings(store=row)
        except StoreMisconfigured as exc:
            raise CommandError(f"{store}: {type(exc).__name__}: {exc}") from exc
        missing = sqlite_missing_file(str(settings.get("url", ""))) if row.connector_type == "sql" else None
        if missing:
            # Connecting would create an empty database file and "succeed".
            raise CommandError(f"{store}: SQLite database file {missing} does not exist; fix connection.url "
                               f"in {row.source_file or 'the data map'}")
        try:
            connector = connector_class(row.connector_type)(store_key=row.key, settings=settings)
            with connector:
                message = connector.test_connection()
        except (StoreError, StoreUnavailable) as exc:
            raise CommandError(f"{store}: {type(exc).__name__}: {exc}") from exc
        specs = datamap_specs()
        spec = next(s for s in specs if s.key == row.key)
        notes = store_schema_notes(spec, strict=True, settings=settings)
        notes += [n for n in reference_notes(specs) if n.path[1:2] == (row.key,)]
        source = row.source_file or "data map"
        for note in notes:
            label = "warning: " if note.severity == hooks.WARNING else ""
            self.stderr.write(f"{source}: {label}{'.'.join(map(str, note.path))}: {note.message}")
        errors = [n for n in notes if n.severity == hooks.ERROR]
        if errors:
            raise CommandError(f"{store} ({row.connector_type}): {message}, but {len(errors)} schema "
                               f"problem(s) (listed above)")
        self.stdout.write(self.style.SUCCESS(f"{store} ({row.connector_type}): {message}; schema matches "
                                             "the data map"))

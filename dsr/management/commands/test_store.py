"""``manage.py test_store STORE``: connect to one store of the data map and report."""

from django.core.management.base import BaseCommand, CommandError

from dsr.connectors import StoreError, StoreUnavailable, connector_class
from governance.datamap.models import Store
from governance.datamap.selectors import StoreMisconfigured, store_connection_settings


class Command(BaseCommand):
    help = "Check that a data-map store answers (connector test_connection)."

    def add_arguments(self, parser):
        parser.add_argument("store", help="Store key from the data map.")

    def handle(self, *args, store: str, **options):
        row = Store.objects.filter(key=store).first()
        if row is None:
            known = ", ".join(Store.objects.values_list("key", flat=True)) or "(none loaded)"
            raise CommandError(f"no store {store!r} in the data map; known: {known}")
        try:
            connector = connector_class(row.connector_type)(
                store_key=row.key, settings=store_connection_settings(store=row))
            with connector:
                message = connector.test_connection()
        except (StoreMisconfigured, StoreError, StoreUnavailable) as exc:
            raise CommandError(f"{store}: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"{store} ({row.connector_type}): {message}"))

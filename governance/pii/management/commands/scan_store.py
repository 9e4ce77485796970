"""``manage.py scan_store STORE [--url URL]``: discover personal data in a SQL database."""

from __future__ import annotations

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from governance.pii.discovery import url_masked
from governance.pii.services import store_scan_create, store_scan_execute


def _datamap_url(key: str) -> str | None:
    if not apps.is_installed("governance.datamap"):
        return None
    store_model = apps.get_model("datamap", "Store")
    store = store_model.objects.filter(key=key).first()
    if store is None:
        return None
    if store.connector_type != "sql":
        raise CommandError(f"Store {key!r} is a {store.connector_type!r} store; only sql stores can be scanned.")
    from governance.datamap.selectors import store_connection_settings

    url = store_connection_settings(store=store).get("url")
    if not url:
        raise CommandError(f"Store {key!r} has no connection.url")
    return url


class Command(BaseCommand):
    help = (
        "Sample rows of every table of a SQL store and suggest a data category per column. "
        "STORE is a data-map store key (its connection.url is used) or, with --url, a name."
    )

    def add_arguments(self, parser):
        parser.add_argument("store", help="Data-map store key, or a name when --url is given")
        parser.add_argument("--url", help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db")
        parser.add_argument("--sample", type=int, default=200, help="Rows sampled per table")
        parser.add_argument("--queue", action="store_true", help="Queue on Celery instead of running here")

    def handle(self, *args, store: str, url: str | None, sample: int, queue: bool, **options):
        store_key = ""
        if url is None:
            url = _datamap_url(store)
            if url is None:
                raise CommandError(f"No data-map store {store!r}; give --url to scan a database directly.")
            store_key = store
        if sample < 1:
            raise CommandError("--sample must be at least 1")
        scan = store_scan_create(name=store, url=url, sample_size=sample, store_key=store_key,
                                 enqueue=queue)
        self.stdout.write(f"Scan {scan.pk} of {url_masked(url)}")
        if queue:
            self.stdout.write("Queued; follow it in the admin (PII scanning → Store scans).")
            return

        def progress(done, total, table, guesses):
            found = ", ".join(f"{g.column}={g.data_category}" for g in guesses) or "nothing"
            self.stdout.write(f"[{done}/{total}] {table}: {found}")

        try:
            scan = store_scan_execute(scan_id=scan.pk, progress=progress)
        except Exception as exc:  # noqa: BLE001
            raise CommandError(f"Scan failed: {type(exc).__name__}: {exc}") from exc
        count = scan.suggestions.count()
        self.stdout.write(self.style.SUCCESS(
            f"Done: {scan.tables_done} tables, {count} suggestions waiting for review in the admin."
        ))

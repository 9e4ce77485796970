"""``manage.py load_datamap FILE``: validate a data map against its live stores and load it."""

from django.core.management.base import BaseCommand, CommandError

from governance.datamap.services import datamap_load
from governance.datamap.spec import DataMapInvalid


class Command(BaseCommand):
    help = ("Validate a data map YAML file — format, graph, and the live schema of every reachable "
            "store — and load its stores, collections and fields. Every problem is reported at once.")

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--prune", action="store_true", help="Remove stores not in the file.")
        parser.add_argument("--offline", action="store_true",
                            help="Do not connect to the stores (skip the live-schema checks).")
        parser.add_argument("--strict", action="store_true",
                            help="A store that cannot be reached is an error, not a warning.")

    def handle(self, *args, file: str, prune: bool, offline: bool, strict: bool, **options):
        try:
            result = datamap_load(path=file, prune=prune, offline=offline, strict=strict)
        except FileNotFoundError as exc:
            raise CommandError(f"{file}: no such file") from exc
        except DataMapInvalid as exc:
            raise CommandError(f"data map not loaded:\n{exc.detail}") from exc
        for warning in result.warnings:
            self.stderr.write(self.style.WARNING(warning.render(file)))
        for store in result.stores:
            self.stdout.write(
                f"loaded store {store.key} ({store.connector_type}): "
                f"{store.collections.count()} collections"
            )
        if offline:
            self.stdout.write("live schemas not checked (--offline)")

"""``manage.py load_datamap FILE``: validate and load a data map (docs/datamap.md)."""

from django.core.management.base import BaseCommand, CommandError

from governance.datamap.services import datamap_load
from governance.datamap.spec import DataMapInvalid


class Command(BaseCommand):
    help = "Validate a data map YAML file and load its stores, collections and fields."

    def add_arguments(self, parser):
        parser.add_argument("file")
        parser.add_argument("--prune", action="store_true", help="Remove stores not in the file.")

    def handle(self, *args, file: str, prune: bool, **options):
        try:
            stores = datamap_load(path=file, prune=prune)
        except FileNotFoundError as exc:
            raise CommandError(f"{file}: no such file") from exc
        except DataMapInvalid as exc:
            raise CommandError(f"data map not loaded:\n{exc.detail}") from exc
        for store in stores:
            self.stdout.write(
                f"loaded store {store.key} ({store.connector_type}): "
                f"{store.collections.count()} collections"
            )

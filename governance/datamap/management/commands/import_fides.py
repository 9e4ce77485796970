"""``manage.py import_fides FILES_OR_DIRS``: Fides datasets and SaaS configs into the data map."""

import json

from django.core.management.base import BaseCommand, CommandError

from governance.datamap.fides import DATASET_STORE_TYPES, FidesFileError, datamap_import_fides
from governance.datamap.spec import DataMapInvalid


class Command(BaseCommand):
    help = ("Import Fides dataset YAML and SaaS configs (declarative part) into the data map, and report "
            "every element that could not be mapped with its path (docs/datamap.md, Importing from Fides).")

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", help="Fides YAML files or directories (searched recursively).")
        parser.add_argument("--workspace", action="append", default=[], dest="workspaces",
                            help="Workspace slug owning the imported stores (repeatable; default: shared).")
        parser.add_argument("--dry-run", action="store_true", help="Validate and report; write nothing.")
        parser.add_argument("--report", choices=["text", "json"], default="text")
        parser.add_argument("--store-type", choices=DATASET_STORE_TYPES, default="sql",
                            help="Connector of datasets without a SaaS config (default: sql).")
        parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                            help="Value of a SaaS connector param that is not a secret (domain, list id).")
        parser.add_argument("--secrets-from-env", action="store_true",
                            help="Read secret connector params from STORE_PARAM environment variables now "
                                 "and keep them encrypted in the store (default: referenced as ${STORE_PARAM}).")
        parser.add_argument("--allow-internal-hosts", action="store_true",
                            help="Let the imported SaaS stores reach private/loopback addresses (emulators).")
        parser.add_argument("--output", help="Also write the data map document built to this file.")
        parser.add_argument("--offline", action="store_true", help="Do not connect to the stores.")
        parser.add_argument("--strict", action="store_true", help="An unreachable store is an error.")

    def handle(self, *args, paths, workspaces, dry_run, report, store_type, param, secrets_from_env,
               allow_internal_hosts, output, offline, strict, **options):
        params = {}
        for item in param:
            name, sep, value = item.partition("=")
            if not sep or not name:
                raise CommandError(f"--param {item!r}: write NAME=VALUE")
            params[name] = value
        try:
            result, warnings = datamap_import_fides(
                paths=paths, dry_run=dry_run, offline=offline, strict=strict, store_type=store_type,
                params=params, secrets_from_env=secrets_from_env, allow_internal_hosts=allow_internal_hosts,
                workspaces=workspaces)
        except FidesFileError as exc:
            raise CommandError(str(exc)) from exc
        except DataMapInvalid as exc:
            raise CommandError(f"data map not loaded:\n{exc.detail}") from exc
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(result.yaml())
        data = {**result.report(), "dry_run": dry_run,
                "warnings": [w.render("import_fides") for w in warnings]}
        if report == "json":
            self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
            return
        verb = "would import" if dry_run else "imported"
        for key, store in result.stores.items():
            fields = sum(len(c["fields"]) for c in store["collections"].values())
            self.stdout.write(f"{verb} store {key} ({store['type']}): {len(store['collections'])} collections, "
                              f"{fields} fields")
        for warning in data["warnings"]:
            self.stderr.write(self.style.WARNING(warning))
        if result.special:
            self.stdout.write("special categories (GDPR Art. 9/10, 要配慮個人情報): " + ", ".join(sorted(result.special)))
        self.stdout.write(f"not mapped: {len(result.unmapped)}")
        for element in result.unmapped:
            self.stdout.write(f"  {element.path}: {element.reason}")
        if result.notes:
            self.stdout.write(f"notes: {len(result.notes)}")
            for element in result.notes:
                self.stdout.write(f"  {element.path}: {element.reason}")

"""``manage.py store_add --from-catalogue SERVICE``: add a data-map store from the connector catalogue."""

from __future__ import annotations

import argparse
import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from dsr.catalogue import CatalogueError, catalogue_service, catalogue_services
from governance.datamap.spec import DataMapInvalid


def _pairs(values: list[str], what: str) -> dict[str, str]:
    found = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CommandError(f"--{what} takes NAME=VALUE, not {item!r}")
        found[name.strip()] = value
    return found


def _catalogue_help() -> str:
    lines = ["services in the catalogue (docs/connectors.md):"]
    for slug, service in catalogue_services().items():
        params = ", ".join(f"{p.name}{'' if p.required else '?'}" for p in service.params) or "-"
        secrets = ", ".join(s.name for s in service.secrets)
        lines.append(f"  {slug:<10} {service.name} ({service.kind}); --param {params}; --secret {secrets}")
    return "\n".join(lines)


class Command(BaseCommand):
    help = ("Add a store to the data map from the connector catalogue: pick the service, give its "
            "parameters and secrets (stored encrypted, never shown again); the connection is tested "
            "with a harmless read before anything is saved (unless --offline).")

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        parser.epilog = _catalogue_help() + (
            "\n\nexample:\n  manage.py store_add --from-catalogue stripe --key stripe --shared "
            "--secret api_key=sk_live_…\n  manage.py store_add --from-catalogue zendesk --workspace shop-jp "
            "--param subdomain=acme --param agent_email=dpo@acme.jp --secret-stdin api_token")
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--from-catalogue", dest="service", metavar="SERVICE", help="catalogue service (below)")
        parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
        parser.add_argument("--key", help="store key in the data map (default: the service name)")
        parser.add_argument("--name", default="", help="display name (default: the service's)")
        parser.add_argument("--workspace", action="append", default=[], metavar="SLUG",
                            help="a workspace whose requests search this store (repeatable)")
        parser.add_argument("--shared", action="store_true", help="every workspace's requests search it")
        parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                            help="a parameter of the service (repeatable)")
        parser.add_argument("--secret", action="append", default=[], metavar="NAME=VALUE",
                            help="a secret (repeatable); prefer --secret-stdin or --secret-prompt: "
                                 "a command line can be read by other users of the machine")
        parser.add_argument("--secret-stdin", action="append", default=[], metavar="NAME",
                            help="read this secret from standard input (one line)")
        parser.add_argument("--secret-prompt", action="append", default=[], metavar="NAME",
                            help="ask for this secret without echoing it")
        parser.add_argument("--base-url", default="", help="replace the service's API base URL (regional "
                            "endpoint, proxy)")
        parser.add_argument("--allow-internal-hosts", action="store_true",
                            help="the API is on a private or loopback address (a proxy, an emulator)")
        parser.add_argument("--replace", action="store_true", help="replace a store with the same key")
        parser.add_argument("--offline", action="store_true", help="do not test the connection before saving")

    def handle(self, *args, **options):
        if options["list"] or not options["service"]:
            self.stdout.write(_catalogue_help())
            if not options["list"]:
                raise CommandError("say which service: --from-catalogue SERVICE")
            return
        try:
            service = catalogue_service(options["service"])
        except CatalogueError as exc:
            raise CommandError(str(exc)) from None
        if options["shared"] and options["workspace"]:
            raise CommandError("--shared or --workspace, not both")
        secrets = _pairs(options["secret"], "secret")
        for name in options["secret_stdin"]:
            secrets[name] = sys.stdin.readline().rstrip("\r\n")
        for name in options["secret_prompt"]:
            secrets[name] = getpass.getpass(f"{name}: ")
        key = options["key"] or service.slug
        from dsr.catalogue.services import catalogue_store_add

        try:
            load = catalogue_store_add(
                slug=service.slug, key=key, params=_pairs(options["param"], "param"), secrets=secrets,
                workspaces=options["workspace"], shared=True if options["shared"] else None,
                allow_internal_hosts=options["allow_internal_hosts"], name=options["name"],
                base_url=options["base_url"], replace=options["replace"], offline=options["offline"],
            )
        except CatalogueError as exc:
            raise CommandError(str(exc)) from None
        except DataMapInvalid as exc:
            raise CommandError(f"store not added:\n{exc}") from None
        for warning in load.warnings:
            self.stderr.write(f"warning: {warning.path}: {warning.message}")
        store = load.stores[0]
        self.stdout.write(self.style.SUCCESS(f"{key}: {service.name} added ({store.collections.count()} "
                                             f"collections); secrets stored encrypted: "
                                             f"{', '.join(sorted(secrets))}"))
        for collection in store.collections.all():
            fields = ", ".join(f"{f.name} ({f.category})" if f.category else f.name for f in collection.fields.all())
            self.stdout.write(f"  {key}.{collection.name}: {fields}")

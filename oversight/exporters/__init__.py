"""Exporter registry: ``register`` a :class:`~oversight.exporters.base.BaseExporter` subclass by identifier.

The built-in formats (csv, jsonl, xlsx, pdf) are registered when this package is imported.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import status

from governance.api.errors import DomainError
from governance.registry import Registry, UnknownName

exporters: Registry = Registry("export format")


class UnknownExporter(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "unknown_format"
    title = _("Unknown export format.")


register = exporters.register


def exporter_get(identifier: str):
    """Return an instance of the exporter ``identifier``; unknown names list the known ones."""
    try:
        return exporters.get(identifier)()
    except UnknownName as exc:
        known = ", ".join(exc.known)
        raise UnknownExporter(f"Unknown export format {identifier!r}; known formats: {known}.") from None


def exporters_all() -> dict[str, type]:
    return dict(exporters.items())


from oversight.exporters import builtin  # noqa: E402,F401  (registers the built-in formats)

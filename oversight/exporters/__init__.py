"""Exporter registry: ``register`` a :class:`~oversight.exporters.base.BaseExporter` subclass by identifier.

The built-in formats (csv, jsonl, xlsx, pdf) are registered when this package is imported.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import status

from governance.api.errors import DomainError

_registry: dict[str, type] = {}


class UnknownExporter(DomainError):
    status_code = status.HTTP_400_BAD_REQUEST
    code = "unknown_format"
    title = _("Unknown export format.")


def register(cls):
    """Class decorator: add an exporter to the registry under ``cls.identifier``."""
    if not cls.identifier:
        raise ValueError(f"{cls.__name__} has no identifier")
    existing = _registry.get(cls.identifier)
    if existing is not None and existing is not cls:
        raise ValueError(f"exporter {cls.identifier!r} is already registered by {existing.__name__}")
    _registry[cls.identifier] = cls
    return cls


def exporter_get(identifier: str):
    """Return an instance of the exporter ``identifier``; unknown names list the known ones."""
    try:
        return _registry[identifier]()
    except KeyError:
        known = ", ".join(sorted(_registry))
        raise UnknownExporter(f"Unknown export format {identifier!r}; known formats: {known}.") from None


def exporters_all() -> dict[str, type]:
    return dict(sorted(_registry.items()))


from oversight.exporters import builtin  # noqa: E402,F401  (registers the built-in formats)

"""Recognizer registry: every recognizer the scanner can use, by name.

A recognizer spec is a class with ``identifier``, ``entities``, a cheap ``trigger(value)`` test
(is it worth running the recognizer on this value at all?) and ``create(language)`` returning a
Presidio ``EntityRecognizer``. Register with the ``register`` decorator; the modules are imported
from ``PiiConfig.ready()``. Unknown names raise ``UnknownRecognizer`` listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable

from presidio_analyzer import EntityRecognizer

from governance.registry import Registry, UnknownName


class UnknownRecognizer(LookupError):
    """A setting or caller named a recognizer nobody registered."""


class BaseRecognizerSpec:
    """Contract for a registered recognizer.

    ``identifier``: unique name (used in settings and findings). ``entities``: Presidio entity
    names it can return. ``needs_nlp``: True when it reads spaCy's NER (free-text path only).
    Free text always gets every recognizer; the cheap ``trigger`` and ``expensive`` flags only
    route short structured values.
    """

    identifier: str = ""
    entities: tuple[str, ...] = ()
    needs_nlp: bool = False
    # Expensive recognizers run on short values only when the field name asks for their entity
    # (or ``wanted(value)`` says so) and no cheap recognizer found that entity already.
    expensive: bool = False

    def wanted(self, value: str) -> bool:
        """For expensive recognizers: run even without a field-name hint?"""
        return False

    def trigger(self, value: str) -> bool:
        """Return True when ``value`` could contain this recognizer's entities (cheap test)."""
        raise NotImplementedError(f"{type(self).__name__} must implement trigger(value)")

    def create(self, language: str) -> EntityRecognizer:
        """Return a Presidio recognizer for ``language``."""
        raise NotImplementedError(f"{type(self).__name__} must implement create(language)")


recognizers: Registry[BaseRecognizerSpec] = Registry("recognizer", base=BaseRecognizerSpec, instantiate=True)
register = recognizers.register


def recognizer_get(name: str) -> BaseRecognizerSpec:
    """Return the registered spec called ``name``."""
    try:
        return recognizers.get(name)
    except UnknownName as exc:
        raise UnknownRecognizer(f"Unknown recognizer {name!r}; known: {', '.join(exc.known) or '(none)'}") from None


def recognizer_names() -> list[str]:
    return recognizers.names()


def recognizers_selected(names: list[str] | None) -> list[BaseRecognizerSpec]:
    """Return the specs named in ``names`` (all registered ones when None)."""
    if names is None:
        return recognizers.values()
    return [recognizer_get(name) for name in names]


def autodiscover() -> None:
    """Import the built-in recognizer modules so that they register."""
    from governance.pii.recognizers import generic, japan  # noqa: F401


TriggerFn = Callable[[str], bool]

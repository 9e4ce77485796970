"""One registry mechanism for every pluggable kind: connectors, masking strategies, recognizers,
exporters, reports, dashboard panels, anomaly rules.

Each kind is a :class:`Registry` instance living next to the base class it serves, filled by
decorator registration from the owning app's ``AppConfig.ready()``::

    connectors = Registry("connector", base=BaseConnector)

    @connectors.register
    class SqlConnector(BaseConnector):
        identifier = "sql"

The same rules hold for every kind:

- a name is registered once: a *different* class under a taken name raises ``RegistryError`` at
  start-up (re-registering the same class, as a module re-import does, is a no-op);
- looking up an unknown name raises ``UnknownName``, whose message lists the known names;
- a registered class may declare ``Options``, a pydantic model of its options: ``options()``
  validates a configuration against it when the configuration is *loaded* (a data map, a rule),
  so a bad option is an error naming the option, never a crash in the middle of the work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

import pydantic

T = TypeVar("T")


class RegistryError(Exception):
    """A registration that cannot stand (missing identifier, wrong base, duplicate name)."""


class UnknownName(LookupError):
    """A lookup of a name nobody registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; known: {', '.join(known) or '(none)'}")


class OptionsInvalid(ValueError):
    """Options that do not fit the registered class's ``Options`` model."""

    def __init__(self, kind: str, name: str, problems: list[str]) -> None:
        self.kind, self.name, self.problems = kind, name, problems
        super().__init__(f"{kind} {name!r}: " + "; ".join(problems))


class Registry(Generic[T]):
    """Name → class (or instance) for one pluggable kind."""

    def __init__(
        self, kind: str, *, base: type | None = None, key: str = "identifier",
        instantiate: bool = False, autoload: Callable[[], None] | None = None,
    ) -> None:
        self.kind = kind
        self.base = base
        self.key = key
        self.instantiate = instantiate
        self._autoload = autoload
        self._entries: dict[str, Any] = {}
        self._classes: dict[str, type] = {}

    # --- registration -------------------------------------------------------------------------

    def register(self, cls: type | None = None, *, name: str | None = None):
        """Register ``cls`` under its ``identifier`` (or ``name``); usable as a decorator."""

        def add(target: type):
            identifier = name or getattr(target, self.key, "")
            if not identifier:
                raise RegistryError(f"{self.kind} {target.__qualname__} needs a non-empty {self.key!r}")
            if self.base is not None and not (isinstance(target, type) and issubclass(target, self.base)):
                raise RegistryError(f"{self.kind} {target!r} must subclass {self.base.__qualname__}")
            existing = self._classes.get(identifier)
            if existing is not None:
                if _same(existing, target):
                    return target
                raise RegistryError(
                    f"duplicate {self.kind} name {identifier!r}: {_where(existing)} and {_where(target)}"
                )
            self._classes[identifier] = target
            self._entries[identifier] = target() if self.instantiate else target
            return target

        return add(cls) if cls is not None else add

    def unregister(self, name: str) -> None:
        """Remove a registration (tests and plug-ins that replace a built-in)."""
        self._entries.pop(name, None)
        self._classes.pop(name, None)

    # --- lookup -------------------------------------------------------------------------------

    def _loaded(self) -> dict[str, Any]:
        if not self._entries and self._autoload is not None:
            self._autoload()
        return self._entries

    def get(self, name: str) -> T:
        entries = self._loaded()
        try:
            return entries[name]
        except KeyError:
            raise UnknownName(self.kind, name, sorted(entries)) from None

    def names(self) -> list[str]:
        return sorted(self._loaded())

    def items(self) -> list[tuple[str, T]]:
        return sorted(self._loaded().items())

    def values(self) -> list[T]:
        return [entry for _name, entry in self.items()]

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._loaded())

    # --- options ------------------------------------------------------------------------------

    def options(self, name: str, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """Validate ``raw`` against the registered class's ``Options`` model (when it has one).

        Unknown option names are refused: a typo must not silently fall back to a default.
        """
        cls = self._classes.get(name)
        if cls is None:
            self.get(name)  # raises UnknownName with the known names
        model = getattr(cls, "Options", None)
        raw = dict(raw or {})
        if model is None:
            if raw:
                raise OptionsInvalid(self.kind, name, [f"takes no options (got {', '.join(sorted(raw))})"])
            return {}
        try:
            return model.model_validate(raw).model_dump()
        except pydantic.ValidationError as exc:
            problems = [
                f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in exc.errors()
            ]
            raise OptionsInvalid(self.kind, name, problems) from None


class StrictOptions(pydantic.BaseModel):
    """Base for ``Options`` models: unknown keys are errors, values are not coerced silently."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)


def _same(a: Any, b: Any) -> bool:
    return a is b or (
        getattr(a, "__module__", None) == getattr(b, "__module__", None)
        and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
    )


def _where(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"

"""One registry mechanism for every pluggable kind: the same rules everywhere."""

import pytest

from governance.registry import OptionsInvalid, Registry, RegistryError, StrictOptions, UnknownName


class Base:
    identifier = ""


def _registry() -> Registry:
    return Registry("widget", base=Base, instantiate=True)


def test_a_taken_name_cannot_be_registered_by_another_class():
    # given a registered widget
    widgets = _registry()

    @widgets.register
    class One(Base):
        identifier = "one"

    # when another class claims the name, then start-up fails naming both
    class Impostor(Base):
        identifier = "one"

    with pytest.raises(RegistryError, match="duplicate widget name 'one'.*One.*Impostor"):
        widgets.register(Impostor)
    # and registering the same class again (a re-import) changes nothing
    widgets.register(One)
    assert widgets.names() == ["one"]


def test_unknown_names_list_the_known_ones():
    widgets = _registry()

    @widgets.register
    class Alpha(Base):
        identifier = "alpha"

    with pytest.raises(UnknownName, match="unknown widget 'alfa'; known: alpha"):
        widgets.get("alfa")


def test_registration_needs_identifier_and_base():
    widgets = _registry()
    with pytest.raises(RegistryError, match="needs a non-empty 'identifier'"):
        widgets.register(type("Nameless", (Base,), {}))
    with pytest.raises(RegistryError, match="must subclass Base"):
        widgets.register(type("Stranger", (), {"identifier": "x"}))


def test_options_are_validated_when_loaded():
    widgets = _registry()

    @widgets.register
    class Sized(Base):
        identifier = "sized"

        class Options(StrictOptions):
            length: int = 64

    @widgets.register
    class Plain(Base):
        identifier = "plain"

    assert widgets.options("sized", {"length": 12}) == {"length": 12}
    assert widgets.options("sized", None) == {"length": 64}
    with pytest.raises(OptionsInvalid, match="lenght"):
        widgets.options("sized", {"lenght": 12})
    with pytest.raises(OptionsInvalid, match="length"):
        widgets.options("sized", {"length": "long"})
    with pytest.raises(OptionsInvalid, match="takes no options"):
        widgets.options("plain", {"x": 1})
    with pytest.raises(UnknownName):
        widgets.options("nope", {})


def test_every_pluggable_kind_uses_the_one_registry():
    from audit.verification import chains
    from dsr.connectors import connectors
    from dsr.masking import strategies
    from governance.pii.recognizers import recognizers
    from oversight.anomalies import anomaly_kinds
    from oversight.dashboard import panels
    from oversight.exporters import exporters
    from oversight.reports import reports

    kinds = {
        "connectors": (connectors, {"sql", "redis", "http", "mamoru"}),
        "strategies": (strategies, {"null", "hash"}),
        "recognizers": (recognizers, set()),
        "export formats": (exporters, {"csv", "xlsx"}),
        "reports": (reports, {"access_log", "request_register", "consent_proof"}),
        "dashboard panels": (panels, {"requests", "consent", "pii", "anomalies", "verification"}),
        "anomaly kinds": (anomaly_kinds, {"reads_per_hour", "off_hours", "denied_attempts", "bulk_exports"}),
        "chains": (chains, {"audit", "consent"}),
    }
    for label, (registry, expected) in kinds.items():
        assert isinstance(registry, Registry), label
        assert expected <= set(registry.names()), (label, registry.names())
        assert len(registry) > 0, label

"""PII test fixtures: the scanner (spaCy models) is loaded once per test session."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def pii_scanner():
    from governance.pii.scanner import scanner_get

    return scanner_get()


@pytest.fixture(scope="session")
def pii_engine(pii_scanner):
    return pii_scanner.engine


@pytest.fixture
def analyze(pii_engine):
    """Run one registered recognizer on a text (normalised like the scanner does)."""
    from governance.pii.recognizers import recognizer_get
    from governance.pii.recognizers.base import normalize

    def run(identifier: str, text: str, language: str = "ja") -> list[tuple[str, str, float]]:
        spec = recognizer_get(identifier)
        recognizer = pii_engine.instances[(language, identifier)]
        normalized = normalize(text)
        results = recognizer.analyze(normalized, list(spec.entities), None)
        return [(r.entity_type, text[r.start : r.end], r.score) for r in results]

    return run

from __future__ import annotations

import re

import pytest


@pytest.fixture(autouse=True)
def _fresh_portal_state():
    # (rate-limit counters: tests/conftest.py clears the shared cache)
    from consent.selectors import catalogue

    catalogue.invalidate()
    yield
    catalogue.invalidate()


def code_from(message) -> str:
    return re.search(r"\b(\d{6})\b", message.body).group(1)

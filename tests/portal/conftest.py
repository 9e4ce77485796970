from __future__ import annotations

import re

import pytest


@pytest.fixture(autouse=True)
def _fresh_portal_state():
    from django.core.cache import cache

    from consent.selectors import catalogue

    cache.clear()
    catalogue.invalidate()
    yield
    cache.clear()
    catalogue.invalidate()


def code_from(message) -> str:
    return re.search(r"\b(\d{6})\b", message.body).group(1)

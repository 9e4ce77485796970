"""Work done once per web process, after Django is set up and before the first request."""

from __future__ import annotations

import gc

from django.urls import get_resolver


def web_process_ready() -> None:
    """Import every view now and keep start-up objects out of the cyclic garbage collector.

    A web process holds a few hundred thousand long-lived objects (Django, the PII engine's
    Presidio and spaCy modules). Python's oldest-generation collection walks all of them: ~200 ms
    with the whole process stopped, which showed up as p99 latency on every endpoint. After
    ``gc.freeze()`` those objects are never scanned again; objects made by requests are collected
    as usual.
    """
    get_resolver().url_patterns  # noqa: B018 - loads the URLconf and every view module it names
    gc.collect()
    gc.freeze()

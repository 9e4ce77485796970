"""Consent metrics for ``/metrics``: the consent journal's position (its rate is the write rate)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Max
from prometheus_client.core import CounterMetricFamily

from governance.observability.metrics import BaseMetricSource, metric_sources


@metric_sources.register
class ConsentJournal(BaseMetricSource):
    identifier = "consent"

    def collect(self) -> Iterable:
        from consent.models import ConsentEvent

        # The events' sequence number is dense and only grows (amendments share it but are rare):
        # read from the unique index, the same for every replica and every writer (API, import, worker).
        head = ConsentEvent.objects.aggregate(seq=Max("seq"))["seq"] or 0
        events = CounterMetricFamily(
            "mamoru_consent_events_recorded",
            "Consent journal position (highest sequence number of a recorded consent event); "
            "rate() is the consent write rate across all processes.",
        )
        events.add_metric([], head)
        return [events]

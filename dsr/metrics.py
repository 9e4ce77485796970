"""DSR metrics for ``/metrics``: open requests by status, unfinished nodes by status (failed too)."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Min, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from governance.observability.metrics import BaseMetricSource, metric_sources


@metric_sources.register
class DsrQueue(BaseMetricSource):
    identifier = "dsr"

    def collect(self) -> Iterable:
        from dsr.models import OPEN_STATUSES, DataSubjectRequest, RequestTask, TaskStatus

        requests = GaugeMetricFamily(
            "mamoru_dsr_requests_open", "Data-subject requests not yet completed or rejected, by status.",
            labels=["status"],
        )
        open_rows = (
            DataSubjectRequest.objects.filter(status__in=OPEN_STATUSES)
            .values("status").annotate(n=Count("pk"), oldest=Min("received_at")).order_by()
        )
        by_status = {row["status"]: row for row in open_rows}
        oldest = None
        for status in sorted(OPEN_STATUSES):
            row = by_status.get(status)
            requests.add_metric([status], row["n"] if row else 0)
            if row and row["oldest"] and (oldest is None or row["oldest"] < oldest):
                oldest = row["oldest"]
        age = GaugeMetricFamily(
            "mamoru_dsr_oldest_open_request_age_seconds", "Age of the oldest open data-subject request.",
        )
        age.add_metric([], (timezone.now() - oldest).total_seconds() if oldest else 0)
        nodes = GaugeMetricFamily(
            "mamoru_dsr_nodes", "Request nodes (one per collection and phase) not done, by status; "
            "'failed' nodes need a retry or a DPO.", labels=["status"],
        )
        counts = dict(
            RequestTask.objects.exclude(status=TaskStatus.DONE).values_list("status")
            .annotate(n=Count("pk")).order_by()
        )
        for status in TaskStatus.values:
            if status != TaskStatus.DONE:
                nodes.add_metric([status], counts.get(status, 0))
        retries = GaugeMetricFamily(
            "mamoru_dsr_node_failed_attempts",
            "Failed attempts of nodes not done (attempts beyond the first), a sign of failing stores.",
        )
        pending = RequestTask.objects.exclude(status=TaskStatus.DONE).filter(attempts__gt=1)
        totals = pending.aggregate(attempts=Sum("attempts"), nodes=Count("pk"))
        retries.add_metric([], (totals["attempts"] or 0) - totals["nodes"])
        return [requests, age, nodes, retries]

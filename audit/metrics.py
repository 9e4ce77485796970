"""Audit metrics for ``/metrics``: the last scheduled chain verification (when, intact, problems)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily

from governance.observability.metrics import BaseMetricSource, metric_sources


@metric_sources.register
class ChainVerification(BaseMetricSource):
    identifier = "audit"

    def collect(self) -> Iterable:
        from audit.models_verification import VerificationRun

        finished = GaugeMetricFamily(
            "mamoru_audit_verification_last_run_timestamp_seconds",
            "When the last chain verification finished (Unix time), incremental or full.",
            labels=["kind"],
        )
        ok = GaugeMetricFamily(
            "mamoru_audit_verification_ok",
            "1 when the last chain verification found every chain intact, 0 when it found a break.",
            labels=["kind"],
        )
        problems = GaugeMetricFamily(
            "mamoru_audit_verification_problems", "Problems the last chain verification found.",
            labels=["kind"],
        )
        for kind, full in (("incremental", False), ("full", True)):
            run = VerificationRun.objects.filter(full=full).order_by("-started_at").first()
            if run is None:
                continue
            finished.add_metric([kind], run.finished_at.timestamp())
            ok.add_metric([kind], 1 if run.ok else 0)
            problems.add_metric([kind], run.problem_count)
        return [finished, ok, problems]

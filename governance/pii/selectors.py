"""Reads: finding counts over time (for charts and the dashboard) and alert counts."""

from __future__ import annotations

from datetime import date, datetime

from django.db.models import Count, QuerySet
from django.db.models.functions import TruncDay, TruncMonth, TruncWeek
from django.utils import timezone

from governance.pii.models import AlertStatus, PiiAlert, ScanFinding

BUCKETS = {"day": TruncDay, "week": TruncWeek, "month": TruncMonth}
GROUPABLE = ("entity_type", "field_path", "source", "channel")


def _findings(
    since: datetime, until: datetime | None, base: QuerySet[ScanFinding] | None = None
) -> QuerySet[ScanFinding]:
    qs = (ScanFinding.objects.all() if base is None else base).filter(created_at__gte=since)
    if until is not None:
        qs = qs.filter(created_at__lt=until)
    return qs


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    return value


def findings_counts(
    *, since: datetime, until: datetime | None = None, bucket: str = "day", by: str = "entity_type",
    base: QuerySet[ScanFinding] | None = None,
) -> list[dict]:
    """Return ``[{"date", <by>, "count"}]`` ordered by date, counting findings per bucket.

    With the default ``by="entity_type"`` each row is ``{"date", "entity_type", "count"}``.
    ``base`` restricts the findings counted (the admin passes its filtered list).
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")
    if by not in GROUPABLE:
        raise ValueError(f"by must be one of {', '.join(GROUPABLE)}")
    rows = (
        _findings(since, until, base)
        .annotate(bucket=BUCKETS[bucket]("created_at"))
        .values("bucket", by)
        .annotate(count=Count("id"))
        .order_by("bucket", by)
    )
    return [{"date": _as_date(row["bucket"]), by: row[by], "count": row["count"]} for row in rows]


def findings_totals(
    *, since: datetime, until: datetime | None = None, by: str = "entity_type",
    base: QuerySet[ScanFinding] | None = None,
) -> list[dict]:
    """Return ``[{<by>, "count"}]`` over the period, largest first."""
    if by not in GROUPABLE:
        raise ValueError(f"by must be one of {', '.join(GROUPABLE)}")
    rows = _findings(since, until, base).values(by).annotate(count=Count("id")).order_by("-count", by)
    return list(rows)


def open_alerts_count() -> int:
    """Return how many unexpected-PII alerts wait for a DPO."""
    return PiiAlert.objects.filter(status=AlertStatus.OPEN).count()

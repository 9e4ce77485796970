"""The PII scanner's dashboard panel: findings per day and open unexpected-PII alerts."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.utils.translation import gettext

from governance.charts import bar_chart
from governance.pii import selectors as pii
from governance.pii.models import ScanFinding
from oversight.dashboard import DAYS, BasePanel, last_days, panels


@panels.register
class PiiPanel(BasePanel):
    identifier = "pii"
    order = 40
    template = "pii/panels/pii.html"

    def build(self, *, user, now: dt.datetime) -> dict | None:
        if not user.has_perm("pii.view_scanfinding"):
            return None  # only what the role may see
        days = last_days(now)
        rows = pii.findings_counts(since=now - dt.timedelta(days=DAYS), until=now, bucket="day")
        per_type: dict[str, dict] = defaultdict(lambda: defaultdict(int))
        for row in rows:
            per_type[row["entity_type"]][row["date"]] += row["count"]
        series = {kind: [by_day.get(d, 0) for d in days] for kind, by_day in sorted(per_type.items())}
        return {
            "chart": bar_chart(
                title=gettext("PII findings per day (last 30 days)"),
                labels=[d.strftime("%m-%d") for d in days], series=series, stacked=True,
            ) if series else None,
            "findings": sum(r["count"] for r in rows),
            "open_alerts": pii.open_alerts_count(),
        }

    def figures(self, *, user, start: dt.datetime) -> list[tuple[str, int]]:
        if not user.has_perm("pii.view_scanfinding"):
            return []
        return [(gettext("PII findings"), ScanFinding.objects.filter(created_at__gte=start).count())]

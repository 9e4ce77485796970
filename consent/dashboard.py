"""Consent's dashboard panel: the share of consent given per purpose over the last 30 days."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.utils.translation import gettext

from consent.models import ConsentEvent
from consent.selectors import consent_rates_by_purpose
from governance.access.policy import workspaces_visible_to
from governance.charts import line_chart
from oversight.dashboard import DAYS, BasePanel, last_days, panels


@panels.register
class ConsentPanel(BasePanel):
    identifier = "consent"
    order = 30
    template = "consent/panels/consent.html"

    def build(self, *, user, now: dt.datetime) -> dict | None:
        if not user.has_perm("consent.view_consentevent"):
            return None  # only what the role may see: no consent figures without consent access
        days = last_days(now)
        rows = consent_rates_by_purpose(since=now - dt.timedelta(days=DAYS), until=now, bucket="day")
        given: dict[str, dict] = defaultdict(dict)
        for row in rows:
            total = row["given"] + row["refused"] + row["withdrawn"]
            if total:
                given[row["purpose_code"]][row["date"]] = round(100 * row["given"] / total, 1)
        series = {code: [by_day.get(d) for d in days] for code, by_day in sorted(given.items())}
        events = sum(r["given"] + r["refused"] + r["withdrawn"] for r in rows)
        return {
            "chart": line_chart(
                title=gettext("Share of consent given per purpose (last 30 days)"),
                labels=[d.strftime("%m-%d") for d in days], series=series, percent=True,
            ) if series else None,
            "events": events,
        }

    def figures(self, *, user, start: dt.datetime) -> list[tuple[str, int]]:
        if not user.has_perm("consent.view_consentevent"):
            return []
        qs = ConsentEvent.objects.filter(occurred_at__gte=start)
        if not user.has_perm("subjects.view_profile"):
            qs = qs.filter(workspace__in=workspaces_visible_to(user))
        return [(gettext("Consent events"), qs.count())]

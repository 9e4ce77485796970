"""Demo data for the audit pages: a support agent's denied attempts and one open anomaly alert."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from audit.models import Outcome
from audit.models_exports import AnomalyAlert
from audit.services import access_record
from governance.subjects.models import Profile
from oversight.anomalies import anomalies_evaluate, anomaly_rules_ensure_defaults


def seed(*, stdout, credentials: dict) -> None:
    """Make the dashboard's anomaly panel show something: denied reads outside the agent's workspace."""
    anomaly_rules_ensure_defaults()
    agent = get_user_model().objects.filter(username="support").first()
    outside = Profile.objects.exclude(workspace__slug="shop-jp").first()
    if agent is not None and outside is not None and not AnomalyAlert.objects.exists():
        for _ in range(6):
            access_record(actor=agent, obj=outside, outcome=Outcome.DENIED, via="demo",
                          reason="demo: read outside the assigned workspace")
        alerts = anomalies_evaluate(notify=False)
        stdout.write(f"audit: {len(alerts)} demo anomaly alert(s)\n")
    credentials["portal"] = "/privacy/"
    credentials["audit_exports"] = "/admin/audit/auditexport/new/"

"""Access-anomaly rules fire, stay idempotent, e-mail the DPO group, and acknowledging is audited."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.management import call_command

from audit.models import AuditEntry, Outcome
from audit.models_exports import AnomalyAlert, AnomalyKind, AnomalyRule
from audit.services import access_record
from oversight.anomalies import AlertAlreadyAcknowledged, alert_acknowledge, anomalies_evaluate
from oversight.exporters.services import audit_export_create
from tests.factories import make_profile

pytestmark = pytest.mark.django_db
WEEK = 7 * 24 * 60  # wide windows: the test never straddles a window boundary in practice


def _only(kind, **kw) -> AnomalyRule:
    AnomalyRule.objects.all().delete()
    return AnomalyRule.objects.create(name=kind, kind=kind, window_minutes=WEEK, **kw)


def test_reads_per_hour_fires_above_threshold_once(workspaces, role_users):
    # given
    rule = _only(AnomalyKind.READS_PER_HOUR, threshold=2)
    agent, dpo = role_users["support_agent"], role_users["dpo"]
    profiles = [make_profile(workspaces[0], seed=i) for i in range(3)]
    for profile in profiles[:2]:
        access_record(actor=agent, obj=profile, via="api")
        access_record(actor=agent, obj=profile, via="api")  # re-reading the same one counts once
    # when / then: two distinct profiles is not more than 2
    assert anomalies_evaluate() == []
    access_record(actor=agent, obj=profiles[2], via="api")
    access_record(actor=dpo, obj=profiles[2], via="api")
    alerts = anomalies_evaluate()
    assert [(a.rule, a.actor, a.count) for a in alerts] == [(rule, agent, 3)]
    assert anomalies_evaluate() == []  # idempotent
    assert mail.outbox and dpo.email in mail.outbox[0].to
    assert agent.email in mail.outbox[0].body


def test_off_hours_reads_fire(workspaces, role_users):
    # working hours 0–0: every moment is outside them
    _only(AnomalyKind.OFF_HOURS, threshold=0, work_start_hour=0, work_end_hour=0)
    access_record(actor=role_users["dpo"], obj=make_profile(workspaces[0]), via="admin")
    [alert] = anomalies_evaluate(notify=False)
    assert alert.kind == AnomalyKind.OFF_HOURS and alert.count == 1


def test_reads_inside_working_hours_do_not_fire(workspaces, role_users):
    _only(AnomalyKind.OFF_HOURS, threshold=0, work_start_hour=0, work_end_hour=24, weekdays_only=False)
    access_record(actor=role_users["dpo"], obj=make_profile(workspaces[0]), via="admin")
    assert anomalies_evaluate(notify=False) == []


def test_repeated_denied_attempts_fire(workspaces, role_users):
    _only(AnomalyKind.DENIED_ATTEMPTS, threshold=2)
    agent = role_users["support_agent"]
    profile = make_profile(workspaces[1])
    for _ in range(3):
        access_record(actor=agent, obj=profile, outcome=Outcome.DENIED, via="api")
    [alert] = anomalies_evaluate(notify=False)
    assert alert.actor == agent and alert.count == 3


def test_bulk_exports_fire(workspaces, role_users):
    _only(AnomalyKind.BULK_EXPORTS, threshold=1)
    auditor = role_users["auditor"]
    for _ in range(2):
        audit_export_create(user=auditor, report="access_log", fmt="csv", filters={}, streamed=True)
    [alert] = anomalies_evaluate(notify=False)
    assert alert.actor == auditor and alert.count == 2


def test_acknowledging_is_audited(workspaces, role_users):
    # given
    _only(AnomalyKind.DENIED_ATTEMPTS, threshold=0)
    access_record(actor=role_users["support_agent"], obj=make_profile(workspaces[1]),
                  outcome=Outcome.DENIED)
    [alert] = anomalies_evaluate(notify=False)
    dpo = role_users["dpo"]
    # when
    alert = alert_acknowledge(alert=alert, actor=dpo, note="known test")
    # then
    entry = AuditEntry.objects.order_by("-seq").first()
    assert entry.content_type.model == "anomalyalert" and entry.actor == dpo
    assert entry.action == AuditEntry.Action.UPDATE and "acknowledged_at" in entry.fields
    with pytest.raises(AlertAlreadyAcknowledged):
        alert_acknowledge(alert=alert, actor=dpo, note="again")


def test_no_acknowledgement_without_a_note(workspaces, role_users):
    from django.db import IntegrityError, transaction
    from django.utils import timezone

    from oversight.anomalies import AlertNoteRequired

    _only(AnomalyKind.DENIED_ATTEMPTS, threshold=0)
    access_record(actor=role_users["support_agent"], obj=make_profile(workspaces[1]), outcome=Outcome.DENIED)
    [alert] = anomalies_evaluate(notify=False)
    # the service refuses a missing or blank note
    for note in ("", "   ", "ok"):
        with pytest.raises(AlertNoteRequired):
            alert_acknowledge(alert=alert, actor=role_users["dpo"], note=note)
    # and so does the database, whoever writes the row
    with pytest.raises(IntegrityError), transaction.atomic():
        type(alert).objects.filter(pk=alert.pk).update(acknowledged_at=timezone.now(), acknowledge_note="")
    alert.refresh_from_db()
    assert alert.acknowledged_at is None


def test_api_acknowledge(api_client, workspaces, role_users):
    _only(AnomalyKind.DENIED_ATTEMPTS, threshold=0)
    access_record(actor=role_users["support_agent"], obj=make_profile(workspaces[1]),
                  outcome=Outcome.DENIED)
    [alert] = anomalies_evaluate(notify=False)
    api_client.force_authenticate(role_users["auditor"])
    assert api_client.get("/api/v1/audit/alerts/?open=1").json()[0]["id"] == alert.pk
    assert api_client.post(f"/api/v1/audit/alerts/{alert.pk}/acknowledge").status_code == 403
    api_client.force_authenticate(role_users["dpo"])
    blank = api_client.post(f"/api/v1/audit/alerts/{alert.pk}/acknowledge", {"note": ""}, format="json")
    assert blank.status_code == 400 and AnomalyAlert.objects.get().acknowledged_at is None
    response = api_client.post(f"/api/v1/audit/alerts/{alert.pk}/acknowledge", {"note": "known job"}, format="json")
    assert response.status_code == 200 and response.json()["acknowledged_at"]
    again = api_client.post(f"/api/v1/audit/alerts/{alert.pk}/acknowledge", {"note": "again"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "alert_already_acknowledged"


def test_default_rules_exist_and_command_runs(workspaces, role_users, capsys):
    # given: the default rules from the migration, and six denied attempts (default: more than 5)
    assert set(AnomalyRule.objects.values_list("kind", flat=True)) == set(AnomalyKind.values)
    profile = make_profile(workspaces[1])
    for _ in range(6):
        access_record(actor=role_users["support_agent"], obj=profile, outcome=Outcome.DENIED)
    # when
    call_command("evaluate_anomalies", "--no-mail")
    # then
    assert "denied attempts" in capsys.readouterr().out
    assert AnomalyAlert.objects.filter(kind=AnomalyKind.DENIED_ATTEMPTS).count() == 1

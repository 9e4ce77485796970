"""Findings chart and alert acknowledgement in the admin."""

from __future__ import annotations

import pytest
from django.urls import reverse

from governance.pii.models import AlertStatus, PiiAlert
from governance.pii.scanner import Finding
from governance.pii.services import findings_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def dpo_client(client, role_users):
    dpo = role_users["dpo"]
    dpo.is_staff = True
    dpo.save()
    client.force_login(dpo)
    return client


def test_findings_changelist_shows_svg_charts(dpo_client, workspaces):
    findings_store(
        findings=[[Finding("EMAIL_ADDRESS", "email", 1.0, "EmailRecognizer", 0, 10),
                   Finding("CREDIT_CARD", "notes", 1.0, "CreditCardRecognizer", 3, 22)]],
        channel="ingest", source="crm", workspace=workspaces[0], policy={"email": {"EMAIL_ADDRESS"}},
    )
    page = dpo_client.get(reverse("admin:pii_scanfinding_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count("<svg") >= 3 and "EMAIL_ADDRESS" in html and "crm" in html


def test_acknowledge_action(dpo_client, role_users):
    findings_store(
        findings=[[Finding("CREDIT_CARD", "notes", 1.0, "CreditCardRecognizer", 3, 22)]],
        channel="ingest", source="crm", policy={},
    )
    alert = PiiAlert.objects.get()
    dpo_client.post(reverse("admin:pii_piialert_changelist"),
                    {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.ACKNOWLEDGED
    assert alert.acknowledged_by == role_users["dpo"]


def test_analyst_cannot_acknowledge(client, role_users):
    findings_store(
        findings=[[Finding("CREDIT_CARD", "notes", 1.0, "CreditCardRecognizer", 3, 22)]],
        channel="ingest", source="crm", policy={},
    )
    analyst = role_users["privacy_analyst"]
    analyst.is_staff = True
    analyst.save()
    client.force_login(analyst)
    alert = PiiAlert.objects.get()
    client.post(reverse("admin:pii_piialert_changelist"),
                {"action": "acknowledge", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert alert.status == AlertStatus.OPEN


def test_charts_follow_the_changelist_filters(dpo_client, workspaces):
    findings_store(
        findings=[[Finding("EMAIL_ADDRESS", "email", 1.0, "EmailRecognizer", 0, 10)]],
        channel="ingest", source="crm", workspace=workspaces[0],
    )
    findings_store(
        findings=[[Finding("PHONE_NUMBER", "tel", 1.0, "JpPhoneRecognizer", 0, 10)]],
        channel="ingest", source="newsletter", workspace=workspaces[1],
    )
    html = dpo_client.get(reverse("admin:pii_scanfinding_changelist") + "?source=crm").content.decode()
    charts = html.split('class="pii-charts"', 1)[1].split("</div>", 1)[0]
    assert "EMAIL_ADDRESS" in charts and "PHONE_NUMBER" not in charts and "newsletter" not in charts

"""Role-aware dashboard (issue 15, item 4): working lists of requests, only the panels a role may
see, the demo's open / due-soon / overdue requests, readable charts."""

from __future__ import annotations

import re

import pytest
from django.utils import translation

pytestmark = pytest.mark.django_db


def panel_ids(user) -> set[str]:
    from oversight.dashboard import dashboard_context

    return {p["identifier"] for p in dashboard_context(user=user)["panels"]}


def test_the_demo_seeds_requests_a_new_user_sees_in_every_working_list(workspaces, role_users):
    from dsr.demo import DEMO_REQUESTS, demo_requests_seed
    from oversight.dashboard import dashboard_context

    # given / when: the demo's requests (twice: seeding again adds nothing)
    assert demo_requests_seed() == len(DEMO_REQUESTS)
    assert demo_requests_seed() == len(DEMO_REQUESTS)

    # then: the DPO's dashboard lists them, with their SLA colours
    panel = next(p["data"] for p in dashboard_context(user=role_users["dpo"])["panels"]
                 if p["identifier"] == "requests")
    lists = {entry["key"]: entry for entry in panel["lists"]}
    assert lists["overdue"]["count"] >= 2 and {r["sla"] for r in lists["overdue"]["rows"]} == {"overdue"}
    assert lists["week"]["count"] >= 1 and {r["sla"] for r in lists["week"]["rows"]} == {"soon"}
    assert lists["attention"]["count"] == 1 and lists["attention"]["rows"][0]["attention"]
    assert lists["mine"]["count"] == 2  # assigned to the demo DPO
    assert panel["paused"] == 1 and panel["open"] == len(DEMO_REQUESTS)


@pytest.mark.parametrize(("role", "expected"), [
    ("dpo", {"requests", "anomalies", "verification", "consent", "pii"}),
    ("privacy_analyst", {"requests", "consent", "pii"}),
    ("support_agent", {"requests"}),
    ("marketing", {"consent"}),
    ("auditor", {"anomalies", "verification"}),
    ("nobody", set()),
])
def test_each_role_sees_only_the_panels_it_may(workspaces, role_users, role, expected):
    assert panel_ids(role_users[role]) == expected


@pytest.mark.parametrize("language", ["en", "ja"])
def test_no_role_is_told_a_module_is_missing_when_it_lacks_a_permission(client, workspaces, role_users, language):
    from dsr.demo import demo_requests_seed

    demo_requests_seed()
    for role in ("dpo", "privacy_analyst", "support_agent", "marketing", "auditor"):
        client.force_login(role_users[role])
        page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
        assert 'id="mamoru-dashboard"' in page, role
        assert "not installed" not in page and "インストールされていません" not in page, role


def test_support_agent_lists_only_requests_of_their_workspace(client, workspaces, role_users):
    from dsr.demo import demo_requests_seed
    from dsr.models import DataSubjectRequest

    demo_requests_seed()
    client.force_login(role_users["support_agent"])  # assigned to shop-jp only
    page = client.get("/admin/").content.decode()
    lists = page.split('id="dash-requests"', 1)[1]
    shown = {r.workspace.slug for r in DataSubjectRequest.objects.select_related("workspace") if str(r.pk)[:8] in lists}
    assert shown == {"shop-jp"}


def test_working_lists_in_japanese_show_times_with_their_zone(client, workspaces, role_users):
    from dsr.demo import demo_requests_seed

    demo_requests_seed()
    client.force_login(role_users["dpo"])
    with translation.override("ja"):
        page = client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    section = page.split('id="dash-requests"', 1)[1]
    assert "対応する請求" in section and "期限超過" in section and "今週が期限" in section
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", section)


def test_chart_x_labels_are_thinned_and_not_rotated():
    from governance.charts import MAX_X_LABELS, bar_chart, line_chart

    labels = [f"11-{d:02d}" for d in range(1, 31)]
    for svg in (bar_chart(title="t", labels=labels, series={"EMAIL_ADDRESS": [1] * 30}, stacked=True),
                line_chart(title="t", labels=labels, series={"marketing_email": [50.0] * 30}, percent=True)):
        axis = svg.split('class="axis x', 1)[1].split('class="axis y', 1)[0]
        shown = [t for t in re.findall(r"<text[^>]*>([^<]+)</text>", axis) if re.fullmatch(r"11-\d\d", t)]
        assert 1 < len(shown) <= MAX_X_LABELS
        assert "rotate(" not in axis

"""Store discovery over a real SQLite database through SQLAlchemy, command and admin review."""

from __future__ import annotations

import sqlite3

import pytest
from django.core.management import call_command
from django.urls import reverse

from governance.pii.models import (
    ColumnSuggestion,
    ScanFinding,
    StoreScan,
    StoreScanStatus,
    SuggestionStatus,
)
from governance.pii.services import store_scan_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop_db(tmp_path):
    path = tmp_path / "shop.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(
        "create table customers (id integer primary key, mail text, tel text, name text, "
        "created text, plan text)"
    )
    conn.execute("create table orders (id integer primary key, customer_id integer, note text)")
    people = [("Alice Brown", "alice"), ("Bob Stone", "bob"), ("Carol White", "carol")]
    for i, (name, handle) in enumerate(people * 4):
        conn.execute(
            "insert into customers (mail, tel, name, created, plan) values (?, ?, ?, ?, ?)",
            (f"{handle}{i}@example.com", f"090-1234-{5600 + i}", name, "2024-01-01", "gold"),
        )
        conn.execute("insert into orders (customer_id, note) values (?, ?)", (i, "leave at door"))
    conn.commit()
    conn.close()
    return f"sqlite:///{path}"


def test_scan_store_command_suggests_categories(shop_db, pii_scanner, capsys):
    call_command("scan_store", "shop", "--url", shop_db, "--sample", "50")
    scan = StoreScan.objects.get()
    assert scan.status == StoreScanStatus.DONE and (scan.tables_done, scan.tables_total) == (2, 2)
    suggestions = {(s.collection, s.column): s.data_category for s in scan.suggestions.all()}
    assert suggestions == {
        ("customers", "mail"): "user.contact.email",
        ("customers", "tel"): "user.contact.phone_number",
        ("customers", "name"): "user.name",
    }
    out = capsys.readouterr().out
    assert "[2/2]" in out and "alice0@example.com" not in out
    assert ScanFinding.objects.count() == 0  # discovery stores suggestions, not findings


def test_failed_scan_is_recorded(pii_scanner):
    scan = store_scan_create(name="broken", url="sqlite:////nonexistent/dir/x.db", enqueue=False)
    from governance.pii.tasks import store_scan_run

    assert store_scan_run(str(scan.pk)) == StoreScanStatus.FAILED
    scan.refresh_from_db()
    assert scan.status == StoreScanStatus.FAILED and scan.error


def test_dpo_reviews_suggestions_in_admin(client, role_users, shop_db, pii_scanner):
    call_command("scan_store", "shop", "--url", shop_db)
    dpo = role_users["dpo"]
    dpo.is_staff = True
    dpo.save()
    client.force_login(dpo)
    mail = ColumnSuggestion.objects.get(column="mail")
    tel = ColumnSuggestion.objects.get(column="tel")
    url = reverse("admin:pii_columnsuggestion_changelist")
    client.post(url, {"action": "accept", "_selected_action": [mail.pk]})
    client.post(url, {"action": "reject", "_selected_action": [tel.pk]})
    mail.refresh_from_db()
    tel.refresh_from_db()
    assert (mail.status, mail.decided_by) == (SuggestionStatus.ACCEPTED, dpo)
    assert tel.status == SuggestionStatus.REJECTED
    page = client.get(reverse("admin:pii_storescan_change", args=[mail.scan_id]))
    assert page.status_code == 200 and b"<progress" in page.content
    assert b"shop.sqlite3" in page.content


def test_admin_starts_a_scan(client, role_users, shop_db, monkeypatch):
    queued = []
    monkeypatch.setattr("governance.pii.tasks.store_scan_run.delay", lambda pk: queued.append(pk))
    dpo = role_users["dpo"]
    dpo.is_staff = True
    dpo.save()
    client.force_login(dpo)
    response = client.post(reverse("admin:pii_storescan_add"), {
        "name": "shop", "store_key": "", "url": shop_db, "sample_size": 20,
        "suggestions-TOTAL_FORMS": 0, "suggestions-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content[:2000]
    scan = StoreScan.objects.get()
    assert scan.url == shop_db and scan.status == StoreScanStatus.QUEUED
    assert scan.requested_by == dpo

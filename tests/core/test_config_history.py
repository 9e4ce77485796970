"""Configuration history: changes made through the admin (real form POSTs) are in the audit chain
with before/after, actor and reason; secrets never are; the object's History page shows them."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.forms import MultiWidget

from audit.freetext import freetext_reveal
from audit.models import AuditEntry
from tests.accounts import OtpVerifiedClient

pytestmark = pytest.mark.django_db

REASON = "Ticket 4521: asked by hanako.sato@example.jp"


@pytest.fixture
def dpo_client(role_users):
    client = OtpVerifiedClient()
    client.force_login(role_users["dpo"])
    return client


@pytest.fixture
def admin_client_(django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    client = OtpVerifiedClient()
    client.force_login(user)
    return client, user


def _form_data(response) -> dict:
    """What the admin's change form would post back unchanged (main form and inline formsets)."""
    data: dict = {}

    def put(form, name):
        field, bound = form.fields[name], form[name]
        key = bound.html_name
        value = bound.value()
        if isinstance(field.widget, MultiWidget):
            for i, part in enumerate(field.widget.decompress(value)):
                data[f"{key}_{i}"] = "" if part is None else str(part)
        elif isinstance(value, list | tuple):
            data[key] = [str(v) for v in value]
        elif isinstance(value, bool):
            if value:
                data[key] = "on"
        elif value is not None:
            data[key] = value

    form = response.context["adminform"].form
    for name in form.fields:
        put(form, name)
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        for name in formset.management_form.fields:
            data[f"{formset.prefix}-{name}"] = formset.management_form[name].value()
        for sub in formset.forms:
            for name in sub.fields:
                put(sub, name)
    return data


def _change(client, url: str, **changes):
    response = client.get(url)
    assert response.status_code == 200, response.status_code
    data = {**_form_data(response), **changes, "_change_reason": REASON, "_save": "Save"}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    return response


def _entries(obj) -> list[AuditEntry]:
    ct = ContentType.objects.get_for_model(obj)
    return list(AuditEntry.objects.filter(content_type=ct, object_pk=str(obj.pk))
                .exclude(action=AuditEntry.Action.ACCESS).order_by("seq"))


def _all_audit_text() -> str:
    return json.dumps(list(AuditEntry.objects.values()), default=str)


def _assert_reason(entry: AuditEntry) -> None:
    assert "hanako.sato@example.jp" not in entry.reason and "<EMAIL_ADDRESS>" in entry.reason
    assert freetext_reveal(entry.additional_data["reason_enc"]) == REASON


def test_a_purpose_change_is_recorded_with_before_after_actor_and_reason(dpo_client, role_users, purposes_seeded):
    purpose = purposes_seeded["analytics"]
    before = purpose.ordering
    _change(dpo_client, f"/admin/consent/purpose/{purpose.pk}/change/", ordering=str(before + 7))
    entry = [e for e in _entries(purpose) if e.action == AuditEntry.Action.UPDATE][-1]
    assert entry.changes_dict["ordering"] == [str(before), str(before + 7)] or \
        entry.changes_dict["ordering"] == [before, before + 7]
    assert entry.actor == role_users["dpo"]
    _assert_reason(entry)


def test_site_keys_are_recorded_and_their_secrets_never(dpo_client, role_users, purposes_seeded, workspaces):
    from consent.models import Site, SiteKey

    site = Site.objects.create(workspace=workspaces[0], slug="shop", name="Shop")
    # when: a DPO issues a secret key and revokes it through the admin's actions
    response = dpo_client.post("/admin/consent/site/", {"action": "issue_secret", "_selected_action": [site.pk]},
                               follow=True)
    secret = next(str(m) for m in response.context["messages"] if "mcsk_" in str(m)).rsplit(" ", 1)[-1]
    key = SiteKey.objects.get(site=site)
    dpo_client.post("/admin/consent/sitekey/", {"action": "revoke", "_selected_action": [key.pk]})
    # then
    entries = _entries(key)
    created = next(e for e in entries if e.action == AuditEntry.Action.CREATE and e.changes_dict)
    assert created.changes_dict["digest"][1] == "[secret]" and created.actor == role_users["dpo"]
    revoked = next(e for e in entries if e.action == AuditEntry.Action.UPDATE and "revoked_at" in e.changes_dict)
    assert revoked.changes_dict["revoked_at"][0] in (None, "None") and revoked.changes_dict["revoked_at"][1]
    assert revoked.actor == role_users["dpo"]
    text = _all_audit_text()
    assert secret not in text and key.digest not in text


def test_a_store_change_is_recorded_and_its_secrets_never(admin_client_):
    client, user = admin_client_
    from governance.crypto import envelope
    from governance.datamap.models import Collection, Store

    store = Store(key="crm", name="CRM", connector_type="sql", connection={"url": "${CRM_URL}"},
                  data_key_id=envelope.data_key_create(owner="test"))
    store.secrets = json.dumps({"password": "s3cr3t-Store-Pa55"})
    store.save()
    Collection.objects.create(store=store, name="customers")
    _change(client, f"/admin/datamap/store/{store.pk}/change/", name="CRM (EU)")
    entry = [e for e in _entries(store) if e.action == AuditEntry.Action.UPDATE][-1]
    assert entry.changes_dict["name"] == ["CRM", "CRM (EU)"] and entry.actor == user
    _assert_reason(entry)
    created = next(e for e in _entries(store) if e.action == AuditEntry.Action.CREATE)
    assert created.changes_dict["secrets"][1] == "[secret]"
    assert "s3cr3t-Store-Pa55" not in _all_audit_text()


def test_group_permissions_and_user_groups_are_recorded(admin_client_, django_user_model):
    client, admin = admin_client_
    group = Group.objects.create(name="reviewers")
    perm = Permission.objects.get(codename="view_purpose")
    # when: permissions of a group change in the admin
    _change(client, f"/admin/auth/group/{group.pk}/change/", permissions=[str(perm.pk)])
    entry = [e for e in _entries(group) if isinstance((e.changes_dict or {}).get("permissions"), dict)][-1]
    assert entry.changes_dict["permissions"]["operation"] == "add"
    assert any("view_purpose" in o or "purpose" in o.lower() for o in entry.changes_dict["permissions"]["objects"])
    assert entry.actor == admin
    # when: a user's groups change in the admin, and the password is changed
    user = django_user_model.objects.create_user("analyst", "analyst@example.com", "pw-old-123")
    _change(client, f"/admin/auth/user/{user.pk}/change/", groups=[str(group.pk)])
    entry = [e for e in _entries(user) if isinstance((e.changes_dict or {}).get("groups"), dict)][-1]
    assert entry.changes_dict["groups"]["operation"] == "add" and entry.changes_dict["groups"]["objects"] == ["reviewers"]
    assert entry.actor == admin
    response = client.post(f"/admin/auth/user/{user.pk}/password/",
                           {"password1": "n3w-Pa55word!", "password2": "n3w-Pa55word!", "usable_password": "true"})
    assert response.status_code == 302
    user.refresh_from_db()
    changed = [e for e in _entries(user) if "password" in (e.changes_dict or {})][-1]
    assert changed.changes_dict["password"] == ["[secret]", "[secret]"] and changed.actor == admin
    text = _all_audit_text()
    assert user.password not in text and "n3w-Pa55word!" not in text and "pw-old-123" not in text


def test_the_history_page_shows_changes_masked_and_reveals_for_the_dpo(dpo_client, role_users, purposes_seeded):
    purpose = purposes_seeded["analytics"]
    _change(dpo_client, f"/admin/consent/purpose/{purpose.pk}/change/", ordering="55")
    url = f"/admin/consent/purpose/{purpose.pk}/history/"
    page = dpo_client.get(url).content.decode()
    assert "ordering" in page and "55" in page and "&lt;EMAIL_ADDRESS&gt;" in page
    assert "hanako.sato@example.jp" not in page and "reveal_reasons=1" in page
    reads = AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS, fields=["reason"]).count()
    revealed = dpo_client.get(url + "?reveal_reasons=1").content.decode()
    assert "hanako.sato@example.jp" in revealed
    assert AuditEntry.objects.filter(action=AuditEntry.Action.ACCESS, fields=["reason"]).count() == reads + 1


def test_roles_without_reveal_see_reasons_masked(role_users, purposes_seeded, dpo_client):
    purpose = purposes_seeded["analytics"]
    _change(dpo_client, f"/admin/consent/purpose/{purpose.pk}/change/", ordering="56")
    auditor = OtpVerifiedClient()
    user = role_users["auditor"]
    user.is_staff = True
    user.save()
    perm = Permission.objects.get(codename="view_purpose")
    user.user_permissions.add(perm)
    auditor.force_login(user)
    page = auditor.get(f"/admin/consent/purpose/{purpose.pk}/history/?reveal_reasons=1").content.decode()
    assert "&lt;EMAIL_ADDRESS&gt;" in page and "hanako.sato@example.jp" not in page


@pytest.fixture
def purposes_seeded(db):
    from consent.demo import purposes_seed

    return {p.code: p for p in purposes_seed()}


def test_the_change_form_asks_for_a_reason_and_the_history_speaks_japanese(dpo_client, purposes_seeded):
    purpose = purposes_seeded["analytics"]
    form = dpo_client.get(f"/admin/consent/purpose/{purpose.pk}/change/").content.decode()
    assert 'name="_change_reason"' in form
    _change(dpo_client, f"/admin/consent/purpose/{purpose.pk}/change/", ordering="57")
    page = dpo_client.get(f"/admin/consent/purpose/{purpose.pk}/history/", HTTP_ACCEPT_LANGUAGE="ja")
    assert "変更履歴（監査ログ）" in page.content.decode()

"""The person page and the admin's header search (issue 15, item 1)."""

from __future__ import annotations

import re

import pytest
from django.contrib.contenttypes.models import ContentType

from audit.models import AuditEntry, Outcome
from audit.services import access_record
from governance.subjects.models import Profile
from tests.factories import make_profile

pytestmark = pytest.mark.django_db

EMAIL = "Hanako.Yamada+shop@Example.JP"


@pytest.fixture
def hanako(workspaces):
    return make_profile(workspaces[0], locale="ja_JP", seed=7, email=EMAIL, phone="090-1234-5678",
                        full_name="山田 花子", kana_name="ヤマダ ハナコ")


def _entries(profile, via):
    ct = ContentType.objects.get_for_model(Profile)
    return AuditEntry.objects.filter(content_type=ct, object_pk=str(profile.pk),
                                     additional_data__via=via)


# --- search ------------------------------------------------------------------------------------

@pytest.mark.parametrize("typed", [
    "hanako.yamada+shop@example.jp",  # case folded
    " HANAKO.YAMADA+SHOP@EXAMPLE.JP ",
    "090-1234-5678", "０９０ １２３４ ５６７８", "+81 90-1234-5678",  # phones as people type them
])
def test_one_match_opens_the_person_page(client, role_users, hanako, typed):
    # given
    client.force_login(role_users["dpo"])
    # when
    response = client.get("/admin/subjects/profile/search/", {"q": typed})
    # then
    assert response.status_code == 302
    assert response["Location"] == f"/admin/subjects/profile/{hanako.pk}/person/"


def test_search_is_audited_without_the_searched_value(client, role_users, hanako):
    client.force_login(role_users["dpo"])
    before = AuditEntry.objects.count()
    client.get("/admin/subjects/profile/search/", {"q": EMAIL})
    new = list(AuditEntry.objects.order_by("seq")[before:])
    search = [e for e in new if e.object_pk == "*"]
    assert len(search) == 1 and search[0].actor == role_users["dpo"]
    assert "search:identity" in search[0].fields and search[0].additional_data["results"] == 1
    assert _entries(hanako, "admin:search").count() == 1  # the person's log shows the lookup
    for entry in new:  # the value typed is nowhere in the log
        blob = repr((entry.object_repr, entry.reason, entry.fields, entry.additional_data, entry.changes))
        assert "hanako" not in blob.lower() and "example.jp" not in blob.lower()


def test_customer_id_search_through_the_blind_index(client, role_users, workspaces):
    from governance.subjects.services import IdentityInput, profile_upsert

    profile = profile_upsert(workspace=workspaces[0], identities=[
        IdentityInput("customer_id", "C-10042", namespace="shop")]).profile
    client.force_login(role_users["dpo"])
    for typed in ("C-10042", "shop:C-10042"):
        response = client.get("/admin/subjects/profile/search/", {"q": typed})
        assert response["Location"] == f"/admin/subjects/profile/{profile.pk}/person/"


def test_name_search_only_for_roles_that_may_reveal(client, role_users, hanako, workspaces):
    # the DPO finds her by name (spaces and width ignored) and by kana
    client.force_login(role_users["dpo"])
    for typed in ("山田花子", "山田　花子", "ﾔﾏﾀﾞ ﾊﾅｺ"):
        response = client.get("/admin/subjects/profile/search/", {"q": typed})
        assert response.status_code == 302, typed
    # the privacy analyst sees profiles masked only: no search by name
    client.force_login(role_users["privacy_analyst"])
    page = client.get("/admin/subjects/profile/search/", {"q": "山田花子"})
    assert page.status_code == 200 and 'id="search-none"' in page.content.decode()
    # the support agent may reveal in their workspace (workspaces[0]) only
    other = make_profile(workspaces[1], seed=3, full_name="Jane Roe")
    client.force_login(role_users["support_agent"])
    assert client.get("/admin/subjects/profile/search/", {"q": "山田花子"}).status_code == 302
    assert client.get("/admin/subjects/profile/search/", {"q": "jane roe"}).status_code == 200
    client.force_login(role_users["dpo"])
    assert client.get("/admin/subjects/profile/search/", {"q": "JANE  ROE"})["Location"].endswith(
        f"{other.pk}/person/")


def test_name_index_goes_with_the_name_on_erasure(client, role_users, hanako):
    from governance.subjects.services import profile_shred

    profile_shred(profile=hanako, reason="erasure request")
    hanako.refresh_from_db()
    assert hanako.name_index == "" and hanako.kana_name_index == ""
    client.force_login(role_users["dpo"])
    assert client.get("/admin/subjects/profile/search/", {"q": "山田花子"}).status_code == 200


def test_search_by_request_reference(client, role_users, hanako, workspaces):
    from dsr.services import dsr_request_submit

    linked = dsr_request_submit(workspace=workspaces[0], request_type="access", email=EMAIL)
    type(linked).objects.filter(pk=linked.pk).update(profile=hanako)
    client.force_login(role_users["dpo"])
    response = client.get("/admin/subjects/profile/search/", {"q": str(linked.pk)[:8]})
    assert response["Location"] == f"/admin/subjects/profile/{hanako.pk}/person/"
    unlinked = dsr_request_submit(workspace=workspaces[1], request_type="erasure", email="x@example.eu")
    response = client.get("/admin/subjects/profile/search/", {"q": str(unlinked.pk)[:8].upper()})
    assert response["Location"] == f"/admin/dsr/datasubjectrequest/{unlinked.pk}/change/"
    # the support agent does not see the other workspace's request
    client.force_login(role_users["support_agent"])
    page = client.get("/admin/subjects/profile/search/", {"q": str(unlinked.pk)[:8]})
    assert page.status_code == 200 and 'id="search-none"' in page.content.decode()


def test_support_agent_does_not_find_other_workspaces(client, role_users, workspaces):
    other = make_profile(workspaces[1], seed=5, email="eu.person@example.eu")
    client.force_login(role_users["support_agent"])
    page = client.get("/admin/subjects/profile/search/", {"q": "eu.person@example.eu"})
    assert page.status_code == 200 and 'id="search-none"' in page.content.decode()
    assert _entries(other, "admin:search").count() == 0


def test_header_search_on_every_admin_page(client, role_users):
    client.force_login(role_users["dpo"])
    for url in ("/admin/", "/admin/subjects/profile/", "/admin/audit/auditentry/"):
        assert 'id="mamoru-header-search"' in client.get(url).content.decode(), url


# --- the person page ---------------------------------------------------------------------------

def test_person_page_shows_everything_masked_and_logs_the_view(client, role_users, hanako, workspaces):
    from consent.demo import purposes_seed
    from dsr.services import dsr_request_submit
    from governance.pii.models import ScanFinding

    purposes_seed()
    _give_consent(hanako)
    dsr_request_submit(workspace=workspaces[0], request_type="access", email=EMAIL)
    ScanFinding.objects.create(channel="ingest", source="crm", workspace=workspaces[0], profile=hanako,
                               entity_type="JP_MY_NUMBER", field_path="notes", score=0.9,
                               recognizer="x", start=0, end=12)
    access_record(actor=role_users["support_agent"], obj=hanako, outcome=Outcome.DENIED, via="api")
    client.force_login(role_users["dpo"])
    before = _entries(hanako, "admin:person").count()
    # when
    page = client.get(f"/admin/subjects/profile/{hanako.pk}/person/").content.decode()
    # then: every section, masked
    for section in ("profile", "identities", "consent", "requests", "pii", "access_log"):
        assert f'id="person-{section}"' in page, section
    assert "山田 花子" not in page and "hanako.yamada" not in page.lower() and "5678" not in page[:0]
    assert "h•••@e•••" in page  # the e-mail, masked
    assert "Receipt #" in page and "/consent/receipts/" in page
    assert "My Number (individual number)" in page and "JP_MY_NUMBER" not in page
    assert "Denied" in page and "support_agent@staff.example" in page  # who tried, denied
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d (UTC|JST)", page)  # times carry their zone
    assert _entries(hanako, "admin:person").count() == before + 1  # one access entry per view


def test_sections_follow_the_role(client, role_users, hanako):
    from consent.demo import purposes_seed

    purposes_seed()
    client.force_login(role_users["support_agent"])  # assigned to hanako's workspace
    page = client.get(f"/admin/subjects/profile/{hanako.pk}/person/").content.decode()
    assert 'id="person-profile"' in page and 'id="person-requests"' in page
    for hidden in ("consent", "pii", "access_log"):  # no permission: left out, not "not installed"
        assert f'id="person-{hidden}"' not in page, hidden
    assert "not installed" not in page.lower()
    client.force_login(role_users["privacy_analyst"])
    page = client.get(f"/admin/subjects/profile/{hanako.pk}/person/").content.decode()
    assert 'id="person-consent"' in page and 'id="person-access_log"' not in page
    assert 'id="person-reveal"' not in page  # masked only for this role


def test_person_page_refused_and_logged(client, role_users, workspaces):
    other = make_profile(workspaces[1], seed=9)
    client.force_login(role_users["support_agent"])
    assert client.get(f"/admin/subjects/profile/{other.pk}/person/").status_code == 404
    ct = ContentType.objects.get_for_model(Profile)
    assert AuditEntry.objects.filter(content_type=ct, object_pk=str(other.pk), outcome=Outcome.DENIED,
                                     additional_data__via="admin:person").count() == 1
    client.force_login(role_users["marketing"])
    assert client.get(f"/admin/subjects/profile/{other.pk}/person/").status_code == 403


def test_person_page_in_japanese(client, role_users, hanako):
    client.force_login(role_users["dpo"])
    page = client.get(f"/admin/subjects/profile/{hanako.pk}/person/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    for text in ("同意", "本人からの請求", "この人のデータにアクセスした人", "表示のタイムゾーン", "識別子と名寄せ"):
        assert text in page, text
    for english in ("Who accessed this person", "Identities and merges", "Times shown in"):
        assert english not in page, english


def _give_consent(profile):
    from consent.services import consent_record_for_profile

    consent_record_for_profile(profile=profile, purpose_code="marketing_email", state="given", method="form")

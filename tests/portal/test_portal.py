"""The data-subject portal at /privacy/ (server-side; the browser flow is in tests/e2e)."""

from __future__ import annotations

import re

import pytest
from django.core import mail
from django.test import Client

from dsr.models import DataSubjectRequest, RequestStatus
from tests.dsr.conftest import mailing, sqlite_stores  # noqa: F401
from tests.factories import make_profile
from tests.portal.conftest import code_from

pytestmark = pytest.mark.django_db


def _submit(client, headers=None, **data):
    body = {"workspace": "shop-jp", "request_type": "erasure", "email": "taro@example.jp", **data}
    return client.post("/privacy/request/", body, headers=headers or {})


def test_language_follows_the_browser_and_can_be_switched(client, workspaces):
    assert 'lang="ja"' in client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="ja,en;q=0.5").content.decode()
    page = client.get("/privacy/request/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'lang="en"' in page and "Delete my data" in page
    switched = client.post("/i18n/setlang/", {"language": "ja", "next": "/privacy/request/"})
    assert switched.status_code == 302
    page = client.get("/privacy/request/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert 'lang="ja"' in page and "データを削除" in page


def test_every_request_type_is_offered_with_labels(client, workspaces):
    page = client.get("/privacy/request/").content.decode()
    for value in ("access", "erasure", "rectification", "opt_out_sale", "limit_sensitive",
                  "restriction", "objection"):
        assert f'value="{value}"' in page
    assert '<label for="id_email">' in page and "<legend>" in page


def test_submit_verify_and_status(client, workspaces, django_capture_on_commit_callbacks):
    # given
    make_profile(workspaces[0], locale="ja_JP", email="taro@example.jp")
    # when
    with django_capture_on_commit_callbacks(execute=True):
        submitted = _submit(client, headers={"accept-language": "ja"})
    # then: the code goes to the address, the page asks for it
    assert submitted.status_code == 302 and "/verify/" in submitted["Location"]
    req = DataSubjectRequest.objects.get()
    assert req.locale == "ja" and req.status == RequestStatus.PENDING_VERIFICATION
    assert mail.outbox[-1].to == ["taro@example.jp"]
    verify_url = submitted["Location"]
    code = code_from(mail.outbox[-1])
    wrong = client.post(verify_url, {"code": "000000" if code != "000000" else "111111"},
                        headers={"accept-language": "en"})
    assert "Attempts left: 4" in wrong.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        verified = client.post(verify_url, {"code": code})
    assert verified.status_code == 302
    status = client.get(verified["Location"])
    page = status.content.decode()
    assert status.status_code == 200 and "<progress" in page
    assert req.due_at.strftime("%Y-%m-%d") in page


def test_same_answer_for_known_and_unknown_addresses(client, workspaces, django_capture_on_commit_callbacks):
    make_profile(workspaces[0], email="known@example.jp")
    with django_capture_on_commit_callbacks(execute=True):
        known = _submit(client, email="known@example.jp")
        unknown = _submit(Client(), email="nobody@example.jp")
    assert known.status_code == unknown.status_code == 302
    follow_known = client.get(known["Location"]).content.decode()
    follow_unknown = Client().get(unknown["Location"]).content.decode()
    first, second = (str(r.pk)[:8] for r in DataSubjectRequest.objects.order_by("received_at"))

    def main(page: str, ref: str) -> str:
        # The page differs only in the request reference and its signed form address.
        body = page.split("<main", 1)[1].split("</main>", 1)[0].replace(ref, "REF")
        body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", body)
        return re.sub(r'action="[^"]+"', "ACTION", body)

    assert main(follow_known, first) == main(follow_unknown, second)
    assert len(mail.outbox) == 2 and {m.to[0] for m in mail.outbox} == {"known@example.jp", "nobody@example.jp"}


def test_token_is_required_and_forged_tokens_404(client, workspaces):
    _submit(client)
    req = DataSubjectRequest.objects.get()
    assert client.get(f"/privacy/r/{req.pk}/").status_code == 404


def test_csrf_is_enforced(workspaces):
    client = Client(enforce_csrf_checks=True)
    assert _submit(client).status_code == 403


def test_submissions_are_rate_limited(client, workspaces, settings):
    settings.MAMORU_PORTAL_SUBMITS_PER_HOUR = 2
    assert _submit(client).status_code == 302
    assert _submit(client).status_code == 302
    limited = _submit(client)
    assert limited.status_code == 429 and limited["Retry-After"]
    assert DataSubjectRequest.objects.count() == 2


def test_correction_needs_what_and_value(client, workspaces):
    page = _submit(client, request_type="rectification").content.decode()
    assert 'role="alert"' in page and not DataSubjectRequest.objects.exists()
    ok = _submit(client, request_type="rectification", correction_category="user.contact.address",
                 correction_value="Tokyo")
    assert ok.status_code == 302


def test_privacy_notice_lists_published_purposes(client, workspaces):
    from consent.demo import purposes_seed
    from consent.selectors import purposes_published

    purposes_seed()
    en = client.get("/privacy/notice/", HTTP_ACCEPT_LANGUAGE="en").content.decode()
    ja = client.get("/privacy/notice/", HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    for purpose in purposes_published(locale="en"):
        assert purpose["name"] in en
    for purpose in purposes_published(locale="ja"):
        assert purpose["name"] in ja


def test_access_request_offers_the_package_when_ready(client, workspaces, sqlite_stores,  # noqa: F811
                                                      django_capture_on_commit_callbacks):
    from dsr.execution import inline_mode, run_inline
    from tests.dsr.conftest import load_map, subject_profile

    # given: the subject exists in the connected stores
    load_map(sqlite_stores)
    subject_profile(workspaces[0])
    with inline_mode(), django_capture_on_commit_callbacks(execute=True):
        submitted = _submit(client, request_type="access", email="subject.person@example.com")
    code = code_from(mail.outbox[-1])
    # when: verified, and the worker's part has run
    with django_capture_on_commit_callbacks(execute=True):
        verified = client.post(submitted["Location"], {"code": code})
    run_inline(DataSubjectRequest.objects.get())
    # then: the status page links the package, and the link downloads a zip
    page = client.get(verified["Location"]).content.decode()
    assert 'data-status="completed"' in page and 'id="package-download"' in page
    href = re.search(r'href="([^"]+)" id="package-download"', page).group(1)
    assert href.startswith("http://testserver/dsr/packages/")  # the address the page was asked on
    download = client.get(href.replace("http://testserver", "").replace("&amp;", "&"))
    assert download.status_code == 200 and b"".join(download.streaming_content)[:2] == b"PK"

"""Public DSR limits (dsr/throttles.py) in one process: the DSR API per client address (forwarded
headers believed from trusted proxies only), codes per e-mail address from any client, and the
answers over a limit — 429 problem ``rate_limited`` with ``Retry-After`` (API), a form error in the
visitor's language with 429 and ``Retry-After`` (portal). Across processes: test_rate_limits_across_processes.py."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client, TestCase
from rest_framework.test import APIClient

from dsr.models import DataSubjectRequest

pytestmark = pytest.mark.django_db

SUBMIT = "/api/v1/dsr/requests"


def _api_submit(email: str, *, remote: str = "198.51.100.10", forwarded: str | None = None):
    headers = {"REMOTE_ADDR": remote}
    if forwarded:
        headers["HTTP_X_FORWARDED_FOR"] = forwarded
    with TestCase.captureOnCommitCallbacks(execute=True):  # the code is e-mailed on commit
        return APIClient().post(SUBMIT, {"workspace": "shop-eu", "request_type": "access", "email": email},
                                format="json", **headers)


def _portal_submit(email: str, *, remote: str = "198.51.100.20", language: str = "en"):
    with TestCase.captureOnCommitCallbacks(execute=True):
        return Client(REMOTE_ADDR=remote, HTTP_ACCEPT_LANGUAGE=language).post(
            "/privacy/request/", {"workspace": "shop-jp", "request_type": "erasure", "email": email})


def test_the_api_limit_answers_rate_limited_with_retry_after(workspaces, settings):
    settings.MAMORU_DSR_API_PER_HOUR = 3
    accepted = [_api_submit(f"user{i}@example.com").status_code for i in range(3)]
    refused = _api_submit("user9@example.com")
    assert accepted == [201, 201, 201]
    assert refused.status_code == 429 and refused["Content-Type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "rate_limited" and body["status"] == 429
    assert 0 < int(refused["Retry-After"]) <= 3600 and body["retry_after"] == int(refused["Retry-After"])
    assert DataSubjectRequest.objects.count() == 3 and len(mail.outbox) == 3


def test_rotating_x_forwarded_for_from_an_untrusted_peer_changes_nothing(workspaces, settings):
    # given: the limit used up by one peer that is no trusted proxy
    settings.MAMORU_DSR_API_PER_HOUR = 3
    settings.MAMORU_TRUSTED_PROXIES = []
    for i in range(3):
        assert _api_submit(f"user{i}@example.com", forwarded=f"203.0.113.{i}").status_code == 201
    # when: it claims to forward for someone new on every request
    codes = [_api_submit(f"other{i}@example.com", forwarded=f"192.0.2.{i}").status_code for i in range(20)]
    # then: every one is refused, nothing is e-mailed
    assert codes == [429] * 20
    assert DataSubjectRequest.objects.count() == 3 and len(mail.outbox) == 3


def test_behind_a_trusted_proxy_each_client_has_its_own_limit(workspaces, settings):
    settings.MAMORU_DSR_API_PER_HOUR = 2
    settings.MAMORU_TRUSTED_PROXIES = ["10.0.0.0/8"]
    proxy = "10.0.0.5"
    a = [_api_submit(f"a{i}@example.com", remote=proxy, forwarded="203.0.113.7").status_code for i in range(3)]
    # a client's own forged first hop does not make it someone else (the proxy appends the real one)
    forged = _api_submit("a9@example.com", remote=proxy, forwarded="192.0.2.99, 203.0.113.7").status_code
    b = [_api_submit(f"b{i}@example.com", remote=proxy, forwarded="203.0.113.8").status_code for i in range(2)]
    assert a == [201, 201, 429] and forged == 429 and b == [201, 201]


def test_codes_per_e_mail_address_are_limited_whoever_asks(workspaces, settings):
    # given: 3 codes an hour per address; every submission from another client address
    settings.MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR = 3
    spellings = ["Hanako@Example.JP", "hanako@example.jp", " hanako@EXAMPLE.jp ", "ｈａｎａｋｏ@example.jp"]
    codes = [_api_submit(email, remote=f"198.51.100.{30 + i}").status_code for i, email in enumerate(spellings)]
    # then: one address however it is written; the fourth code is not sent
    assert codes == [201, 201, 201, 429]
    assert len(mail.outbox) == 3 and DataSubjectRequest.objects.count() == 3
    # through the portal too (the same count), with the reason on the e-mail field
    page = _portal_submit("hanako@example.jp", remote="198.51.100.60")
    assert page.status_code == 429 and 0 < int(page["Retry-After"]) <= 3600
    text = page.content.decode()
    assert 'role="alert"' in text and "Too many confirmation codes were sent to this address." in text
    assert len(mail.outbox) == 3
    # another address is not affected
    assert _api_submit("taro@example.jp", remote="198.51.100.61").status_code == 201


def test_staff_with_a_token_are_limited_per_e_mail_only(workspaces, role_users, settings):
    settings.MAMORU_DSR_API_PER_HOUR = 1
    settings.MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR = 2
    client = APIClient()
    client.force_authenticate(role_users["dpo"])
    codes = [client.post(SUBMIT, {"workspace": "shop-eu", "request_type": "access",
                                  "email": f"u{i}@example.com"}, format="json").status_code for i in range(3)]
    same = [client.post(SUBMIT, {"workspace": "shop-eu", "request_type": "access",
                                 "email": "same@example.com"}, format="json").status_code for _ in range(3)]
    assert codes == [201, 201, 201] and same == [201, 201, 429]


def test_the_portal_limit_is_a_form_error_in_the_visitors_language(workspaces, settings):
    settings.MAMORU_PORTAL_SUBMITS_PER_HOUR = 1
    assert _portal_submit("ichiro@example.jp", language="ja").status_code == 302
    en = _portal_submit("jiro@example.jp")
    ja = _portal_submit("saburo@example.jp", language="ja")
    assert en.status_code == ja.status_code == 429 and en["Retry-After"] and ja["Retry-After"]
    assert "Too many requests from your network." in en.content.decode()
    assert "お使いのネットワークからのリクエストが多すぎます。" in ja.content.decode()
    assert 'name="email"' in ja.content.decode()  # the form again, with what was typed
    assert DataSubjectRequest.objects.count() == 1


def test_portal_code_entries_are_limited_per_client(workspaces, settings):
    settings.MAMORU_PORTAL_VERIFY_PER_10MIN = 2
    verify = _portal_submit("shiro@example.jp", remote="198.51.100.70")["Location"]
    client = Client(REMOTE_ADDR="198.51.100.70")
    answers = [client.post(verify, {"code": "000000"}) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[2]["Retry-After"] and "Too many attempts from your network." in answers[2].content.decode()
    # only two wrong codes reached the request
    assert DataSubjectRequest.objects.get().code_attempts == 2


def test_plus_tags_and_gmail_dots_do_not_make_another_mailbox(workspaces, settings):
    # QA issue 13: victim+1@, victim+2@ … each got a code past the per-address limit
    settings.MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR = 2
    tagged = ["victim+1@example.com", "Victim+2@Example.COM", "victim+3@example.com", "victim@example.com"]
    codes = [_api_submit(email, remote=f"198.51.100.{80 + i}").status_code for i, email in enumerate(tagged)]
    assert codes == [201, 201, 429, 429]
    # the address is used and stored as given: only the count is per mailbox
    assert [m.to for m in mail.outbox] == [["victim+1@example.com"], ["Victim+2@Example.COM"]]
    assert sorted(r.email for r in DataSubjectRequest.objects.all()) == ["Victim+2@Example.COM", "victim+1@example.com"]
    # the portal shares the count, with the reason on the e-mail field
    page = _portal_submit("victim+portal@example.com", remote="198.51.100.90")
    assert page.status_code == 429 and "Too many confirmation codes were sent to this address." in page.content.decode()
    # Gmail ignores dots and knows googlemail.com; other domains keep their dots
    gmail = ["e.r.ika@gmail.com", "Erika+dsr@googlemail.com", "erika@gmail.com"]
    assert [_api_submit(e, remote="198.51.100.91").status_code for e in gmail] == [201, 201, 429]
    assert _api_submit("e.rika@example.org", remote="198.51.100.92").status_code == 201
    assert _api_submit("erika@example.org", remote="198.51.100.93").status_code == 201
    assert len(mail.outbox) == 6


@pytest.mark.parametrize("email,key", [
    ("victim+1@example.com", "victim@example.com"),
    ("VICTIM+a+b@Example.com", "victim@example.com"),
    ("v.i.c.t.i.m+x@GoogleMail.com", "victim@gmail.com"),
    ("v.ictim@example.com", "v.ictim@example.com"),
    ("taro+x@例え.jp", "taro@xn--r8jz45g.jp"),
    ("taro@XN--R8JZ45G.jp", "taro@xn--r8jz45g.jp"),
    ("+only@example.com", "+only@example.com"),
])
def test_the_mailbox_key_of_an_address(email, key):
    from governance.subjects.identities import email_mailbox_key
    assert email_mailbox_key(email) == key


def test_a_trusted_proxy_forwarding_no_address_shares_its_own_limit(workspaces, settings, monkeypatch):
    # QA issue 13: `garbageN` from a trusted proxy was a bucket per value (65/65 accepted over 60)
    from audit import history
    from audit.models import AuditEntry
    monkeypatch.setattr(history, "_not_address_warned", False)
    settings.MAMORU_DSR_API_PER_HOUR = 3
    settings.MAMORU_TRUSTED_PROXIES = ["10.0.0.0/8"]
    codes = [_api_submit(f"g{i}@example.com", remote="10.0.0.5", forwarded=f"garbage{i}").status_code
             for i in range(5)]
    assert codes == [201, 201, 201, 429, 429]
    # "unknown" too, and it is the proxy's bucket: one more real client still gets through
    assert _api_submit("u@example.com", remote="10.0.0.5", forwarded="unknown").status_code == 429
    assert _api_submit("r@example.com", remote="10.0.0.5", forwarded="203.0.113.9").status_code == 201
    # the audit log records the proxy as the client of the requests it forwarded for "garbage"
    addresses = set(AuditEntry.objects.exclude(remote_addr=None).values_list("remote_addr", flat=True))
    assert "10.0.0.5" in addresses and not any("garbage" in a for a in addresses)

"""Links work on whatever address the service runs on (issue 13, finding 7).

A live server on a port that is not 8000, ``MAMORU_PUBLIC_URL`` unset: the e-mailed package link,
the package download, the admin's package button and a consent receipt's policy URL all lead to a
page that answers.
"""

from __future__ import annotations

import io
import re

import httpx
import pytest
from django.test import Client

from dsr.execution import run_inline
from dsr.models import DataSubjectRequest, RequestStatus
from tests.dsr.conftest import code_from, load_map, subject_profile

LINK = re.compile(r"(https?://\S+/dsr/packages/\S+)")


@pytest.fixture
def unset_public_url(settings):
    settings.MAMORU_PUBLIC_URL = ""
    settings.MAMORU_MFA_REQUIRED = False  # the admin page is tested here, not the sign-in


def _session(live_server, user) -> httpx.Client:
    client = Client()
    client.force_login(user)
    return httpx.Client(base_url=live_server.url, cookies={"sessionid": client.cookies["sessionid"].value})


@pytest.mark.django_db(transaction=True)
def test_package_links_follow_the_address_in_use(
        live_server, unset_public_url, workspaces, role_users, sqlite_stores, mailoutbox):
    assert not live_server.url.endswith(":8000")
    load_map(sqlite_stores)
    subject_profile(workspaces[1])
    http = httpx.Client(base_url=live_server.url, timeout=30)
    # given an access request submitted and verified over HTTP on this address
    response = http.post("/api/v1/dsr/requests", json={
        "workspace": "shop-eu", "request_type": "access", "email": "subject.person@example.com"})
    assert response.status_code == 201, response.text
    pk = response.json()["id"]
    response = http.post(f"/api/v1/dsr/requests/{pk}/verify", json={"code": code_from(mailoutbox)})
    assert response.status_code == 200, response.text
    request = DataSubjectRequest.objects.get(pk=pk)
    assert request.public_base_url == live_server.url
    # when a worker completes it (no web request around: the mail uses the captured address)
    run_inline(request)
    assert DataSubjectRequest.objects.get(pk=pk).status == RequestStatus.COMPLETED
    # then the e-mailed link points here and downloads the package
    link = LINK.search(mailoutbox[-1].body).group(1)
    assert link.startswith(live_server.url + "/"), link
    download = http.get(link)
    assert download.status_code == 200 and download.headers["Content-Type"] == "application/zip"
    # and the admin's package button works too
    admin = _session(live_server, role_users["dpo"])
    page = admin.get(f"/admin/dsr/datasubjectrequest/{pk}/change/")
    assert page.status_code == 200, page.text[:500]
    button = re.search(r'href="([^"]+)" id="package-link"', page.text).group(1).replace("&amp;", "&")
    assert button.startswith(live_server.url + "/"), button
    assert admin.get(button).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_demo_seeded_for_the_bind_address_gives_receipts_a_working_policy_url(
        live_server, unset_public_url, workspaces):
    from consent.demo import seed
    from consent.models import KeyKind, Site
    from consent.services import site_key_create

    # given the demo site seeded for the address the demo runs on
    seed(stdout=io.StringIO(), credentials={"base_url": live_server.url})
    site = Site.objects.get(slug="demo-shop")
    assert live_server.url in site.allowed_origins
    _pk, secret = site_key_create(site=site, kind=KeyKind.SECRET)
    http = httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)
    recorded = http.post("/api/v1/consent/events", json={
        "browser_id": "browser-0001", "purpose": "analytics", "state": "given"})
    assert recorded.status_code == 201, recorded.text
    record_id = recorded.json()["events"][0]["record_id"] if "events" in recorded.json() else recorded.json()["record_id"]
    # when the receipt is fetched
    receipt = http.get(f"/api/v1/consent/receipts/{record_id}").json()
    # then its policy URL is the privacy portal on this address, and it answers
    assert receipt["policyUrl"] == f"{live_server.url}/privacy/"
    assert httpx.get(receipt["policyUrl"], timeout=30).status_code == 200


def test_seed_demo_prints_the_address_it_was_told(db, settings):
    from governance.demo.management.commands.seed_demo import demo_base_url

    settings.MAMORU_PUBLIC_URL = ""
    assert demo_base_url("127.0.0.1:8137") == "http://127.0.0.1:8137"
    assert demo_base_url("0.0.0.0:8138") == "http://127.0.0.1:8138"
    settings.MAMORU_PUBLIC_URL = "https://privacy.example.com/"
    assert demo_base_url("0.0.0.0:8138") == "https://privacy.example.com"


@pytest.mark.django_db
def test_production_without_public_url_is_flagged_by_check_deploy(settings):
    from dsr.checks import dsr_public_url

    settings.PRODUCTION, settings.MAMORU_PUBLIC_URL = True, ""
    assert [w.id for w in dsr_public_url()] == ["dsr.W001"]
    settings.MAMORU_PUBLIC_URL = "https://privacy.example.com"
    assert dsr_public_url() == []

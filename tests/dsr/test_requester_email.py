"""Requester e-mail addresses (DSR API and portal) must name a public host: no domain literal
(``x@[127.0.0.1]``) and no single-label name (``x@localhost``) — a public form must not make us
mail internal hosts (QA issue 13). 400 ``invalid_email`` / a form error, in the caller's language."""

from __future__ import annotations

import pytest
from django.core import mail
from django.test import Client, TestCase
from rest_framework.test import APIClient

from dsr.models import DataSubjectRequest

pytestmark = pytest.mark.django_db

INTERNAL = ["x@[127.0.0.1]", "x@[IPv6:::1]", "x@[192.168.0.1]", "x@localhost", "X@LOCALHOST",
            "ｘ@ｌｏｃａｌｈｏｓｔ", "taro@例え", "taro@xn--r8jz45g"]
MESSAGES = {"en": "Enter a valid e-mail address with a public domain name",
            "ja": "公開されているドメイン名のメールアドレスを入力してください"}


@pytest.mark.parametrize("email", INTERNAL)
@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_api_refuses_addresses_at_ip_literals_and_local_hosts(workspaces, email, language):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = APIClient().post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                            "email": email}, format="json",
                                    headers={"accept-language": language})
    assert response.status_code == 400 and response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == "invalid_email" and MESSAGES[language] in body["detail"], body
    assert not DataSubjectRequest.objects.exists() and not mail.outbox


@pytest.mark.parametrize("email", INTERNAL)
@pytest.mark.parametrize("language", ["en", "ja"])
def test_the_portal_refuses_addresses_at_ip_literals_and_local_hosts(workspaces, email, language):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = Client(HTTP_ACCEPT_LANGUAGE=language).post(
            "/privacy/request/", {"workspace": "shop-jp", "request_type": "erasure", "email": email})
    assert response.status_code == 200 and MESSAGES[language] in response.content.decode()
    assert not DataSubjectRequest.objects.exists() and not mail.outbox


@pytest.mark.parametrize("email", ["x@mailhost", "x@localhost.", "x@0x7f000001", "x@127.0.0.1"])
def test_other_host_forms_stay_refused_as_no_address(workspaces, email):
    response = APIClient().post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                        "email": email}, format="json")
    assert response.status_code == 400 and response.json()["code"] in {"invalid_identity", "invalid_email"}
    assert not DataSubjectRequest.objects.exists() and not mail.outbox


def test_the_service_refuses_them_for_every_channel(workspaces):
    from dsr.services import dsr_request_submit
    from governance.subjects.identities import InvalidEmail
    from governance.subjects.models import Workspace
    with pytest.raises(InvalidEmail):
        dsr_request_submit(workspace=Workspace.objects.get(slug="shop-eu"), request_type="access",
                           email="root@[10.0.0.1]")
    assert not DataSubjectRequest.objects.exists()


@pytest.mark.parametrize("email", ["erika@example.de", "taro@例え.jp", "hanako@mail.example.co.jp", "a@b.co"])
def test_public_addresses_still_pass(workspaces, email):
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = APIClient().post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                            "email": email}, format="json")
    assert response.status_code == 201, response.content
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [email]

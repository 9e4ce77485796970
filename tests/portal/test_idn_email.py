"""The portal accepts internationalised e-mail addresses (RFC 6531 local parts, IDN domains)."""

from __future__ import annotations

import pytest
from django.core import mail

from dsr.models import DataSubjectRequest, RequestStatus

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("email", ["stanisław.wójcik@wp.pl", "taro@例え.jp"])
def test_portal_accepts_internationalised_addresses(client, workspaces, django_capture_on_commit_callbacks,
                                                    language, email):
    page = client.get("/privacy/request/", headers={"accept-language": language}).content.decode()
    # a text input: browsers' type=email would refuse the address before it is sent
    assert 'name="email"' in page and 'type="email"' not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/privacy/request/", {"workspace": "shop-jp", "request_type": "erasure",
                                                     "email": email}, headers={"accept-language": language})
    assert response.status_code == 302 and "/verify/" in response["Location"], response.content.decode()[:2000]
    request = DataSubjectRequest.objects.get()
    assert request.status == RequestStatus.PENDING_VERIFICATION and request.locale == language
    assert len(mail.outbox) == 1


@pytest.mark.parametrize("language,message", [("en", "Enter a valid email address."),
                                              ("ja", "有効なメールアドレスを入力してください。")])
def test_portal_still_refuses_what_is_not_an_address(client, workspaces, language, message):
    response = client.post("/privacy/request/", {"workspace": "shop-jp", "request_type": "erasure",
                                                 "email": "stanisław..wójcik@wp"}, headers={"accept-language": language})
    assert response.status_code == 200 and message in response.content.decode()
    assert not DataSubjectRequest.objects.exists()

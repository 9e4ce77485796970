"""Per-brand portal pages, and a general page whose requests cover every brand (issue 12, finding 7)."""

from __future__ import annotations

import pytest
from django.core import mail

from dsr.execution import inline_mode, run_inline
from dsr.models import DataSubjectRequest, RequestStatus
from governance.datamap.services import datamap_load_text
from tests.dsr.test_workspace_stores import (
    PERSON,
    brand_map,
    brand_profiles,
    brand_stores,
    person_left,
)
from tests.portal.conftest import code_from

pytestmark = pytest.mark.django_db


@pytest.fixture
def brands(tmp_path, workspaces):
    urls = brand_stores(tmp_path)
    datamap_load_text(text=brand_map(tmp_path), filename="brands.yaml")
    brand_profiles(workspaces)
    return urls


def _file_and_run(client, url: str, capture, **data) -> tuple[DataSubjectRequest, str]:
    """Submit an erasure on ``url``, enter the e-mailed code, run the nodes; the status page URL."""
    with inline_mode(), capture(execute=True):
        submitted = client.post(url, {"request_type": "erasure", "email": PERSON, **data})
    assert submitted.status_code == 302, submitted.content.decode()[:2000]
    with capture(execute=True):
        verified = client.post(submitted["Location"], {"code": code_from(mail.outbox[-1])})
    request = DataSubjectRequest.objects.get()
    with capture(execute=True):
        run_inline(request)
    request.refresh_from_db()
    return request, verified["Location"]


def test_brand_page_erases_that_brand_only_and_says_what_was_not_covered(
        client, brands, workspaces, django_capture_on_commit_callbacks):
    # given the person's data with both brands; the form on Shop EU's page offers no brand choice
    page = client.get("/privacy/shop-eu/request/").content.decode()
    assert 'name="workspace"' not in page and "Shop EU" in page
    # when they ask for deletion from Shop EU's page
    request, status_url = _file_and_run(client, "/privacy/shop-eu/request/", django_capture_on_commit_callbacks)
    # then only Shop EU's store is erased, and the status page and the mail say so
    assert request.status == RequestStatus.COMPLETED and request.workspace == workspaces[1]
    assert not request.all_workspaces
    assert person_left(brands) == {"jp": True, "eu": False, "eu_loyalty": False}
    status = client.get(status_url).content.decode()
    assert "Only: Shop EU" in status and "Not covered by this request: Shop JP." in status
    assert "Shop EU customer database — your data was found here" in status
    assert "Shop JP customer database" not in status
    final = mail.outbox[-1].body
    assert "This request covered only: Shop EU" in final and "Not covered: Shop JP" in final
    ja = client.get(status_url, headers={"accept-language": "ja"}).content.decode()
    assert "この請求の対象" in ja and "この請求の対象外: Shop JP。" in ja


def test_general_page_covers_every_brand_unless_one_is_chosen(
        client, brands, workspaces, django_capture_on_commit_callbacks):
    # given the general form: "All our services" is the default choice
    page = client.get("/privacy/request/").content.decode()
    assert '<option value="" selected>All our services</option>' in page
    # when the person files without choosing a brand
    request, status_url = _file_and_run(client, "/privacy/request/", django_capture_on_commit_callbacks,
                                        workspace="")
    # then every brand's store is erased, and the answer lists both
    assert request.status == RequestStatus.COMPLETED and request.all_workspaces
    assert person_left(brands) == {"jp": False, "eu": False, "eu_loyalty": False}
    status = client.get(status_url).content.decode()
    assert "All our services: Shop EU, Shop JP" in status and "Not covered" not in status
    assert "What we kept, and why" in status and "Tax law: invoices kept 7 years" in status
    assert "This request covered all our services: Shop EU, Shop JP" in mail.outbox[-1].body


def test_general_page_with_a_chosen_brand_covers_that_brand(
        client, brands, workspaces, django_capture_on_commit_callbacks):
    request, _status = _file_and_run(client, "/privacy/request/", django_capture_on_commit_callbacks,
                                     workspace="shop-jp")
    assert request.workspace == workspaces[0] and not request.all_workspaces
    assert person_left(brands) == {"jp": False, "eu": True, "eu_loyalty": True}


def test_brand_pages_link_each_other_and_unknown_brands_404(client, workspaces):
    home = client.get("/privacy/").content.decode()
    assert 'href="/privacy/shop-jp/"' in home and 'href="/privacy/shop-eu/"' in home
    brand_home = client.get("/privacy/shop-jp/").content.decode()
    assert 'href="/privacy/shop-jp/request/?type=erasure"' in brand_home
    assert client.get("/privacy/no-such-brand/").status_code == 404
    assert client.get("/privacy/no-such-brand/request/").status_code == 404

"""Browser test: a person asks for deletion in Japanese through the portal, verifies with the code
from the e-mail, and sees the request complete (the portal works without JavaScript; JS is off)."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from tests.dsr.conftest import build_stores, load_map, mailing, sqlite_stores, subject_profile  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_deletion_request_in_japanese(chromium_browser, live_server, workspaces, sqlite_stores, screenshot):  # noqa: F811
    from dsr.execution import run_inline
    from dsr.models import DataSubjectRequest, RequestStatus

    # given: a person known to the shop, stores in the data map, a Japanese browser without JavaScript
    load_map(sqlite_stores)
    subject_profile(workspaces[0])
    context = chromium_browser.new_context(locale="ja-JP", java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(20_000)
    try:
        # when: they open the portal and ask for deletion
        page.goto(f"{live_server.url}/privacy/request/")
        assert page.locator("html").get_attribute("lang") == "ja"
        page.get_by_label("自分のデータを削除する（削除）").check()
        page.get_by_label("メールアドレス").fill("subject.person@example.com")
        if page.locator("select#id_workspace").count():
            page.select_option("select#id_workspace", "shop-jp")
        page.get_by_role("button", name="確認コードを送る").click()
        page.get_by_role("heading", name="メールをご確認ください").wait_for()

        # then: a code arrives by e-mail; they enter it
        message = mail.outbox[-1]
        assert message.to == ["subject.person@example.com"]
        code = re.search(r"\b(\d{6})\b", message.body).group(1)
        page.get_by_label("確認コード").fill(code)
        page.get_by_role("button", name="確定する").click()
        page.get_by_role("heading", name="ご請求の状況").wait_for()

        # the worker's part runs here (in-process); the status page refreshes itself
        request = DataSubjectRequest.objects.get()
        assert request.request_type == "erasure" and request.locale == "ja"
        run_inline(request)
        request.refresh_from_db()
        assert request.status == RequestStatus.COMPLETED, request.attention_reason
        page.reload()
        assert page.locator("#request-status").get_attribute("data-status") == "completed"
        assert page.locator("#request-progress").get_attribute("value") == "100"
        assert "ご請求への対応が完了しました。" in page.content()
        screenshot(page, "completed")
    finally:
        context.close()

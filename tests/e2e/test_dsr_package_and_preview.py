"""Browser tests (issue 12): the access package's summary opened from the unpacked zip (file://) —
the person's data shown, a stored ``<script>`` never run, every link a file of the package — and
the erasure preview on a request's admin page, masked, then revealed with a reason."""

from __future__ import annotations

import pytest

from tests.dsr.conftest import mailing, sqlite_stores  # noqa: F401
from tests.dsr.test_package_readable import HTMLISH, NAME, _run, _setup
from tests.dsr.test_preview import _access_only, _awaiting, _subject
from tests.e2e.conftest import ARTIFACTS
from tests.e2e.test_admin_dsr_approve import login

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db
def test_package_summary_in_chromium(chromium_browser, workspaces, mailoutbox, mailing, tmp_path):  # noqa: F811
    _app, mailing_url = mailing
    _setup(workspaces[0], shop_url=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
           crm_url=f"sqlite:///{tmp_path / 'crm.sqlite3'}", mailing_url=mailing_url, locale="ja",
           jurisdiction="JP")
    _dsr, files = _run(workspaces[0], mailoutbox, locale="ja")
    folder = tmp_path / "package"
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)

    context = chromium_browser.new_context(locale="ja-JP")
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto((folder / "summary.html").as_uri())
    page.wait_for_load_state("load")
    # the person's data is shown as text, the stored markup never runs
    customers = page.locator("#shop-customers table")
    assert NAME in customers.inner_text() and HTMLISH in customers.inner_text()
    assert dialogs == [] and page.locator("img").count() == 0 and page.locator("script").count() == 0
    # every link opens a file of the package
    hrefs = page.eval_on_selector_all("a[href]:not([href^='#'])", "links => links.map(a => a.href)")
    assert hrefs and all((folder / h.split(folder.as_uri() + "/", 1)[1]).is_file() for h in hrefs)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dsr-package-summary-ja.png"), full_page=True)
    context.close()


@pytest.mark.django_db(transaction=True)
def test_preview_on_the_admin_page_in_chromium(chromium_browser, live_server, workspaces, role_users,
                                              mailoutbox, sqlite_stores):  # noqa: F811
    """The DPO sees the dry run on the request page (masked), then the values with a reason."""

    request = _access_only(_awaiting(workspaces[0], mailoutbox, sqlite_stores), role_users["dpo"])
    subject = _subject(sqlite_stores)
    context = chromium_browser.new_context(locale="en-US")
    page = context.new_page()
    login(page, live_server, role_users["dpo"])
    page.goto(f"{live_server.url}/admin/dsr/datasubjectrequest/{request.pk}/change/")
    preview = page.locator("#erasure-preview")
    assert "shop.customers" in preview.inner_text() and subject["email"] not in page.content()
    ARTIFACTS.mkdir(exist_ok=True)
    preview.screenshot(path=str(ARTIFACTS / "dsr-erasure-preview-masked.png"))
    page.click("#erasure-preview-reveal")
    page.fill("textarea[name=reason]", "checking the erasure before approval")
    page.click("#erasure-preview-show")
    page.wait_for_selector("#erasure-preview")
    page.locator("details").first.evaluate("d => d.open = true")
    assert subject["email"] in page.content()
    page.screenshot(path=str(ARTIFACTS / "dsr-erasure-preview-revealed.png"), full_page=True)
    context.close()

"""The access package's summary in a real browser: opened from the unpacked zip (file://), its
tables show the person's data, a stored ``<script>`` never runs, every link opens a file."""

from __future__ import annotations

import pytest

from tests.dsr.conftest import mailing, postgres_url  # noqa: F401
from tests.dsr.test_package_readable import HTMLISH, NAME, _run, _setup
from tests.e2e.conftest import ARTIFACTS, chromium_browser  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db]


def test_summary_in_chromium(chromium_browser, workspaces, mailoutbox, mailing, tmp_path):  # noqa: F811
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

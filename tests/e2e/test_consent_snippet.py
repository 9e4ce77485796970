"""Browser test: a website page includes mamoru-consent.js (cross-origin), the person gives consent,
withdraws it with one click, and GPC opts them out of sale/sharing."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOP_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>Shop</h1><div id="consent"></div>
<script src="{mamoru}/consent/mamoru-consent.js"></script>
<script>MamoruConsent.init({{endpoint: "{mamoru}", key: "{key}", container: "#consent",
  purposes: ["marketing_email", "data_sale", "personalised_ads"]}});</script></body></html>"""


class _ShopHandler(BaseHTTPRequestHandler):
    html = b""

    def do_GET(self):  # noqa: N802 - http.server API
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.end_headers()
        self.wfile.write(self.html)

    def log_message(self, *args):
        pass


@pytest.fixture
def shop(live_server):
    """The website: its own tiny server on 127.0.0.1 (Mamoru is on localhost): real CORS."""
    from consent.authentication import key_cache_clear
    from consent.demo import purposes_seed
    from consent.models import KeyKind, Site
    from consent.selectors import _origins, catalogue
    from consent.services import site_key_create
    from governance.subjects.models import Jurisdiction, Workspace

    # Per-process caches (catalogue, origins: 5 s) would remember the previous test's database.
    catalogue.invalidate()
    _origins["at"] = 0.0
    key_cache_clear()
    purposes_seed()
    port = urlsplit(live_server.url).port
    mamoru = f"http://localhost:{port}"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ShopHandler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    workspace = Workspace.objects.create(slug="shop-web", name="Shop", default_jurisdiction=Jurisdiction.EU)
    site = Site.objects.create(workspace=workspace, slug="shop", name="Shop", allowed_origins=[origin])
    _key, publishable = site_key_create(site=site, kind=KeyKind.PUBLISHABLE)
    _ShopHandler.html = SHOP_PAGE.format(mamoru=mamoru, key=publishable).encode()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"{origin}/shop.html", "site": site}
    server.shutdown()
    server.server_close()


def _serve(page, shop):
    page.goto(shop["url"])
    page.wait_for_selector("#consent[data-mamoru-ready=true]")


def _state(site, browser_id):
    from consent.selectors import profile_consent_overview
    from governance.subjects.selectors import profile_get_by_identity

    profile = profile_get_by_identity(workspace=site.workspace, kind="browser_id", value=browser_id)
    return {p["purpose"]: p for p in profile_consent_overview(profile=profile)}


def test_give_then_withdraw_consent(page, shop, screenshot):
    _serve(page, shop)
    box = page.locator("#mamoru-marketing_email")
    assert not box.is_checked()
    box.check()  # one click gives …
    page.wait_for_selector("#mamoru-marketing_email[data-state=given]")
    browser_id = page.evaluate("MamoruConsent.browserId")
    assert _state(shop["site"], browser_id)["marketing_email"]["state"] == "given"
    box.uncheck()  # … and one click withdraws (GDPR Art. 7(3))
    page.wait_for_selector("#mamoru-marketing_email[data-state=withdrawn]")
    screenshot(page, "withdrawn")
    state = _state(shop["site"], browser_id)["marketing_email"]
    assert state["state"] == "withdrawn" and state["allowed"] is False
    api_view = page.evaluate("MamoruConsent.state().then(function (s) { return s.purposes; })")
    assert next(p for p in api_view if p["purpose"] == "marketing_email")["state"] == "withdrawn"


def test_gpc_header_opts_out_of_sale_and_sharing(page, shop, screenshot):
    page.set_extra_http_headers({"Sec-GPC": "1"})
    _serve(page, shop)
    page.wait_for_selector("#mamoru-data_sale[data-state=refused]")
    screenshot(page, "gpc")
    browser_id = page.evaluate("MamoruConsent.browserId")
    state = _state(shop["site"], browser_id)
    assert state["data_sale"]["method"] == "gpc" and state["data_sale"]["allowed"] is False
    assert state["personalised_ads"]["state"] == "refused"
    assert state["marketing_email"]["state"] is None
    assert not page.locator("#mamoru-data_sale").is_checked()


def test_preference_centre_in_japanese(page, shop, live_server, screenshot):
    """The site's preference centre (ja): one click to give, one click to withdraw."""
    page.goto(f"{live_server.url}/consent/preferences/shop/?lang=ja&browser_id=pref-browser-0001")
    page.wait_for_selector("#consent[data-mamoru-ready=true]")
    assert "メールマガジン" in page.content()
    page.locator("#mamoru-marketing_email").check()
    page.wait_for_selector("#mamoru-marketing_email[data-state=given]")
    page.locator("#mamoru-marketing_email").uncheck()
    page.wait_for_selector("#mamoru-marketing_email[data-state=withdrawn]")
    screenshot(page, "preferences-ja")
    state = _state(shop["site"], "pref-browser-0001")["marketing_email"]
    assert state["state"] == "withdrawn" and state["method"] == "preference_centre"

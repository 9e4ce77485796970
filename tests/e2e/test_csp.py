"""Browser test: the Content-Security-Policy holds on every kind of page, and nothing on them breaks.

Headless Chromium records every ``securitypolicyviolation`` event and console error on the admin
dashboard, a chart page, the data map, a request page, the portal, the preference centre and the
API docs (Swagger UI, Redoc), and each page must still work: the dashboard renders, the charts are
there, the preference centre's toggles load, Swagger UI and Redoc draw the schema.
"""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WATCH = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


@pytest.fixture
def site(workspaces):
    from consent.authentication import key_cache_clear
    from consent.demo import purposes_seed
    from consent.models import Site
    from consent.selectors import _origins, catalogue

    catalogue.invalidate()
    _origins["at"] = 0.0
    key_cache_clear()
    purposes = purposes_seed()
    site = Site.objects.create(workspace=workspaces[0], slug="shop", name="Shop",
                               allowed_origins=["https://shop.example"], privacy_url="https://shop.example/p")
    site.purposes.set(purposes)
    return site


@pytest.fixture
def staff_page(page, live_server, role_users, settings):
    """The browser signed in as the DPO (a session made by the test client, second factor entered:
    tests.accounts)."""
    from tests.accounts import OtpVerifiedClient

    client = OtpVerifiedClient()
    client.force_login(role_users["dpo"])
    page.context.add_cookies([{"name": settings.SESSION_COOKIE_NAME,
                               "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                               "url": live_server.url}])
    return page


class Visit:
    def __init__(self, page, base: str):
        self.page, self.base = page, base
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(m.text) if m.type == "error" else None)
        page.add_init_script(WATCH)

    def __call__(self, path: str, ready: str, *, refused_on_purpose: str = "") -> str:
        self.console.clear()
        response = self.page.goto(self.base + path)
        assert response.status == 200, (path, response.status)
        policy = response.headers.get("content-security-policy", "")
        self.page.wait_for_selector(ready)
        self.page.wait_for_load_state("networkidle")
        violations = [v for v in self.page.evaluate("window.__csp")
                      if not (refused_on_purpose and refused_on_purpose in v)]
        csp_console = [m for m in self.console if "Content Security Policy" in m
                       and not (refused_on_purpose and refused_on_purpose.split()[-1] in m)]
        assert violations == [] and csp_console == [], (path, violations, csp_console)
        scripts = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, (path, policy)
        return policy


def test_pages_work_under_the_policy(staff_page, live_server, site, workspaces, mailoutbox):
    from django.test import TestCase

    from dsr.services import dsr_request_submit

    with TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_submit(workspace=workspaces[0], request_type="access", email="hanako@example.jp")
    visit = Visit(staff_page, live_server.url)

    visit("/admin/", "#mamoru-dashboard")
    visit("/admin/pii/scanfinding/", ".pii-charts svg")  # pygal charts
    visit("/admin/datamap/store/", "#content")
    visit(f"/admin/dsr/datasubjectrequest/{request.pk}/change/", "#content")
    visit("/privacy/", "main, body")
    visit("/privacy/request/", "form")
    policy = visit("/consent/preferences/shop/?lang=en&browser_id=csp-browser-0001",
                   "#consent[data-mamoru-ready=true]")  # the nonce'd inline start-up script ran
    assert "script-src 'self' 'nonce-" in policy
    assert "frame-ancestors 'self' https://shop.example" in policy
    visit("/api/docs/", ".swagger-ui .information-container")  # Swagger UI drew the schema
    # Redoc drew the schema; its "API docs by Redocly" logo is a CDN image, refused (nothing remote)
    visit("/api/redoc/", "[role=search], .api-content",
          refused_on_purpose="img-src https://cdn.redoc.ly/redoc/logo-mini.svg")


def test_an_injected_inline_script_is_refused(staff_page, live_server, site):
    # given: the preference centre (a page with a nonce'd inline script of its own)
    visit = Visit(staff_page, live_server.url)
    visit("/consent/preferences/shop/?lang=en", "#consent[data-mamoru-ready=true]")
    # when: markup smuggled into the page tries to run a script without the nonce
    staff_page.evaluate("""() => {
        const s = document.createElement("script");
        s.textContent = "window.__pwned = true";
        document.body.appendChild(s);
        const d = document.createElement("div");
        d.innerHTML = '<img src="data:," onerror="window.__pwned = true">';
        document.body.appendChild(d);
    }""")
    staff_page.wait_for_function("window.__csp.length >= 2")
    # then: neither ran, and the browser reported both
    assert staff_page.evaluate("window.__pwned") is None
    violations = staff_page.evaluate("window.__csp")
    assert all(v.startswith("script-src") for v in violations), violations


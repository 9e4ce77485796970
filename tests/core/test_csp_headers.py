"""Content-Security-Policy headers (django-csp): on pages, with a fresh nonce per response."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def site(workspaces):
    from consent.models import Site

    return Site.objects.create(workspace=workspaces[0], slug="shop", name="Shop",
                               allowed_origins=["https://shop.example"])


def test_policy_headers(client, site):
    """Pages carry the policy; the admin and portal may not be framed, the preference centre only
    by its site."""
    page = client.get("/privacy/")
    policy = page["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "object-src 'none'" in policy and "base-uri 'self'" in policy
    centre = client.get("/consent/preferences/shop/")
    assert "frame-ancestors 'self' https://shop.example" in centre["Content-Security-Policy"]
    nonce = centre["Content-Security-Policy"].split("'nonce-", 1)[1].split("'", 1)[0]
    assert f'nonce="{nonce}"'.encode() in centre.content
    assert client.get("/consent/preferences/shop/")["Content-Security-Policy"] != centre[
        "Content-Security-Policy"]  # a fresh nonce per response


def test_scripts_never_unsafe_inline(client, role_users, site):
    from tests.accounts import OtpVerifiedClient

    staff = OtpVerifiedClient()
    staff.force_login(role_users["dpo"])
    for response in (client.get("/privacy/"), staff.get("/admin/"), client.get("/api/docs/"),
                     client.get("/consent/preferences/shop/")):
        policy = response["Content-Security-Policy"]
        scripts = next(d for d in policy.split(";") if d.strip().startswith("script-src"))
        assert "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts, policy


def test_charts_carry_no_inline_script():
    from governance.charts import bar_chart, line_chart

    for svg in (bar_chart(title="t", labels=["a"], series={"x": [1]}),
                line_chart(title="t", labels=["a", "b"], series={"x": [1, 2]})):
        assert "<svg" in svg and "<script" not in svg

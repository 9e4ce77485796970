"""Consent fixtures: the demo catalogue, a site with both keys, API clients holding them."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _fresh_consent_caches():
    from consent.authentication import key_cache_clear
    from consent.ratelimit import rate_limit_reset
    from consent.selectors import _origins, catalogue

    catalogue.invalidate()
    _origins["at"] = 0.0
    key_cache_clear()
    rate_limit_reset()
    yield
    catalogue.invalidate()
    key_cache_clear()


@pytest.fixture
def purposes(db):
    from consent.demo import purposes_seed

    return {p.code: p for p in purposes_seed()}


@pytest.fixture
def site(db, workspaces, purposes):
    from consent.models import Site

    site = Site.objects.create(
        workspace=workspaces[0], slug="shop", name="Shop",
        allowed_origins=["https://shop.example"], privacy_url="https://shop.example/privacy",
    )
    site.purposes.set(purposes.values())
    return site


@pytest.fixture
def keys(site):
    from consent.models import KeyKind
    from consent.services import site_key_create

    _pk, publishable = site_key_create(site=site, kind=KeyKind.PUBLISHABLE)
    _sk, secret = site_key_create(site=site, kind=KeyKind.SECRET)
    return {"publishable": publishable, "secret": secret}


@pytest.fixture
def server(keys):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys['secret']}")
    return client


SITE_ORIGIN = "https://shop.example"


@pytest.fixture
def browser(keys):
    """A browser on the site's page: the publishable key, and the page's Origin (unless a test
    sends another one)."""
    from rest_framework.test import APIClient

    class BrowserClient(APIClient):
        def request(self, **kwargs):
            kwargs.setdefault("HTTP_ORIGIN", SITE_ORIGIN)
            return super().request(**kwargs)

    client = BrowserClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {keys['publishable']}")
    return client

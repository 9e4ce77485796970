"""The catalogue itself: every template loads as a valid data-map store; adding one by command and
in the admin; secrets stored encrypted and never shown; the connection test."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from dsr.catalogue import (
    CatalogueError,
    catalogue_service,
    catalogue_services,
    catalogue_store_document,
)
from tests.emulators.stripe import StripeEmulator

pytestmark = pytest.mark.django_db

FIRST_FIVE = {"stripe", "mailchimp", "zendesk", "hubspot", "shopify"}
NEXT_FIVE = {"salesforce", "klaviyo", "intercom", "brevo", "kintone"}


def _fill(service) -> tuple[dict, dict]:
    params = {p.name: "example" for p in service.params if p.required}
    return params, {s.name: "secret-value" for s in service.secrets}


def test_every_template_is_a_valid_store_with_documented_fields():
    from governance.datamap.services import datamap_load_report

    assert FIRST_FIVE | NEXT_FIVE <= set(catalogue_services())
    for slug, service in catalogue_services().items():
        params, secrets = _fill(service)
        document = catalogue_store_document(service=service, key=f"{slug}-x", params=params, secrets=secrets,
                                            shared=True)
        load = datamap_load_report(text=json.dumps(document), filename=f"catalogue:{slug}", offline=True)
        store = load.stores[0]
        assert store.collections.exists(), slug
        for collection in store.collections.all():
            for field in collection.fields.all():
                # every returned field says what it holds (the package and Art. 30 records need it)
                assert field.category or field.references, f"{slug}.{collection.name}.{field.name}"
            assert any(f.identity or f.references for f in collection.fields.all()), f"{slug}.{collection.name}"
        assert all(service.summary.values()) and service.api_reference.startswith("https://")


def test_parameters_and_secrets_are_checked_all_at_once():
    service = catalogue_service("zendesk")
    with pytest.raises(CatalogueError) as info:
        catalogue_store_document(service=service, key="zd", params={"subdomian": "x"}, secrets={}, shared=True)
    text = str(info.value)
    assert "unknown parameter 'subdomian'" in text and "'subdomain' is required" in text
    assert "secret 'api_token' is required" in text
    with pytest.raises(CatalogueError, match="no catalogue service 'strpe'; known: "):
        catalogue_service("strpe")


def test_store_add_command_keeps_secrets_encrypted(emulator):
    from governance.datamap.models import Store

    app = StripeEmulator(api_key="sk_test_cli")
    server = emulator(app)
    out = io.StringIO()
    call_command("store_add", "--from-catalogue", "stripe", "--key", "payments", "--shared",
                 "--secret", "api_key=sk_test_cli", "--base-url", server.url, "--allow-internal-hosts", stdout=out)
    assert "payments.customers: id (user.unique_id), email (user.contact.email)" in out.getvalue()
    assert "sk_test_cli" not in out.getvalue()
    store = Store.objects.get(key="payments")
    assert store.source_file == "catalogue:stripe"
    assert store.secret_values() == {"api_key": "sk_test_cli"}
    assert "sk_test_cli" not in json.dumps(store.connection)
    assert store.to_spec().secrets == {"api_key": "***"}
    from django.db import connection

    with connection.cursor() as cursor:  # the column holds ciphertext only
        cursor.execute("SELECT secrets FROM datamap_store WHERE key = %s", ["payments"])
        assert "sk_test_cli" not in str(cursor.fetchone()[0])
    # the harmless read of the connection test is the one call made so far
    assert [(r[1], r[2]) for r in app.requests] == [("GET", "/v1/customers")]
    with pytest.raises(CommandError, match="already in the data map"):
        call_command("store_add", "--from-catalogue", "stripe", "--key", "payments", "--shared",
                     "--secret", "api_key=x", "--offline")
    call_command("test_store", "payments", stdout=io.StringIO())


def test_store_add_command_refuses_missing_values():
    with pytest.raises(CommandError, match="secret 'api_key' is required"):
        call_command("store_add", "--from-catalogue", "stripe", "--shared", "--offline")
    out = io.StringIO()
    call_command("store_add", "--list", stdout=out)
    assert all(slug in out.getvalue() for slug in FIRST_FIVE | NEXT_FIVE)


def test_admin_adds_a_store_tests_it_and_never_shows_the_secret(admin_client, emulator):
    from django.urls import reverse

    from governance.datamap.models import Store

    app = StripeEmulator(api_key="sk_test_admin")
    server = emulator(app)
    page = admin_client.get(reverse("dsr-catalogue"))
    assert page.status_code == 200 and b"Stripe" in page.content and b"Zendesk" in page.content
    form = admin_client.get(reverse("dsr-catalogue-add", args=["stripe"]))
    assert b'type="password"' in form.content and b"user.contact.email" in form.content
    answer = admin_client.post(reverse("dsr-catalogue-add", args=["stripe"]), {
        "key": "stripe", "name": "Stripe", "shared": "on", "param_base_url": "https://api.stripe.com",
        "secret_api_key": "sk_test_admin"})
    # the live check cannot reach api.stripe.com from here: a warning, the store is saved
    assert answer.status_code == 302, answer.content.decode()[:2000]
    store = Store.objects.get(key="stripe")
    assert store.secret_values() == {"api_key": "sk_test_admin"}
    store.connection = {**store.connection, "base_url": server.url, "allow_internal_hosts": True}
    store.save()
    shown = admin_client.get(reverse("dsr-catalogue-store", args=["stripe"]))
    assert b"sk_test_admin" not in shown.content and b"api_key" in shown.content
    assert b"stripe.charges" in shown.content and b"legal" in shown.content.lower()
    tested = admin_client.post(reverse("dsr-catalogue-store", args=["stripe"]), follow=True)
    assert b"Connection works" in tested.content
    assert ("GET", "/v1/customers") in [(r[1], r[2]) for r in app.requests]
    app.api_key = "rotated"
    tested = admin_client.post(reverse("dsr-catalogue-store", args=["stripe"]), follow=True)
    assert b"Connection failed" in tested.content and b"Invalid API Key" in tested.content
    change = admin_client.get(reverse("admin:datamap_store_change", args=[store.pk]))
    assert b"sk_test_admin" not in change.content


def test_catalogue_pages_need_staff(client):
    from django.urls import reverse

    answer = client.get(reverse("dsr-catalogue"))
    assert answer.status_code == 302 and "login" in answer["Location"]

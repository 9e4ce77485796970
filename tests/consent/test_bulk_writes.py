"""The batch write path stores exactly what was sealed (COPY / upsert on PostgreSQL, bulk_create
elsewhere): every field read back equals the instance, and the chain verifies."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from consent.chain import chain_verify
from consent.models import ConsentEvent, ConsentState, Purpose
from consent.services import (
    EventInput,
    RecordContext,
    consent_events_record,
    consent_states_rebuild,
)
from governance.bulk import _fast_path, rows_insert

pytestmark = pytest.mark.django_db

TCF_EXAMPLE = "COw4XqLOw4XqLAAAAAENAXCAAP-gAAAfwIAAACngAI8AEFABgACAA4A.IAPPwAA"
AWKWARD = 'tab\there, new\nline, back\\slash, "quotes", NUL-free ✓ 同意, \\N, \\.'


def _fields(event: ConsentEvent) -> dict:
    return {f.attname: getattr(event, f.attname) for f in ConsentEvent._meta.concrete_fields}


def test_the_fast_path_is_taken_on_postgresql_only():
    assert _fast_path(ConsentEvent, "default") is (connection.vendor == "postgresql")
    assert _fast_path(ConsentState, "default") is (connection.vendor == "postgresql")
    assert _fast_path(Purpose, "default") is False  # created_at is auto_now_add


def test_recorded_events_read_back_field_for_field_and_the_chain_verifies(site, django_assert_num_queries):
    ctx = RecordContext(workspace=site.workspace, site=site, actor_label="site:shop:secret",
                        ip="203.0.113.7", user_agent=AWKWARD)
    earlier = timezone.now() - timedelta(days=3, microseconds=7)
    items = [
        EventInput(purpose="analytics", state="given", browser_id="browser-0001", note=AWKWARD,
                   page_url="https://shop.example/ja/カート?q=1&x=%20", language="ja", jurisdiction="JP",
                   occurred_at=earlier, tcf_string=TCF_EXAMPLE),
        EventInput(purpose="marketing_email", state="refused", identity_kind="email",
                   identity_value="hanako@example.jp", note=""),
        EventInput(purpose="analytics", state="withdrawn", browser_id="browser-0001"),
    ]
    result = consent_events_record(items=items, ctx=ctx)

    stored = {e.id: e for e in ConsentEvent.objects.filter(id__in=[e.id for e in result.events])}
    assert len(stored) == 3
    for event in result.events:
        assert not event._state.adding
        assert _fields(stored[event.id]) == _fields(event)
    assert stored[result.events[0].id].signals["tcf"]["purposes_consent"]  # JSON kept as JSON
    assert stored[result.events[0].id].note == AWKWARD
    assert list(chain_verify()) == []
    with django_assert_num_queries(0):  # the instances carry their related objects (webhook payloads)
        assert (result.events[0].site.slug, result.events[0].profile.pk) == ("shop", result.events[0].profile_id)


def test_states_are_inserted_then_updated_in_place(site):
    ctx = RecordContext(workspace=site.workspace, site=site)
    consent_events_record(items=[EventInput(purpose="analytics", state="given", browser_id="browser-0002")], ctx=ctx)
    first = ConsentState.objects.get()
    later = consent_events_record(
        items=[EventInput(purpose="analytics", state="withdrawn", browser_id="browser-0002"),
               EventInput(purpose="marketing_email", state="given", browser_id="browser-0002")],
        ctx=ctx,
    )
    states = {s.purpose.code: s for s in ConsentState.objects.select_related("purpose")}
    assert states["analytics"].pk == first.pk  # updated, not duplicated
    assert (states["analytics"].state, states["analytics"].last_event_id) == ("withdrawn", later.events[0].id)
    assert (states["marketing_email"].state, states["marketing_email"].last_event_id) == ("given", later.events[1].id)
    assert consent_states_rebuild().clean


def test_models_that_compute_values_on_save_fall_back_to_bulk_create(db):
    purpose = Purpose(code="bulk_fallback", ordering=999)
    rows_insert(Purpose, [purpose])
    saved = Purpose.objects.get(code="bulk_fallback")
    assert saved.created_at is not None  # auto_now_add ran

"""Writes: purposes, site keys, consent events (with GPC), restrictions, merges and erasure."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from audit.freetext import freetext_mask
from audit.services import CREATE, UPDATE, change_record
from consent.chain import amendments_deferred, chain_amend, chain_lock, chain_seal
from consent.iab import InvalidSignalString, gpp_decode, tcf_decode
from consent.models import (
    AmendmentKind,
    CcpaCategory,
    ConsentAmendment,
    ConsentEvent,
    ConsentRevision,
    ConsentState,
    ConsentStateValue,
    KeyKind,
    Method,
    ProcessingRestriction,
    Purpose,
    PurposeVersion,
    Site,
    SiteKey,
    VersionStatus,
)
from consent.proof import request_proof, subject_pseudonym
from consent.selectors import UnknownPurpose, catalogue, purpose_get
from governance.api.errors import Conflict, DomainError
from governance.bulk import rows_insert, rows_upsert
from governance.crypto.blind_index import blind_index
from governance.locking import retry_on_deadlock
from governance.subjects.identities import InvalidIdentity, index_kind, normalize_identity
from governance.subjects.models import (
    Identity,
    IdentityKind,
    Profile,
    ProfileStatus,
    Workspace,
)

MAX_BATCH = 500
MAX_CLOCK_SKEW = timedelta(minutes=5)
KEY_PREFIXES = {KeyKind.PUBLISHABLE: "mcpk_", KeyKind.SECRET: "mcsk_"}
ERR_PUBLISHED_IMMUTABLE = "A published purpose version cannot be changed; publish a new version."
ERR_PUBLISHABLE_IDENTITY = "A publishable key may only record and read consent for a browser id."
ERR_BATCH = "The batch was rejected: no event was recorded. See 'errors' for each bad item."
ERR_IDENTITY_MISSING = "Give 'identity' (kind and value) or 'browser_id'."
ERR_VERSION = "This purpose version is not published."
EXPLICIT_STATES = (ConsentStateValue.GIVEN, ConsentStateValue.REFUSED, ConsentStateValue.WITHDRAWN)
GPC_CATEGORIES = (CcpaCategory.SALE, CcpaCategory.SHARING)
STATE_UPSERT_FIELDS = ("purpose_version", "state", "method", "occurred_at", "last_event", "gpc_first_seen_at",
                       "needs_renewal")


class ConsentError(DomainError):
    code = "consent_invalid"
    title = _("The consent request is not valid.")


class BatchRejected(DomainError):
    status_code = 400
    code = "batch_invalid"
    title = _("One or more events are not valid.")


class KeyScopeError(DomainError):
    status_code = 403
    code = "key_scope"
    title = _("This key may not do that.")


# --- purposes --------------------------------------------------------------------------------


def purpose_version_publish(*, version: PurposeVersion, actor=None) -> PurposeVersion:
    """Publish a draft: it becomes the purpose's current version and is frozen from now on."""
    with transaction.atomic():
        version = PurposeVersion.objects.select_for_update().get(pk=version.pk)
        if version.status != VersionStatus.DRAFT:
            raise Conflict(ERR_PUBLISHED_IMMUTABLE, code="version_published")
        purpose = Purpose.objects.select_for_update().get(pk=version.purpose_id)
        latest = purpose.versions.exclude(status=VersionStatus.DRAFT).aggregate(m=Max("version"))["m"] or 0
        if version.version <= latest:
            raise Conflict(f"Version must be above {latest}.", code="version_order")
        PurposeVersion.objects.filter(purpose=purpose, status=VersionStatus.PUBLISHED).update(
            status=VersionStatus.RETIRED
        )
        version.status = VersionStatus.PUBLISHED
        version.published_at = timezone.now()
        version.save(update_fields=["status", "published_at"])
        purpose.current_version = version
        purpose.save(update_fields=["current_version"])
        if version.material_change:
            ConsentState.objects.filter(purpose=purpose, purpose_version__lt=version.version).update(
                needs_renewal=True
            )
        change_record(actor=actor, obj=version, action=UPDATE, fields=["status"], note="published")
        catalogue_revision_bump()
        transaction.on_commit(catalogue.invalidate)
    catalogue.invalidate()
    return version


def _revision_bump(counter: str) -> None:
    """Count one change in ``ConsentRevision.<counter>`` (inside the caller's transaction)."""
    if not ConsentRevision.objects.filter(pk=1).update(**{counter: F(counter) + 1}):
        try:
            with transaction.atomic():
                ConsentRevision.objects.create(pk=1, **{counter: 1})
        except IntegrityError:  # created concurrently: count this change on top
            ConsentRevision.objects.filter(pk=1).update(**{counter: F(counter) + 1})


def catalogue_revision_bump() -> None:
    """Tell every process (through the check's own statement) that the catalogue changed."""
    _revision_bump("catalogue")


def keys_revision_bump() -> None:
    """Tell every process that cached site keys may be stale (a key, site or workspace changed)."""
    _revision_bump("keys")


def purpose_version_draft(*, purpose: Purpose, actor=None, **fields) -> PurposeVersion:
    """Start the next version of a purpose as a draft copy of the current one."""
    with transaction.atomic():
        latest = purpose.versions.order_by("-version").first()
        base = {}
        if latest is not None:
            base = {
                f.name: getattr(latest, f.name)
                for f in PurposeVersion._meta.concrete_fields
                if f.name not in ("id", "purpose", "version", "status", "published_at", "created_at",
                                  "material_change", "change_note")
            }
        base.update(fields)
        version = PurposeVersion.objects.create(
            purpose=purpose, version=(latest.version + 1) if latest else 1, **base
        )
        change_record(actor=actor, obj=version, action=CREATE, fields=sorted(fields))
    return version


# --- site keys -------------------------------------------------------------------------------


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def site_key_create(*, site: Site, kind: str, actor=None) -> tuple[SiteKey, str]:
    """Create a key and return it with its secret: shown now, stored only as a digest."""
    key_id = secrets.token_hex(8)
    secret = f"{KEY_PREFIXES[kind]}{key_id}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        key = SiteKey.objects.create(site=site, kind=kind, key_id=key_id, digest=key_digest(secret))
        change_record(actor=actor, obj=key, action=CREATE, fields=["digest"], note=f"{kind} key created")
    return key, secret


def site_key_revoke(*, key: SiteKey, actor=None) -> SiteKey:
    with transaction.atomic():
        locked = SiteKey.objects.select_for_update().get(pk=key.pk)
        if locked.revoked_at is None:  # saved, not update()d: the configuration history records it
            locked.revoked_at = timezone.now()
            locked.save(update_fields=["revoked_at"])
        keys_revision_bump()
        key.refresh_from_db()
        change_record(actor=actor, obj=key, action=UPDATE, fields=["revoked_at"], note="revoked")
    return key


def site_key_rotate(*, key: SiteKey, grace: timedelta = timedelta(hours=24), actor=None) -> tuple[SiteKey, str]:
    """Issue a new key of the same kind; the old one keeps working until the grace period ends.

    A revoked or expired key cannot be rotated (that would bring it back), and rotating a key that
    is already in a grace period never extends it.
    """
    with transaction.atomic():
        key = SiteKey.objects.select_for_update().get(pk=key.pk)
        now = timezone.now()
        if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
            raise ConsentError("A revoked or expired key cannot be rotated; issue a new key instead.",
                               code="key_inactive")
        expires = now + grace if key.expires_at is None else min(key.expires_at, now + grace)
        key.expires_at = expires
        key.save(update_fields=["expires_at"])  # saved: the configuration history records it
        keys_revision_bump()
        new_key, secret = site_key_create(site=key.site, kind=key.kind, actor=actor)
        change_record(actor=actor, obj=key, action=UPDATE, fields=["expires_at"], note="rotated")
    return new_key, secret


def site_key_check(secret: str) -> SiteKey | None:
    """Return the active key for this secret, or None."""
    kind = next((k for k, prefix in KEY_PREFIXES.items() if secret.startswith(prefix)), None)
    if kind is None:
        return None
    prefix = KEY_PREFIXES[kind]
    key_id = secret[len(prefix):].split("_", 1)[0]
    key = SiteKey.objects.select_related("site", "site__workspace").filter(key_id=key_id, kind=kind).first()
    if key is None or not hmac.compare_digest(key.digest, key_digest(secret)):
        return None
    now = timezone.now()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    return key


# --- recording events --------------------------------------------------------------------------


@dataclass
class EventInput:
    purpose: str
    state: str
    identity_kind: str = ""
    identity_value: str = ""
    identity_namespace: str = ""
    browser_id: str = ""
    purpose_version: int | None = None
    method: str = Method.API
    occurred_at: datetime | None = None
    page_url: str = ""
    notice_url: str = ""
    language: str = ""
    jurisdiction: str = ""
    tcf_string: str = ""
    gpp_string: str = ""
    note: str = ""


@dataclass
class RecordContext:
    """Who is recording, from where (the request), for which workspace."""

    workspace: Workspace
    site: Site | None = None
    key_kind: str = KeyKind.SECRET
    actor: object | None = None
    actor_label: str = ""
    ip: str = ""
    user_agent: str = ""
    gpc: bool = False

    @cached_property
    def proof(self) -> str:
        """Keyed hash of the caller's IP address and user agent (the same for every event of a batch)."""
        return request_proof(ip=self.ip, user_agent=self.user_agent) if (self.ip or self.user_agent) else ""


@dataclass
class _Prepared:
    item: EventInput
    purpose_id: int
    purpose_code: str
    version: int
    primary_kind: str
    primary_namespace: str
    primary_index: str
    identities: list = field(default_factory=list)  # (kind, normalized, namespace, index)
    signals: dict = field(default_factory=dict)
    profile: Profile | None = None


def _prepare(item: EventInput, ctx: RecordContext) -> _Prepared:
    purpose = purpose_get(code=item.purpose)
    version = item.purpose_version or purpose.version
    if version not in purpose.published_versions:
        raise ConsentError(ERR_VERSION, code="unknown_purpose_version",
                           extra={"published_versions": list(purpose.published_versions)})
    if item.state not in EXPLICIT_STATES and item.state != ConsentStateValue.EXPIRED:
        raise ConsentError("Unknown state.", code="invalid_state")
    if item.method == Method.GPC:
        raise ConsentError("Method 'gpc' is recorded by Mamoru from the Sec-GPC header.", code="invalid_method")
    if item.occurred_at is not None and item.occurred_at > timezone.now() + MAX_CLOCK_SKEW:
        # A future time would outrank every later real decision ("newest wins").
        raise ConsentError("occurred_at lies in the future.", code="occurred_at_in_future")
    jurisdiction = item.jurisdiction or ctx.workspace.default_jurisdiction
    identities = []
    if item.identity_kind:
        if ctx.key_kind == KeyKind.PUBLISHABLE and item.identity_kind != IdentityKind.BROWSER_ID:
            raise KeyScopeError(ERR_PUBLISHABLE_IDENTITY)
        normalized = normalize_identity(
            kind=item.identity_kind, value=item.identity_value, namespace=item.identity_namespace,
            jurisdiction=jurisdiction,
        )
        identities.append((item.identity_kind, normalized, item.identity_namespace))
    if item.browser_id:
        normalized = normalize_identity(kind=IdentityKind.BROWSER_ID, value=item.browser_id)
        if (IdentityKind.BROWSER_ID, normalized, "") not in identities:
            identities.append((IdentityKind.BROWSER_ID, normalized, ""))
    if not identities:
        raise ConsentError(ERR_IDENTITY_MISSING, code="identity_required")
    if ctx.key_kind == KeyKind.PUBLISHABLE and len(identities) > 1:
        raise KeyScopeError(ERR_PUBLISHABLE_IDENTITY)
    indexed = [(k, v, ns, blind_index(kind=index_kind(k, ns), value=v)) for k, v, ns in identities]
    signals = {}
    if item.tcf_string:
        signals["tcf"] = tcf_decode(item.tcf_string)
    if item.gpp_string:
        signals["gpp"] = gpp_decode(item.gpp_string)
    kind, _v, ns, index = indexed[0]
    return _Prepared(
        item=item, purpose_id=purpose.id, purpose_code=purpose.code, version=version, primary_kind=kind,
        primary_namespace=ns, primary_index=index, identities=indexed, signals=signals,
    )


def _resolve_profiles(prepared: list[_Prepared], ctx: RecordContext) -> None:
    """Find each item's profile by blind index; create or link (anonymous → known) as needed."""
    from governance.subjects.services import IdentityInput, profile_upsert

    indexes = {p.primary_index for p in prepared}
    known = {
        (row.kind, row.namespace, row.value_index): row.profile
        for row in Identity.objects.select_related("profile").filter(
            workspace=ctx.workspace, value_index__in=indexes
        ).only(
            "kind", "namespace", "value_index", "profile__id", "profile__status", "profile__jurisdiction",
            "profile__workspace_id", "profile__data_key_id",
        )
    }
    upserted: dict[tuple, Profile] = {}
    # Upserts in one order (by identity) in every batch, so two batches never wait on each other's
    # new identities in opposite orders.
    for p in sorted(prepared, key=lambda p: tuple(sorted(ix for *_x, ix in p.identities))):
        profile = known.get((p.primary_kind, p.primary_namespace, p.primary_index))
        needs_link = len(p.identities) > 1
        if profile is not None and profile.status == ProfileStatus.ACTIVE and not needs_link:
            p.profile = profile
            continue
        signature = tuple(sorted(ix for *_x, ix in p.identities))
        if signature not in upserted:
            result = profile_upsert(
                workspace=ctx.workspace,
                identities=[IdentityInput(k, v, ns) for k, v, ns, _ix in p.identities],
                jurisdiction=p.item.jurisdiction or None,
                locale=p.item.language or None, actor=ctx.actor, source="consent",
            )
            upserted[signature] = result.profile
            for k, _v, ns, ix in p.identities:
                known[(k, ns, ix)] = result.profile
        p.profile = upserted[signature]
    # A later upsert may have merged an earlier item's profile away: point at the survivor.
    if upserted:
        moved = dict(
            Profile.objects.filter(
                pk__in={p.profile.pk for p in prepared}, status=ProfileStatus.MERGED
            ).values_list("pk", "merged_into_id")
        )
        if moved:
            survivors = Profile.objects.in_bulk(set(moved.values()))
            for p in prepared:
                if p.profile.pk in moved:
                    p.profile = survivors[moved[p.profile.pk]]


def _new_event(*, ctx: RecordContext, profile: Profile, purpose_id: int, version: int, state: str,
               method: str, identity_kind: str, identity_index_value: str, occurred_at: datetime,
               now: datetime, jurisdiction: str, item: EventInput | None = None, signals=None,
               note: str = "") -> ConsentEvent:
    values = {
        "id": uuid.uuid4(), "seq": None, "prev_hash": "", "entry_hash": "",  # sealed by chain_seal
        "workspace_id": ctx.workspace.pk, "site_id": ctx.site.pk if ctx.site else None, "profile_id": profile.pk,
        "subject_pseudonym": subject_pseudonym(identity_index=identity_index_value),
        "identity_kind": identity_kind, "identity_index": identity_index_value,
        "purpose_id": purpose_id, "purpose_version": version, "state": state, "method": method,
        "occurred_at": occurred_at.astimezone(UTC), "recorded_at": now, "jurisdiction": jurisdiction,
        "language": (item.language if item else "")[:16], "page_url": item.page_url if item else "",
        "notice_url": item.notice_url if item else "",
        "proof": ctx.proof,
        "actor_label": ctx.actor_label[:150], "tcf_string": item.tcf_string if item else "",
        "gpp_string": item.gpp_string if item else "", "signals": signals or {},
        "note": (note or (item.note if item else ""))[:300], "redacted_at": None,
    }
    # Positional construction is Django's fast path (a batch builds 500 of these); a field added to
    # the model without a value here is a KeyError, not a silent default.
    event = ConsentEvent(*[values[name] for name in _EVENT_ATTNAMES])
    # What the related-object descriptors would have cached, so event.site etc. need no query.
    event._state.fields_cache.update(workspace=ctx.workspace, site=ctx.site, profile=profile)
    return event


_EVENT_ATTNAMES = [f.attname for f in ConsentEvent._meta.concrete_fields]


def _apply(state: ConsentState | None, event: ConsentEvent, renewal_floor: int) -> ConsentState:
    """Fold one event into the derived state (latest occurred_at, then seq, wins)."""
    if state is None:
        state = ConsentState(
            workspace_id=event.workspace_id, profile_id=event.profile_id, purpose_id=event.purpose_id,
            purpose_version=event.purpose_version, state=event.state, method=event.method,
            occurred_at=event.occurred_at, last_event=event,
        )
    elif event.occurred_at >= state.occurred_at:
        state.purpose_version = event.purpose_version
        state.state = event.state
        state.method = event.method
        state.occurred_at = event.occurred_at
        state.last_event = event
    if event.method == Method.GPC and (state.gpc_first_seen_at is None or event.occurred_at < state.gpc_first_seen_at):
        state.gpc_first_seen_at = event.occurred_at
    state.needs_renewal = state.purpose_version < renewal_floor
    return state


def gpc_overridden(state: ConsentState | None) -> bool:
    """True when the person explicitly opted in after a GPC signal was first seen (CCPA §7025)."""
    return bool(
        state is not None and state.state == ConsentStateValue.GIVEN and state.method != Method.GPC
        and state.gpc_first_seen_at is not None and state.occurred_at >= state.gpc_first_seen_at
    )  # equal: an explicit choice made in the same request as the signal, which counts as later


def _gpc_needed(state: ConsentState | None) -> bool:
    if state is None:
        return True
    if state.state in (ConsentStateValue.REFUSED, ConsentStateValue.WITHDRAWN) and state.gpc_first_seen_at:
        return False
    if state.state in (ConsentStateValue.REFUSED, ConsentStateValue.WITHDRAWN):
        return False  # already opted out; nothing new to record
    return not gpc_overridden(state)


@dataclass
class RecordResult:
    events: list[ConsentEvent]
    gpc_events: list[ConsentEvent]
    profiles: dict


def batch_rejection(errors: list[dict], *, single: bool) -> BatchRejected:
    """The documented 400 for bad items: ``batch_invalid`` with every item's error, or for a
    single event its own code at the top."""
    if single:
        return BatchRejected(errors[0]["detail"], code=errors[0]["code"], extra={"errors": errors})
    return BatchRejected(ERR_BATCH, extra={"errors": errors})


def consent_events_record(*, items: Sequence[EventInput], ctx: RecordContext,
                          gpc_profiles: Sequence[tuple[Profile, str, str]] = ()) -> RecordResult:
    """Validate every item, then record all of them (and GPC opt-outs) in one transaction.

    A batch is all-or-nothing: one bad item rejects the whole batch with per-item errors.
    """
    if len(items) > MAX_BATCH:
        raise ConsentError(f"At most {MAX_BATCH} events per request.", code="batch_too_large")
    prepared, errors = [], []
    for index, item in enumerate(items):
        try:
            prepared.append(_prepare(item, ctx))
        except (ConsentError, UnknownPurpose, InvalidIdentity, InvalidSignalString) as exc:
            errors.append({"index": index, "code": exc.code, "detail": exc.detail, **exc.extra})
    if errors:
        raise batch_rejection(errors, single=len(items) == 1)
    # Concurrent batches for the same people can deadlock in PostgreSQL (identity rows, state rows
    # and the chain heads of the consent journal and the audit log): the database aborts one, and
    # the whole batch runs again (nothing of the aborted attempt was kept).
    return retry_on_deadlock(lambda: _events_record(prepared, ctx, gpc_profiles))


def _events_record(prepared: list[_Prepared], ctx: RecordContext,
                   gpc_profiles: Sequence[tuple[Profile, str, str]]) -> RecordResult:
    now = timezone.now()
    for p in prepared:
        p.profile = None  # resolved (again) inside this attempt's transaction
    with transaction.atomic():
        with amendments_deferred() as amendments:  # merges while linking identities: sealed below
            _resolve_profiles(prepared, ctx)
        pairs = {(p.profile.pk, p.purpose_id) for p in prepared}
        profiles = {p.profile.pk: p for p in prepared}
        gpc_purposes = []
        if ctx.gpc:
            gpc_purposes = [c for c in catalogue.get().by_code.values() if c.ccpa_category in GPC_CATEGORIES]
            pairs |= {(pid, c.id) for pid in profiles for c in gpc_purposes}
        profile_ids = {pid for pid, _ in pairs}
        purpose_ids = {pur for _, pur in pairs}
        states = {
            (s.profile_id, s.purpose_id): s
            for s in ConsentState.objects.select_for_update().filter(
                profile_id__in=profile_ids, purpose_id__in=purpose_ids
            ).order_by("profile_id", "purpose_id")  # one lock order for every batch
        }
        events: list[ConsentEvent] = []
        gpc_events: list[ConsentEvent] = []
        floors = {c.id: c.renewal_floor for c in catalogue.get().by_code.values()}
        touched: dict[tuple, ConsentState] = {}

        def fold(event: ConsentEvent) -> None:
            key = (event.profile_id, event.purpose_id)
            state = _apply(states.get(key), event, floors.get(event.purpose_id, 0))
            states[key] = state
            touched[key] = state

        # GPC first: explicit choices in the same request count as made after the signal, so for a
        # purpose that also has an explicit choice here the signal is dated no later than it (the
        # choice may carry an earlier occurred_at).
        earliest: dict[tuple, datetime] = {}
        for p in prepared if gpc_purposes else ():
            at = p.item.occurred_at or now
            key = (p.profile.pk, p.purpose_id)
            earliest[key] = min(at, earliest.get(key, at))
        for pid, p in profiles.items():
            for c in gpc_purposes:
                if not _gpc_needed(states.get((pid, c.id))):
                    continue
                event = _new_event(
                    ctx=ctx, profile=p.profile, purpose_id=c.id, version=c.version,
                    state=ConsentStateValue.REFUSED, method=Method.GPC, identity_kind=p.primary_kind,
                    identity_index_value=p.primary_index, occurred_at=min(now, earliest.get((pid, c.id), now)), now=now,
                    jurisdiction=p.profile.jurisdiction, note="Sec-GPC: 1",
                )
                gpc_events.append(event)
        for p in prepared:
            events.append(_new_event(
                ctx=ctx, profile=p.profile, purpose_id=p.purpose_id, version=p.version, state=p.item.state,
                method=p.item.method, identity_kind=p.primary_kind, identity_index_value=p.primary_index,
                occurred_at=p.item.occurred_at or now, now=now,
                jurisdiction=p.item.jurisdiction or p.profile.jurisdiction, item=p.item, signals=p.signals,
            ))
        everything = gpc_events + events
        chain_seal(amendments + everything)
        if amendments:
            ConsentAmendment.objects.bulk_create(amendments)
        rows_insert(ConsentEvent, everything)
        for event in everything:
            fold(event)
        # One upsert instead of bulk_update (whose CASE expressions cost seconds per 500 rows);
        # the rows are locked above, so nothing else changes them meanwhile.
        rows_upsert(ConsentState, list(touched.values()), unique_fields=["profile", "purpose"],
                    update_fields=STATE_UPSERT_FIELDS)
        audit_obj = ctx.site or everything[0]
        change_record(
            actor=ctx.actor, obj=audit_obj, action=CREATE, fields=["consent_events"],
            note=f"{len(events)} consent event(s) recorded, {len(gpc_events)} from GPC",
        )
        from consent.webhooks import webhooks_enqueue

        webhooks_enqueue(workspace=ctx.workspace, events=everything)
    return RecordResult(events=events, gpc_events=gpc_events, profiles={p.pk: p for p in (x.profile for x in prepared)})


def consent_gpc_apply(*, profile: Profile, identity_kind: str, identity_index_value: str,
                      ctx: RecordContext) -> list[ConsentEvent]:
    """Record a GPC opt-out of sale/sharing purposes for one profile (reads with Sec-GPC: 1)."""
    purposes = [c for c in catalogue.get().by_code.values() if c.ccpa_category in GPC_CATEGORIES]
    if not purposes:
        return []
    now = timezone.now()
    with transaction.atomic():
        states = {
            s.purpose_id: s for s in ConsentState.objects.select_for_update().filter(
                profile=profile, purpose_id__in=[c.id for c in purposes]
            )
        }
        events = [
            _new_event(ctx=ctx, profile=profile, purpose_id=c.id, version=c.version,
                       state=ConsentStateValue.REFUSED, method=Method.GPC, identity_kind=identity_kind,
                       identity_index_value=identity_index_value, occurred_at=now, now=now,
                       jurisdiction=profile.jurisdiction, note="Sec-GPC: 1")
            for c in purposes if _gpc_needed(states.get(c.id))
        ]
        if not events:
            return []
        _store(events, states_by_pair={(profile.pk, s.purpose_id): s for s in states.values()}, ctx=ctx,
               note="GPC opt-out recorded")
    return events


def _store(events: list[ConsentEvent], *, states_by_pair: dict, ctx: RecordContext, note: str) -> None:
    floors = {c.id: c.renewal_floor for c in catalogue.get().by_code.values()}
    chain_seal(events)
    rows_insert(ConsentEvent, events)
    for event in events:
        key = (event.profile_id, event.purpose_id)
        state = _apply(states_by_pair.get(key), event, floors.get(event.purpose_id, 0))
        states_by_pair[key] = state
        state.save()
    change_record(actor=ctx.actor, obj=ctx.site or events[0], action=CREATE, fields=["consent_events"], note=note)
    from consent.webhooks import webhooks_enqueue

    webhooks_enqueue(workspace=ctx.workspace, events=events)


def consent_record_for_profile(
    *, profile: Profile, purpose_code: str, state: str, method: str, actor=None, note: str = ""
) -> ConsentEvent:
    """Record one decision for a known profile (used by DSR handling and staff tools)."""
    purpose = purpose_get(code=purpose_code)
    if state not in ConsentStateValue.values:
        raise ConsentError("Unknown state.", code="invalid_state")
    if method not in Method.values:
        raise ConsentError("Unknown method.", code="invalid_method")
    now = timezone.now()
    ctx = RecordContext(
        workspace=profile.workspace, actor=actor,
        actor_label=getattr(actor, "username", "") if actor is not None else "",
    )
    ref = f"profile:{profile.pk}"
    event = _new_event(
        ctx=ctx, profile=profile, purpose_id=purpose.id, version=purpose.version, state=state,
        method=method, identity_kind="profile", identity_index_value=ref, occurred_at=now, now=now,
        jurisdiction=profile.jurisdiction, note=note,
    )
    event.identity_index = ""  # the pseudonym covers the profile id; nothing to look up by
    with transaction.atomic():
        existing = ConsentState.objects.select_for_update().filter(profile=profile, purpose_id=purpose.id).first()
        _store([event], states_by_pair={(profile.pk, purpose.id): existing} if existing else {}, ctx=ctx,
               note=f"consent {state} recorded for profile ({method})")
    return event


def profile_restriction_set(
    *, profile: Profile, purpose_codes: list[str] | None, reason: str, actor=None
) -> list[ProcessingRestriction]:
    """Restrict (Art. 18) or object (Art. 21): checks answer "not allowed" for these purposes.

    ``purpose_codes=None`` restricts every purpose, including ones published later.
    """
    codes = [""] if purpose_codes is None else list(dict.fromkeys(purpose_codes))
    for code in codes:
        if code:
            purpose_get(code=code)
    with transaction.atomic():
        active = set(
            ProcessingRestriction.objects.filter(profile=profile, lifted_at=None).values_list("purpose_code", flat=True)
        )
        created = [
            ProcessingRestriction.objects.create(
                profile=profile, purpose_code=code, reason=freetext_mask(reason)[:300],  # full text: audit entry
                actor=actor if getattr(actor, "pk", None) else None,
            )
            for code in codes if code not in active
        ]
        change_record(actor=actor, obj=profile, action=UPDATE, fields=["consent_restrictions"],
                      note=f"processing restricted: {', '.join(c or '*' for c in codes)}" + (f"; {reason}" if reason else ""))
    return created


def profile_restriction_lift(*, profile: Profile, purpose_codes: list[str] | None = None, actor=None) -> int:
    """Lift restrictions (all of them, or those for the named purposes)."""
    with transaction.atomic():
        qs = ProcessingRestriction.objects.filter(profile=profile, lifted_at=None)
        if purpose_codes is not None:
            qs = qs.filter(purpose_code__in=purpose_codes)
        count = qs.update(lifted_at=timezone.now())
        change_record(actor=actor, obj=profile, action=UPDATE, fields=["consent_restrictions"],
                      note=f"{count} restriction(s) lifted")
    return count


# --- merges and erasure ----------------------------------------------------------------------


def consent_profile_merge(*, survivor: Profile, merged: Profile, actor=None) -> None:
    """Move events and states to the survivor; per purpose the newer decision wins.

    The move is proven by a chained ``merge`` amendment listing the moved events (verification
    rejects an event whose profile changed without one). States are moved first and the chain head
    locked last, the order every consent write takes its locks in.
    """
    ProcessingRestriction.objects.filter(profile=merged).update(profile=survivor)
    _states_merge(survivor=survivor, merged=merged)
    # Exactly the listed events move (an event a concurrent writer seals meanwhile stays where it
    # was recorded, and the chain agrees).
    seqs = list(ConsentEvent.objects.filter(profile=merged).values_list("seq", flat=True))
    if seqs:
        ConsentEvent.objects.filter(seq__in=seqs).update(profile=survivor)
        chain_amend(kind=AmendmentKind.MERGE, event_seqs=seqs, profile_ref=merged.pk, survivor_ref=survivor.pk,
                    actor_label=getattr(actor, "username", "") or "", note="profile merge")


def _states_merge(*, survivor: Profile, merged: Profile) -> None:
    theirs = {s.purpose_id: s for s in ConsentState.objects.select_related("last_event").filter(profile=merged)}
    if not theirs:
        return
    ours = {
        s.purpose_id: s for s in ConsentState.objects.select_related("last_event").filter(
            profile=survivor, purpose_id__in=list(theirs)
        )
    }
    for purpose_id, state in theirs.items():
        mine = ours.get(purpose_id)
        if mine is None:
            ConsentState.objects.filter(pk=state.pk).update(profile=survivor)
            continue
        newer = max((mine, state), key=lambda s: (s.occurred_at, s.last_event.seq))
        gpc_seen = [s.gpc_first_seen_at for s in (mine, state) if s.gpc_first_seen_at]
        ConsentState.objects.filter(pk=state.pk).delete()
        if newer is state:
            for name in ("purpose_version", "state", "method", "occurred_at", "last_event_id", "needs_renewal"):
                setattr(mine, name, getattr(state, name))
        mine.gpc_first_seen_at = min(gpc_seen) if gpc_seen else None
        mine.save()


def consent_events_redact(*, profile: Profile, actor=None) -> int:
    """Erasure: blank the identity link of the profile's events; proof and chain stay intact.

    The redaction is a chained ``redact`` amendment listing the events; each event's
    ``redacted_at`` is the amendment's time, which is what verification checks.
    """
    with transaction.atomic():
        chain_lock()
        seqs = list(ConsentEvent.objects.filter(profile=profile, redacted_at=None).exclude(identity_index="")
                    .values_list("seq", flat=True))
        if not seqs:
            return 0
        record = chain_amend(kind=AmendmentKind.REDACT, event_seqs=seqs, profile_ref=profile.pk,
                             actor_label=getattr(actor, "username", "") or "", note="erasure")
        count = ConsentEvent.objects.filter(seq__in=seqs).update(identity_index="", redacted_at=record.recorded_at)
    if count:
        change_record(actor=actor, obj=profile, action=UPDATE, fields=["consent_events.identity_index"],
                      note=f"{count} consent event(s) redacted after erasure")
    return count


# --- rebuild ---------------------------------------------------------------------------------


@dataclass
class RebuildReport:
    checked: int = 0
    missing: list = field(default_factory=list)
    extra: list = field(default_factory=list)
    different: list = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.missing or self.extra or self.different)


STATE_FIELDS = ("purpose_version", "state", "method", "occurred_at", "last_event_id", "gpc_first_seen_at",
                "needs_renewal")


def consent_states_derive(*, profile_ids=None) -> dict[tuple, ConsentState]:
    """Fold every event (or those of ``profile_ids``), in chain order, into fresh (unsaved) states."""
    floors = {c.id: c.renewal_floor for c in catalogue.get().by_code.values()}
    states: dict[tuple, ConsentState] = {}
    events = ConsentEvent.objects.all() if profile_ids is None else ConsentEvent.objects.filter(profile_id__in=profile_ids)
    for event in events.order_by("seq").iterator(chunk_size=5000):
        key = (event.profile_id, event.purpose_id)
        states[key] = _apply(states.get(key), event, floors.get(event.purpose_id, 0))
    return states


def consent_states_compare(*, derived: dict[tuple, ConsentState], stored: dict[tuple, ConsentState]) -> RebuildReport:
    """What differs between stored states and states derived from the events (same keys)."""
    report = RebuildReport()
    for key, fresh in derived.items():
        report.checked += 1
        current = stored.get(key)
        if current is None:
            report.missing.append(key)
            continue
        diff = [n for n in STATE_FIELDS if getattr(current, n) != getattr(fresh, n)]
        if diff:
            report.different.append((key, diff))
    report.extra = [key for key in stored if key not in derived]
    return report


def consent_states_rebuild(*, fix: bool = False) -> RebuildReport:
    """Compare stored states with states derived from events; with ``fix`` make them equal."""
    catalogue.invalidate()
    derived = consent_states_derive()
    stored = {(s.profile_id, s.purpose_id): s for s in ConsentState.objects.iterator(chunk_size=5000)}
    report = consent_states_compare(derived=derived, stored=stored)
    if fix and not report.clean:
        with transaction.atomic():
            ConsentState.objects.filter(pk__in=[stored[k].pk for k in report.extra]).delete()
            for key in report.missing:
                derived[key].save()
            for key, _diff in report.different:
                current, fresh = stored[key], derived[key]
                for name in STATE_FIELDS:
                    setattr(current, name, getattr(fresh, name))
                current.save()
    return report


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = parse_datetime(value)
    if parsed is None:
        raise ConsentError("Not an ISO 8601 date-time.", code="invalid_datetime")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, timezone.utc)
    return parsed


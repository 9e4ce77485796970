"""Reads: the purpose catalogue (cached per process), state, the hot-path check and reports."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db.models import Count
from django.db.models.functions import TruncDate, TruncMonth, TruncWeek
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _

from consent.models import (
    ConsentEvent,
    ConsentRevision,
    ConsentState,
    ConsentStateValue,
    DefaultRule,
    GdprBasis,
    ProcessingRestriction,
    Purpose,
    PurposeVersion,
    Site,
    VersionStatus,
)
from governance.api.errors import DomainError, NotFound
from governance.dbread import PreparedRead
from governance.subjects.models import Identity, Profile, ProfileStatus
from governance.subjects.selectors import identity_index

# Seconds a process keeps the purpose catalogue and site origins before reading them again.
CATALOGUE_TTL = 5.0
# The check learns about catalogue changes from the revision its statement returns; this is only a
# safety net (a change made around the services, e.g. by hand in SQL).
CHECK_CATALOGUE_TTL = 300.0
# An unknown purpose code on the check reloads the catalogue at most this often (a published
# purpose may be new to this process; junk codes must not turn every request into a reload).
UNKNOWN_RELOAD_SECONDS = 1.0
ERR_UNKNOWN_PURPOSE = "Unknown or unpublished purpose code."


class UnknownPurpose(DomainError):
    code = "unknown_purpose"
    title = _("The purpose is not in the published catalogue.")


@dataclass(frozen=True)
class CataloguePurpose:
    id: int
    code: str
    version: int
    renewal_floor: int  # consents to versions below this need renewal (material change)
    gdpr_basis: str
    ccpa_category: str
    appi_category: str
    defaults: dict
    validity_days: int | None
    names: dict = field(default_factory=dict)
    descriptions: dict = field(default_factory=dict)
    published_versions: tuple = ()
    version_obj_id: int = 0

    def default_rule(self, jurisdiction: str) -> str:
        from consent.models import DEFAULT_RULES

        return self.defaults.get(jurisdiction) or DEFAULT_RULES.get(jurisdiction, DefaultRule.OPT_IN)


def consent_revision(counter: str) -> int:
    """The current value of ``ConsentRevision.<counter>`` (``catalogue`` or ``keys``; 0 before any bump)."""
    return ConsentRevision.objects.filter(pk=1).values_list(counter, flat=True).first() or 0


class _Catalogue:
    def __init__(self) -> None:
        self.loaded_at = 0.0
        self.revision = -1
        self.by_code: dict[str, CataloguePurpose] = {}
        self.by_id: dict[int, CataloguePurpose] = {}
        self.etag = ""

    def get(self) -> _Catalogue:
        if time.monotonic() - self.loaded_at > CATALOGUE_TTL:
            self.load()
        return self

    def for_check(self) -> _Catalogue:
        """The catalogue as the check uses it: kept until its revision is seen to change."""
        if time.monotonic() - self.loaded_at > CHECK_CATALOGUE_TTL:
            self.load()
        return self

    def load(self) -> None:
        # Revision first: a change committed while the rest loads is seen as a newer revision.
        self.revision = consent_revision("catalogue")
        versions = list(
            PurposeVersion.objects.filter(status__in=[VersionStatus.PUBLISHED, VersionStatus.RETIRED])
            .select_related("purpose")
            .order_by("purpose_id", "version")
        )
        by_purpose: dict[int, list[PurposeVersion]] = {}
        for v in versions:
            by_purpose.setdefault(v.purpose_id, []).append(v)
        by_code = {}
        currents = {p.id: p for p in Purpose.objects.exclude(current_version=None)}
        for pid, purpose in currents.items():
            vs = by_purpose.get(pid, [])
            current = next((v for v in vs if v.id == purpose.current_version_id), None)
            if current is None or current.status != VersionStatus.PUBLISHED:
                continue
            floor = max((v.version for v in vs if v.material_change and v.version <= current.version), default=0)
            by_code[purpose.code] = CataloguePurpose(
                id=pid, code=purpose.code, version=current.version, renewal_floor=floor,
                gdpr_basis=current.gdpr_basis, ccpa_category=current.ccpa_category,
                appi_category=current.appi_category, defaults=dict(current.defaults or {}),
                validity_days=current.consent_validity_days,
                names={"en": current.name_en, "ja": current.name_ja},
                descriptions={"en": current.description_en, "ja": current.description_ja},
                published_versions=tuple(v.version for v in vs), version_obj_id=current.id,
            )
        self.by_code = by_code
        self.by_id = {p.id: p for p in by_code.values()}
        digest = hashlib.sha256(
            json.dumps(sorted((p.code, p.version_obj_id, p.renewal_floor) for p in by_code.values())).encode()
        ).hexdigest()[:32]
        self.etag = f'"{digest}"'
        self.loaded_at = time.monotonic()

    def invalidate(self) -> None:
        self.loaded_at = 0.0


catalogue = _Catalogue()


def purpose_get(*, code: str, cat: _Catalogue | None = None) -> CataloguePurpose:
    """A published purpose from ``cat`` (default: the catalogue, refreshed on its timer)."""
    cat = cat or catalogue.get()
    purpose = cat.by_code.get(code)
    if purpose is None:
        raise UnknownPurpose(ERR_UNKNOWN_PURPOSE, extra={"purpose": code, "known": sorted(cat.by_code)})
    return purpose


def purposes_published(*, locale: str = "en") -> list[dict]:
    """The published catalogue in one language (for the privacy notice and the API)."""
    lang = "ja" if locale.startswith("ja") else "en"
    versions = {
        v.id: v for v in PurposeVersion.objects.filter(
            id__in=[p.version_obj_id for p in catalogue.get().by_code.values()]
        ).select_related("purpose")
    }
    out = []
    for version in sorted(versions.values(), key=lambda v: (v.purpose.ordering, v.purpose.code)):
        out.append({
            "code": version.purpose.code,
            "version": version.version,
            "name": version.name_ja if lang == "ja" else version.name_en,
            "description": version.description_ja if lang == "ja" else version.description_en,
            "translations": {
                "en": {"name": version.name_en, "description": version.description_en},
                "ja": {"name": version.name_ja, "description": version.description_ja},
            },
            "legal_basis": {
                "gdpr": version.gdpr_basis, "ccpa": version.ccpa_category or None,
                "appi": version.appi_category or None,
            },
            "transfer_country": version.transfer_country or None,
            "data_categories": list(version.data_categories or []),
            "recipients": list(version.recipients or []),
            "retention_days": version.retention_days,
            "defaults": {j: version.default_rule(j) for j in ("EU", "JP", "US-CA", "US", "OTHER")},
            "notice_url": version.notice_url or None,
            "published_at": version.published_at.isoformat() if version.published_at else None,
        })
    return out


_origins: dict = {"at": 0.0, "value": frozenset()}


def site_origins_all() -> frozenset[str]:
    """Every origin some site allows (for CORS pre-flight; the key then names the site)."""
    if time.monotonic() - _origins["at"] > CATALOGUE_TTL:
        origins = set()
        for allowed in Site.objects.values_list("allowed_origins", flat=True):
            origins.update(o.rstrip("/") for o in (allowed or []) if isinstance(o, str))
        _origins.update(at=time.monotonic(), value=frozenset(origins))
    return _origins["value"]


# --- check (hot path) --------------------------------------------------------------------------


@dataclass
class CheckResult:
    allowed: bool
    purpose: str
    version: int
    basis: str
    reason: str
    state: str | None
    found: bool
    decided_at: datetime | None = None
    keys_revision: int = 0  # ConsentRevision.keys as the check's statement read it (not output)

    def as_dict(self) -> dict:
        return {
            "allowed": self.allowed, "purpose": self.purpose, "purpose_version": self.version,
            "basis": self.basis, "reason": self.reason, "state": self.state,
            "profile_found": self.found,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }


def consent_decide(
    *, purpose: CataloguePurpose, jurisdiction: str, state: str | None, state_version: int | None,
    occurred_at: datetime | None, restricted: bool, found: bool = True, now: datetime | None = None,
) -> CheckResult:
    """Apply the rules: restriction, objection, consent state, renewal, expiry, jurisdiction default."""
    def result(allowed: bool, basis: str, reason: str) -> CheckResult:
        return CheckResult(allowed, purpose.code, purpose.version, basis, reason, state, found, occurred_at)

    if restricted:
        return result(False, purpose.gdpr_basis, "restricted")
    basis = purpose.gdpr_basis
    if purpose.ccpa_category and jurisdiction in ("US-CA", "US"):
        basis = f"ccpa_{purpose.ccpa_category}"
    if basis not in (GdprBasis.CONSENT,) and not basis.startswith("ccpa_"):
        # Contract, legal obligation, …: allowed unless the person objected (Art. 21).
        if state in (ConsentStateValue.REFUSED, ConsentStateValue.WITHDRAWN) and basis == GdprBasis.LEGITIMATE_INTERESTS:
            return result(False, basis, "objected")
        return result(True, basis, "legal_basis")
    if state == ConsentStateValue.GIVEN:
        if state_version is not None and state_version < purpose.renewal_floor:
            return result(False, basis, "renewal_required")
        if purpose.validity_days and occurred_at is not None:
            if (now or timezone.now()) - occurred_at > timedelta(days=purpose.validity_days):
                return result(False, basis, "expired")
        return result(True, basis, "consent_given")
    if state in (ConsentStateValue.REFUSED, ConsentStateValue.WITHDRAWN, ConsentStateValue.EXPIRED):
        return result(False, basis, f"consent_{state}")
    if purpose.default_rule(jurisdiction) == DefaultRule.OPT_OUT:
        return result(True, basis, "opt_out_default")
    return result(False, basis, "no_consent")


def _check_sql() -> str:
    """One statement, always one row: the catalogue and keys revisions, then (or NULLs, nobody
    found) the identity (blind index) → profile, its state and any restriction."""
    # Table names come from model metadata; every value is a bound parameter.
    revision = ConsentRevision._meta.db_table
    return (
        f"SELECT (SELECT v.catalogue FROM {revision} v WHERE v.id = 1), "  # noqa: S608
        f"(SELECT v.keys FROM {revision} v WHERE v.id = 1), "
        "x.jurisdiction, x.status, x.state, x.purpose_version, x.occurred_at, x.restricted "
        "FROM (SELECT 1 AS one) base LEFT JOIN ("
        "SELECT p.jurisdiction, p.status, s.state, s.purpose_version, s.occurred_at, "
        f"EXISTS (SELECT 1 FROM {ProcessingRestriction._meta.db_table} r WHERE r.profile_id = i.profile_id AND r.lifted_at IS NULL "
        "AND (r.purpose_code = '' OR r.purpose_code = %s)) AS restricted "
        f"FROM {Identity._meta.db_table} i JOIN {Profile._meta.db_table} p ON p.id = i.profile_id "
        f"LEFT JOIN {ConsentState._meta.db_table} s ON s.profile_id = i.profile_id AND s.purpose_id = %s "
        "WHERE i.workspace_id = %s AND i.kind = %s AND i.namespace = %s AND i.value_index = %s"
        ") x ON 1 = 1"
    )


_CHECK = PreparedRead(
    name="mamoru_consent_check_v2", sql=_check_sql,
    columns=("int", "int", "text", "text", "text", "int", "timestamptz", "bool"),
)


def _as_datetime(value) -> datetime | None:
    """An aware datetime from a raw cursor's value: PostgreSQL gives aware datetimes; SQLite gives
    text or, with its type converters, naive datetimes, both in UTC."""
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else parse_datetime(str(value))
    return parsed if parsed is None or timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _check_row(params: list) -> tuple:
    return _CHECK.fetchone(params)


def consent_check(
    *, workspace_id: int, default_jurisdiction: str, purpose_code: str, kind: str, value: str,
    namespace: str = "",
) -> CheckResult:
    """Answer "may this person's data be used for this purpose?" with one indexed query.

    Hand-written SQL on purpose: this is the hot path and the ORM's query building cost more
    than the query itself. Plain joins, so it runs on SQLite, PostgreSQL and MariaDB alike. The
    same statement returns the catalogue revision: when another process published a purpose
    version, this process reloads its catalogue and answers again. It also returns the keys
    revision (``result.keys_revision``), which the caller compares with its cached site key's.
    """
    index = identity_index(kind=kind, value=value, namespace=namespace, jurisdiction=default_jurisdiction)
    for attempt in (0, 1):
        cat = catalogue.for_check()
        if purpose_code not in cat.by_code and time.monotonic() - cat.loaded_at > UNKNOWN_RELOAD_SECONDS:
            cat.load()
        purpose = purpose_get(code=purpose_code, cat=cat)
        row = _check_row([purpose.code, purpose.id, workspace_id, kind, namespace, index])
        if (row[0] or 0) == cat.revision or attempt:
            break
        cat.load()  # published elsewhere since this process loaded it
    _revision, keys_revision, jurisdiction, status, state, version, occurred_at, restricted = row
    if status != ProfileStatus.ACTIVE:  # NULL: nobody with this identity
        result = consent_decide(
            purpose=purpose, jurisdiction=default_jurisdiction, state=None, state_version=None,
            occurred_at=None, restricted=False, found=False,
        )
    else:
        result = consent_decide(
            purpose=purpose, jurisdiction=jurisdiction, state=state, state_version=version,
            occurred_at=_as_datetime(occurred_at), restricted=bool(restricted),
        )
    result.keys_revision = keys_revision or 0
    return result


def profile_consent_overview(*, profile: Profile) -> list[dict]:
    """Every published purpose with this profile's decision and what a check would answer."""
    states = {s.purpose_id: s for s in ConsentState.objects.filter(profile=profile)}
    restrictions = list(
        ProcessingRestriction.objects.filter(profile=profile, lifted_at=None).values_list("purpose_code", flat=True)
    )
    out = []
    for purpose in sorted(catalogue.get().by_code.values(), key=lambda p: p.code):
        s = states.get(purpose.id)
        decision = consent_decide(
            purpose=purpose, jurisdiction=profile.jurisdiction, state=s.state if s else None,
            state_version=s.purpose_version if s else None, occurred_at=s.occurred_at if s else None,
            restricted="" in restrictions or purpose.code in restrictions,
        )
        out.append({
            "purpose": purpose.code,
            "state": s.state if s else None,
            "purpose_version": s.purpose_version if s else None,
            "method": s.method if s else None,
            "occurred_at": s.occurred_at.isoformat() if s else None,
            "needs_renewal": bool(s and s.purpose_version < purpose.renewal_floor),
            "allowed": decision.allowed,
            "reason": decision.reason,
            "receipt_id": str(s.last_event_id) if s else None,
        })
    return out


def consent_events_for_profile(*, profile: Profile):
    return ConsentEvent.objects.filter(profile=profile).select_related("purpose", "site").order_by("seq")


def consent_event_get(*, event_id, workspace_id: int | None = None) -> ConsentEvent:
    qs = ConsentEvent.objects.select_related("purpose", "site", "workspace")
    if workspace_id is not None:
        qs = qs.filter(workspace_id=workspace_id)
    event = qs.filter(pk=event_id).first()
    if event is None:
        raise NotFound("No consent record with this id.", code="receipt_not_found")
    return event


# --- reporting -------------------------------------------------------------------------------

_BUCKETS = {"day": TruncDate, "week": TruncWeek, "month": TruncMonth}


def consent_rates_by_purpose(*, since: datetime, until: datetime | None = None, bucket: str = "day") -> list[dict]:
    """Given / refused / withdrawn event counts per purpose and bucket (day, week or month)."""
    if bucket not in _BUCKETS:
        raise ValueError(f"bucket must be one of {sorted(_BUCKETS)}")
    qs = ConsentEvent.objects.filter(occurred_at__gte=since)
    if until is not None:
        qs = qs.filter(occurred_at__lt=until)
    rows = (
        qs.annotate(bucket=_BUCKETS[bucket]("occurred_at"))
        .values("bucket", "purpose__code", "state")
        .annotate(n=Count("id"))
        .order_by("bucket", "purpose__code")
    )
    table: dict[tuple, dict] = {}
    for row in rows:
        day = row["bucket"]
        day = day.date() if hasattr(day, "date") and callable(day.date) else day
        key = (day, row["purpose__code"])
        entry = table.setdefault(key, {"date": day, "purpose_code": key[1], "given": 0, "refused": 0, "withdrawn": 0})
        if row["state"] in ("given", "refused", "withdrawn"):
            entry[row["state"]] += row["n"]
    return [table[k] for k in sorted(table)]

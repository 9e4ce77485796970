"""Report definitions: what an audit export contains, who may run it, and how rows are read.

A report validates its filters (a DRF serializer, reused by the API schema), checks the user may
see what they ask for (``governance.access.policy``), and yields rows lazily with keyset
pagination so that exporters can stream any number of them. Register new reports with
:func:`register_report`; unknown names raise an error listing the known ones.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import connections
from django.db.models import Max, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers, status

from audit.models import AuditEntry
from governance.access import policy
from governance.api.errors import DomainError, NotFound
from governance.registry import Registry, UnknownName
from governance.subjects.models import Profile, Workspace
from oversight.exporters.base import Column, ReportTable

KEYSET_CHUNK = 5000
VIEW_AUDIT = "audit.view_auditentry"
EXPORT_AUDIT = "audit.export_audit"

ERR_UNKNOWN_REPORT = "Unknown report {name!r}; known reports: {known}."
ERR_PROFILE_NOT_FOUND = "No profile with this id is visible to you."


class UnknownReport(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "unknown_report"
    title = _("Unknown report.")


class ReportUnavailable(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "report_unavailable"
    title = _("This report needs a module that is not installed.")


class ExportForbidden(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "export_forbidden"
    title = _("You may not export this report.")


class ReportFiltersInvalid(DomainError):
    code = "invalid_filters"
    title = _("The report filters are not valid.")


reports: Registry[BaseReport] = Registry("report", instantiate=True)


def register_report(cls: type[BaseReport]) -> type[BaseReport]:
    """Class decorator: offer a report in the exports, the API and the admin."""
    return reports.register(cls)


def report_get(identifier: str) -> BaseReport:
    try:
        return reports.get(identifier)
    except UnknownName as exc:
        raise UnknownReport(ERR_UNKNOWN_REPORT.format(name=identifier, known=", ".join(exc.known))) from None


def reports_all() -> list[BaseReport]:
    return reports.values()


def keyset(queryset: QuerySet, fields: Sequence[str], *, key: str = "pk", chunk: int = KEYSET_CHUNK) -> Iterator[tuple]:
    """Yield ``values_list(*fields)`` rows ordered by ``key`` in chunks (``key`` must be ``fields[0]``).

    Keyset pagination instead of OFFSET or one long cursor: every chunk is a short, indexed query,
    so a streaming response never holds a transaction or a server-side cursor open for minutes.
    Use the primary key as ``key`` where you can: a single-column index on a filter column ends in
    the primary key, so the database reads it in order instead of sorting every chunk.
    """
    assert fields[0] == key, "the keyset key must be the first field"
    last = None
    while True:
        page = queryset.order_by(key)
        if last is not None:
            page = page.filter(**{f"{key}__gt": last})
        rows = list(page.values_list(*fields)[:chunk])
        if not rows:
            return
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1][0]


def keyset_raw(queryset: QuerySet, fields: Sequence[str], *, key: str = "pk", chunk: int = KEYSET_CHUNK) -> Iterator[tuple]:
    """Like :func:`keyset` but yield the database driver's values, skipping the ORM's converters.

    For hot export loops only: datetimes arrive as text (SQLite) or datetimes (PostgreSQL, MariaDB)
    and JSON as text or already decoded, so callers normalise with :func:`utc_text` and friends.
    """
    assert fields[0] == key, "the keyset key must be the first field"
    last = None
    while True:
        page = queryset.order_by(key)
        if last is not None:
            page = page.filter(**{f"{key}__gt": last})
        query = page.values_list(*fields)[:chunk].query
        sql, sql_params = query.get_compiler(using=page.db).as_sql()
        with connections[page.db].cursor() as cursor:
            cursor.execute(sql, sql_params)
            rows = cursor.fetchall()
        if not rows:
            return
        yield from rows
        if len(rows) < chunk:
            return
        last = rows[-1][0]


def utc_text(value) -> str:
    """ISO 8601 in UTC to the second, from a driver value (text or datetime) or a datetime."""
    if value is None:
        return ""
    if isinstance(value, str):
        # Django stores UTC without an offset in SQLite: "YYYY-MM-DD HH:MM:SS[.ffffff]".
        return value[:10] + "T" + value[11:19] + "+00:00"
    if value.tzinfo is dt.UTC:  # PostgreSQL sessions run in UTC: skip the conversion
        return value.isoformat(timespec="seconds")
    if value.tzinfo is None:
        return value.isoformat(timespec="seconds") + "+00:00"
    return value.astimezone(dt.UTC).isoformat(timespec="seconds")


class _JsonTextCache:
    """Memoise the text form of small, highly repetitive JSON values (field lists, ``via``)."""

    def __init__(self, convert, size: int = 4096) -> None:
        self.convert, self.size, self.cache = convert, size, {}

    def __call__(self, value) -> str:
        if value is None:
            return ""
        if not isinstance(value, str | bytes):
            return self.convert(value)
        hit = self.cache.get(value)
        if hit is None:
            if len(self.cache) >= self.size:
                self.cache.clear()
            hit = self.cache[value] = self.convert(json.loads(value))
        return hit


def _names_text(value) -> str:
    return " ".join(str(v) for v in value) if isinstance(value, list) else ""


def _via_text(value) -> str:
    return str(value.get("via", "")) if isinstance(value, dict) else ""


class BaseReport:
    """Base class of reports. Subclasses set the attributes and implement the methods below."""

    identifier: str = ""
    verbose_name: str = ""
    description: str = ""
    #: The file holds personal data: background files are encrypted at rest.
    personal_data: bool = True
    #: Apps that must be installed for the report to be offered.
    requires_apps: tuple[str, ...] = ()

    class Filters(serializers.Serializer):
        pass

    def is_available(self) -> bool:
        return all(apps.is_installed(app) for app in self.requires_apps)

    def clean(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate filters; unknown filter names are refused (a typo must not widen an export)."""
        raw = {k: v for k, v in raw.items() if v not in ("", None)}
        serializer = self.Filters(data=raw)
        unknown = set(raw) - set(serializer.fields)
        if unknown:
            raise ReportFiltersInvalid(
                gettext("Unknown filters: %(names)s.") % {"names": ", ".join(sorted(unknown))},
                extra={"errors": {name: ["unknown filter"] for name in sorted(unknown)}},
            )
        if not serializer.is_valid():
            raise ReportFiltersInvalid(extra={"errors": serializer.errors})
        return dict(serializer.validated_data)

    def authorize(self, params: dict[str, Any], *, user) -> None:
        """Raise :class:`ExportForbidden` / :class:`NotFound` when ``user`` may not run this export."""
        if not (user.has_perm(EXPORT_AUDIT) or user.has_perm(VIEW_AUDIT)):
            raise ExportForbidden()

    def subject_profiles(self, params: dict[str, Any]) -> list[Profile]:
        """The profiles an export is about (each gets an access entry)."""
        return []

    def snapshot(self, params: dict[str, Any]) -> dict[str, Any]:
        """Extra parameters fixing the export to the data as of now (stored with the export)."""
        return {}

    def count(self, params: dict[str, Any], *, user) -> int | None:
        return None

    def table(self, params: dict[str, Any], *, user) -> ReportTable:
        raise NotImplementedError(f"{type(self).__name__} must implement table(params, user=...)")


def iso_utc(value: dt.datetime | None) -> str:
    return value.astimezone(dt.UTC).isoformat(timespec="seconds") if value else ""


class DateRangeFilters(serializers.Serializer):
    since = serializers.DateTimeField(required=False, help_text="From this time (inclusive, ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Up to this time (exclusive).")

    def validate(self, attrs):
        if attrs.get("since") and attrs.get("until") and attrs["since"] >= attrs["until"]:
            raise serializers.ValidationError({"until": "must be after since"}, code="invalid_range")
        return attrs


ACTION_NAMES = {
    AuditEntry.Action.CREATE: "create",
    AuditEntry.Action.UPDATE: "update",
    AuditEntry.Action.DELETE: "delete",
    AuditEntry.Action.ACCESS: "access",
}
ACTION_CODES = {name: code for code, name in ACTION_NAMES.items()}


def profile_visible_or_404(*, user, profile_id) -> Profile:
    """The profile if ``user`` may see it; otherwise record the denied attempt and raise 404."""
    from audit.models import Outcome
    from audit.services import access_record

    profile = Profile.objects.filter(pk=profile_id).select_related("workspace").first()
    if profile is None:
        raise NotFound(ERR_PROFILE_NOT_FOUND)
    if not policy.can_view_profile(user, profile):
        # A denied attempt is an audit event (and feeds the "repeated denied attempts" rule).
        access_record(
            actor=user, obj=profile, fields=[], reason="audit export outside the user's workspaces",
            outcome=Outcome.DENIED, via="audit_export",
        )
        raise NotFound(ERR_PROFILE_NOT_FOUND)
    return profile


@register_report
class AccessLogReport(BaseReport):
    """Who accessed or changed which profile, when, why and with what outcome."""

    identifier = "access_log"
    verbose_name = _("Profile access log")
    description = _("Who read or changed which profile, when, which fields, why, and the outcome.")

    class Filters(DateRangeFilters):
        profile = serializers.UUIDField(required=False, help_text="Only entries about this profile.")
        actor = serializers.CharField(
            required=False, max_length=254, help_text="Actor user id, username or e-mail."
        )
        action = serializers.ChoiceField(choices=sorted(ACTION_CODES), required=False)
        outcome = serializers.ChoiceField(choices=["allowed", "denied"], required=False)
        workspace = serializers.SlugField(required=False, help_text="Workspace slug.")
        until_seq = serializers.IntegerField(
            required=False, min_value=0, help_text="Only entries up to this chain position (set by the server)."
        )

    columns = [
        Column("seq", _("Seq")),
        Column("timestamp", _("Time (UTC)")),
        Column("actor_id", _("Actor id")),
        Column("actor_email", _("Actor")),
        Column("action", _("Action")),
        Column("outcome", _("Outcome")),
        Column("profile_id", _("Profile")),
        Column("workspace", _("Workspace")),
        Column("fields", _("Fields")),
        Column("reason", _("Reason")),
        Column("via", _("Via")),
        Column("remote_addr", _("Address")),
        Column("request_id", _("Request id")),
        Column("entry_hash", _("Entry hash")),
    ]
    # Keyset on the primary key: every index on the filter columns ends in it, so no chunk sorts.
    # Ids ascend with seq: an entry is sealed under the chain-head lock and inserted before the
    # transaction that holds the lock commits.
    _fields = (
        "id", "seq", "timestamp", "actor_id", "actor_email", "action", "outcome", "object_pk",
        "workspace_id", "fields", "reason", "additional_data", "remote_addr", "cid", "entry_hash",
    )

    def authorize(self, params, *, user) -> None:
        super().authorize(params, user=user)
        if not user.has_perm(VIEW_AUDIT) and not policy.may_list_profiles(user):
            raise ExportForbidden()
        if params.get("profile") and not user.has_perm(VIEW_AUDIT):
            # Auditors see the whole log, including entries about profiles erased since.
            profile_visible_or_404(user=user, profile_id=params["profile"])

    def subject_profiles(self, params) -> list[Profile]:
        if params.get("profile"):
            return list(Profile.objects.filter(pk=params["profile"]))
        return []

    def snapshot(self, params) -> dict[str, Any]:
        if params.get("until_seq") is not None:
            return {}
        # Freeze at the current chain head so the export's own audit entry is never in it.
        return {"until_seq": AuditEntry.objects.aggregate(m=Max("seq"))["m"] or 0}

    def queryset(self, params, *, user) -> QuerySet[AuditEntry]:
        qs = AuditEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Profile), seq__isnull=False
        )
        if not user.has_perm(VIEW_AUDIT):
            # Support agents and others: only their workspaces (deny by default).
            visible = policy.workspaces_visible_to(user).values_list("pk", flat=True)
            qs = qs.filter(workspace_id__in=list(visible))
        if params.get("profile"):
            qs = qs.filter(object_pk=str(params["profile"]))
        if params.get("actor"):
            actor = params["actor"]
            if actor.isdigit():
                qs = qs.filter(actor_id=int(actor))
            else:
                qs = qs.filter(Q(actor_email__iexact=actor) | Q(actor__username=actor))
        if params.get("action"):
            qs = qs.filter(action=ACTION_CODES[params["action"]])
        if params.get("outcome"):
            qs = qs.filter(outcome=params["outcome"])
        if params.get("workspace"):
            ws = Workspace.objects.filter(slug=params["workspace"]).first()
            qs = qs.filter(workspace_id=ws.pk if ws else -1)
        if params.get("since"):
            qs = qs.filter(timestamp__gte=params["since"])
        if params.get("until"):
            qs = qs.filter(timestamp__lt=params["until"])
        if params.get("until_seq") is not None:
            qs = qs.filter(seq__lte=params["until_seq"])
        return qs

    def count(self, params, *, user) -> int:
        return self.queryset(params, user=user).count()

    def rows(self, params, *, user) -> Iterator[tuple]:
        slugs = dict(Workspace.objects.values_list("pk", "slug"))
        actions = ACTION_NAMES
        names, vias = _JsonTextCache(_names_text), _JsonTextCache(_via_text)
        addrs: dict = {}  # PostgreSQL returns inet values as ipaddress objects; str() them once
        ts_text = utc_text
        # Raw rows: the per-row ORM converters (datetime and JSON parsing) would halve the rate.
        for (_id, seq, ts, actor_id, actor_email, action, outcome, pk, ws, fields, reason, data, addr,
             cid, digest) in keyset_raw(self.queryset(params, user=user), self._fields, key="id"):
            yield (
                seq, ts_text(ts), actor_id, actor_email or "", actions.get(action, action), outcome, pk,
                slugs.get(ws, ""), names(fields), reason, vias(data),
                addrs.get(addr) or addrs.setdefault(addr, str(addr) if addr else ""), cid or "", digest,
            )

    def table(self, params, *, user) -> ReportTable:
        return ReportTable(
            title=gettext("Profile access log"),
            columns=self.columns,
            rows=self.rows(params, user=user),
            meta=report_meta(params),
        )


def report_meta(params: dict[str, Any]) -> list[tuple[str, str]]:
    meta = [(gettext("Generated"), iso_utc(timezone.now()))]
    for key, value in sorted(params.items()):
        meta.append((key, iso_utc(value) if isinstance(value, dt.datetime) else str(value)))
    return meta


def workspace_scope(qs: QuerySet, user, field: str = "workspace") -> QuerySet:
    """Limit rows to the workspaces the user sees, unless they see every profile."""
    if user.has_perm(policy.VIEW_ALL):
        return qs
    return qs.filter(**{f"{field}__in": policy.workspaces_visible_to(user)})



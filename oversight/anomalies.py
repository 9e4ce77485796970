"""Access anomalies: evaluate the DPO's rules over the audit log, raise alerts, e-mail the DPOs.

Each rule counts matching audit entries per actor in fixed windows (``window_minutes`` long,
aligned to the epoch) and raises one alert per (rule, actor, window) when the count exceeds the
threshold. Evaluation is idempotent — running it twice raises nothing new — so the Celery beat
task and ``manage.py evaluate_anomalies`` can overlap safely.
"""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field

from django.contrib.contenttypes.models import ContentType
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone, translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit import services as audit_services
from audit.freetext import freetext_mask
from audit.models import AuditEntry, Outcome
from audit.models_exports import AnomalyAlert, AnomalyKind, AnomalyRule, AuditExport
from governance.access.roles import dpo_emails
from governance.api.errors import Conflict, DomainError, NotFound
from governance.registry import Registry
from governance.subjects.models import Profile
from oversight.reports import keyset

logger = logging.getLogger(__name__)
DEFAULT_LOOKBACK = dt.timedelta(hours=24)
ERR_ALREADY_ACKNOWLEDGED = "This alert was already acknowledged."
ERR_NOTE_REQUIRED = "Acknowledging an alert needs a note (at least 3 characters): why it is all right, or what was done."
NOTE_MIN_LENGTH = 3


class AlertAlreadyAcknowledged(Conflict):
    code = "alert_already_acknowledged"
    title = _("The alert was already acknowledged.")


class AlertNoteRequired(DomainError):
    code = "note_required"
    title = _("Acknowledging an alert needs a note.")


@dataclass
class _Bucket:
    count: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    actor_id: int | None = None
    distinct: set = field(default_factory=set)


class BaseAnomalyKind:
    """What one kind of rule counts: which audit entries, and whether each counts.

    ``identifier`` is the rule's ``kind``. ``entries`` narrows a window's sealed entries;
    ``counts`` may drop single entries (working hours); ``distinct_objects`` counts distinct
    objects (profiles) instead of entries.
    """

    identifier: str = ""
    distinct_objects: bool = False

    def entries(self, qs: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
        raise NotImplementedError(f"{type(self).__name__} must implement entries(qs)")

    def counts(self, rule: AnomalyRule, moment: dt.datetime) -> bool:
        return True


anomaly_kinds: Registry[BaseAnomalyKind] = Registry("anomaly kind", base=BaseAnomalyKind, instantiate=True)


def _profile_reads(qs: QuerySet[AuditEntry]) -> QuerySet[AuditEntry]:
    return qs.filter(action=AuditEntry.Action.ACCESS, outcome=Outcome.ALLOWED,
                     content_type=ContentType.objects.get_for_model(Profile))


@anomaly_kinds.register
class ReadsPerHour(BaseAnomalyKind):
    identifier = AnomalyKind.READS_PER_HOUR
    distinct_objects = True

    def entries(self, qs):
        return _profile_reads(qs)


@anomaly_kinds.register
class OffHours(BaseAnomalyKind):
    identifier = AnomalyKind.OFF_HOURS

    def entries(self, qs):
        return _profile_reads(qs)

    def counts(self, rule, moment):
        return is_off_hours(rule, moment)


@anomaly_kinds.register
class DeniedAttempts(BaseAnomalyKind):
    identifier = AnomalyKind.DENIED_ATTEMPTS

    def entries(self, qs):
        return qs.filter(outcome=Outcome.DENIED)


@anomaly_kinds.register
class BulkExports(BaseAnomalyKind):
    identifier = AnomalyKind.BULK_EXPORTS

    def entries(self, qs):
        return qs.filter(action=AuditEntry.Action.CREATE,
                         content_type=ContentType.objects.get_for_model(AuditExport))


def _rule_entries(rule: AnomalyRule, since: dt.datetime, until: dt.datetime) -> QuerySet[AuditEntry]:
    qs = AuditEntry.objects.filter(timestamp__gte=since, timestamp__lt=until, seq__isnull=False)
    return anomaly_kinds.get(rule.kind).entries(qs)


def is_off_hours(rule: AnomalyRule, moment: dt.datetime) -> bool:
    local = moment.astimezone(zoneinfo.ZoneInfo(rule.timezone))
    if rule.weekdays_only and local.weekday() >= 5:
        return True
    return not (rule.work_start_hour <= local.hour < rule.work_end_hour)


def _window_start(moment: dt.datetime, minutes: int) -> dt.datetime:
    seconds = max(1, minutes) * 60
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, tz=dt.UTC)


def rule_evaluate(
    *, rule: AnomalyRule, since: dt.datetime, until: dt.datetime
) -> list[AnomalyAlert]:
    """Raise the alerts of one rule for entries in [since, until); return the new ones."""
    kind = anomaly_kinds.get(rule.kind)
    buckets: dict[tuple[str, dt.datetime], _Bucket] = defaultdict(_Bucket)
    fields = ("id", "seq", "actor_id", "actor_email", "timestamp", "object_pk")
    entries = keyset(_rule_entries(rule, since, until), fields, key="id")
    for _id, seq, actor_id, actor_email, ts, object_pk in entries:
        if not kind.counts(rule, ts):
            continue
        label = actor_email or (f"user {actor_id}" if actor_id else "anonymous")
        bucket = buckets[(label, _window_start(ts, rule.window_minutes))]
        bucket.count += 1
        bucket.actor_id = actor_id
        bucket.first_seq = seq if bucket.first_seq is None else bucket.first_seq
        bucket.last_seq = seq
        if kind.distinct_objects:
            bucket.distinct.add(object_pk)

    raised = []
    for (label, start), bucket in sorted(buckets.items(), key=lambda item: item[0][1]):
        count = len(bucket.distinct) if kind.distinct_objects else bucket.count
        if count <= rule.threshold:
            continue
        if AnomalyAlert.objects.filter(rule=rule, actor_label=label, window_start=start).exists():
            continue
        try:
            with transaction.atomic():
                raised.append(
                    AnomalyAlert.objects.create(
                        rule=rule, kind=rule.kind, actor_id=bucket.actor_id, actor_label=label,
                        window_start=start, window_end=start + dt.timedelta(minutes=rule.window_minutes),
                        count=count, threshold=rule.threshold, first_seq=bucket.first_seq,
                        last_seq=bucket.last_seq,
                    )
                )
        except IntegrityError:
            continue  # raised meanwhile by an overlapping evaluation
    return raised


def anomalies_evaluate(
    *, since: dt.datetime | None = None, until: dt.datetime | None = None, notify: bool = True
) -> list[AnomalyAlert]:
    """Evaluate every enabled rule; e-mail the DPO group about new alerts."""
    until = until or timezone.now()
    since = since or until - DEFAULT_LOOKBACK
    raised = []
    for rule in AnomalyRule.objects.filter(enabled=True):
        # Start at a window boundary so a window is never counted from half its entries.
        raised += rule_evaluate(rule=rule, since=_window_start(since, rule.window_minutes), until=until)
    if raised and notify:
        alerts_notify(alerts=raised)
    return raised


def alert_describe(alert: AnomalyAlert) -> str:
    return gettext("%(rule)s: %(actor)s — %(count)d (threshold %(threshold)d) between %(start)s and %(end)s UTC") % {
        "rule": alert.rule.name, "actor": alert.actor_label, "count": alert.count,
        "threshold": alert.threshold, "start": alert.window_start.strftime("%Y-%m-%d %H:%M"),
        "end": alert.window_end.strftime("%H:%M"),
    }


def alerts_notify(*, alerts: list[AnomalyAlert]) -> int:
    """E-mail the DPO group one message listing the new alerts (staff labels only, no subject data)."""
    recipients = dpo_emails()
    if not recipients or not alerts:
        return 0
    with translation.override("en"):
        lines = [alert_describe(a) for a in alerts]
        subject = gettext("[Mamoru] %(n)d new access anomaly alert(s)") % {"n": len(alerts)}
        body = "\n".join(lines) + "\n\n" + gettext("Review and acknowledge them on the admin dashboard.")
    try:
        send_mail(subject, body, None, recipients)
    except Exception:  # noqa: BLE001 - an unreachable mail server must not lose the alerts
        logger.exception("could not e-mail anomaly alerts")
        return 0
    AnomalyAlert.objects.filter(pk__in=[a.pk for a in alerts]).update(notified_at=timezone.now())
    return len(recipients)


def alerts_list(*, only_open: bool = False) -> QuerySet[AnomalyAlert]:
    qs = AnomalyAlert.objects.select_related("rule").order_by("acknowledged_at", "-created_at")
    return qs.filter(acknowledged_at__isnull=True) if only_open else qs


def alert_get(*, alert_id: int) -> AnomalyAlert:
    alert = AnomalyAlert.objects.select_related("rule").filter(pk=alert_id).first()
    if alert is None:
        raise NotFound("No such alert.")
    return alert


def alert_acknowledge(
    *, alert: AnomalyAlert, actor, note: str, request: HttpRequest | None = None
) -> AnomalyAlert:
    """Mark an alert as seen, with a note (required); the acknowledgement is audited."""
    note = (note or "").strip()
    if len(note) < NOTE_MIN_LENGTH:
        raise AlertNoteRequired(ERR_NOTE_REQUIRED)
    with transaction.atomic():
        locked = AnomalyAlert.objects.select_for_update().get(pk=alert.pk)
        if locked.acknowledged_at is not None:
            raise AlertAlreadyAcknowledged(ERR_ALREADY_ACKNOWLEDGED)
        locked.acknowledged_at = timezone.now()
        locked.acknowledged_by = actor
        locked.acknowledge_note = freetext_mask(note)[:500]  # full text: sealed in the audit entry
        locked.save(update_fields=["acknowledged_at", "acknowledged_by", "acknowledge_note"])
        audit_services.change_record(
            actor=actor, obj=locked, action=audit_services.UPDATE, request=request,
            fields=["acknowledged_at", "acknowledged_by", "acknowledge_note"],
            note=f"anomaly alert acknowledged: {note}",
        )
    return locked


DEFAULT_RULES = [
    {"name": "More than 100 profiles read in an hour", "kind": AnomalyKind.READS_PER_HOUR,
     "threshold": 100, "window_minutes": 60},
    {"name": "Profile reads outside working hours", "kind": AnomalyKind.OFF_HOURS,
     "threshold": 0, "window_minutes": 60},
    {"name": "More than 5 denied attempts in 15 minutes", "kind": AnomalyKind.DENIED_ATTEMPTS,
     "threshold": 5, "window_minutes": 15},
    {"name": "More than 10 exports in a day", "kind": AnomalyKind.BULK_EXPORTS,
     "threshold": 10, "window_minutes": 1440},
]


def anomaly_rules_ensure_defaults() -> int:
    """Create the default rules when there are none (the DPO tunes them in the admin)."""
    if AnomalyRule.objects.exists():
        return 0
    AnomalyRule.objects.bulk_create([AnomalyRule(**spec) for spec in DEFAULT_RULES])
    return len(DEFAULT_RULES)

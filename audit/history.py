"""Configuration history: who changed which setting, from what to what, and why.

Every app registers its configuration models from its ``AppConfig.ready()`` with
:func:`history_register` (purposes and versions, sites and site keys, webhooks, the data map,
workspaces, users, groups and their permissions, object permissions, API tokens, anomaly rules,
approval policies). django-auditlog then writes an entry for each create, update, delete and
many-to-many change into the same sealed chain as every read (``AUDITLOG_LOGENTRY_MODEL``), with
before/after values in ``changes``.

- **Secrets never reach ``changes``**: password hashes, key digests, encrypted fields (store
  secrets, webhook signing secrets) are masked to ``[secret]`` (a change is visible, never a value);
  data-key ids and usage timestamps are left out.
- **Actor**: :class:`HistoryMiddleware` (auditlog's middleware) names the signed-in user, with
  the client address.
- **Reason**: the admin's change form has a "Reason for this change" field (the
  ``admin/submit_line.html`` override); API callers may send ``X-Change-Reason``. It is stored
  like every free-text reason (:mod:`audit.freetext`): masked, the full text sealed.
- The admin's "History" page of each object lists these entries (``admin/object_history.html``
  and :mod:`audit.templatetags.audit_history`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
from contextvars import ContextVar

from auditlog.middleware import AuditlogMiddleware
from auditlog.registry import auditlog
from django.db import models
from django.db.models.signals import pre_save

from audit.freetext import freetext_protect
from audit.models import AuditEntry
from governance.observability.requestid import from_trusted_proxy

logger = logging.getLogger(__name__)

SECRET = "[secret]"
REASON_FIELD = "_change_reason"
REASON_HEADER = "X-Change-Reason"
# Values that must never be written, by field name (plus every encrypted field).
SECRET_FIELDS = frozenset({"password", "digest", "secret", "secrets", "wrapped", "token", "signing_secret"})
# Bookkeeping that changes without anyone changing the configuration.
NOISE_FIELDS = frozenset({"last_login", "last_used_at", "updated_at", "loaded_at", "data_key_id"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_reason: ContextVar[str] = ContextVar("mamoru_change_reason", default="")


def mask_secret(value: str) -> str:
    """auditlog's mask callable for secrets: that it changed, never what it was or became."""
    return value if value in ("", "None") else SECRET


def _encrypted(field: models.Field) -> bool:
    from governance.crypto.fields import EncryptedTextField

    return isinstance(field, EncryptedTextField)


def history_register(model: type[models.Model], *, m2m: tuple[str, ...] = (), exclude: tuple[str, ...] = (),
                     secrets: tuple[str, ...] = ()) -> None:
    """Record every change of ``model`` (secrets masked, bookkeeping fields left out)."""
    fields = model._meta.concrete_fields
    names = {f.name for f in fields}
    masked = sorted((names & SECRET_FIELDS) | set(secrets) | {f.name for f in fields if _encrypted(f)})
    if auditlog.contains(model):
        auditlog.unregister(model)
    auditlog.register(
        model, exclude_fields=sorted((names & NOISE_FIELDS) | set(exclude)), mask_fields=masked,
        mask_callable="audit.history.mask_secret", m2m_fields=set(m2m),
    )


def history_models() -> list[type[models.Model]]:
    return sorted(auditlog.get_models(), key=lambda m: m._meta.label)


@contextlib.contextmanager
def change_reason(text: str):
    """Attach ``text`` as the reason of every configuration change recorded inside the block.

    The receiver is connected only inside the block (as auditlog's own context does), so reads
    outside it pay nothing: the read path sends ``pre_save`` only when someone listens.
    """
    text = (text or "").strip()
    if not text:
        yield
        return
    token = _reason.set(text)
    uid = ("audit.history.reason", id(token))
    pre_save.connect(_reason_fill, sender=AuditEntry, dispatch_uid=uid, weak=False)
    try:
        yield
    finally:
        pre_save.disconnect(sender=AuditEntry, dispatch_uid=uid)
        _reason.reset(token)


def _reason_fill(sender, instance: AuditEntry, **kwargs) -> None:
    """pre_save of an entry auditlog writes: the reason of the change, masked and sealed."""
    if instance.action == AuditEntry.Action.ACCESS or instance.reason or instance.entry_hash:
        return
    text = _reason.get()
    if not text:
        return
    protected = freetext_protect(text, max_length=500)
    instance.reason = protected.masked
    if protected.sealed:
        instance.additional_data = {**(instance.additional_data or {}), **protected.data()}





def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_not_address_warned = False


def _warn_not_address(value: str, *, proxy: str | None) -> None:
    """Log once per process that a trusted proxy forwards values that are not addresses."""
    global _not_address_warned
    if _not_address_warned:
        return
    _not_address_warned = True
    logger.warning(
        "X-Forwarded-For from trusted proxy %s holds %r, not an IP address: the proxy's address is "
        "used instead (logged once per process)", proxy, value[:64],
    )


def _hop(value: str) -> str:
    """One X-Forwarded-For hop without its port: ``[2001:db8::1]:443`` and ``192.0.2.1:80`` too."""
    value = value.strip()
    if value.startswith("[") and "]" in value:
        return value[1:value.index("]")]
    if value.count(":") == 1 and "." in value:
        return value.split(":", 1)[0]
    return value


def client_address(request) -> tuple[str | None, int | None]:
    """The client's address and port as the audit log records them.

    ``X-Forwarded-For`` / ``X-Forwarded-Port`` are believed only from a proxy listed in
    ``MAMORU_TRUSTED_PROXIES``; then the nearest address the trusted proxies did not add is the
    client. Anyone else would choose what the evidence says about them. A forwarded value that is
    no IP address (``unknown``, ``garbage``) is ignored: the proxy's own address stands (all such
    clients share it, also as one rate-limit bucket), and a warning is logged once per process.
    """
    remote = request.META.get("REMOTE_ADDR") or None
    port = request.META.get("REMOTE_PORT")
    if from_trusted_proxy(remote) and request.headers.get("X-Forwarded-For"):
        hops = [_hop(h) for h in request.headers["X-Forwarded-For"].split(",") if h.strip()]
        while hops and from_trusted_proxy(hops[-1]):
            hops.pop()
        if hops and _is_address(hops[-1]):
            remote, port = hops[-1], request.headers.get("X-Forwarded-Port")
        elif hops:
            _warn_not_address(hops[-1], proxy=remote)
    try:
        port = int(port) if port not in (None, "") else None
    except (TypeError, ValueError):
        port = None
    return remote, port


class HistoryMiddleware(AuditlogMiddleware):
    """auditlog's middleware (actor, address, correlation id) plus the reason of the change.

    Addresses come from :func:`client_address` (forwarded headers only from trusted proxies),
    not from auditlog's own reading, which believes any client's ``X-Forwarded-For``.
    """

    @staticmethod
    def _get_remote_addr(request):
        return client_address(request)[0]

    @staticmethod
    def _get_remote_port(request):
        return client_address(request)[1]

    def __call__(self, request):
        reason = request.headers.get(REASON_HEADER, "")
        if not reason and request.method == "POST" and request.content_type in _FORM_TYPES:
            reason = request.POST.get(REASON_FIELD, "")
        with change_reason(reason[:2000]):
            return super().__call__(request)

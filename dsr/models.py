"""Data-subject requests, their per-node tasks, timeline events and access packages."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from governance.crypto.fields import BlindIndexField, EncryptedTextField
from governance.subjects.models import Jurisdiction


class RequestType(models.TextChoices):
    ACCESS = "access", _("Access (GDPR Art. 15 / CCPA right to know / APPI 33)")
    ERASURE = "erasure", _("Erasure (GDPR Art. 17 / CCPA delete)")
    RECTIFICATION = "rectification", _("Rectification (GDPR Art. 16 / CCPA correct)")
    PORTABILITY = "portability", _("Portability (GDPR Art. 20)")
    RESTRICTION = "restriction", _("Restriction of processing (GDPR Art. 18)")
    OBJECTION = "objection", _("Objection (GDPR Art. 21)")
    OPT_OUT_SALE = "opt_out_sale", _("Opt-out of sale/sharing (CCPA)")
    LIMIT_SENSITIVE = "limit_sensitive", _("Limit use of sensitive personal information (CCPA)")


GRAPH_TYPES = {RequestType.ACCESS, RequestType.PORTABILITY, RequestType.ERASURE, RequestType.RECTIFICATION}
CONSENT_TYPES = {RequestType.RESTRICTION, RequestType.OBJECTION, RequestType.OPT_OUT_SALE,
                 RequestType.LIMIT_SENSITIVE}


class RequestStatus(models.TextChoices):
    RECEIVED = "received", _("Received")
    PENDING_VERIFICATION = "pending_verification", _("Waiting for identity verification")
    VERIFIED = "verified", _("Identity verified")
    AWAITING_APPROVAL = "awaiting_approval", _("Waiting for DPO approval")
    RUNNING = "running", _("Running")
    COMPLETED = "completed", _("Completed")
    REJECTED = "rejected", _("Rejected")
    NEEDS_ATTENTION = "needs_attention", _("Needs attention")


OPEN_STATUSES = {RequestStatus.RECEIVED, RequestStatus.PENDING_VERIFICATION, RequestStatus.VERIFIED,
                 RequestStatus.AWAITING_APPROVAL, RequestStatus.RUNNING, RequestStatus.NEEDS_ATTENTION}


class Channel(models.TextChoices):
    PORTAL = "portal", _("Privacy portal")
    API = "api", _("API / integration")
    EMAIL = "email", _("E-mail")
    PHONE = "phone", _("Phone")
    ADMIN = "admin", _("Entered by staff")


class DataSubjectRequest(models.Model):
    """One request by a person about their data, from receipt to answer (kept 24 months)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("subjects.Workspace", on_delete=models.PROTECT, related_name="dsr_requests")
    # Filed without choosing a brand: searches the stores of every workspace (docs/portal.md).
    all_workspaces = models.BooleanField(_("covers every workspace"), default=False)
    request_type = models.CharField(_("type"), max_length=24, choices=RequestType.choices)
    status = models.CharField(_("status"), max_length=24, choices=RequestStatus.choices,
                              default=RequestStatus.RECEIVED, db_index=True)
    jurisdiction = models.CharField(_("jurisdiction"), max_length=8, choices=Jurisdiction.choices)
    locale = models.CharField(_("language"), max_length=8, default="en")
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices, default=Channel.PORTAL)

    data_key_id = models.UUIDField(editable=False)
    email = EncryptedTextField(_("requester e-mail"))
    email_index = BlindIndexField(_("e-mail blind index"))
    details = EncryptedTextField(_("details (JSON)"))
    seeds = EncryptedTextField(_("identity seeds (JSON)"))
    masking_secret = EncryptedTextField(_("masking key"))
    profile = models.ForeignKey("subjects.Profile", null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="dsr_requests")

    received_at = models.DateTimeField(_("received"), auto_now_add=True, db_index=True)
    acknowledged_at = models.DateTimeField(_("acknowledged"), null=True, blank=True)
    acknowledge_due_at = models.DateTimeField(_("acknowledgement due"), null=True, blank=True)
    verified_at = models.DateTimeField(_("verified"), null=True, blank=True)
    approved_at = models.DateTimeField(_("approved"), null=True, blank=True)
    started_at = models.DateTimeField(_("started"), null=True, blank=True)
    completed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    due_at = models.DateTimeField(_("due"), db_index=True)
    extended_at = models.DateTimeField(_("extended"), null=True, blank=True)
    extension_reason = models.TextField(_("extension reason"), blank=True, default="")
    reminded_at = models.DateTimeField(_("reminder sent"), null=True, blank=True)
    rejection_reason = models.TextField(_("rejection reason"), blank=True, default="")
    attention_reason = models.TextField(_("needs attention because"), blank=True, default="")
    # The staff member working the request ("my queue"); anyone with the change permission.
    assignee = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="assigned_dsr_requests", verbose_name=_("assigned to"))
    # While we wait for the person's answer to "we need more information" and the law lets the
    # clock stop (dsr.deadlines.clock_pauses): since when. Their reply moves due_at by the pause.
    paused_at = models.DateTimeField(_("clock paused since"), null=True, blank=True)
    pause_reason = models.CharField(_("clock paused for"), max_length=16, blank=True, default="")
    keep_until = models.DateTimeField(_("record kept until"), null=True, blank=True)

    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    # scheme://host the request came in through: links mailed later (by a worker) point there when
    # MAMORU_PUBLIC_URL is unset (governance.links).
    public_base_url = models.CharField(max_length=255, blank=True, default="", editable=False)

    code_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    code_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    code_attempts = models.PositiveSmallIntegerField(default=0, editable=False)

    plan = models.JSONField(_("plan (data map snapshot)"), default=dict, blank=True, editable=False)
    summary = models.JSONField(_("result summary"), default=dict, blank=True, editable=False)

    class Meta:
        ordering = ["-received_at"]
        verbose_name = _("data-subject request")
        verbose_name_plural = _("data-subject requests")
        indexes = [models.Index(fields=["workspace", "status"])]

    def __str__(self) -> str:
        # Never personal data: this string ends up in audit entries.
        return f"DSR {str(self.id)[:8]} ({self.request_type})"


class TaskPhase(models.TextChoices):
    ACCESS = "access", _("Access")
    ERASURE = "erasure", _("Erasure")
    RECTIFY = "rectify", _("Rectification")
    VERIFY = "verify", _("Verification scan")
    CONSENT = "consent", _("Consent and restriction")
    PACKAGE = "package", _("Access package")


class TaskStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    RETRY_WAIT = "retry_wait", _("Waiting to retry")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class RequestTask(models.Model):
    """One node of a request's plan (a collection in one phase), run by a Celery task."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="tasks")
    phase = models.CharField(_("phase"), max_length=16, choices=TaskPhase.choices)
    node = models.CharField(_("node"), max_length=160)
    depends_on = models.JSONField(default=list, blank=True)
    position = models.PositiveIntegerField(default=0)
    status = models.CharField(_("status"), max_length=16, choices=TaskStatus.choices,
                              default=TaskStatus.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveIntegerField(_("attempt budget"), default=5)
    backoff_seconds = models.FloatField(default=2.0)
    max_backoff_seconds = models.FloatField(default=60.0)
    lease = models.UUIDField(null=True, blank=True, editable=False)
    # Renewed by the running worker's heartbeat; once past, another worker may take the node over.
    lease_expires_at = models.DateTimeField(_("lease expires"), null=True, blank=True)
    # Hash of the node's collection spec when planned (a retry re-plans nodes whose spec changed).
    spec_hash = models.CharField(max_length=64, blank=True, default="", editable=False)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    rows_found = models.PositiveIntegerField(_("rows found"), null=True, blank=True)
    rows_changed = models.PositiveIntegerField(_("rows changed"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True, default="")
    result_path = models.CharField(_("result file"), max_length=500, blank=True, default="")
    outcome = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["request", "position"]
        verbose_name = _("request task")
        verbose_name_plural = _("request tasks")
        constraints = [models.UniqueConstraint(fields=["request", "phase", "node"], name="dsr_task_unique_node")]
        indexes = [models.Index(fields=["status", "heartbeat_at"]),
                   models.Index(fields=["status", "lease_expires_at"], name="dsr_task_lease_idx")]

    def __str__(self) -> str:
        return f"{self.phase}:{self.node}"

    @property
    def key(self) -> str:
        return f"{self.phase}:{self.node}"


class RequestEvent(models.Model):
    """The request's timeline. Messages never hold personal data."""

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=40)
    message = models.TextField(blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                              related_name="+")
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("request event")
        verbose_name_plural = _("request events")

    def __str__(self) -> str:
        return f"{self.kind} at {self.at:%Y-%m-%d %H:%M}"


class RequestNote(models.Model):
    """An internal note on a request (never sent to the person).

    Free text: ``text`` holds it masked (audit.freetext); when anything was masked the full text
    is sealed in ``text_enc`` under the request's data key, so it dies with the request's data.
    """

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", verbose_name=_("author"))
    created_at = models.DateTimeField(_("written"), auto_now_add=True)
    text = models.TextField(_("note"))
    text_enc = models.JSONField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("internal note")
        verbose_name_plural = _("internal notes")

    def __str__(self) -> str:
        return f"note {self.pk} on DSR {str(self.request_id)[:8]}"


class MessageDirection(models.TextChoices):
    OUTBOUND = "outbound", _("To the requester")
    INBOUND = "inbound", _("From the requester")


class MessageKind(models.TextChoices):
    MESSAGE = "message", _("Message")
    MORE_INFORMATION = "more_information", _("We need more information")
    REPLY = "reply", _("Reply")


class InformationReason(models.TextChoices):
    IDENTITY = "identity", _("to confirm the person's identity")
    SCOPE = "scope", _("to understand what the request covers")


class RequestMessage(models.Model):
    """A message between staff and the person who asked, in the request's language.

    The body is free text: masked in ``body``, sealed in full under the request's data key in
    ``body_enc`` when anything was masked (it dies with the request's data).
    """

    request = models.ForeignKey(DataSubjectRequest, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(_("direction"), max_length=16, choices=MessageDirection.choices)
    kind = models.CharField(_("kind"), max_length=24, choices=MessageKind.choices, default=MessageKind.MESSAGE)
    info_reason = models.CharField(_("information needed"), max_length=16, choices=InformationReason.choices,
                                   blank=True, default="")
    body = models.TextField(_("message"))
    body_enc = models.JSONField(null=True, blank=True, editable=False)
    language = models.CharField(_("language"), max_length=8, default="en")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                               related_name="+", verbose_name=_("author"))
    created_at = models.DateTimeField(_("written"), auto_now_add=True)
    paused_clock = models.BooleanField(_("paused the clock"), default=False)
    resumed_clock = models.BooleanField(_("resumed the clock"), default=False)
    delivered = models.BooleanField(_("e-mailed"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("message")
        verbose_name_plural = _("messages")

    def __str__(self) -> str:
        return f"{self.direction} {self.kind} {self.pk} on DSR {str(self.request_id)[:8]}"


class AccessPackage(models.Model):
    """The encrypted zip answering an access or portability request (a file, not a column)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request = models.OneToOneField(DataSubjectRequest, on_delete=models.CASCADE, related_name="package")
    path = models.CharField(max_length=500)
    size = models.PositiveBigIntegerField(default=0)
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    downloads = models.PositiveIntegerField(default=0)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("access package")
        verbose_name_plural = _("access packages")

    def __str__(self) -> str:
        return f"package of DSR {str(self.request_id)[:8]}"


class WorkspaceDsrPolicy(models.Model):
    """Per workspace (and request type): whether a DPO must approve before execution."""

    workspace = models.ForeignKey("subjects.Workspace", on_delete=models.CASCADE, related_name="dsr_policies")
    request_type = models.CharField(_("request type"), max_length=24, choices=RequestType.choices,
                                    blank=True, default="", help_text=_("Empty: all types."))
    requires_approval = models.BooleanField(_("requires DPO approval"), default=False)

    class Meta:
        verbose_name = _("request approval policy")
        verbose_name_plural = _("request approval policies")
        constraints = [models.UniqueConstraint(fields=["workspace", "request_type"], name="dsr_policy_unique")]

    def __str__(self) -> str:
        return f"{self.workspace} {self.request_type or '*'}"


class StaffMailPreference(models.Model):
    """The language a staff member (a DPO) receives request e-mails in (attention, reminders)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="dsr_mail")
    language = models.CharField(_("language"), max_length=8, choices=settings.LANGUAGES,
                                default=settings.LANGUAGE_CODE)

    class Meta:
        verbose_name = _("staff e-mail language")
        verbose_name_plural = _("staff e-mail languages")

    def __str__(self) -> str:
        return f"{self.user} ({self.language})"

"""Findings of PII scans, unexpected-PII alerts and store-discovery suggestions.

No model here stores a scanned value: findings hold entity type, field path, score, recognizer
and offsets. ``__str__`` never contains personal data (it ends up in audit entries).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from governance.crypto.fields import EncryptedTextField


class Channel(models.TextChoices):
    INGEST = "ingest", _("Ingest API")
    STORE = "store", _("Store discovery")
    SCAN = "scan", _("Scan API")


class ScanFinding(models.Model):
    """One piece of personal data seen in incoming data or a store (never the value)."""

    created_at = models.DateTimeField(_("seen at"), default=timezone.now, db_index=True)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    source = models.CharField(_("source"), max_length=100, help_text=_("Pipeline or store name."))
    workspace = models.ForeignKey(
        "subjects.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    profile = models.ForeignKey(
        "subjects.Profile", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    entity_type = models.CharField(_("entity type"), max_length=64, db_index=True)
    field_path = models.CharField(_("field path"), max_length=255)
    score = models.FloatField(_("score"))
    recognizer = models.CharField(_("recognizer"), max_length=64)
    start = models.PositiveIntegerField(_("start offset"))
    end = models.PositiveIntegerField(_("end offset"))
    record_index = models.PositiveIntegerField(_("record in batch"), null=True, blank=True)
    expected = models.BooleanField(_("expected"), default=True)
    alert = models.ForeignKey(
        "PiiAlert", null=True, blank=True, on_delete=models.SET_NULL, related_name="findings"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("scan finding")
        verbose_name_plural = _("scan findings")
        indexes = [models.Index(fields=["created_at", "entity_type"])]
        permissions = [
            ("scan_text", _("Can scan text and records through the API")),
            ("ingest_profiles", _("Can ingest profiles through the API")),
        ]

    def __str__(self) -> str:
        return f"{self.entity_type} in {self.field_path} ({self.source})"


class AlertStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")


class PiiAlert(models.Model):
    """PII where the policy expects none (a card number in a note). One open alert per
    (workspace, source, field, entity): later findings add to its count."""

    created_at = models.DateTimeField(_("first seen"), default=timezone.now)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    workspace = models.ForeignKey(
        "subjects.Workspace", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    source = models.CharField(_("source"), max_length=100)
    field_path = models.CharField(_("field"), max_length=255)
    entity_type = models.CharField(_("entity type"), max_length=64)
    finding_count = models.PositiveIntegerField(_("findings"), default=0)
    status = models.CharField(
        _("status"), max_length=16, choices=AlertStatus.choices, default=AlertStatus.OPEN,
        db_index=True,
    )
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    acknowledged_at = models.DateTimeField(_("acknowledged at"), null=True, blank=True)
    note = models.TextField(_("note"), blank=True, default="")

    class Meta:
        ordering = ["-last_seen_at"]
        verbose_name = _("unexpected-PII alert")
        verbose_name_plural = _("unexpected-PII alerts")

    def __str__(self) -> str:
        return f"Alert #{self.pk}: {self.entity_type} in {self.field_path}"


class StoreScanStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class StoreScan(models.Model):
    """Discovery run over one SQL database: sample rows, suggest a data category per column."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(_("store name"), max_length=100)
    store_key = models.CharField(
        _("data-map store"), max_length=64, blank=True, default="",
        help_text=_("Key of the data-map store; accepted suggestions update its fields."),
    )
    # The URL may hold a password: encrypted at rest, shown masked.
    url = EncryptedTextField(_("database URL"))
    data_key_id = models.UUIDField(editable=False)
    sample_size = models.PositiveIntegerField(_("rows sampled per table"), default=200)
    status = models.CharField(
        _("status"), max_length=16, choices=StoreScanStatus.choices, default=StoreScanStatus.QUEUED
    )
    tables_total = models.PositiveIntegerField(_("tables"), default=0)
    tables_done = models.PositiveIntegerField(_("tables scanned"), default=0)
    error = models.TextField(_("error"), blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("store scan")
        verbose_name_plural = _("store scans")

    def __str__(self) -> str:
        return f"Scan of {self.name} ({self.created_at:%Y-%m-%d %H:%M})" if self.created_at else self.name

    @property
    def progress_percent(self) -> int:
        if not self.tables_total:
            return 100 if self.status == StoreScanStatus.DONE else 0
        return int(100 * self.tables_done / self.tables_total)


class SuggestionStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    ACCEPTED = "accepted", _("Accepted")
    REJECTED = "rejected", _("Rejected")


class ColumnSuggestion(models.Model):
    """A suggested data category for one column, for the DPO to accept or reject."""

    scan = models.ForeignKey(StoreScan, on_delete=models.CASCADE, related_name="suggestions")
    collection = models.CharField(_("table"), max_length=255)
    column = models.CharField(_("column"), max_length=255)
    entity_type = models.CharField(_("entity type"), max_length=64)
    data_category = models.CharField(_("data category"), max_length=100)
    confidence = models.FloatField(_("confidence"))
    sampled = models.PositiveIntegerField(_("values sampled"))
    matched = models.PositiveIntegerField(_("values matched"))
    status = models.CharField(
        _("status"), max_length=16, choices=SuggestionStatus.choices, default=SuggestionStatus.PENDING,
        db_index=True,
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["collection", "column"]
        verbose_name = _("column suggestion")
        verbose_name_plural = _("column suggestions")
        constraints = [
            models.UniqueConstraint(fields=["scan", "collection", "column"], name="pii_suggestion_unique")
        ]

    def __str__(self) -> str:
        return f"{self.collection}.{self.column} → {self.data_category}"


class IngestJobStatus(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    DONE = "done", _("Done")
    FAILED = "failed", _("Failed")


class IngestJob(models.Model):
    """A large ingest batch handed to a worker (``POST /api/v1/ingest/profiles`` → 202).

    The batch waits sealed under the job's own data key; when the job ends the sealed batch is
    cleared and the key destroyed. The result holds counts, profile ids and per-row error codes —
    never a submitted value.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey("subjects.Workspace", on_delete=models.CASCADE, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL,
                                   related_name="+")
    source = models.CharField(max_length=100)
    language = models.CharField(max_length=8, default="auto")
    on_unexpected = models.CharField(max_length=8, default="flag")
    data_key_id = models.UUIDField(editable=False)
    payload = EncryptedTextField()  # the submitted profiles (JSON), until the job ends
    status = models.CharField(max_length=16, choices=IngestJobStatus.choices, default=IngestJobStatus.QUEUED)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("ingest job")
        verbose_name_plural = _("ingest jobs")

    def __str__(self) -> str:
        return f"ingest job {self.pk}"

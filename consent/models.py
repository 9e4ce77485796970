"""Purposes (versioned), sites and their keys, consent events (append-only, chained) and state."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from governance.crypto.fields import EncryptedTextField
from governance.outbound import url_refusal
from governance.subjects.models import Jurisdiction, Profile, Workspace


class GdprBasis(models.TextChoices):
    CONSENT = "consent", _("Art. 6(1)(a) consent")
    CONTRACT = "contract", _("Art. 6(1)(b) contract")
    LEGAL_OBLIGATION = "legal_obligation", _("Art. 6(1)(c) legal obligation")
    VITAL_INTERESTS = "vital_interests", _("Art. 6(1)(d) vital interests")
    PUBLIC_TASK = "public_task", _("Art. 6(1)(e) public task")
    LEGITIMATE_INTERESTS = "legitimate_interests", _("Art. 6(1)(f) legitimate interests")


class CcpaCategory(models.TextChoices):
    NONE = "", _("None")
    SALE = "sale", _("Sale of personal information")
    SHARING = "sharing", _("Sharing for cross-context behavioural advertising")
    SENSITIVE = "limit_sensitive", _("Use of sensitive personal information (limitable)")


class AppiCategory(models.TextChoices):
    NONE = "", _("None")
    THIRD_PARTY = "third_party", _("第三者提供 (third-party provision, Art. 27)")
    CROSS_BORDER = "cross_border", _("越境移転 (cross-border transfer, Art. 28)")


class DefaultRule(models.TextChoices):
    OPT_IN = "opt_in", _("Opt-in: not allowed until given")
    OPT_OUT = "opt_out", _("Opt-out: allowed until refused")


DEFAULT_RULES = {
    Jurisdiction.EU: DefaultRule.OPT_IN,
    Jurisdiction.JP: DefaultRule.OPT_IN,
    Jurisdiction.US_CA: DefaultRule.OPT_OUT,
    Jurisdiction.US: DefaultRule.OPT_OUT,
    Jurisdiction.OTHER: DefaultRule.OPT_IN,
}


class Purpose(models.Model):
    """A stable purpose code; what it means lives in its versions."""

    code = models.SlugField(_("code"), max_length=64, unique=True)
    current_version = models.ForeignKey(
        "PurposeVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text=_("The published version consent is asked for."),
    )
    ordering = models.PositiveSmallIntegerField(_("order"), default=100)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ordering", "code"]
        verbose_name = _("purpose")
        verbose_name_plural = _("purposes")
        permissions = [("check_consent", _("Can check consent for a profile and purpose"))]

    def __str__(self) -> str:
        return self.code


class VersionStatus(models.TextChoices):
    DRAFT = "draft", _("Draft")
    PUBLISHED = "published", _("Published")
    RETIRED = "retired", _("Retired")


class PurposeVersion(models.Model):
    """One wording and legal framing of a purpose. Immutable once published."""

    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="versions")
    version = models.PositiveIntegerField(_("version"))
    status = models.CharField(
        _("status"), max_length=12, choices=VersionStatus.choices, default=VersionStatus.DRAFT
    )
    name_en = models.CharField(_("name (English)"), max_length=200)
    name_ja = models.CharField(_("name (Japanese)"), max_length=200)
    description_en = models.TextField(_("description (English)"))
    description_ja = models.TextField(_("description (Japanese)"))
    gdpr_basis = models.CharField(
        _("GDPR legal basis"), max_length=24, choices=GdprBasis.choices, default=GdprBasis.CONSENT
    )
    ccpa_category = models.CharField(
        _("CCPA category"), max_length=16, choices=CcpaCategory.choices, blank=True, default=""
    )
    appi_category = models.CharField(
        _("APPI category"), max_length=16, choices=AppiCategory.choices, blank=True, default=""
    )
    transfer_country = models.CharField(
        _("destination country (cross-border)"), max_length=100, blank=True, default="",
        help_text=_("APPI Art. 28: the country, its regime and the recipient's safeguards."),
    )
    data_categories = models.JSONField(_("data categories"), default=list, blank=True)
    recipients = models.JSONField(_("recipients / third parties"), default=list, blank=True)
    retention_days = models.PositiveIntegerField(_("retention (days)"), null=True, blank=True)
    consent_validity_days = models.PositiveIntegerField(
        _("consent validity (days)"), null=True, blank=True,
        help_text=_("A given consent older than this counts as expired."),
    )
    defaults = models.JSONField(
        _("default by jurisdiction"), default=dict, blank=True,
        help_text=_('e.g. {"EU": "opt_in", "US-CA": "opt_out"}; missing ones use the house rule.'),
    )
    notice_url = models.URLField(_("notice / policy URL"), blank=True, default="")
    material_change = models.BooleanField(
        _("material change"), default=False,
        help_text=_("Publishing marks consents given to earlier versions as needing renewal."),
    )
    change_note = models.CharField(_("change note"), max_length=300, blank=True, default="")
    published_at = models.DateTimeField(_("published at"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["purpose", "-version"]
        verbose_name = _("purpose version")
        verbose_name_plural = _("purpose versions")
        constraints = [
            models.UniqueConstraint(fields=["purpose", "version"], name="purpose_version_unique")
        ]

    def __str__(self) -> str:
        return f"{self.purpose.code} v{self.version}"

    def name(self, locale: str) -> str:
        return self.name_ja if locale.startswith("ja") else self.name_en

    def description(self, locale: str) -> str:
        return self.description_ja if locale.startswith("ja") else self.description_en

    def default_rule(self, jurisdiction: str) -> str:
        return self.defaults.get(jurisdiction) or DEFAULT_RULES.get(jurisdiction, DefaultRule.OPT_IN)


class Site(models.Model):
    """A website or app that records consent through a site key."""

    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="consent_sites")
    slug = models.SlugField(_("slug"), max_length=64, unique=True)
    name = models.CharField(_("name"), max_length=200)
    allowed_origins = models.JSONField(
        _("allowed origins"), default=list, blank=True,
        help_text=_('Browser origins allowed to call the API, e.g. ["https://shop.example"].'),
    )
    purposes = models.ManyToManyField(Purpose, blank=True, related_name="sites")
    privacy_url = models.URLField(_("privacy notice URL"), blank=True, default="")
    rate_limit_per_minute = models.PositiveIntegerField(_("requests per minute per key"), default=6000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return self.name


class KeyKind(models.TextChoices):
    PUBLISHABLE = "publishable", _("Publishable (browser)")
    SECRET = "secret", _("Secret (server)")


class SiteKey(models.Model):
    """A site API key. Only its digest is stored; the key is shown once."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="keys")
    kind = models.CharField(_("kind"), max_length=12, choices=KeyKind.choices)
    key_id = models.CharField(max_length=24, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(_("revoked at"), null=True, blank=True)
    expires_at = models.DateTimeField(
        _("expires at"), null=True, blank=True, help_text=_("Set on rotation: the old key's grace end.")
    )
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["site", "kind", "-created_at"]
        verbose_name = _("site key")
        verbose_name_plural = _("site keys")

    def __str__(self) -> str:
        return f"{self.kind} key {self.key_id}"


class ConsentStateValue(models.TextChoices):
    GIVEN = "given", _("Given")
    REFUSED = "refused", _("Refused")
    WITHDRAWN = "withdrawn", _("Withdrawn")
    EXPIRED = "expired", _("Expired")


class Method(models.TextChoices):
    BANNER = "banner", _("Banner")
    FORM = "form", _("Form")
    API = "api", _("API")
    GPC = "gpc", _("Global Privacy Control")
    IMPORT = "import", _("Import")
    PREFERENCE_CENTRE = "preference_centre", _("Preference centre")
    DSR = "dsr", _("Data-subject request")


class ConsentEvent(models.Model):
    """One consent decision. Never updated or deleted.

    The chain digest covers every column (see ``consent.chain``), including the profile, the
    identity linkage and the decoded signals. Two later changes are allowed, each proven by a
    chained :class:`ConsentAmendment`: a profile merge moves ``profile`` to the survivor, and an
    erasure blanks ``identity_index`` and sets ``redacted_at``.
    """

    id = models.UUIDField(_("record id"), primary_key=True, default=uuid.uuid4, editable=False)
    seq = models.BigIntegerField(unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    entry_hash = models.CharField(max_length=64, editable=False)
    # Single-column FK indexes are left out where a composite index below starts with the column
    # (or nothing looks events up by it): each index costs time on every batch insert.
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="+", db_index=False)
    site = models.ForeignKey(Site, null=True, blank=True, on_delete=models.PROTECT, related_name="events")
    profile = models.ForeignKey(
        Profile, on_delete=models.PROTECT, related_name="consent_events", db_index=False
    )
    subject_pseudonym = models.CharField(max_length=64, editable=False)
    identity_kind = models.CharField(max_length=16, editable=False)
    identity_index = models.CharField(
        max_length=64, blank=True, default="", editable=False,
        help_text=_("Blind index of the identity presented; blanked on erasure."),
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="events", db_index=False)
    purpose_version = models.PositiveIntegerField()
    state = models.CharField(max_length=12, choices=ConsentStateValue.choices)
    method = models.CharField(max_length=20, choices=Method.choices)
    occurred_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField()
    jurisdiction = models.CharField(max_length=8, choices=Jurisdiction.choices)
    language = models.CharField(max_length=16, blank=True, default="")
    page_url = models.URLField(max_length=1000, blank=True, default="")
    notice_url = models.URLField(max_length=1000, blank=True, default="")
    proof = models.CharField(
        max_length=64, blank=True, default="", help_text=_("Keyed hash of IP address and user agent.")
    )
    actor_label = models.CharField(max_length=150, blank=True, default="")
    tcf_string = models.TextField(blank=True, default="")
    gpp_string = models.TextField(blank=True, default="")
    signals = models.JSONField(default=dict, blank=True)
    note = models.CharField(max_length=300, blank=True, default="")
    redacted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["seq"]
        verbose_name = _("consent event")
        verbose_name_plural = _("consent events")
        indexes = [
            models.Index(fields=["profile", "purpose", "seq"]),
            models.Index(fields=["purpose", "occurred_at"]),
        ]

    def __str__(self) -> str:
        return f"consent event {self.seq}"


class ConsentState(models.Model):
    """The current decision per profile × purpose, derived from events in the same transaction."""

    # The unique (profile, purpose) index serves profile lookups; events are never deleted, so
    # last_event needs no index for PROTECT checks.
    workspace = models.ForeignKey(Workspace, on_delete=models.PROTECT, related_name="+", db_index=False)
    profile = models.ForeignKey(
        Profile, on_delete=models.PROTECT, related_name="consent_states", db_index=False
    )
    purpose = models.ForeignKey(Purpose, on_delete=models.PROTECT, related_name="states")
    purpose_version = models.PositiveIntegerField()
    state = models.CharField(max_length=12, choices=ConsentStateValue.choices)
    method = models.CharField(max_length=20, choices=Method.choices)
    occurred_at = models.DateTimeField()
    last_event = models.ForeignKey(ConsentEvent, on_delete=models.PROTECT, related_name="+", db_index=False)
    gpc_first_seen_at = models.DateTimeField(null=True, blank=True)
    needs_renewal = models.BooleanField(default=False)

    class Meta:
        verbose_name = _("consent state")
        verbose_name_plural = _("consent states")
        constraints = [
            models.UniqueConstraint(fields=["profile", "purpose"], name="consent_state_unique")
        ]

    def __str__(self) -> str:
        return f"consent state {self.pk}"


class ProcessingRestriction(models.Model):
    """GDPR Art. 18 restriction or Art. 21 objection: checks answer "not allowed"."""

    profile = models.ForeignKey(Profile, on_delete=models.CASCADE, related_name="consent_restrictions")
    purpose_code = models.CharField(
        max_length=64, blank=True, default="", help_text=_("Empty: every purpose.")
    )
    reason = models.CharField(max_length=300)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    lifted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("processing restriction")
        verbose_name_plural = _("processing restrictions")
        indexes = [models.Index(fields=["profile", "lifted_at"])]

    def __str__(self) -> str:
        return f"restriction {self.pk}"


class ConsentRevision(models.Model):
    """One row of counters that the consent check reads in its own statement.

    ``catalogue`` is bumped when a purpose version is published, ``keys`` when a site key, a site or
    a workspace changes (revocation, rotation, rate limit, origins, default jurisdiction). Every
    process learns on its next check that its cached catalogue or key is stale, so neither is
    reloaded on a timer on the request path, and a revoked key stops working on the next check.
    """

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    catalogue = models.BigIntegerField(default=0)
    keys = models.BigIntegerField(default=0)

    class Meta:
        verbose_name = _("consent configuration revision")

    def __str__(self) -> str:
        return f"catalogue revision {self.catalogue}, keys revision {self.keys}"


class AmendmentKind(models.TextChoices):
    MERGE = "merge", _("Profile merge")
    REDACT = "redact", _("Identity redaction (erasure)")
    UPGRADE = "upgrade", _("Chain format upgrade")


class ConsentAmendment(models.Model):
    """A chained record of a change to earlier events (same chain and sequence as the events).

    ``merge``: the events listed in ``event_seqs`` moved from ``profile_ref`` to ``survivor_ref``.
    ``redact``: the listed events of ``profile_ref`` had their identity link blanked at
    ``recorded_at`` (their ``redacted_at``). ``upgrade``: events before this record were sealed with
    the previous digest format. Verification accepts a moved or redacted event only when a record
    proves it.
    """

    seq = models.BigIntegerField(unique=True, editable=False)
    prev_hash = models.CharField(max_length=64, editable=False)
    entry_hash = models.CharField(max_length=64, editable=False)
    kind = models.CharField(max_length=12, choices=AmendmentKind.choices)
    profile_ref = models.UUIDField(null=True, blank=True)
    survivor_ref = models.UUIDField(null=True, blank=True)
    event_seqs = models.JSONField(default=list, blank=True)
    recorded_at = models.DateTimeField()
    actor_label = models.CharField(max_length=150, blank=True, default="")
    note = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        ordering = ["seq"]
        verbose_name = _("consent chain amendment")
        verbose_name_plural = _("consent chain amendments")

    def __str__(self) -> str:
        return f"consent amendment {self.seq} ({self.kind})"


class ChainHead(models.Model):
    """Newest sealed position of the consent event chain; its row lock serialises writers."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    seq = models.BigIntegerField(default=0)
    hash = models.CharField(max_length=64, default="0" * 64)
    updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("consent chain head")

    def __str__(self) -> str:
        return f"consent chain head at {self.seq}"


class IdempotencyRecord(models.Model):
    """The stored answer to a request sent with ``Idempotency-Key`` (per caller scope)."""

    scope = models.CharField(max_length=64)
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_unique")]

    def __str__(self) -> str:
        return f"idempotency {self.pk}"


class RateWindow(models.Model):
    """Requests counted per key and minute, shared by every process through the database."""

    key_id = models.CharField(max_length=24)
    window = models.BigIntegerField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key_id", "window"], name="rate_window_unique")]

    def __str__(self) -> str:
        return f"rate window {self.key_id}@{self.window}"


class WebhookEndpoint(models.Model):
    """A DPO-configured URL told about consent changes (HMAC-SHA256 signed)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(_("name"), max_length=100)
    url = models.URLField(_("URL"))
    data_key_id = models.UUIDField(editable=False)
    secret = EncryptedTextField(_("signing secret"))
    purpose_codes = models.JSONField(
        _("purposes"), default=list, blank=True, help_text=_("Empty: all purposes.")
    )
    active = models.BooleanField(_("active"), default=True)
    allow_internal_hosts = models.BooleanField(
        _("allow internal hosts"), default=False,
        help_text=_("Let this webhook reach private, loopback and link-local addresses (a receiver inside "
                    "your own network). Off: such addresses are refused."),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("webhook endpoint")
        verbose_name_plural = _("webhook endpoints")

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        refusal = url_refusal(self.url or "", allow_internal_hosts=self.allow_internal_hosts) if self.url else None
        if refusal:
            raise ValidationError({"url": _("This address is refused: %(reason)s. Tick “allow internal hosts” "
                                            "if the receiver is inside your own network.") % {"reason": refusal}})
        codes = self.purpose_codes
        if codes in (None, ""):
            self.purpose_codes = []
            return
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise ValidationError({"purpose_codes": _('A list of purpose codes, e.g. ["marketing_email"]; empty for all.')})
        unknown = sorted(set(codes) - set(Purpose.objects.filter(code__in=codes).values_list("code", flat=True)))
        if unknown:
            raise ValidationError({"purpose_codes": _("Unknown purpose codes: %(codes)s") % {"codes": ", ".join(unknown)}})


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", _("Pending")
    DELIVERED = "delivered", _("Delivered")
    FAILED = "failed", _("Failed (gave up)")


class WebhookDelivery(models.Model):
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    payload = models.JSONField()
    status = models.CharField(max_length=12, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # Set by the one task run that may send this delivery now (consent.tasks.delivery_claim);
    # another run (a retry message, the sweep's) finds it claimed and does nothing.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("webhook delivery")
        verbose_name_plural = _("webhook deliveries")

    def __str__(self) -> str:
        return f"delivery {self.pk}"

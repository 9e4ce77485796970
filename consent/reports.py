"""Consent reports for the audit exports: consent proof (GDPR Art. 7(1)), records of processing
(GDPR Art. 30) and APPI records of third-party provision (第三者提供記録).

Registered into the report registry from ``ConsentConfig.ready()``; the exports, API and admin find
them there and never import this app.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.apps import apps
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from consent.chain import chain_verify
from consent.models import (
    AppiCategory,
    CcpaCategory,
    ConsentEvent,
    GdprBasis,
    Purpose,
    PurposeVersion,
)
from consent.selectors import purposes_published
from governance.subjects.models import Profile, Workspace
from oversight.exporters.base import Column, ReportTable
from oversight.reports import (
    VIEW_AUDIT,
    BaseReport,
    DateRangeFilters,
    iso_utc,
    keyset,
    profile_visible_or_404,
    register_report,
    report_meta,
    workspace_scope,
)


@register_report
class ConsentProofReport(BaseReport):
    """Every consent event of one person, with the hash chain check (GDPR Art. 7(1))."""

    identifier = "consent_proof"
    verbose_name = _("Consent proof for a subject (GDPR Art. 7(1))")
    description = _("Every consent decision of one person with time, notice version, method, proof "
                    "hash and chain position, and whether the consent chain verifies.")
    requires_apps = ("consent",)

    class Filters(serializers.Serializer):
        profile = serializers.UUIDField(help_text="The subject's profile id (required).")

    columns = [
        Column("event_id", _("Record id")), Column("seq", _("Seq")), Column("occurred_at", _("Time (UTC)")),
        Column("purpose", _("Purpose")), Column("purpose_version", _("Notice version")),
        Column("state", _("State")), Column("method", _("Method")), Column("jurisdiction", _("Jurisdiction")),
        Column("language", _("Language")), Column("notice_url", _("Notice URL")),
        Column("proof", _("Proof (keyed hash)")), Column("entry_hash", _("Entry hash")),
    ]

    def authorize(self, params, *, user) -> None:
        super().authorize(params, user=user)
        profile_visible_or_404(user=user, profile_id=params["profile"])

    def subject_profiles(self, params) -> list[Profile]:
        return list(Profile.objects.filter(pk=params["profile"]))

    def queryset(self, params, *, user):
        return ConsentEvent.objects.filter(profile_id=params["profile"])

    def count(self, params, *, user) -> int:
        return self.queryset(params, user=user).count()

    def rows(self, params, *, user) -> Iterator[tuple]:
        codes = dict(Purpose.objects.values_list("pk", "code"))
        fields = ("seq", "id", "occurred_at", "purpose_id", "purpose_version", "state", "method",
                  "jurisdiction", "language", "notice_url", "proof", "entry_hash")
        for (seq, pk, occurred, purpose, version, state, method, region, lang, notice, proof,
             digest) in keyset(self.queryset(params, user=user), fields, key="seq"):
            yield (str(pk), seq, iso_utc(occurred), codes.get(purpose, ""), version, state, method, region,
                   lang, notice, proof, digest)

    def table(self, params, *, user) -> ReportTable:
        problems = [p.message for p in chain_verify(self.queryset(params, user=user).order_by("seq"))
                    if p.kind in ("changed",)]
        verdict = gettext("intact") if not problems else "; ".join(problems[:5])
        return ReportTable(
            title=gettext("Consent proof"), columns=self.columns, rows=self.rows(params, user=user),
            meta=report_meta(params), summary=[(gettext("Entry hashes of these events"), verdict)],
        )


SECURITY_MEASURES = _(
    "Field-level AES-256-GCM envelope encryption with per-person keys (crypto-shredding); keyed blind "
    "indexes; role-based access with workspace scoping; hash-chained audit log of every read and change."
)


def category_covers(purpose_category: str, map_category: str) -> bool:
    """Does a purpose's data category (``contact``, ``contact.email``, ``purchase_history``) cover
    a data-map field's category (``user.contact.email``, ``user.behavior.purchase_history``)?

    Purposes name categories the short way; the data map uses the Fideslang taxonomy with its
    ``user.`` root and intermediate levels. A category covers a field when it names a whole dotted
    part of the field's path: ``contact`` covers ``user.contact.email``, ``address`` covers
    ``user.contact.address``, but ``contact`` does not cover ``user.contacts_list``.
    """
    if not purpose_category or not map_category:
        return False
    return f".{purpose_category}." in f".{map_category}." or map_category.startswith(purpose_category + ".")


def _label(choices, code: str | None) -> str:
    return str(dict(choices.choices).get(code, code)) if code else ""


@register_report
class RecordsOfProcessingReport(BaseReport):
    """GDPR Art. 30(1) records of processing, generated from the purposes and the data map."""

    identifier = "records_of_processing"
    verbose_name = _("Records of processing (GDPR Art. 30)")
    description = _("One row per published purpose: legal basis, data categories, systems holding "
                    "them (data map), recipients, transfers, retention and security measures.")
    requires_apps = ("consent",)
    personal_data = False

    class Filters(serializers.Serializer):
        pass

    columns = [
        Column("purpose", _("Purpose")), Column("name", _("Name")), Column("description", _("Description")),
        Column("legal_basis", _("Legal basis (Art. 6)")), Column("ccpa", _("CCPA category")),
        Column("appi", _("APPI category")), Column("data_categories", _("Categories of data")),
        Column("systems", _("Systems (data map)")), Column("recipients", _("Recipients")),
        Column("transfer", _("Transfer to third country")), Column("retention", _("Retention")),
        Column("security", _("Security measures (Art. 32)")), Column("version", _("Notice version")),
    ]

    def _systems(self) -> dict[str, set[str]]:
        """Data category -> stores holding fields of that category (or a sub-category)."""
        if not apps.is_installed("governance.datamap"):
            return {}
        Field = apps.get_model("datamap", "Field")
        out: dict[str, set[str]] = {}
        for category, store in Field.objects.exclude(category="").values_list(
            "category", "collection__store__key"
        ):
            out.setdefault(category, set()).add(store)
        return out

    def rows(self, params, *, user) -> Iterator[tuple]:
        systems = self._systems()
        lang = "ja" if (translation.get_language() or "").startswith("ja") else "en"
        for p in purposes_published(locale=lang):
            stores = sorted({
                store for cat in p["data_categories"] for known, held in systems.items()
                if category_covers(cat, known) for store in held
            })
            basis = p["legal_basis"]
            yield (
                p["code"], p["name"], p["description"], _label(GdprBasis, basis["gdpr"]),
                _label(CcpaCategory, basis["ccpa"]), _label(AppiCategory, basis["appi"]),
                ", ".join(p["data_categories"]), ", ".join(stores), ", ".join(p["recipients"]),
                p["transfer_country"] or "",
                gettext("%(d)s days") % {"d": p["retention_days"]} if p["retention_days"] else "",
                str(SECURITY_MEASURES), p["version"],
            )

    def count(self, params, *, user) -> int:
        return len(list(self.rows(params, user=user)))

    def table(self, params, *, user) -> ReportTable:
        names = ", ".join(Workspace.objects.values_list("name", flat=True))
        return ReportTable(
            title=gettext("Records of processing activities (GDPR Art. 30)"), columns=self.columns,
            rows=self.rows(params, user=user),
            meta=[*report_meta(params), (gettext("Controller (workspaces)"), names)],
        )


@register_report
class ThirdPartyProvisionReport(BaseReport):
    """APPI 第三者提供記録 (Arts. 29/30): date, recipient, person, items and the consent."""

    identifier = "third_party_provision"
    verbose_name = _("APPI records of third-party provision (第三者提供記録)")
    description = _("For purposes that provide data to third parties or abroad: each consent given, "
                    "with date, recipients, the person, data items and the consent record. Keep 3 years.")
    requires_apps = ("consent",)

    class Filters(DateRangeFilters):
        profile = serializers.UUIDField(required=False)
        workspace = serializers.SlugField(required=False)

    columns = [
        Column("date", _("Date of consent (UTC)")), Column("recipients", _("Recipients")),
        Column("profile_id", _("Person (profile)")), Column("data_items", _("Data items")),
        Column("purpose", _("Purpose")), Column("appi", _("APPI category")),
        Column("transfer_country", _("Destination country")), Column("consent_record", _("Consent record")),
        Column("method", _("Method")), Column("workspace", _("Workspace")),
    ]

    def authorize(self, params, *, user) -> None:
        super().authorize(params, user=user)
        if params.get("profile") and not user.has_perm(VIEW_AUDIT):
            profile_visible_or_404(user=user, profile_id=params["profile"])

    def subject_profiles(self, params) -> list[Profile]:
        return list(Profile.objects.filter(pk=params["profile"])) if params.get("profile") else []

    def queryset(self, params, *, user):
        purpose_ids = PurposeVersion.objects.exclude(appi_category="").values_list("purpose_id", flat=True)
        qs = ConsentEvent.objects.filter(purpose_id__in=list(purpose_ids), state="given")
        if not user.has_perm(VIEW_AUDIT):
            qs = workspace_scope(qs, user)
        if params.get("profile"):
            qs = qs.filter(profile_id=params["profile"])
        if params.get("workspace"):
            qs = qs.filter(workspace__slug=params["workspace"])
        if params.get("since"):
            qs = qs.filter(occurred_at__gte=params["since"])
        if params.get("until"):
            qs = qs.filter(occurred_at__lt=params["until"])
        return qs

    def count(self, params, *, user) -> int:
        return self.queryset(params, user=user).count()

    def rows(self, params, *, user) -> Iterator[tuple]:
        versions = {
            (v.purpose_id, v.version): v
            for v in PurposeVersion.objects.exclude(appi_category="").select_related("purpose")
        }
        slugs = dict(Workspace.objects.values_list("pk", "slug"))
        fields = ("seq", "id", "occurred_at", "profile_id", "purpose_id", "purpose_version", "method",
                  "workspace_id")
        for _seq, pk, occurred, profile_id, purpose_id, version, method, ws in keyset(
            self.queryset(params, user=user), fields, key="seq"
        ):
            v = versions.get((purpose_id, version))
            if v is None:  # this version did not provide to third parties
                continue
            yield (iso_utc(occurred), ", ".join(v.recipients or []), str(profile_id),
                   ", ".join(v.data_categories or []), v.purpose.code, v.appi_category,
                   v.transfer_country or "", str(pk), method, slugs.get(ws, ""))

    def table(self, params, *, user) -> ReportTable:
        return ReportTable(
            title=gettext("Records of third-party provision (APPI Arts. 29/30)"), columns=self.columns,
            rows=self.rows(params, user=user), meta=report_meta(params),
            notes=[gettext("Keep these records for 3 years (APPI enforcement rules).")],
        )

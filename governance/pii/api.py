"""Scan and ingest API (contract): ``POST /api/v1/scan/`` and ``POST /api/v1/ingest/profiles``."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.access import policy
from governance.api.errors import DomainError, NotFound
from governance.links import absolute_link, public_base_url
from governance.pii.models import IngestJob
from governance.pii.scanner import scanner_get
from governance.pii.services import (
    ATTRIBUTE_FIELDS,
    IDENTITY_FIELDS,
    ingest_job_create,
    ingest_profiles,
)
from governance.subjects.models import Jurisdiction

DEFAULT_MAX_BATCH = 500
DEFAULT_MAX_TEXT_CHARS = 20_000
# Strings scanned per request, all records together (~75 µs each): a 2 MB body of tiny values
# would otherwise hold a worker for seconds. Nesting depth is limited by the JSON parser (64).
DEFAULT_MAX_VALUES = 10_000
LANGUAGES = ("auto", "en", "ja")


def max_batch() -> int:
    return int(getattr(settings, "MAMORU_PII_MAX_BATCH", DEFAULT_MAX_BATCH))


def ingest_async_threshold() -> int:
    """Batches with more profiles than this are run by a worker (202 and a job to poll)."""
    return int(getattr(settings, "MAMORU_PII_INGEST_ASYNC_THRESHOLD", 100))


def max_text_chars() -> int:
    return int(getattr(settings, "MAMORU_PII_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS))


def max_values() -> int:
    return int(getattr(settings, "MAMORU_PII_MAX_VALUES", DEFAULT_MAX_VALUES))


class BatchTooLarge(DomainError):
    status_code = 413
    code = "batch_too_large"
    title = _("Too many items in one request.")


class TooManyValues(DomainError):
    status_code = 413
    code = "too_many_values"
    title = _("The records hold too many values to scan in one request.")


class TextTooLong(DomainError):
    status_code = 413
    code = "text_too_long"
    title = _("A text is too long to scan in one request.")


class UnknownFields(DomainError):
    code = "unknown_field"
    title = _("The request has fields this endpoint does not know.")


class HasPiiPermission(permissions.BasePermission):
    """Authenticated (session or API token) and holding the view's ``required_perm``."""

    message = "Your role may not use this endpoint."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(view.required_perm))


def _reject_unknown(data, allowed: set[str], where: str = "") -> None:
    if not isinstance(data, dict):
        return
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise UnknownFields(
            f"Unknown field(s) {where}{', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            extra={"unknown": unknown},
        )


def _check_sizes(items: list, texts: list[str]) -> None:
    if len(items) > max_batch():
        raise BatchTooLarge(f"At most {max_batch()} items per request; got {len(items)}.",
                            extra={"limit": max_batch()})
    if len(texts) > max_values():
        raise TooManyValues(f"At most {max_values()} values per request; got {len(texts)}.",
                            extra={"limit": max_values()})
    longest = max((len(t) for t in texts), default=0)
    if longest > max_text_chars():
        raise TextTooLong(f"Texts may have at most {max_text_chars()} characters; got {longest}.",
                          extra={"limit": max_text_chars()})


def _strings(node, out: list[str]) -> list[str]:
    # Iterative: no recursion to blow, whatever the nesting.
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            out.append(item)
    return out


class FindingSerializer(serializers.Serializer):
    entity_type = serializers.CharField()
    field_path = serializers.CharField(help_text="Dotted path in the record; empty for text.")
    score = serializers.FloatField()
    recognizer = serializers.CharField()
    start = serializers.IntegerField()
    end = serializers.IntegerField()


class ScanResultSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    findings = FindingSerializer(many=True)
    redacted = serializers.JSONField(required=False, help_text="Redacted copy (text or record).")


SCAN_EXAMPLE_RECORDS = {
    "records": [
        {"email": "taro@example.jp", "電話番号": "090-1234-5678", "notes": "card 4111 1111 1111 1111"}
    ],
    "language": "auto",
}
SCAN_EXAMPLE_TEXT = {"text": "山田太郎です。メールはtaro@example.jpです。", "redact": True}


class ScanView(APIView):
    """Find personal data in text or JSON records; returns findings and redacted copies."""

    required_perm = "pii.scan_text"
    permission_classes = [HasPiiPermission]

    class ScanInputSerializer(serializers.Serializer):
        text = serializers.CharField(required=False, trim_whitespace=False)
        texts = serializers.ListField(
            child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False
        )
        records = serializers.ListField(child=serializers.DictField(), required=False)
        language = serializers.ChoiceField(choices=LANGUAGES, default="auto")
        redact = serializers.BooleanField(default=True)

        def validate(self, attrs):
            given = [name for name in ("text", "texts", "records") if name in attrs]
            if len(given) != 1:
                raise serializers.ValidationError(
                    "Give exactly one of 'text', 'texts' or 'records'.", code="one_input_required"
                )
            return attrs

    class ScanOutputSerializer(serializers.Serializer):
        results = ScanResultSerializer(many=True)
        count = serializers.IntegerField(help_text="Number of findings in all results.")

    @extend_schema(
        summary="Scan text or records for personal data",
        description=(
            "Exactly one of `text`, `texts` or `records`. At most `MAMORU_PII_MAX_BATCH` (500) "
            "texts or records, `MAMORU_PII_MAX_VALUES` (10,000) strings in all records together, "
            "nesting at most 64 levels and `MAMORU_PII_MAX_TEXT_CHARS` (20,000) characters per "
            "string; larger batches get 413 `batch_too_large` / `too_many_values` / "
            "`text_too_long`, deeper nesting 400 `parse_error`, bodies over the API "
            "limit 413 `body_too_large`. Findings never contain the scanned values. Nothing is "
            "stored. Needs permission `pii.scan_text` (DPO, privacy analyst)."
        ),
        request=ScanInputSerializer,
        responses={
            200: ScanOutputSerializer,
            400: OpenApiResponse(description="Malformed input (`validation_error`, "
                                 "`one_input_required`, `unknown_field`, `unsupported_language`)"),
            413: OpenApiResponse(description="`batch_too_large`, `too_many_values`, `text_too_long`, "
                                 "`body_too_large`"),
        },
        examples=[
            OpenApiExample("Records", value=SCAN_EXAMPLE_RECORDS, request_only=True),
            OpenApiExample("Text", value=SCAN_EXAMPLE_TEXT, request_only=True),
            OpenApiExample(
                "Result",
                response_only=True,
                value={"results": [{"index": 0, "findings": [
                    {"entity_type": "EMAIL_ADDRESS", "field_path": "", "score": 1.0,
                     "recognizer": "EmailRecognizer", "start": 11, "end": 26}],
                    "redacted": "山田太郎です。メールは<EMAIL_ADDRESS>です。"}], "count": 1},
            ),
        ],
        tags=["pii"],
    )
    def post(self, request):
        _reject_unknown(request.data, {"text", "texts", "records", "language", "redact"})
        serializer = self.ScanInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        scanner = scanner_get()
        if "records" in data:
            items = data["records"]
            _check_sizes(items, _strings(items, []))
            findings = scanner.scan_records(items, language=data["language"])
            redact = scanner.redact_record
        else:
            items = [data["text"]] if "text" in data else data["texts"]
            _check_sizes(items, items)
            findings = scanner.scan_texts(items, language=data["language"])
            redact = scanner.redact_text
        results = []
        for index, (item, item_findings) in enumerate(zip(items, findings, strict=True)):
            result = {"index": index, "findings": [f.as_dict() for f in item_findings]}
            if data["redact"]:
                result["redacted"] = redact(item, item_findings)
            results.append(result)
        return Response({"results": results, "count": sum(len(f) for f in findings)})


class IngestProfileSerializer(serializers.Serializer):
    email = serializers.CharField(required=False, allow_blank=True)
    phone = serializers.CharField(required=False, allow_blank=True)
    customer_id = serializers.CharField(required=False, allow_blank=True)
    customer_namespace = serializers.CharField(required=False, allow_blank=True, max_length=64)
    full_name = serializers.CharField(required=False, allow_blank=True)
    kana_name = serializers.CharField(required=False, allow_blank=True)
    address = serializers.CharField(required=False, allow_blank=True)
    postal_code = serializers.CharField(required=False, allow_blank=True)
    birth_date = serializers.CharField(required=False, allow_blank=True)
    locale = serializers.CharField(required=False, allow_blank=True, max_length=8)
    jurisdiction = serializers.ChoiceField(choices=Jurisdiction.choices, required=False)
    extra = serializers.DictField(
        required=False, help_text="Other fields of the record: scanned, never stored."
    )


PROFILE_FIELDS = set(IngestProfileSerializer().fields)


class IngestProfilesView(APIView):
    """Scan incoming profiles, flag unexpected PII, store findings, upsert the profiles."""

    required_perm = "pii.ingest_profiles"
    permission_classes = [HasPiiPermission]

    class IngestInputSerializer(serializers.Serializer):
        workspace = serializers.SlugField()
        source = serializers.CharField(max_length=100, default="api")
        language = serializers.ChoiceField(choices=LANGUAGES, default="auto")
        on_unexpected = serializers.ChoiceField(choices=("flag", "reject"), default="flag")
        profiles = IngestProfileSerializer(many=True, allow_empty=False)

    class IngestOutputSerializer(serializers.Serializer):
        profiles = serializers.ListField(child=serializers.DictField())
        findings = serializers.ListField(child=FindingSerializer(many=True))
        unexpected = serializers.IntegerField()
        alerts = serializers.ListField(child=serializers.IntegerField())

    @extend_schema(
        summary="Ingest profiles: scan, flag unexpected PII, upsert",
        description=(
            "Each profile needs one identity (`email`, `phone`, `customer_id`). Attributes "
            f"({', '.join(ATTRIBUTE_FIELDS)}) are stored encrypted on the profile; `extra` is "
            "scanned only. A policy (`MAMORU_PII_INGEST_POLICY`) says which entities are expected "
            "in which field; others are flagged (alerts for the DPO) or, with "
            "`on_unexpected=reject`, make the whole batch fail with 422 `unexpected_pii` and "
            "nothing stored. At most `MAMORU_PII_MAX_BATCH` (500) profiles. A batch of more than "
            "`MAMORU_PII_INGEST_ASYNC_THRESHOLD` (100) profiles is answered 202 with a job to poll "
            "(`Location`); smaller ones are ingested before the answer. Needs permission "
            "`pii.ingest_profiles`."
        ),
        request=IngestInputSerializer,
        responses={
            200: IngestOutputSerializer,
            202: OpenApiResponse(description="More than `MAMORU_PII_INGEST_ASYNC_THRESHOLD` (100) profiles: "
                                 "queued as a job; `Location` names `GET /api/v1/ingest/jobs/{id}` to poll."),
            400: OpenApiResponse(description="`validation_error`, `unknown_field`, `invalid_identity`, "
                                 "`identity_required`"),
            404: OpenApiResponse(description="Unknown workspace (`not_found`)"),
            413: OpenApiResponse(description="`batch_too_large`, `too_many_values`, `text_too_long`, "
                                 "`body_too_large`"),
            422: OpenApiResponse(description="`unexpected_pii` (with `on_unexpected=reject`)"),
        },
        examples=[
            OpenApiExample(
                "Two profiles",
                request_only=True,
                value={
                    "workspace": "shop-jp", "source": "crm-export",
                    "profiles": [
                        {"email": "hanako@example.jp", "phone": "090-1234-5678",
                         "full_name": "佐藤 花子", "postal_code": "160-0023",
                         "address": "東京都新宿区西新宿2-8-1",
                         "extra": {"notes": "カード 4111 1111 1111 1111 で支払い"}},
                        {"email": "john@example.com", "full_name": "John Smith"},
                    ],
                },
            ),
        ],
        tags=["pii"],
    )
    def post(self, request):
        _reject_unknown(request.data, {"workspace", "source", "language", "on_unexpected", "profiles"})
        profiles = request.data.get("profiles") if isinstance(request.data, dict) else None
        if isinstance(profiles, list):
            if len(profiles) > max_batch():
                _check_sizes(profiles, [])
            for index, item in enumerate(profiles):
                _reject_unknown(item, PROFILE_FIELDS, where=f"in profiles[{index}]: ")
        serializer = self.IngestInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        _check_sizes(data["profiles"], _strings(data["profiles"], []))
        workspace = policy.workspaces_visible_to(request.user).filter(slug=data["workspace"]).first()
        if workspace is None:
            raise NotFound(f"No workspace {data['workspace']!r} that you may use.")
        options = {"workspace": workspace, "source": data["source"], "items": data["profiles"],
                   "actor": request.user, "language": data["language"], "on_unexpected": data["on_unexpected"]}
        if len(data["profiles"]) > ingest_async_threshold():
            # A large batch holds no web worker: a Celery job runs it, the caller polls the job.
            job = ingest_job_create(**options)
            response = Response(ingest_job_body(job), status=status.HTTP_202_ACCEPTED)
            response["Location"] = absolute_link(
                reverse("pii-ingest-job", kwargs={"job_id": job.pk}), base=public_base_url(request))
            return response
        result = ingest_profiles(**options)
        return Response(
            {"profiles": result.profiles, "findings": result.findings,
             "unexpected": result.unexpected, "alerts": result.alerts},
            status=status.HTTP_200_OK,
        )


def ingest_job_body(job: IngestJob) -> dict:
    """What the job's creator sees: progress and outcome; counts, profile ids and error codes only."""
    return {
        "id": str(job.pk), "status": job.status, "workspace": job.workspace.slug, "source": job.source,
        "total": job.total, "processed": job.processed,
        "percent": int(100 * job.processed / job.total) if job.total else 100,
        "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
        "result": job.result or None,
    }


class IngestJobView(APIView):
    """Poll a queued ingest batch: its creator, or a role that may view ingest jobs (the DPO)."""

    permission_classes = [permissions.IsAuthenticated]

    class IngestJobSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        status = serializers.ChoiceField(choices=("queued", "running", "done", "failed"))
        workspace = serializers.CharField()
        source = serializers.CharField()
        total = serializers.IntegerField()
        processed = serializers.IntegerField()
        percent = serializers.IntegerField()
        created_at = serializers.DateTimeField()
        started_at = serializers.DateTimeField(allow_null=True)
        finished_at = serializers.DateTimeField(allow_null=True)
        result = serializers.DictField(
            allow_null=True, help_text="When finished: created, updated, merged, unexpected, alerts, "
            "profiles [{index, profile_id, created, merged_profile_ids}], errors [{index, code, field?}].")

    @extend_schema(summary="Poll an ingest job", responses={200: IngestJobSerializer,
                   404: OpenApiResponse(description="No such job that you may see (`not_found`)")}, tags=["pii"])
    def get(self, request, job_id):
        job = IngestJob.objects.select_related("workspace").filter(
            pk=job_id, workspace__in=policy.workspaces_visible_to(request.user)).first()
        if job is None or not (job.created_by_id == request.user.pk or request.user.has_perm("pii.view_ingestjob")):
            raise NotFound("No such ingest job that you may see.")
        return Response(ingest_job_body(job))


__all__ = ["IDENTITY_FIELDS", "IngestJobView", "IngestProfilesView", "ScanView"]

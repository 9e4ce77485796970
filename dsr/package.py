"""The access package (GDPR Art. 15 / 20, CCPA right to know, APPI 33条).

A zip with, per collection, ``<store>/<collection>.json`` and ``.csv``; ``summary.html`` in the
subject's language; ``manifest.json`` with the Art. 15 information in machine-readable form. The
zip is built in a spooled temporary file and stored encrypted (chunks under the request's DEK).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone, translation

from dsr import files
from dsr.execution import _access_name, plan_graph
from dsr.models import AccessPackage, DataSubjectRequest
from governance.datamap.taxonomy import category_is_personal, category_label

PACKAGE_NAME = "package.zip.enc"


@dataclass
class BuiltPackage:
    path: str
    summary_rows: int


def _purposes(request: DataSubjectRequest) -> list[dict]:
    """Purposes from the consent app, when it is installed (code, name, legal basis, retention)."""
    if not apps.is_installed("consent"):
        return []
    try:
        model = apps.get_model("consent", "Purpose")
    except LookupError:
        return []
    rows = []
    for purpose in model.objects.select_related("current_version")[:200]:
        version = getattr(purpose, "current_version", None)
        if version is None:
            continue
        retention = getattr(version, "retention_days", None)
        rows.append({
            "code": purpose.code,
            "name": version.name(request.locale) if hasattr(version, "name") else purpose.code,
            "legal_basis": str(getattr(version, "gdpr_basis", "") or ""),
            "retention": f"{retention} days" if retention else "",
            "recipients": list(getattr(version, "recipients", None) or []),
        })
    return rows


def art15_information(request: DataSubjectRequest, counts: dict[str, int]) -> dict:
    """Purposes, categories, recipients, retention and source for the collections that hold data."""
    graph = plan_graph(request)
    categories: dict[str, str] = {}
    retention: list[dict] = []
    sources: list[dict] = []
    recipients: list[dict] = []
    for address, collection in graph.nodes.items():
        if not counts.get(address):
            continue
        store = graph.stores[collection.store]
        for f in collection.fields:
            if category_is_personal(f.category):
                categories[f.category] = category_label(f.category)
            if f.legal_basis or f.retention:
                retention.append({"collection": address, "field": f.name, "legal_basis": f.legal_basis,
                                  "retention": f.retention})
        sources.append({"collection": address, "store": store.name, "description": collection.description})
        if store.type == "http":
            recipients.append({"store": store.key, "name": store.name, "description": store.description})
    purposes = _purposes(request)
    for purpose in purposes:
        for recipient in purpose.get("recipients", []):
            name = recipient.get("name", "") if isinstance(recipient, dict) else recipient
            recipients.append({"store": "", "name": str(name), "description": f"purpose {purpose['code']}"})
    return {
        "purposes": purposes,
        "categories": [{"code": k, "label": v} for k, v in sorted(categories.items())],
        "recipients": recipients,
        "retention": retention,
        "sources": sources,
        "automated_decision_making": "none",
        "rights": ["rectification", "erasure", "restriction", "objection", "portability", "complaint"],
    }


def _csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def package_build(*, request: DataSubjectRequest) -> BuiltPackage:
    """Build (or rebuild, idempotently) the encrypted access package of a request."""
    graph = plan_graph(request)
    counts: dict[str, int] = {}
    language = "ja" if request.locale.startswith("ja") else "en"
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for address in graph.access_order():
                rows = [
                    {k: v for k, v in row.items() if not k.startswith("_")}
                    for row in files.read_rows(request_id=request.id, dek_id=request.data_key_id,
                                               name=_access_name(address))
                ]
                counts[address] = len(rows)
                if not rows:
                    continue
                store, collection = address.split(".", 1)
                zf.writestr(f"{store}/{collection}.json", json.dumps(rows, ensure_ascii=False, indent=2, default=str))
                zf.writestr(f"{store}/{collection}.csv", _csv(rows))
            info = art15_information(request, counts)
            manifest = {
                "format": "mamoru-access-package/1",
                "request": {"id": str(request.id), "type": request.request_type,
                            "received_at": request.received_at.isoformat(),
                            "jurisdiction": request.jurisdiction},
                "generated_at": timezone.now().isoformat(),
                "collections": {a: {"rows": n, "json": f"{a.replace('.', '/', 1)}.json" if n else None}
                                for a, n in counts.items()},
                "article_15": info,
            }
            zf.writestr("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2))
            with translation.override(language):
                html = render_to_string("dsr/package_summary.html", {
                    "request": request, "counts": counts, "info": info, "language": language,
                    "total": sum(counts.values()),
                })
            zf.writestr("summary.html", html)
        spool.seek(0)
        digest = hashlib.sha256()
        size = 0

        def chunks():
            nonlocal size
            while True:
                block = spool.read(files.CHUNK_BYTES)
                if not block:
                    return
                digest.update(block)
                size += len(block)
                yield block

        path = files.write_chunks(request_id=request.id, dek_id=request.data_key_id, name=PACKAGE_NAME,
                                  chunks=chunks())
    days = getattr(settings, "MAMORU_DSR_PACKAGE_DAYS", 14)
    AccessPackage.objects.update_or_create(
        request=request,
        defaults={"path": str(path), "size": size, "sha256": digest.hexdigest(),
                  "expires_at": timezone.now() + timedelta(days=days), "deleted_at": None},
    )
    return BuiltPackage(path=str(path), summary_rows=sum(counts.values()))


def package_stream(*, package: AccessPackage):
    """Yield the decrypted zip bytes of a package."""
    request = package.request
    yield from files.read_chunks(request_id=request.id, dek_id=request.data_key_id, name=PACKAGE_NAME)

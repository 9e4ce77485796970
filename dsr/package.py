"""The access package (GDPR Art. 15 / 20, CCPA right to know, APPI 33条 開示).

A zip with, per collection where data was found, ``<store>/<collection>.json`` and ``.csv``;
``summary.html``, the person's own data in readable tables, in their language and time zone, with
the Art. 15 information that applies to them; ``manifest.json`` with the same information in
machine-readable form. JSON holds ISO 8601 times with their offset and JSON numbers.

Two halves: :func:`package_entries` builds the content (what the person reads); :func:`package_build`
writes it into a spooled zip stored encrypted under the request's data key.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.apps import apps
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import formats, timezone, translation
from django.utils.translation import gettext, gettext_lazy, ngettext

from dsr import files
from dsr.execution import _access_name, plan_graph, request_details
from dsr.models import AccessPackage, DataSubjectRequest
from dsr.values import json_default
from governance.datamap.graph import DataMapGraph
from governance.datamap.spec import CollectionSpec, FieldSpec
from governance.datamap.taxonomy import category_is_personal, category_label
from governance.spreadsheet import csv_writer, formula_safe

PACKAGE_NAME = "package.zip.enc"
FORMAT = "mamoru-access-package/2"
#: Rows per collection shown in summary.html (all rows are always in the JSON and CSV files).
HTML_ROWS = 200
#: Characters of one value shown in summary.html.
HTML_CELL_CHARS = 300
#: The person's time zone by jurisdiction, when the request does not record one.
JURISDICTION_ZONES = {"JP": "Asia/Tokyo", "US-CA": "America/Los_Angeles"}
LANGUAGE_ZONES = {"ja": "Asia/Tokyo"}
DATETIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$"
)
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
JAPANESE_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uff66-\uff9f]")
#: Mamoru's own records of the person, named in the person's language.
MAMORU_TITLES = {
    "profile": gettext_lazy("Your profile"),
    "identities": gettext_lazy("Your e-mail addresses, phone numbers and customer numbers"),
    "consent": gettext_lazy("Your consent choices"),
}
MAMORU_LABELS = {
    "id": gettext_lazy("Record number"), "jurisdiction": gettext_lazy("Jurisdiction"),
    "locale": gettext_lazy("Language"), "kind": gettext_lazy("Kind"), "namespace": gettext_lazy("Namespace"),
    "purpose": gettext_lazy("Purpose"), "state": gettext_lazy("Your choice"),
    "updated_at": gettext_lazy("Last changed"),
}
CONSENT_STATES = {
    "given": gettext_lazy("given"), "refused": gettext_lazy("refused"),
    "withdrawn": gettext_lazy("withdrawn"), "expired": gettext_lazy("expired"),
}


@dataclass
class BuiltPackage:
    path: str
    summary_rows: int


@dataclass
class Column:
    name: str
    label: str
    category: str = ""


@dataclass
class CollectionPart:
    """One collection of the package: its rows (JSON-ready) and how the summary shows them."""

    address: str
    store_key: str
    store_name: str
    store_type: str
    name: str
    title: str
    columns: list[Column]
    rows: list[dict]
    json_path: str
    csv_path: str
    spec: CollectionSpec
    shown: list[list[str]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def anchor(self) -> str:
        return re.sub(r"[^A-Za-z0-9_-]", "-", self.address)

    @property
    def truncated(self) -> bool:
        return len(self.rows) > len(self.shown)


# --- the person: language and time zone ------------------------------------------------------

def package_language(request: DataSubjectRequest) -> str:
    return "ja" if (request.locale or "").lower().startswith("ja") else "en"


def _zone(name: str | None) -> ZoneInfo | None:
    if not name or not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def subject_timezone(request: DataSubjectRequest) -> ZoneInfo:
    """The person's time zone: recorded with the request, else by jurisdiction (profile first),
    else by language, else the site's ``TIME_ZONE``."""
    zone = _zone(request_details(request).get("timezone"))
    if zone:
        return zone
    zones = {**JURISDICTION_ZONES, **getattr(settings, "MAMORU_DSR_JURISDICTION_TIMEZONES", {})}
    profile = request.profile if request.profile_id else None
    for jurisdiction in (getattr(profile, "jurisdiction", None), request.jurisdiction):
        zone = _zone(zones.get(jurisdiction or ""))
        if zone:
            return zone
    return _zone(LANGUAGE_ZONES.get(package_language(request))) or _zone(settings.TIME_ZONE) or ZoneInfo("UTC")


# --- values ----------------------------------------------------------------------------------

def _as_datetime(value: str) -> dt.datetime | None:
    if not DATETIME_RE.match(value):
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None


def _collection_zone(collection: CollectionSpec) -> ZoneInfo:
    """Where naive times of a collection are (``options.timezone``; UTC when not said)."""
    return _zone(collection.options.get("timezone")) or ZoneInfo("UTC")


def json_value(value, *, zone: ZoneInfo, naive_zone: ZoneInfo):
    """A stored value as the package writes it: times as ISO 8601 with offset in the person's zone."""
    if isinstance(value, str):
        moment = _as_datetime(value)
        if moment is None:
            return value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=naive_zone)
        return moment.astimezone(zone).isoformat()
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=naive_zone)
        return moment.astimezone(zone).isoformat()
    if isinstance(value, dict):
        return {k: json_value(v, zone=zone, naive_zone=naive_zone) for k, v in value.items()}
    if isinstance(value, list):
        return [json_value(v, zone=zone, naive_zone=naive_zone) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return json.loads(json.dumps(value, default=json_default))


def _calendar_date(value):
    """``1990-05-01T00:00:00`` (a date kept as a timestamp) as ``1990-05-01``; other values as they are."""
    if isinstance(value, str):
        moment = _as_datetime(value)
        if moment is not None:
            return moment.date().isoformat()
    return value


def display_value(value) -> str:
    """A JSON-ready value as the summary shows it (escaped by the template, never here)."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
        moment = _as_datetime(text)
        if moment is not None and moment.tzinfo is not None:
            return formats.date_format(moment, "DATETIME_FORMAT")
        if DATE_RE.match(text):
            try:
                return formats.date_format(dt.date.fromisoformat(text), "DATE_FORMAT")
            except ValueError:
                return text
    if len(text) > HTML_CELL_CHARS:
        return text[:HTML_CELL_CHARS] + "…"
    return text


def _fits(text: str, language: str) -> bool:
    """Whether a data-map text is written in the person's language (Japanese script or not)."""
    has_japanese = bool(JAPANESE_RE.search(text or ""))
    return has_japanese if language == "ja" else not has_japanese


def field_label(f: FieldSpec, language: str, *, store_type: str = "") -> str:
    """The data map's description when it is in the person's language, else the category's label."""
    if store_type == "mamoru" and f.name in MAMORU_LABELS:
        return str(MAMORU_LABELS[f.name])
    if f.description and _fits(f.description, language):
        return f.description
    if f.category:
        return category_label(f.category)
    return f.name


def package_paths(address: str) -> tuple[str, str]:
    """The zip paths of a collection's JSON and CSV files (the summary links exactly these)."""
    store, collection = address.split(".", 1)
    return f"{store}/{collection}.json", f"{store}/{collection}.csv"


# --- content ---------------------------------------------------------------------------------

def collection_parts(request: DataSubjectRequest, graph: DataMapGraph, *, language: str,
                     zone: ZoneInfo) -> list[CollectionPart]:
    """Every collection searched, with the person's rows read from the access results."""
    parts: list[CollectionPart] = []
    # Grouped by store, in the data map's order (the person's own records with us last).
    order = {c.address: (i, j) for i, s in enumerate(graph.stores.values()) for j, c in enumerate(s.collections)}
    for address in sorted(graph.access_order(), key=lambda a: order.get(a, (len(order), 0))):
        collection = graph.nodes[address]
        store = graph.stores[collection.store]
        naive_zone = _collection_zone(collection)
        # A birth date is a calendar date: never moved to another day by a time zone.
        dates = {f.name for f in collection.fields if f.category.startswith("user.demographic.date_of_birth")}
        rows = [
            {k: _calendar_date(v) if k in dates else json_value(v, zone=zone, naive_zone=naive_zone)
             for k, v in row.items() if not k.startswith("_")}
            for row in files.read_rows(request_id=request.id, dek_id=request.data_key_id,
                                       name=_access_name(address))
        ]
        columns = [Column(f.name, field_label(f, language, store_type=store.type), f.category)
                   for f in collection.fields]
        known = {c.name for c in columns}
        for row in rows:
            for key in row:
                if key not in known:
                    columns.append(Column(key, key))
                    known.add(key)
        json_path, csv_path = package_paths(address)
        description = collection.description if _fits(collection.description, language) else ""
        if store.type == "mamoru" and collection.name in MAMORU_TITLES:
            description = str(MAMORU_TITLES[collection.name])
        part = CollectionPart(
            address=address, store_key=store.key, store_name=store.name or store.key, store_type=store.type,
            name=collection.name, title=description or collection.name, columns=columns, rows=rows,
            json_path=json_path, csv_path=csv_path, spec=collection,
        )
        shown = rows[:_html_rows()]
        if store.type == "mamoru" and collection.name == "consent":
            shown = _consent_readable(shown, language)
        part.shown = [[display_value(row.get(c.name)) for c in columns] for row in shown]
        parts.append(part)
    return parts


def _consent_readable(rows: list[dict], language: str) -> list[dict]:
    """Consent rows for the summary: the purpose's name and the choice in the person's language."""
    names: dict[str, str] = {}
    if apps.is_installed("consent"):
        try:
            purpose_model = apps.get_model("consent", "Purpose")
        except LookupError:
            purpose_model = None
        if purpose_model is not None:
            codes = {str(r.get("purpose")) for r in rows}
            for purpose in purpose_model.objects.filter(code__in=codes).select_related("current_version"):
                if purpose.current_version is not None:
                    names[purpose.code] = purpose.current_version.name(language)
    readable = []
    for row in rows:
        state = CONSENT_STATES.get(str(row.get("state")))
        readable.append({**row, "purpose": names.get(str(row.get("purpose")), row.get("purpose")),
                         "state": str(state) if state is not None else row.get("state")})
    return readable


def _html_rows() -> int:
    return int(getattr(settings, "MAMORU_DSR_PACKAGE_HTML_ROWS", HTML_ROWS))


def _categories_match(purpose_categories: list, found: set[str]) -> bool:
    for wanted in purpose_categories or []:
        wanted = str(wanted)
        if any(code == wanted or code.startswith(wanted + ".") or wanted.startswith(code + ".") for code in found):
            return True
    return False


def _retention_days(days: int | None) -> str:
    if not days:
        return ""
    return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}


def _purposes(request: DataSubjectRequest, found: set[str], zone: ZoneInfo) -> list[dict]:
    """The purposes that apply to this person (GDPR Art. 15(1)(a), APPI 32条 利用目的).

    A purpose based on consent applies when the person gave it (or, under an opt-out rule, did not
    refuse it and their data is of its categories); a purpose on another legal basis applies when
    data of its categories was found about them.
    """
    if not apps.is_installed("consent"):
        return []
    try:
        purpose_model = apps.get_model("consent", "Purpose")
        state_model = apps.get_model("consent", "ConsentState")
    except LookupError:
        return []
    from dsr.coverage import request_profiles

    language = package_language(request)
    states = {}
    # Every profile of the person the request covers (a consent given in any of them counts).
    for state in state_model.objects.filter(profile__in=request_profiles(request=request)).order_by("occurred_at"):
        if state.purpose_id not in states or state.state == "given":
            states[state.purpose_id] = state
    jurisdiction = getattr(request.profile, "jurisdiction", None) if request.profile_id else None
    jurisdiction = jurisdiction or request.jurisdiction
    rows = []
    for purpose in purpose_model.objects.select_related("current_version").exclude(current_version=None):
        version = purpose.current_version
        state = states.get(purpose.pk)
        matches = _categories_match(version.data_categories, found)
        given = state is not None and state.state == "given"
        if version.gdpr_basis == "consent":
            if given:
                why = "consent_given"
            elif state is None and matches and version.default_rule(jurisdiction) == "opt_out":
                why = "not_objected"
            else:
                continue
        elif matches or given:
            why = "data_found"
        else:
            continue
        recipients = []
        for recipient in version.recipients or []:
            name = recipient.get("name", "") if isinstance(recipient, dict) else recipient
            if name:
                recipients.append(str(name))
        rows.append({
            "code": purpose.code,
            "name": version.name(language),
            "description": version.description(language),
            "legal_basis": version.gdpr_basis,
            "legal_basis_label": str(version.get_gdpr_basis_display()),
            "why": why,
            "consent_given_at": (state.occurred_at.astimezone(zone).isoformat() if given and state.occurred_at
                                 else None),
            "retention": _retention_days(version.retention_days),
            "retention_days": version.retention_days,
            "recipients": recipients,
            "transfer_country": version.transfer_country,
            "notice_url": version.notice_url,
        })
    return rows


def art15_information(request: DataSubjectRequest, parts: list[CollectionPart], *, zone: ZoneInfo) -> dict:
    """What applies to this person: purposes, categories actually found, recipients of the stores
    where data was found, retention and sources (GDPR Art. 15(1)(a)–(h), APPI 32・33条)."""
    categories: dict[str, str] = {}
    retention: list[dict] = []
    sources: list[dict] = []
    recipients: list[dict] = []
    for part in parts:
        if not part.rows:
            continue
        for f in part.spec.fields:
            if category_is_personal(f.category) and any(row.get(f.name) not in (None, "") for row in part.rows):
                categories[f.category] = category_label(f.category)
            if f.retention or f.legal_basis:
                retention.append({"collection": part.address, "field": f.name,
                                  "label": field_label(f, package_language(request), store_type=part.store_type),
                                  "retention": f.retention, "legal_basis": f.legal_basis})
        sources.append({"collection": part.address, "store": part.store_name, "description": part.title})
        if part.store_type == "http" and not any(r["store"] == part.store_key for r in recipients):
            recipients.append({"store": part.store_key, "name": part.store_name, "purpose": ""})
    purposes = _purposes(request, set(categories), zone)
    for purpose in purposes:
        for name in purpose["recipients"]:
            recipients.append({"store": "", "name": name, "purpose": purpose["name"]})
    return {
        "purposes": purposes,
        "categories": [{"code": k, "label": v} for k, v in sorted(categories.items())],
        "recipients": recipients,
        "retention": retention,
        "sources": sources,
        "automated_decision_making": "none",
        "rights": ["rectification", "erasure", "restriction", "objection", "portability", "complaint"],
    }


RETENTION_RE = re.compile(r"^\s*(\d+)\s*(day|week|month|year)s?\s*$", re.IGNORECASE)


def retention_text(text: str, language: str) -> str:
    """A data map's retention (``7 years``) in the person's language; other wording as written
    when it is in their language."""
    match = RETENTION_RE.match(text or "")
    if match:
        n, unit = int(match.group(1)), match.group(2).lower()
        forms = {
            "day": ngettext("%(n)s day", "%(n)s days", n),
            "week": ngettext("%(n)s week", "%(n)s weeks", n),
            "month": ngettext("%(n)s month", "%(n)s months", n),
            "year": ngettext("%(n)s year", "%(n)s years", n),
        }
        return forms[unit] % {"n": n}
    return text if text and _fits(text, language) else ""


def _retention_rows(info: dict, parts: list[CollectionPart], language: str) -> list[dict]:
    """Retention for the summary: a legal basis not written in the person's language is named
    generically there (manifest.json keeps the data map's wording)."""
    titles = {p.address: f"{p.store_name}: {p.title}" for p in parts}
    rows = []
    for item in info["retention"]:
        basis = item["legal_basis"]
        if not item["retention"] and not _fits(basis, language):
            continue  # nothing to say in the person's language (manifest.json has it)
        if basis and not _fits(basis, language):
            basis = gettext("kept to meet a legal obligation")
        rows.append({"label": item["label"], "where": titles.get(item["collection"], item["collection"]),
                     "retention": retention_text(item["retention"], language), "legal_basis": basis})
    return rows


def _csv_cell(value) -> str:
    """A CSV cell; text that a spreadsheet would run as a formula starts with an apostrophe."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return formula_safe(value)
    return str(value)


def _csv(part: CollectionPart) -> bytes:
    """UTF-8 with a byte-order mark (spreadsheets then read Japanese correctly)."""
    out = io.StringIO()
    writer = csv_writer(out)  # the header too: column names come from the connected stores
    writer.writerow([c.name for c in part.columns])
    for row in part.rows:
        writer.writerow([_csv_cell(row.get(c.name)) for c in part.columns])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def package_entries(*, request: DataSubjectRequest) -> Iterator[tuple[str, bytes]]:
    """The files of the package, path and content, in the order they go into the zip."""
    graph = plan_graph(request)
    language = package_language(request)
    zone = subject_timezone(request)
    with translation.override(language), timezone.override(zone):
        parts = collection_parts(request, graph, language=language, zone=zone)
        for part in parts:
            if part.rows:
                yield part.json_path, json.dumps(part.rows, ensure_ascii=False, indent=2,
                                                 default=json_default).encode("utf-8")
                yield part.csv_path, _csv(part)
        info = art15_information(request, parts, zone=zone)
        now = timezone.now()
        manifest = {
            "format": FORMAT,
            "request": {"id": str(request.id), "type": request.request_type,
                        "received_at": request.received_at.astimezone(zone).isoformat(),
                        "jurisdiction": request.jurisdiction, "language": language},
            "generated_at": now.astimezone(zone).isoformat(),
            "time_zone": zone.key,
            "collections": {p.address: {"rows": p.count, "json": p.json_path if p.rows else None,
                                        "csv": p.csv_path if p.rows else None} for p in parts},
            "article_15": info,
        }
        yield "manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2, default=json_default).encode("utf-8")
        html = render_to_string("dsr/package_summary.html", {
            "request": request, "language": language, "zone": zone.key, "now": now,
            "found": [p for p in parts if p.rows], "empty": [p for p in parts if not p.rows],
            "total": sum(p.count for p in parts), "info": info, "html_rows": _html_rows(),
            "retention": _retention_rows(info, parts, language),
        })
        yield "summary.html", html.encode("utf-8")


# --- the file --------------------------------------------------------------------------------

def package_build(*, request: DataSubjectRequest) -> BuiltPackage:
    """Build (or rebuild, idempotently) the encrypted access package of a request."""
    rows = 0
    with tempfile.SpooledTemporaryFile(max_size=64 * 1024 * 1024) as spool:
        with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for path, data in package_entries(request=request):
                zf.writestr(path, data)
                if path == "manifest.json":
                    rows = sum(c["rows"] for c in json.loads(data)["collections"].values())
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
    return BuiltPackage(path=str(path), summary_rows=rows)


def package_stream(*, package: AccessPackage):
    """Yield the decrypted zip bytes of a package."""
    request = package.request
    yield from files.read_chunks(request_id=request.id, dek_id=request.data_key_id, name=PACKAGE_NAME)

"""What real SaaS APIs need from the declarative ``http`` connector (the catalogue's templates,
docs/connectors.md), beyond ``GET /things?email=…``:

* **Several lookups** — ``options.lookup`` may be a list; each is used for the identity fields
  whose placeholders it holds (one search by e-mail, another by phone).
* **Request bodies** — ``method: POST`` with ``body:`` (JSON; placeholders filled, a string that
  is one placeholder keeps the value's type) for search APIs (HubSpot) and for erasure calls
  (``gdpr-delete {objectId}``); ``body_key: customer`` wraps the masked values of an update
  (Shopify's ``{"customer": {…}}``).
* **Placeholder filters** — ``{email|md5}`` (Mailchimp's subscriber hash: MD5 of the address as
  sent, lower-case with ``email_case: insensitive``), ``{email|sq}`` / ``{email|dq}`` (escaped for
  a single- / double-quoted search string: Stripe's ``email:'…'``, Zendesk's ``email:"…"``).
* **Row shapes** — ``row:`` a single object (``""``: the whole body) instead of ``rows:`` a list;
  ``flatten: [properties]`` lifts a nested object's keys into the row (HubSpot);
  ``field_paths: {customer_id: customer.id}`` reads a field from a nested path (Shopify orders);
  ``gone_if: deleted`` on ``read``: a row with that key true is gone (Stripe answers a deleted
  customer as ``{"id": …, "deleted": true}``).
* **Pagination** — ``{type: offset, param: offset, size_param: count, size: 100, total:
  total_items}``; ``cursor`` with ``has_more: meta.has_more`` (stop when false),
  ``from_last_row: id`` (the cursor is the last row's id: Stripe's ``starting_after``) and
  ``in: body`` (the cursor goes into the JSON body: HubSpot's ``after``; a dotted name is a nested
  key: Intercom's ``pagination.starting_after``); ``offset`` with ``text: "limit {size} offset
  {offset}"`` writes the page into the text of the ``param`` (kintone's ``query``).
* **Erasure steps and asynchronous jobs** — ``delete`` (or ``update``) may be a list of steps run in
  order (Zendesk: soft delete, then permanent deletion); a step with ``job:`` polls the job its
  answer names until it is done::

      job: {id: job_status.id, path: "/api/v2/job_statuses/{job_id}.json", status: job_status.status,
            done: [completed], failed: [failed, killed], message: job_status.message,
            interval_seconds: 1, timeout_seconds: 300}

  A job that fails is a ``StoreError``; one still running at the timeout is ``StoreUnavailable``
  (the node is retried later; deletions are idempotent: not found counts as done). A service that
  erases asynchronously without a job to poll (Klaviyo) gets ``until_gone``: after the step, the
  row's own URL is read until it answers "not found"::

      until_gone: {path: "/api/profiles/{id}/", interval_seconds: 2, timeout_seconds: 600}

* **Error bodies** — ``connection.error_message: error.message`` names where the API puts its
  message (a number picks a list item: ``errors.0.detail``, Salesforce's ``0.message``); it is
  quoted (shortened) in node errors.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable

from dsr.connectors.base import StoreError, StoreUnavailable

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?:\|([a-z0-9_]+))?\}")
JOB_DEFAULT_INTERVAL = 1.0
JOB_DEFAULT_TIMEOUT = 300.0


def _md5(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest()  # noqa: S324 - an API's id scheme, not security


FILTERS: dict[str, Callable[[str], str]] = {
    "md5": _md5,
    "lower": str.lower,
    "sq": lambda v: v.replace("\\", "\\\\").replace("'", "\\'"),
    "dq": lambda v: v.replace("\\", "\\\\").replace('"', '\\"'),
}


def dig(data, path: str | None):
    """``a.b.c`` in nested objects; a number picks a list item (``errors.0.detail``, ``0.message``)."""
    if not path:
        return data
    for part in str(path).split("."):
        if isinstance(data, list) and part.isdigit():
            data = data[int(part)] if int(part) < len(data) else None
        else:
            data = data.get(part) if isinstance(data, dict) else None
    return data


def placeholder_names(template) -> set[str]:
    """The placeholder names in a template (a string, or a JSON body's strings)."""
    if isinstance(template, str):
        return {m.group(1) for m in PLACEHOLDER.finditer(template)}
    if isinstance(template, dict):
        return set().union(*(placeholder_names(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(placeholder_names(v) for v in template)) if template else set()
    return set()


def _value(name: str, flt: str | None, values: dict, template) -> object:
    value = values.get(name)
    if value is None:
        raise StoreError(f"no value for placeholder {{{name}}} in {template!r}")
    if flt:
        if flt not in FILTERS:
            raise StoreError(f"unknown placeholder filter |{flt} in {template!r}; known: {', '.join(sorted(FILTERS))}")
        value = FILTERS[flt](str(value))
    return value


def fill(template: str, values: dict, *, quote_values: bool) -> str:
    """``{name}`` / ``{name|filter}`` replaced from ``values`` (URL-quoted in paths)."""
    from urllib.parse import quote

    def repl(match: re.Match) -> str:
        value = _value(match.group(1), match.group(2), values, template)
        return quote(str(value), safe="") if quote_values else str(value)

    return PLACEHOLDER.sub(repl, str(template))


def fill_body(template, values: dict):
    """A JSON body template filled: a string that is exactly one placeholder keeps the type."""
    if isinstance(template, str):
        whole = PLACEHOLDER.fullmatch(template)
        if whole:
            return _value(whole.group(1), whole.group(2), values, template)
        return fill(template, values, quote_values=False)
    if isinstance(template, dict):
        return {k: fill_body(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill_body(v, values) for v in template]
    return template


def lookups(options: dict) -> list[dict]:
    lookup = options.get("lookup")
    if lookup is None:
        return []
    return [lookup] if isinstance(lookup, dict) else [e for e in lookup if isinstance(e, dict)]


def endpoint_templates(endpoint: dict) -> list:
    return [endpoint.get("path", ""), *(endpoint.get("params") or {}).values(), endpoint.get("body")]


def shape(row, endpoint: dict, options: dict) -> dict:
    """A row as the data map sees it: ``flatten`` and ``field_paths`` applied."""
    if not isinstance(row, dict):
        return {}
    flatten = endpoint.get("flatten", options.get("flatten")) or []
    paths = endpoint.get("field_paths", options.get("field_paths")) or {}
    if not flatten and not paths:
        return row
    out = {k: v for k, v in row.items() if k not in flatten}
    for key in flatten:
        nested = row.get(key)
        if isinstance(nested, dict):
            for name, value in nested.items():
                out.setdefault(name, value)
    for name, path in paths.items():
        out[name] = dig(row, path)
    return out


def body_rows(body, endpoint: dict) -> list:
    """The rows of one answer: ``rows:`` (a list) or ``row:`` (one object; ``""`` the body)."""
    if "row" in endpoint and "rows" not in endpoint:
        found = dig(body, endpoint.get("row"))
        return [found] if isinstance(found, dict) and found else []
    found = dig(body, endpoint.get("rows"))
    return found if isinstance(found, list) else []


def gone(row: dict, endpoint: dict) -> bool:
    flag = endpoint.get("gone_if")
    return bool(flag and dig(row, flag))


class Pager:
    """Next-page state for ``offset`` and the cursor variants (``page``/``link`` stay in http.py)."""

    KINDS = ("offset",)

    def __init__(self, pagination: dict, params: dict, body):
        self.p = pagination
        self.params = dict(params)
        self.body = json.loads(json.dumps(body)) if body is not None else None
        self.offset = int(self.p.get("start", 0))
        if self.p.get("type") == "offset":
            param = self.p.get("param", "offset")
            if self.p.get("text"):  # written into a query language's text (kintone)
                self.text_base = str(self.params.get(param, "")).rstrip()
            else:
                self.params[self.p.get("size_param", "limit")] = self.p.get("size", 100)
            self._offset_set(self.offset)

    def _offset_set(self, offset: int) -> None:
        self.offset = offset
        param = self.p.get("param", "offset")
        if self.p.get("text"):
            text = str(self.p["text"]).replace("{size}", str(int(self.p.get("size", 100))))
            self.params[param] = f"{self.text_base} {text.replace('{offset}', str(offset))}".strip()
        else:
            self.params[param] = offset

    def _set(self, name: str, value) -> None:
        if self.p.get("in") == "body":
            if not isinstance(self.body, dict):
                self.body = {}
            target = self.body
            *parents, last = str(name).split(".")  # pagination.starting_after: a nested key
            for part in parents:
                if not isinstance(target.get(part), dict):
                    target[part] = {}
                target = target[part]
            target[last] = value
        else:
            self.params[name] = value

    def advance(self, body, rows: list) -> bool:
        """Prepare the next request; False when there is no next page."""
        kind = self.p.get("type")
        if kind == "offset":
            size = int(self.p.get("size", 100))
            offset = self.offset + len(rows)
            total = dig(body, self.p["total"]) if self.p.get("total") else None
            if not rows or (total is not None and offset >= int(total)) or (total is None and len(rows) < size):
                return False
            self._offset_set(offset)
            return True
        if kind == "cursor":
            if self.p.get("has_more") and not dig(body, self.p["has_more"]):
                return False
            if self.p.get("from_last_row"):
                cursor = rows[-1].get(self.p["from_last_row"]) if rows and isinstance(rows[-1], dict) else None
            else:
                cursor = dig(body, self.p.get("next", "next_cursor"))
            if not cursor:
                return False
            self._set(self.p.get("param", "cursor"), cursor)
            return True
        return False


def error_text(body, path: str | None) -> str:
    """The API's own error message (``connection.error_message``), shortened, for node errors."""
    if not path or body is None:
        return ""
    found = dig(body, path)
    if found in (None, "", [], {}):
        return ""
    text = found if isinstance(found, str) else json.dumps(found, ensure_ascii=False, default=str)
    return text[:200]


def retry_after(headers) -> float | None:
    """``Retry-After`` written with a decimal (Shopify's ``2.0``), which HTTP-date/integer parsing
    misses; ``None`` for anything else (governance.outbound reads those)."""
    value = (headers.get("retry-after") or "").strip()
    if re.fullmatch(r"\d+\.\d+", value):
        return float(value)
    return None


def steps(endpoint) -> list[dict]:
    return [endpoint] if isinstance(endpoint, dict) else [e for e in endpoint if isinstance(e, dict)]


def job_wait(request: Callable, job: dict, answer, *, sleep: Callable[[float], None] = time.sleep) -> str:
    """Poll the job ``answer`` names until it is done; its final status."""
    job_id = dig(answer, job.get("id", "id"))
    if job_id in (None, ""):
        raise StoreError(f"the answer names no job at {job.get('id', 'id')!r}")
    done = set(job.get("done") or ["completed"])
    failed = set(job.get("failed") or ["failed"])
    interval = float(job.get("interval_seconds", JOB_DEFAULT_INTERVAL))
    deadline = time.monotonic() + float(job.get("timeout_seconds", JOB_DEFAULT_TIMEOUT))
    path = fill(job["path"], {"job_id": job_id}, quote_values=True)
    status = dig(answer, job.get("status", "status"))
    while True:
        if status in done:
            return str(status)
        if status in failed:
            message = dig(answer, job["message"]) if job.get("message") else ""
            raise StoreError(f"job {job_id} ended {status}" + (f": {message}" if message else ""))
        if time.monotonic() > deadline:
            raise StoreUnavailable(f"job {job_id} still {status} after {job.get('timeout_seconds', JOB_DEFAULT_TIMEOUT)}s")
        sleep(interval)
        answer = request("GET", path)
        if answer is None:
            raise StoreError(f"job {job_id}: not found when polled")
        status = dig(answer, job.get("status", "status"))


def gone_wait(is_gone: Callable[[str, dict], bool], spec: dict, values: dict, *,
              sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll ``spec['path']`` (filled from the row) until the API answers "not found": an erasure
    the service runs asynchronously without a job to poll (Klaviyo's deletion requests)."""
    path = fill(spec["path"], values, quote_values=True)
    params = {k: fill(str(v), values, quote_values=False) for k, v in (spec.get("params") or {}).items()}
    interval = float(spec.get("interval_seconds", JOB_DEFAULT_INTERVAL))
    timeout = float(spec.get("timeout_seconds", JOB_DEFAULT_TIMEOUT))
    deadline = time.monotonic() + timeout
    while not is_gone(path, params):
        if time.monotonic() >= deadline:
            raise StoreUnavailable(f"still there after {timeout:g}s: {path.split('?', 1)[0]}")
        sleep(interval)

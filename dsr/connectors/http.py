"""``http``: a declarative REST connector (configured in the data map, no code).

Store ``connection``::

    base_url: http://127.0.0.1:8781
    auth: {header: Authorization, token: "Bearer ${MAILING_TOKEN}"}   # or token: "…" (Bearer)
    timeout: 10
    rate_limit_per_second: 20
    not_found_statuses: [404]             # read as "no rows"
    retry_statuses: [429, 502, 503, 504]  # retried with backoff (StoreUnavailable)

Collection ``options``::

    lookup: {path: /members, params: {email: "{email}"}, rows: data}
    read:   {path: "/members/{id}", row: data}           # optional: full row per id
    update: {method: PATCH, path: "/members/{id}"}       # JSON body: the masked fields
    delete: {method: DELETE, path: "/members/{id}"}
    pagination: {type: page, param: page, size_param: per_page, size: 100}
             #  {type: cursor, param: cursor, next: next_cursor} | {type: link, next: next}

    email_case: insensitive    # the API compares e-mails ignoring case (default): the lower-case
                               # address is sent; `exact`: the API compares exactly: the address
                               # is sent as the person typed it and in lower case
                               # (each with its Unicode and punycode domain)

``{name}`` placeholders are filled from the input field values (lookups) or the row (paths).
Phone placeholders are sent in every format of the number, or the formats of the field's declared
``format``. A returned row that holds the identity field is kept only if it is the same address
or number (docs/datamap.md, "Identity matching").
"""

from __future__ import annotations

import re
import threading
import time
import unicodedata
from collections.abc import Iterable, Iterator
from urllib.parse import quote

import httpx

from dsr.connectors import register
from dsr.connectors.base import (
    BaseConnector,
    IdentityMatch,
    StoreError,
    StoreUnavailable,
    identity_matches,
)
from governance.datamap.spec import CollectionSpec

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_PAGES = 10_000


def _dig(data, path: str | None):
    if not path:
        return data
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _fill(template: str, values: dict, *, quote_values: bool) -> str:
    def repl(match: re.Match) -> str:
        value = values.get(match.group(1))
        if value is None:
            raise StoreError(f"no value for placeholder {{{match.group(1)}}} in {template!r}")
        return quote(str(value), safe="") if quote_values else str(value)

    return PLACEHOLDER.sub(repl, template)


class _RateLimit:
    def __init__(self, per_second: float):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            if self.next_at > now:
                time.sleep(self.next_at - now)
            self.next_at = max(now, self.next_at) + self.interval


@register
class HttpConnector(BaseConnector):
    identifier = "http"
    verbose_name = "REST API (declarative)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        s = self.settings
        if not s.get("base_url"):
            raise StoreError(f"store {self.store_key!r}: the http connector needs connection.base_url")
        headers = dict(s.get("headers") or {})
        auth = s.get("auth") or {}
        if auth.get("token"):
            headers[auth.get("header", "Authorization")] = auth["token"]
        elif s.get("token"):
            headers["Authorization"] = f"Bearer {s['token']}"
        self.not_found = set(s.get("not_found_statuses") or [404])
        self.retry = set(s.get("retry_statuses") or [429, 500, 502, 503, 504])
        self.rate = _RateLimit(float(s.get("rate_limit_per_second") or 0))
        self.client = httpx.Client(base_url=s["base_url"], headers=headers,
                                   timeout=float(s.get("timeout") or 10))

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response | None:
        self.rate.wait()
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise StoreUnavailable(f"{method} {path}: {type(exc).__name__}") from exc
        if response.status_code in self.not_found:
            return None
        if response.status_code in self.retry:
            raise StoreUnavailable(f"{method} {path}: HTTP {response.status_code}")
        if response.status_code >= 400:
            raise StoreError(f"{method} {path}: HTTP {response.status_code}")
        return response

    def test_connection(self) -> str:
        path = self.settings.get("health_path", "/")
        response = self._request("GET", path)
        return f"HTTP {response.status_code if response is not None else 'not found'} from {path}"

    def _endpoint(self, collection: CollectionSpec, name: str, required: bool = True) -> dict | None:
        endpoint = collection.options.get(name)
        if endpoint is None and required:
            raise StoreError(f"http collection {collection.address} has no options.{name} endpoint")
        return endpoint

    def _pages(self, endpoint: dict, params: dict, pagination: dict) -> Iterator[list]:
        kind = pagination.get("type")
        path = endpoint["path"]
        params = dict(params)
        if kind == "page":
            params[pagination.get("size_param", "per_page")] = pagination.get("size", 100)
            params[pagination.get("param", "page")] = pagination.get("start", 1)
        for _ in range(MAX_PAGES):
            response = self._request(endpoint.get("method", "GET"), path, params=params)
            if response is None:
                return
            body = response.json()
            rows = _dig(body, endpoint.get("rows")) or []
            yield rows
            if kind == "page":
                if len(rows) < int(pagination.get("size", 100)):
                    return
                params[pagination.get("param", "page")] += 1
            elif kind == "cursor":
                cursor = _dig(body, pagination.get("next", "next_cursor"))
                if not cursor:
                    return
                params[pagination.get("param", "cursor")] = cursor
            elif kind == "link":
                nxt = _dig(body, pagination.get("next", "next"))
                if not nxt:
                    return
                path, params = nxt, {}
            else:
                return
        raise StoreError(f"more than {MAX_PAGES} pages from {endpoint['path']}")

    @staticmethod
    def _lookup_values(collection: CollectionSpec, match: IdentityMatch) -> list:
        if match.kind == "email":
            case = collection.options.get("email_case", "insensitive")
            if case not in {"insensitive", "exact"}:
                raise StoreError(f"http collection {collection.address}: options.email_case is "
                                 "'insensitive' or 'exact'")
            values = [f for f in match.forms if unicodedata.is_normalized("NFC", f)]
            if case == "exact":
                values += [str(v).strip() for v in match.values]
            return sorted(set(values))
        if match.kind == "phone":
            return sorted({f for f in match.forms if f.isascii()})
        return sorted(set(match.values), key=str)

    def retrieve(self, collection: CollectionSpec, inputs: dict[str, list]) -> Iterator[dict]:
        lookup = self._endpoint(collection, "lookup")
        read = self._endpoint(collection, "read", required=False)
        pagination = collection.options.get("pagination") or {}
        pk = collection.primary_key
        seen: set = set()
        templates = {**{"path": lookup["path"]}, **(lookup.get("params") or {})}
        for match in identity_matches(collection, inputs):
            name = match.name
            if not any(f"{{{name}}}" in str(t) for t in templates.values()):
                continue
            for value in self._lookup_values(collection, match):
                params = {k: _fill(str(v), {name: value}, quote_values=False)
                          for k, v in (lookup.get("params") or {}).items()}
                endpoint = {**lookup, "path": _fill(lookup["path"], {name: value}, quote_values=True)}
                for rows in self._pages(endpoint, params, pagination):
                    for row in rows:
                        if match.kind and name in row and not match.accepts(row[name]):
                            continue  # the API matched more loosely than the same address/number
                        ident = tuple(row.get(k) for k in pk) if pk else tuple(sorted(row.items()))
                        if ident in seen:
                            continue
                        seen.add(ident)
                        if read:
                            response = self._request("GET", _fill(read["path"], row, quote_values=True))
                            if response is None:
                                continue
                            row = _dig(response.json(), read.get("row")) or {}
                        yield row

    def mask(self, collection: CollectionSpec, plans: Iterable) -> int:
        endpoint = self._endpoint(collection, "update")
        count = 0
        for plan in plans:
            path = _fill(endpoint["path"], {**plan.original, **plan.key}, quote_values=True)
            if self._request(endpoint.get("method", "PATCH"), path, json=plan.values) is not None:
                count += 1
        return count

    def delete(self, collection: CollectionSpec, plans: Iterable) -> int:
        endpoint = self._endpoint(collection, "delete")
        count = 0
        for plan in plans:
            path = _fill(endpoint["path"], {**plan.original, **plan.key}, quote_values=True)
            # Not found counts as done: a retried delete after a crash must not fail.
            if self._request(endpoint.get("method", "DELETE"), path) is not None:
                count += 1
        return count

    def rereads_by_key(self, collection: CollectionSpec) -> bool:
        return bool(collection.options.get("read"))

    def retrieve_by_key(self, collection: CollectionSpec, rows: list[dict]) -> Iterator[dict]:
        """Re-read rows: with ``options.read`` (``GET /members/{id}``; not found = gone), else through
        ``options.lookup`` with each row's own lookup values, keeping the rows with the same key
        (configure ``read`` when the lookup value itself is erased)."""
        read = self._endpoint(collection, "read", required=False)
        pk = collection.primary_key
        if read:
            for row in rows:
                response = self._request("GET", _fill(read["path"], row, quote_values=True))
                if response is not None:
                    found = _dig(response.json(), read.get("row"))
                    if found:
                        yield found
            return
        lookup = self._endpoint(collection, "lookup")
        templates = [lookup["path"], *[str(v) for v in (lookup.get("params") or {}).values()]]
        names = sorted({m.group(1) for t in templates for m in PLACEHOLDER.finditer(t)})
        wanted = {tuple(str(r.get(k)) for k in pk) for r in rows}
        inputs: dict[str, list] = {}
        for row in rows:
            for name in names:
                if row.get(name) not in (None, ""):
                    inputs.setdefault(name, []).append(row[name])
        seen: set = set()
        for row in self.retrieve(collection, inputs):
            ident = tuple(str(row.get(k)) for k in pk)
            if ident in wanted and ident not in seen:
                seen.add(ident)
                yield row

    def close(self) -> None:
        self.client.close()

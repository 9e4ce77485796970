"""``http``: a declarative REST connector (configured in the data map, no code).

Store ``connection``::

    base_url: https://api.example.com/v1
    auth: {header: Authorization, token: "Bearer ${MAILING_TOKEN}"}   # or token: "…" (Bearer)
    headers: {X-Api-Version: "2"}         # sent with every request (like auth: to base_url's origin only)
    timeout: 10                           # seconds per connect/read (MAMORU_OUTBOUND_READ_TIMEOUT)
    connect_timeout: 5                    # MAMORU_OUTBOUND_CONNECT_TIMEOUT
    total_timeout: 120                    # one request, redirects included (MAMORU_OUTBOUND_TOTAL_TIMEOUT)
    max_response_bytes: 10485760          # larger bodies abort (MAMORU_OUTBOUND_MAX_RESPONSE_BYTES)
    rate_limit_per_second: 20             # for all workers together (shared cache)
    rate_limit_headers: {remaining: X-RateLimit-Remaining, reset: X-RateLimit-Reset}  # default:
                                          # RateLimit-* and X-RateLimit-*; 0 remaining pauses until reset
    not_found_statuses: [404]             # read as "no rows"
    retry_statuses: [429, 502, 503, 504]  # retried with backoff (StoreUnavailable); Retry-After honoured
    allow_internal_hosts: false           # true: may reach private/loopback/link-local addresses

Security (governance/outbound.py, docs/dsr.md "HTTP connector security"): credentials (``auth``,
``token``, ``headers``, :attr:`HttpConnector.auth`) go only to ``base_url``'s origin (scheme, host,
port); a pagination link or redirect to another origin is requested without them (GET only; an
update or delete sent elsewhere is refused). Hosts resolving to private, loopback, link-local
(cloud metadata) or other non-public addresses are refused at connect time (``StoreError``) unless
``allow_internal_hosts: true``; responses are size- and time-limited; the rate is shared by all
workers.

Collection ``options``::

    lookup: {path: /members, params: {email: "{email}"}, rows: data}
    read:   {path: "/members/{id}", row: data}           # optional: full row per id
    update: {method: PATCH, path: "/members/{id}"}       # JSON body: the masked fields
    delete: {method: DELETE, path: "/members/{id}"}
    pagination: {type: page, param: page, size_param: per_page, size: 100}
             #  {type: cursor, param: cursor, next: next_cursor}
             #  {type: link, next: links.next}    # a URL in the body (relative or same-origin)
             #  {type: link_header}               # RFC 8288 ``Link: <…>; rel="next"`` header

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
import unicodedata
from collections.abc import Iterable, Iterator

import httpx
from django.conf import settings as django_settings

from dsr.connectors import http_extras, register
from dsr.connectors.base import (
    BaseConnector,
    IdentityMatch,
    StoreError,
    StoreUnavailable,
    identity_matches,
)
from governance.datamap.spec import CollectionSpec
from governance.outbound import (
    OutboundBusy,
    OutboundPolicy,
    OutboundRateLimit,
    OutboundRefused,
    OutboundResponse,
    OutboundTooLarge,
    outbound_client,
    outbound_request,
    rate_limit_wait_seconds,
    retry_after_seconds,
    url_origin,
)

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_PAGES = 10_000
RETRIES_IN_PLACE = 3  # a 429/503 with a short Retry-After is sent again this often before giving up


def _dig(data, path: str | None):
    if not path:
        return data
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def _fill(template: str, values: dict, *, quote_values: bool) -> str:
    """``{name}`` (and ``{name|filter}``, dsr.connectors.http_extras) filled from ``values``."""
    return http_extras.fill(template, values, quote_values=quote_values)


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    return bool(value)


def _number(settings: dict, name: str) -> float | None:
    value = settings.get(name)
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StoreError(f"connection.{name} must be a number, not {value!r}") from None


@register
class HttpConnector(BaseConnector):
    identifier = "http"
    verbose_name = "REST API (declarative)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        s = self.settings
        if not s.get("base_url"):
            raise StoreError(f"store {self.store_key!r}: the http connector needs connection.base_url")
        self.base_url = str(s["base_url"]).rstrip("/")
        try:
            self.origin = url_origin(self.base_url)
        except httpx.InvalidURL as exc:
            raise StoreError(f"store {self.store_key!r}: connection.base_url: {exc}") from None
        # Every configured header may be a credential: all go to base_url's origin only.
        self.credentials = {str(k): str(v) for k, v in (s.get("headers") or {}).items()}
        auth = s.get("auth") or {}
        if auth.get("token") and not auth.get("type"):  # the static form; typed auth: below
            self.credentials[auth.get("header", "Authorization")] = auth["token"]
        elif s.get("token"):
            self.credentials["Authorization"] = f"Bearer {s['token']}"
        self.not_found = set(s.get("not_found_statuses") or [404])
        self.retry = set(s.get("retry_statuses") or [429, 500, 502, 503, 504])
        max_bytes = _number(s, "max_response_bytes")
        self.policy = OutboundPolicy.from_settings(
            allow_internal_hosts=_flag(s.get("allow_internal_hosts")),
            connect_timeout=_number(s, "connect_timeout"), read_timeout=_number(s, "timeout"),
            total_timeout=_number(s, "total_timeout"),
            max_response_bytes=int(max_bytes) if max_bytes is not None else None,
        )
        headers = s.get("rate_limit_headers") or {}
        self.rate_headers = (headers.get("remaining"), headers.get("reset"))
        self.rate = OutboundRateLimit(key=f"store:{self.store_key}",
                                      per_second=float(s.get("rate_limit_per_second") or 0))
        self.max_wait = float(getattr(django_settings, "MAMORU_OUTBOUND_MAX_WAIT", 60.0))
        self.client = outbound_client(policy=self.policy)
        # An httpx.Auth (token fetch/refresh flows) applied like ``credentials``: to the store's
        # origin only, its requests limited and guarded like the others (governance.outbound).
        self.auth: httpx.Auth | None = None
        if isinstance(auth, dict) and auth.get("type"):  # basic, bearer, api_key, oauth2_* (http_auth)
            from dsr.connectors.http_auth import StoreAuth

            self.auth = StoreAuth(auth, settings=s, base_url=self.base_url)

    def _url(self, path: str) -> str:
        """``path`` under ``base_url``; an absolute URL (a pagination link) as it is."""
        if "://" in path:
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def _send(self, method: str, url: str, label: str, **kwargs) -> OutboundResponse:
        """``label``: the path as configured, for messages."""
        for attempt in range(RETRIES_IN_PLACE + 1):
            try:
                self.rate.wait(max_wait=self.max_wait)
                response = outbound_request(self.client, method, url, policy=self.policy, origin=self.origin,
                                            credentials=self.credentials, auth=self.auth, **kwargs)
            except OutboundBusy as exc:
                raise StoreUnavailable(f"{method} {label}: {exc}", retry_after=exc.seconds) from exc
            except OutboundRefused as exc:
                raise StoreError(f"{method} {label}: {exc}") from exc
            except (OutboundTooLarge, httpx.InvalidURL) as exc:  # InvalidURL: a malformed next link
                raise StoreError(f"{method} {label}: {exc}") from exc
            except httpx.TransportError as exc:
                raise StoreUnavailable(f"{method} {label}: {type(exc).__name__}") from exc
            wait = rate_limit_wait_seconds(response.headers, remaining_header=self.rate_headers[0],
                                           reset_header=self.rate_headers[1])
            retry_after = http_extras.retry_after(response.headers) or retry_after_seconds(response.headers)
            if response.status_code in self.retry and retry_after is not None:
                wait = max(wait or 0.0, retry_after)
            if wait:
                self.rate.pause(wait)  # every worker holds its requests to this store
            if response.status_code not in self.retry:
                return response
            if retry_after is None or retry_after > self.max_wait or attempt == RETRIES_IN_PLACE:
                raise StoreUnavailable(f"{method} {label}: HTTP {response.status_code}",
                                       retry_after=retry_after)
        raise AssertionError("unreachable")

    def _request(self, method: str, path: str, **kwargs) -> OutboundResponse | None:
        response = self._send(method, self._url(path), _path(path), **kwargs)
        if response.status_code in self.not_found:
            return None
        if response.status_code >= 400:
            detail = self._error_text(response)
            raise StoreError(f"{method} {_path(path)}: HTTP {response.status_code}" + (f": {detail}" if detail else ""))
        if 300 <= response.status_code < 400:
            raise StoreError(f"{method} {_path(path)}: HTTP {response.status_code} (a redirect not followed)")
        return response

    def _error_text(self, response: OutboundResponse) -> str:
        """The API's message from an error body (``connection.error_message``: where it is)."""
        try:
            body = response.json()
        except ValueError:
            return ""
        return http_extras.error_text(body, self.settings.get("error_message"))

    @staticmethod
    def _json(response: OutboundResponse, method: str, path: str):
        try:
            return response.json()
        except ValueError:
            raise StoreError(f"{method} {_path(path)}: the answer is not JSON") from None

    def test_connection(self) -> str:
        path = self.settings.get("health_path", "/")
        response = self._request("GET", path)
        return f"HTTP {response.status_code if response is not None else 'not found'} from {path}"

    def _endpoint(self, collection: CollectionSpec, name: str, required: bool = True) -> dict | None:
        endpoint = collection.options.get(name)
        if endpoint is None and required:
            raise StoreError(f"http collection {collection.address} has no options.{name} endpoint")
        return endpoint

    def _pages(self, endpoint: dict, params: dict, pagination: dict, body=None) -> Iterator[list]:
        kind = pagination.get("type")
        if kind not in (None, "page", "cursor", "link", "link_header", "offset"):
            raise StoreError(f"unknown pagination type {kind!r} (page, offset, cursor, link, link_header)")
        path = endpoint["path"]
        method = endpoint.get("method", "GET")
        pager = http_extras.Pager(pagination, params, body)  # offset, cursor (has_more, last row, in body)
        params = pager.params
        if kind == "page":
            params[pagination.get("size_param", "per_page")] = pagination.get("size", 100)
            params[pagination.get("param", "page")] = pagination.get("start", 1)
        for _ in range(MAX_PAGES):
            extra = {"json_body": pager.body} if pager.body is not None else {}
            if params:  # an empty params would replace a next link's own query (httpx)
                extra["params"] = params
            response = self._request(method, path, **extra)
            if response is None:
                return
            body = self._json(response, method, path)
            rows = http_extras.body_rows(body, endpoint)
            yield rows
            if kind == "page":
                if len(rows) < int(pagination.get("size", 100)):
                    return
                params[pagination.get("param", "page")] += 1
            elif kind in ("cursor", "offset"):
                if not pager.advance(body, rows):
                    return
                params = pager.params
            elif kind in ("link", "link_header"):
                if kind == "link":
                    nxt = _dig(body, pagination.get("next", "next"))
                else:
                    nxt = (response.links.get("next") or {}).get("url")
                if not nxt or not isinstance(nxt, str):
                    return
                # Relative links are read against the page's URL; another origin is refused when
                # requested (governance.outbound), so the store's credentials never go there.
                path, params = str(response.url.join(nxt)), {}
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

    def _read_row(self, collection: CollectionSpec, read: dict, row: dict) -> dict | None:
        """The row as ``options.read`` answers it now; None when gone (not found, ``gone_if``)."""
        read_path = _fill(read["path"], row, quote_values=True)
        params = {k: _fill(str(v), row, quote_values=False) for k, v in (read.get("params") or {}).items()}
        response = self._request("GET", read_path, **({"params": params} if params else {}))
        if response is None:
            return None
        found = http_extras.body_rows(self._json(response, "GET", read_path), {"row": read.get("row")})
        row = http_extras.shape(found[0], read, collection.options) if found else None
        return None if not row or http_extras.gone(row, read) else row

    def retrieve(self, collection: CollectionSpec, inputs: dict[str, list]) -> Iterator[dict]:
        lookups = http_extras.lookups(collection.options)
        if not lookups:
            self._endpoint(collection, "lookup")
        read = self._endpoint(collection, "read", required=False)
        pagination = collection.options.get("pagination") or {}
        pk = collection.primary_key
        seen: set = set()
        for lookup, match in ((lookup, match) for lookup in lookups for match in identity_matches(collection, inputs)):
            name = match.name
            # Each lookup serves the identity fields its path, params or body name (one per kind).
            if name not in http_extras.placeholder_names(http_extras.endpoint_templates(lookup)):
                continue
            for value in self._lookup_values(collection, match):
                params = {k: _fill(str(v), {name: value}, quote_values=False)
                          for k, v in (lookup.get("params") or {}).items()}
                endpoint = {**lookup, "path": _fill(lookup["path"], {name: value}, quote_values=True)}
                body = http_extras.fill_body(lookup["body"], {name: value}) if lookup.get("body") is not None else None
                for rows in self._pages(endpoint, params, pagination, body):
                    for row in (http_extras.shape(r, lookup, collection.options) for r in rows):
                        if match.kind and name in row and not match.accepts(row[name]):
                            continue  # the API matched more loosely than the same address/number
                        ident = tuple(row.get(k) for k in pk) if pk else tuple(sorted(row.items()))
                        if ident in seen:
                            continue
                        seen.add(ident)
                        if read:
                            row = self._read_row(collection, read, row)
                            if row is None:
                                continue
                        yield row

    def _steps(self, endpoint, values: dict, default_method: str, masked: dict | None = None) -> bool:
        """Run an ``update``/``delete`` endpoint (or its list of steps, each perhaps polling an
        asynchronous job until done); False when the first step found nothing (already gone)."""
        for position, step in enumerate(http_extras.steps(endpoint)):
            method = step.get("method", default_method)
            path = _fill(step["path"], values, quote_values=True)
            kwargs: dict = {}
            if step.get("params"):
                kwargs["params"] = {k: _fill(str(v), values, quote_values=False) for k, v in step["params"].items()}
            if masked is not None:
                kwargs["json_body"] = {step["body_key"]: masked} if step.get("body_key") else masked
            elif step.get("body") is not None:
                kwargs["json_body"] = http_extras.fill_body(step["body"], values)
            response = self._request(method, path, **kwargs)
            if response is None:
                if position == 0:
                    return False
                continue  # a later step's "not found": done by an earlier run
            if step.get("job"):
                http_extras.job_wait(lambda m, p: self._job_answer(m, p), step["job"],
                                     self._json(response, method, path) if response.content else {})
            if step.get("until_gone"):
                http_extras.gone_wait(self._gone, step["until_gone"], values)
        return True

    def _gone(self, path: str, params: dict) -> bool:
        return self._request("GET", path, **({"params": params} if params else {})) is None

    def _job_answer(self, method: str, path: str):
        response = self._request(method, path)
        return None if response is None else self._json(response, method, path)

    def mask(self, collection: CollectionSpec, plans: Iterable) -> int:
        endpoint = self._endpoint(collection, "update")
        count = 0
        for plan in plans:
            values = {**plan.original, **plan.key}
            if self._steps(endpoint, values, "PATCH", masked=plan.values):
                count += 1
        return count

    def delete(self, collection: CollectionSpec, plans: Iterable) -> int:
        endpoint = self._endpoint(collection, "delete")
        count = 0
        for plan in plans:
            # Not found counts as done: a retried delete after a crash must not fail.
            if self._steps(endpoint, {**plan.original, **plan.key}, "DELETE"):
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
                found = self._read_row(collection, read, row)
                if found:
                    yield found
            return
        lookups = http_extras.lookups(collection.options)
        if not lookups:
            self._endpoint(collection, "lookup")
        names = sorted(set().union(*(http_extras.placeholder_names(http_extras.endpoint_templates(lk))
                                     for lk in lookups)))
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


def _path(url: str) -> str:
    """A path or URL for error messages, without its query (it may hold an identity or a token)."""
    return str(url).split("?", 1)[0]

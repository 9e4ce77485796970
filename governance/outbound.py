"""Outbound HTTP to hosts a user configured (HTTP stores, consent webhooks): one hardened client.

Every request to a URL that came from the data map or the admin goes through here, so the
defaults below hold for every connector and webhook built on it:

* **Connect-time address guard** (SSRF). The host is resolved when the connection is opened and
  every address it resolves to is checked; private (RFC 1918, ULA ``fc00::/7``), loopback,
  link-local (``169.254.0.0/16`` with the cloud metadata address ``169.254.169.254``,
  ``fe80::/10``), multicast, unspecified, reserved and other non-global addresses (also inside
  IPv4-mapped, 6to4, Teredo and NAT64 IPv6 addresses) are refused. The socket connects to the
  address that was checked (no second lookup: no DNS-rebinding gap); TLS still verifies the
  certificate for the host name (SNI). Every redirect opens its connection through the same
  guard. Decimal and octal host forms (``http://2130706433/``) are refused like ``127.0.0.1``:
  what is checked is the address the name resolves to. ``allow_internal_hosts`` (a store's
  ``connection.allow_internal_hosts: true``, a webhook's checkbox) or the dev/demo setting
  ``MAMORU_OUTBOUND_ALLOW_PRIVATE`` lifts the guard (a deploy check warns in production).
* **Credentials stay with their origin.** :func:`outbound_request` sends ``credentials`` (headers)
  and ``auth`` (an ``httpx.Auth`` flow: tokens, refresh) only to ``origin`` (scheme, host, port).
  A GET/HEAD to another origin — a pagination link, a redirect — is sent *without* them; another
  method to another origin is refused (:class:`OutboundRefused`: its body is not sent there).
  Redirects are followed up to ``MAX_REDIRECTS`` (GET/HEAD; 307/308 keep the method).
* **Limits.** Bodies are streamed and abandoned past ``max_response_bytes`` (decoded size, so a
  compressed bomb stops too; :class:`OutboundTooLarge`); connect and read time-outs per socket
  operation and a total deadline for the whole exchange, redirects included (each read waits at
  most until the deadline: a server dripping bytes cannot hold a worker).
* **One rate per store for all workers** (:class:`OutboundRateLimit`): requests take evenly spaced
  slots counted in the shared cache (``CACHES["default"]``: Redis, or the database cache), and a
  ``Retry-After`` or an exhausted rate-limit header pauses every process for that store.
"""

from __future__ import annotations

import contextvars
import ipaddress
import json
import math
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx
from django.conf import settings
from django.core import checks
from django.core.cache import caches

MAX_REDIRECTS = 5
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
DEFAULT_PORTS = {"http": 80, "https": 443}
CACHE_KEY_PREFIX = "mamoru-outbound"

ERR_ADDRESS = "{host} resolves to {address}, a {kind} address: outbound requests to it are refused"
ERR_ORIGIN = ("{url} is on another origin than {origin}: refused, the credentials of {origin} are "
              "never sent elsewhere")
ERR_SCHEME = "only http:// and https:// URLs can be requested, not {url}"
ERR_TOO_LARGE = "the response from {url} is larger than {limit} bytes"


class OutboundRefused(Exception):
    """The policy refuses the request (an internal address, another origin): nothing was sent
    there, and retrying will not change it."""


class OutboundTooLarge(Exception):
    """The response body exceeded the size limit; the connection was closed."""


# --- policy -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class OutboundPolicy:
    """What one store or webhook may do. :meth:`from_settings` fills the defaults from settings."""

    allow_internal_hosts: bool = False
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    total_timeout: float = 120.0
    max_response_bytes: int = 10 * 1024 * 1024

    @classmethod
    def from_settings(cls, *, allow_internal_hosts: bool = False, connect_timeout: float | None = None,
                      read_timeout: float | None = None, total_timeout: float | None = None,
                      max_response_bytes: int | None = None) -> OutboundPolicy:
        def pick(value, name):
            return value if value not in (None, "") else getattr(settings, name)

        return cls(
            allow_internal_hosts=bool(allow_internal_hosts) or bool(settings.MAMORU_OUTBOUND_ALLOW_PRIVATE),
            connect_timeout=float(pick(connect_timeout, "MAMORU_OUTBOUND_CONNECT_TIMEOUT")),
            read_timeout=float(pick(read_timeout, "MAMORU_OUTBOUND_READ_TIMEOUT")),
            total_timeout=float(pick(total_timeout, "MAMORU_OUTBOUND_TOTAL_TIMEOUT")),
            max_response_bytes=int(pick(max_response_bytes, "MAMORU_OUTBOUND_MAX_RESPONSE_BYTES")),
        )

    @property
    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(connect=self.connect_timeout, read=self.read_timeout,
                             write=self.read_timeout, pool=self.connect_timeout)


# --- the address guard --------------------------------------------------------------------------

NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    if ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def address_refusal(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``address`` may not be connected to by default (``"private"``, ``"loopback"``, …), or
    ``None`` for a public address."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_ipv4(ip)
        if inner is not None:
            return address_refusal(inner)
    for kind, flag in (("unspecified", ip.is_unspecified), ("loopback", ip.is_loopback),
                       ("link-local", ip.is_link_local), ("multicast", ip.is_multicast),
                       ("reserved", ip.is_reserved), ("private", ip.is_private)):
        if flag:
            return kind
    if not ip.is_global:
        return "non-global"
    return None


def host_addresses(host: str, port: int, *, policy: OutboundPolicy) -> list[str]:
    """Resolve ``host`` and return its addresses; :class:`OutboundRefused` when any is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"{host}: cannot resolve ({exc.strerror})") from exc
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not policy.allow_internal_hosts:
        for address in addresses:
            kind = address_refusal(address)
            if kind:
                raise OutboundRefused(ERR_ADDRESS.format(host=host, address=address, kind=kind))
    return addresses


def url_refusal(url: str, *, allow_internal_hosts: bool = False) -> str | None:
    """Why a request to ``url`` would be refused (for form validation), or ``None``. A name that
    does not resolve now is not refused here (it is checked again when used)."""
    policy = OutboundPolicy.from_settings(allow_internal_hosts=allow_internal_hosts)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        return str(exc)
    if parsed.scheme not in DEFAULT_PORTS:
        return ERR_SCHEME.format(url=url)
    try:
        host_addresses(parsed.host, parsed.port or DEFAULT_PORTS[parsed.scheme], policy=policy)
    except OutboundRefused as exc:
        return str(exc)
    except httpcore.ConnectError:
        return None
    return None


# The deadline of the request running in this thread/context (monotonic seconds), read by every
# socket operation of the guarded streams.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("mamoru_outbound_deadline",
                                                                         default=None)


def _clamp(timeout: float | None, exc_class: type[Exception]) -> float | None:
    deadline = _deadline.get()
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise exc_class("total time limit reached")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A network stream whose reads and writes wait no longer than the request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream):
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname,
                                                      _clamp(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """Resolves, checks and connects to the checked address itself (the name is not looked up
    again by the socket layer); TLS is then started for the original host name."""

    def __init__(self, policy: OutboundPolicy):
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable | None = None) -> httpcore.NetworkStream:
        timeout = _clamp(timeout, httpcore.ConnectTimeout)
        last: Exception | None = None
        for address in host_addresses(host, port, policy=self.policy):
            try:
                stream = super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                             socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return _DeadlineStream(stream)
        raise last or httpcore.ConnectError(f"{host}: no address")


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with :class:`GuardedBackend` and no proxies from the environment."""

    def __init__(self, policy: OutboundPolicy):
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False), max_connections=20,
            max_keepalive_connections=10, keepalive_expiry=5.0, network_backend=GuardedBackend(policy),
        )


def outbound_client(*, policy: OutboundPolicy) -> httpx.Client:
    """A client for :func:`outbound_request`: guarded transport, no redirects followed by httpx,
    nothing from the environment (no proxies, no ``.netrc`` credentials)."""
    return httpx.Client(transport=GuardedTransport(policy), timeout=policy.timeout, follow_redirects=False,
                        trust_env=False)


# --- requests -----------------------------------------------------------------------------------

def url_origin(url: str | httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port) with the scheme's default port filled in."""
    url = httpx.URL(str(url))
    return url.scheme, url.host.lower(), url.port or DEFAULT_PORTS.get(url.scheme, 0)


def _origin_text(origin: tuple[str, str, int]) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + ("" if DEFAULT_PORTS.get(scheme) == port else f":{port}")


@dataclass
class OutboundResponse:
    """A fully read response (the body within the size limit)."""

    status_code: int
    headers: httpx.Headers
    url: httpx.URL
    content: bytes = b""
    redirects: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.content) if self.content else None

    def as_httpx(self, request: httpx.Request) -> httpx.Response:
        """The response as an ``httpx.Response`` (body already decoded) for an auth flow."""
        headers = [(k, v) for k, v in self.headers.multi_items()
                   if k.lower() not in {"content-encoding", "transfer-encoding", "content-length"}]
        return httpx.Response(self.status_code, headers=headers, content=self.content, request=request)

    @property
    def links(self) -> dict:
        """The ``Link`` header by ``rel`` (``links["next"]["url"]``), as httpx reads it."""
        return httpx.Response(self.status_code, headers={"link": self.headers.get("link", "")}).links


def outbound_request(client: httpx.Client, method: str, url: str, *, policy: OutboundPolicy,
                     origin: tuple[str, str, int] | None = None, credentials: Mapping[str, str] | None = None,
                     auth: httpx.Auth | None = None, headers: Mapping[str, str] | None = None,
                     params: Mapping | None = None, json_body: Any = None,
                     content: bytes | None = None) -> OutboundResponse:
    """Send one request, follow redirects, and read the body within the policy's limits.

    ``origin``: the only origin that gets ``credentials`` (headers) and ``auth`` (an ``httpx.Auth``
    whose flow — token fetches, a retry after 401 — runs here, each response read within the
    limits); default: ``url``'s own origin. A ``url`` or redirect to another origin is requested
    without them (GET/HEAD only: another method is :class:`OutboundRefused`, its body is not sent
    elsewhere). Every hop connects through the address guard. Transport errors are httpx's
    (``httpx.TimeoutException`` for the time limits).
    """
    origin = origin or url_origin(url)
    token = _deadline.set(time.monotonic() + policy.total_timeout)
    redirects: list[str] = []
    try:
        current = httpx.URL(url)
        for _ in range(MAX_REDIRECTS + 1):
            if current.scheme not in DEFAULT_PORTS:
                raise OutboundRefused(ERR_SCHEME.format(url=_redact(current)))
            own = url_origin(current) == origin
            if not own and method.upper() not in {"GET", "HEAD"}:
                raise OutboundRefused(ERR_ORIGIN.format(url=_redact(current), origin=_origin_text(origin)))
            request_headers = {**(headers or {}), **((credentials or {}) if own else {})}
            kwargs: dict = {"headers": request_headers, "params": params}
            if json_body is not None:
                kwargs["json"] = json_body
            elif content is not None:
                kwargs["content"] = content
            request = client.build_request(method, current, **kwargs)
            response = _exchange(client, request, policy, auth if own else None)
            location = response.headers.get("location")
            if response.status_code in REDIRECT_STATUSES and location:
                if method.upper() not in {"GET", "HEAD"} and response.status_code not in {307, 308}:
                    return response  # not re-sent as another method
                current = response.url.join(location)
                redirects.append(_redact(current))
                params = None  # the Location carries its own query
                continue
            response.redirects = redirects
            return response
        raise OutboundRefused(f"more than {MAX_REDIRECTS} redirects from {_redact(httpx.URL(url))}")
    finally:
        _deadline.reset(token)


def _exchange(client: httpx.Client, request: httpx.Request, policy: OutboundPolicy,
              auth: httpx.Auth | None) -> OutboundResponse:
    """One request, through ``auth``'s flow when given (each of its requests limited alike)."""
    if auth is None:
        return _send(client, request, policy)
    flow = auth.auth_flow(request)
    request = next(flow)
    while True:
        response = _send(client, request, policy)
        try:
            request = flow.send(response.as_httpx(request))
        except StopIteration:
            return response


def _send(client: httpx.Client, request: httpx.Request, policy: OutboundPolicy) -> OutboundResponse:
    response = client.send(request, stream=True)
    try:
        return _read(response, policy, [])
    finally:
        response.close()


def _read(response: httpx.Response, policy: OutboundPolicy, redirects: list[str]) -> OutboundResponse:
    limit = policy.max_response_bytes
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise OutboundTooLarge(ERR_TOO_LARGE.format(url=_redact(response.url), limit=limit))
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise OutboundTooLarge(ERR_TOO_LARGE.format(url=_redact(response.url), limit=limit))
        chunks.append(chunk)
    return OutboundResponse(status_code=response.status_code, headers=response.headers, url=response.url,
                            content=b"".join(chunks), redirects=redirects)


def _redact(url: httpx.URL) -> str:
    """A URL for messages: no user info and no query (it may carry tokens or identities)."""
    return str(url.copy_with(query=None, fragment=None, username=None, password=None))


# --- shared rate limit --------------------------------------------------------------------------

def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), ``None`` when absent or invalid."""
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


RATE_LIMIT_HEADERS = (("ratelimit-remaining", "ratelimit-reset"),
                      ("x-ratelimit-remaining", "x-ratelimit-reset"))


def rate_limit_wait_seconds(headers: Mapping[str, str], *, remaining_header: str | None = None,
                            reset_header: str | None = None, now: float | None = None) -> float | None:
    """Seconds to wait when the response says no requests remain (``RateLimit-Remaining: 0``,
    ``X-RateLimit-Remaining: 0`` or the store's own header names), until its reset (seconds, or a
    Unix time when the value is larger than a year in seconds); ``None`` when requests remain."""
    pairs = [(remaining_header.lower(), (reset_header or "").lower())] if remaining_header else RATE_LIMIT_HEADERS
    for remaining_name, reset_name in pairs:
        remaining = (headers.get(remaining_name) or "").strip()
        if not remaining:
            continue
        try:
            if float(remaining) > 0:
                return None
        except ValueError:
            continue
        try:
            reset = float((headers.get(reset_name) or "1").strip().split(",")[0])
        except ValueError:
            reset = 1.0
        if reset > 365 * 86400:  # a Unix time
            reset -= time.time() if now is None else now
        return max(0.0, reset)
    return None


@dataclass
class OutboundRateLimit:
    """At most ``per_second`` requests to one store, whichever process sends them.

    Time is cut in windows of ``n`` evenly spaced slots (``1 / per_second`` apart); a request
    takes the next free slot of the current window with an atomic ``incr`` in the shared cache
    and sleeps until the slot starts; slots already past are skipped, so a quiet period never
    lets a burst through. :meth:`pause` (a ``Retry-After``) holds every process until then.
    """

    key: str
    per_second: float = 0.0
    cache_alias: str = "default"
    taken: list = field(default_factory=list)  # (window, slot) taken by this instance (tests)

    def _cache(self):
        return caches[self.cache_alias]

    def _pause_key(self) -> str:
        return f"{CACHE_KEY_PREFIX}:{self.key}:pause"

    def pause(self, seconds: float) -> None:
        """Hold every process's requests to this store for ``seconds``."""
        until = time.time() + seconds
        cache = self._cache()
        current = cache.get(self._pause_key()) or 0
        if until > current:
            cache.set(self._pause_key(), until, timeout=math.ceil(seconds) + 5)

    def paused_for(self) -> float:
        return max(0.0, (self._cache().get(self._pause_key()) or 0) - time.time())

    def wait(self, *, max_wait: float = 60.0) -> float:
        """Wait for the store's pause and for a slot; return the seconds waited. Waits longer
        than ``max_wait`` raise :class:`OutboundBusy` (the caller retries later)."""
        began = time.monotonic()
        try:
            paused = self.paused_for()
            if paused > max_wait:
                raise OutboundBusy(paused)
            if paused:
                time.sleep(paused)
            if self.per_second > 0:
                self._take_slot(max_wait=max_wait - paused)
        except OutboundBusy:
            raise
        except Exception as exc:  # a rate that cannot be counted is not waived: try again later
            raise OutboundBusy(30, reason=f"the rate-limit cache is unreachable ({type(exc).__name__})") from exc
        return time.monotonic() - began

    def _take_slot(self, *, max_wait: float) -> None:
        spacing = 1.0 / self.per_second
        slots = max(1, math.ceil(1.0 / spacing))
        width = spacing * slots
        cache = self._cache()
        give_up = time.time() + max(max_wait, width)
        while True:
            now = time.time()
            window = math.floor(now / width)
            start = window * width
            key = f"{CACHE_KEY_PREFIX}:{self.key}:{self.per_second:g}:{window}"
            if cache.add(key, 1, timeout=math.ceil(width) + 5):
                slot = 1
            else:
                try:
                    slot = cache.incr(key)
                except ValueError:
                    continue
            due = math.floor((now - start) / spacing) + 1  # the slot running now
            if slot < due:
                slot = cache.incr(key, due - slot)  # skip the slots nobody used
            if slot <= slots:
                self.taken.append((window, slot))
                time.sleep(max(0.0, start + (slot - 1) * spacing - time.time()))
                return
            if now > give_up:
                raise OutboundBusy(width)
            time.sleep(max(0.0, start + width - time.time()))


class OutboundBusy(Exception):
    """The store asked to wait longer than the caller may wait now (retry later)."""

    def __init__(self, seconds: float, *, reason: str = ""):
        super().__init__(reason or f"the store asked to wait {seconds:.0f} s")
        self.seconds = seconds


# --- deploy check -------------------------------------------------------------------------------

@checks.register(checks.Tags.security, deploy=True)
def check_outbound_private(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """governance.W010: MAMORU_OUTBOUND_ALLOW_PRIVATE is for development and the demo."""
    if getattr(settings, "PRODUCTION", False) and getattr(settings, "MAMORU_OUTBOUND_ALLOW_PRIVATE", False):
        return [checks.Warning(
            "MAMORU_OUTBOUND_ALLOW_PRIVATE is on: HTTP stores and webhooks may reach private, loopback and "
            "cloud-metadata addresses.",
            hint="Unset it; mark only the stores or webhooks that must reach an internal host with "
                 "allow_internal_hosts.",
            id="governance.W010",
        )]
    return []

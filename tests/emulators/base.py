"""A small WSGI base for SaaS API emulators: real HTTP on loopback, inspectable state.

Each emulator (``tests/emulators/<service>.py``) subclasses :class:`Emulator`, declares its routes
with :meth:`Emulator.route` and keeps its data in plain attributes that tests read directly (the
"emulator's own state"). Written from the services' public API references: only the subset the
catalogue template uses — paths, auth, pagination, error bodies, rate limits, asynchronous jobs.

Common knobs for tests:

* ``rate_limit_after`` / ``rate_limit_count`` / ``retry_after``: after that many requests answer
  ``rate_limit_count`` requests with 429 and ``Retry-After`` (``rate_limited`` records when each
  429 was sent and ``requests`` when every request arrived, so a test can check the client waited).
* ``page_size_cap``: the largest page the API returns whatever the client asks (forces paging).
* ``requests``: every request as ``(time, method, path, query, auth_ok)``.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs, urlencode
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    base_url: str
    match: dict = field(default_factory=dict)

    def json(self):
        return json.loads(self.body or b"null")

    def form(self) -> dict[str, str]:
        return {k: v[-1] for k, v in parse_qs(self.body.decode("utf-8")).items()}

    def basic_auth(self) -> tuple[str, str] | None:
        value = self.headers.get("authorization", "")
        if not value.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(value[6:]).decode("utf-8").partition(":")
        return user, password

    def bearer(self) -> str | None:
        value = self.headers.get("authorization", "")
        return value[7:] if value.lower().startswith("bearer ") else None


@dataclass
class Response:
    status: int = 200
    body: object = None
    headers: dict[str, str] = field(default_factory=dict)


def page_url(request: Request, **params) -> str:
    query = {**request.query, **{k: str(v) for k, v in params.items()}}
    return f"{request.base_url}{request.path}?{urlencode(query)}"


class Emulator:
    """Routes, auth, rate limiting and a request log; subclasses add the service's behaviour."""

    name = "emulator"
    #: answered with ``unauthorized()`` unless :meth:`authorized` accepts the request
    public_paths: tuple[str, ...] = ()

    def __init__(self):
        self.lock = threading.RLock()
        self.routes: list[tuple[str, re.Pattern, Callable]] = []
        self.requests: list[tuple[float, str, str, dict, bool]] = []
        self.rate_limit_after: int | None = None
        self.rate_limit_count = 0
        self.retry_after = "1"
        self.rate_limited: list[float] = []
        self.page_size_cap: int | None = None
        self.base_url = ""

    # --- declaration -----------------------------------------------------------------------
    def route(self, method: str, pattern: str, handler: Callable) -> None:
        self.routes.append((method, re.compile(f"^{pattern}$"), handler))

    def authorized(self, request: Request) -> bool:
        raise NotImplementedError

    def unauthorized(self, request: Request) -> Response:
        return Response(401, {"error": "unauthorized"})

    def not_found(self, request: Request) -> Response:
        return Response(404, {"error": "not found"})

    def rate_limited_response(self, request: Request) -> Response:
        return Response(429, {"error": "rate limited"}, {"Retry-After": self.retry_after})

    def cap(self, asked) -> int:
        size = int(asked)
        return min(size, self.page_size_cap) if self.page_size_cap else size

    # --- WSGI ------------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True).items()}
        request = Request(environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/"), query, headers, body,
                          self.base_url)
        response = self.dispatch(request)
        payload = b"" if response.body is None else json.dumps(response.body).encode("utf-8")
        out_headers = [("Content-Type", "application/json"), *response.headers.items()]
        reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
                  401: "Unauthorized", 404: "Not Found", 422: "Unprocessable Entity",
                  429: "Too Many Requests"}.get(response.status, "Status")
        start_response(f"{response.status} {reason}", out_headers)
        return [payload]

    def dispatch(self, request: Request) -> Response:
        with self.lock:
            now = time.time()
            public = request.path in self.public_paths
            ok = public or self.authorized(request)
            self.requests.append((now, request.method, request.path, dict(request.query), ok))
            if not ok:
                return self.unauthorized(request)
            if (self.rate_limit_after is not None and not public
                    and sum(1 for r in self.requests if r[4]) > self.rate_limit_after and self.rate_limit_count > 0):
                self.rate_limit_count -= 1
                self.rate_limited.append(now)
                return self.rate_limited_response(request)
            for method, pattern, handler in self.routes:
                match = pattern.match(request.path)
                if match and method == request.method:
                    request.match = match.groupdict()
                    return handler(request)
            return self.not_found(request)

    def requests_after_first_429(self) -> list[float]:
        """When the requests after the first rate-limited one arrived."""
        if not self.rate_limited:
            return []
        first = self.rate_limited[0]
        return [r[0] for r in self.requests if r[0] > first]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


class Running:
    """An emulator served on loopback (port 0: a free port); ``url`` is its base URL."""

    def __init__(self, app: Emulator, *, port: int = 0):
        self.app = app
        self.server = make_server("127.0.0.1", port, app, server_class=_Server, handler_class=_QuietHandler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        app.base_url = self.url
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True, name=f"emulator-{app.name}")
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve(app: Emulator, *, port: int = 0) -> Running:
    return Running(app, port=port)

"""Issue 13, finding 1: the documented limits hold in total across processes, and a client cannot
leave its limit by claiming to forward for others.

Two real web servers (gunicorn, one worker each) share the test database and the cache — the
database cache by default, Redis with the ``redis`` marker — and every test alternates its
requests between them. Before this fix each process counted in its own memory (two processes
accepted 20 portal submissions an hour, documented 10) and the DSR API believed any
``X-Forwarded-For``.

Windows are fixed (governance/access/throttling.py); each client address or e-mail is picked so
that its window does not end during the test.
"""

from __future__ import annotations

import http.client
import itertools
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.db import connections

from dsr import throttles
from governance.access.throttling import Rate, throttle_usage
from governance.subjects.identities import email_fold
from tests.servers import REDIS_URL, database_url, server_required

ROOT = Path(__file__).resolve().parents[2]
PORTS = itertools.cycle(range(8101, 8110))  # this slice's ports
MARGIN = 180  # seconds a chosen client's windows must still run


class WebServers:
    """Two gunicorn processes (one sync worker each) on loopback, on the test databases."""

    def __init__(self, *, cache: str, env: dict[str, str], log_dir: Path):
        self.cache, self.extra_env, self.log_dir = cache, env, log_dir
        self.procs: list[subprocess.Popen] = []
        self.ports: list[int] = []

    def env(self) -> dict[str, str]:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "governance.settings",
               "MAMORU_VAR_DIR": str(settings.VAR_DIR),  # the same development secrets (HMAC keys)
               "DATABASE_URL": database_url(connections["default"].settings_dict),
               "MAMORU_KEYSTORE_URL": database_url(connections["keystore"].settings_dict),
               "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
               "MAMORU_TRUSTED_PROXIES": "", "PYTHONUNBUFFERED": "1"}
        for name in ("MAMORU_PORTAL_SUBMITS_PER_HOUR", "MAMORU_PORTAL_VERIFY_PER_10MIN",
                     "MAMORU_DSR_API_PER_HOUR", "MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR"):
            env.pop(name, None)  # the documented defaults
        if self.cache == "redis":
            env["CACHE_URL"] = REDIS_URL
        else:
            env.pop("CACHE_URL", None)  # the default: the database cache in the (test) database
        return {**env, **self.extra_env}

    def start(self) -> WebServers:
        env = self.env()
        for _ in range(2):
            port = next(PORTS)
            log = open(self.log_dir / f"web-{port}.log", "w")  # noqa: SIM115 - closed with the process
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "governance.wsgi:application", "--bind", f"127.0.0.1:{port}",
                 "--workers", "1", "--timeout", "120", "--graceful-timeout", "5"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            self.ports.append(port)
        for port, proc in zip(self.ports, self.procs, strict=True):
            self._wait(port, proc)
        return self

    def _wait(self, port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"web server exited:\n{self.logs()}")
            try:
                if http_request(port, "GET", "/privacy/")[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"web server on {port} not ready:\n{self.logs()}")

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in self.log_dir.glob("web-*.log"))

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)


def http_request(port: int, method: str, path: str, *, body: str | None = None, headers: dict | None = None,
                 source: str = "127.0.0.1") -> tuple[int, dict[str, str], str]:
    """One request from ``source`` (any 127.0.0.0/8 address: the server sees it as REMOTE_ADDR)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(source, 0))
    try:
        conn.request(method, path, body=body.encode() if body is not None else None, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read().decode()
    finally:
        conn.close()


def fresh(candidates, *windows: tuple[str, Rate], fold=lambda value: value) -> str:
    """The first candidate whose windows in every (scope, rate) still run for MARGIN seconds."""
    for value in candidates:
        if all(throttle_usage(scope=scope, value=fold(value), rate=rate).seconds_left > MARGIN
               for scope, rate in windows):
            return value
    raise AssertionError("no candidate with a long enough window")


# Committed data the servers can read; both databases (the servers write data keys too).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["database", pytest.param("redis", marks=pytest.mark.redis)])
def web(request, workspaces, tmp_path):
    """A factory: ``web(**env)`` starts the two servers with the cache of this parameter."""
    if request.param == "redis":
        server_required("redis")
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        for key in client.scan_iter(match="*mamoru-rl:*"):
            client.delete(key)
    started: list[WebServers] = []

    def start(**env: str) -> WebServers:
        servers = WebServers(cache=request.param, env=env, log_dir=tmp_path).start()
        started.append(servers)
        return servers

    yield start
    for servers in started:
        servers.stop()


class Browser:
    """A visitor at one client address, with the CSRF cookie the portal's forms need."""

    def __init__(self, source: str):
        self.source, self.cookie = source, ""

    def get(self, port: int, path: str) -> tuple[int, dict, str]:
        status, headers, body = http_request(port, "GET", path, source=self.source,
                                             headers={"Cookie": self.cookie} if self.cookie else {})
        if match := re.search(r"csrftoken=([^;]+)", headers.get("set-cookie", "")):
            self.cookie = f"csrftoken={match.group(1)}"
        return status, headers, body

    def post_form(self, port: int, path: str, data: dict) -> tuple[int, dict, str]:
        _status, _headers, page = self.get(port, path)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        return http_request(port, "POST", path, body=urlencode({**data, "csrfmiddlewaretoken": token}),
                            source=self.source, headers={"Cookie": self.cookie,
                                                         "Content-Type": "application/x-www-form-urlencoded"})


def test_the_portal_accepts_the_documented_limits_in_total(web):
    # given: two web processes; one visitor whose windows run through the test
    servers = web()
    source = fresh((f"127.0.0.{n}" for n in range(2, 250)),
                   (throttles.SCOPE_PORTAL_SUBMIT, Rate.per_hour(10)), (throttles.SCOPE_PORTAL_VERIFY,
                                                                        Rate.per_minutes(20, 10)))
    visitor = Browser(source)
    # when: 20 submissions (each for another address), alternating between the processes
    submits = [visitor.post_form(port, "/privacy/request/",
                                 {"workspace": "shop-jp", "request_type": "erasure", "email": f"visitor{i}@example.jp"})
               for i, port in zip(range(20), itertools.cycle(servers.ports), strict=False)]
    # then: exactly the documented 10 per hour were accepted; the rest got the form and Retry-After
    statuses = [status for status, _h, _b in submits]
    assert statuses.count(302) == 10 and statuses.count(429) == 10, statuses
    refused = next(s for s in submits if s[0] == 429)
    assert "Too many requests from your network." in refused[2] and 0 < int(refused[1]["retry-after"]) <= 3600
    # when: 40 code entries for one request, alternating between the processes
    verify = submits[0][1]["location"]
    entries = [visitor.post_form(port, verify, {"code": "000000"})[0]
               for _i, port in zip(range(40), itertools.cycle(servers.ports), strict=False)]
    # then: exactly the documented 20 per 10 minutes reached the code check
    assert entries.count(429) == 20 and entries.count(200) == 20, entries


def test_the_dsr_api_is_not_bypassed_by_rotating_x_forwarded_for(web):
    # given: two web processes, no trusted proxy; a client whose window runs through the test
    servers = web()
    source = fresh((f"127.0.1.{n}" for n in range(2, 250)), (throttles.SCOPE_API, Rate.per_hour(60)))
    # when: 80 submissions, each claiming to forward for another address, alternating processes
    answers = []
    for i, port in zip(range(80), itertools.cycle(servers.ports), strict=False):
        body = f'{{"workspace": "shop-eu", "request_type": "access", "email": "person{i}@example.com"}}'
        answers.append(http_request(port, "POST", "/api/v1/dsr/requests", body=body, source=source,
                                    headers={"Content-Type": "application/json",
                                             "X-Forwarded-For": f"203.0.113.{i % 250}"}))
    # then: the documented 60 an hour in total, then 429 rate_limited with Retry-After
    statuses = [status for status, _h, _b in answers]
    assert statuses[:60] == [201] * 60 and statuses[60:] == [429] * 20, statuses
    for _status, headers, body in answers[60:]:
        assert '"code":"rate_limited"' in body and 0 < int(headers["retry-after"]) <= 3600


def test_behind_a_trusted_proxy_clients_and_mailboxes_count_apart(web):
    # given: both processes behind a trusted proxy (loopback), a low per-client API limit
    servers = web(MAMORU_TRUSTED_PROXIES="127.0.0.0/8", MAMORU_DSR_API_PER_HOUR="3")
    api = Rate.per_hour(3)
    mail_rate = Rate.per_hour(5)
    a = fresh((f"198.51.100.{n}" for n in range(1, 250)), (throttles.SCOPE_API, api))
    b = fresh((f"198.51.100.{n}" for n in range(int(a.rsplit(".", 1)[1]) + 1, 250)), (throttles.SCOPE_API, api))
    address = fresh((f"mailbox{n}@example.jp" for n in range(100)), (throttles.SCOPE_CODE_MAIL, mail_rate),
                    fold=email_fold)
    ports = itertools.cycle(servers.ports)

    def submit(client: str, email: str, forwarded_prefix: str = "") -> tuple[int, dict, str]:
        body = f'{{"workspace": "shop-eu", "request_type": "access", "email": "{email}"}}'
        return http_request(next(ports), "POST", "/api/v1/dsr/requests", body=body,
                            headers={"Content-Type": "application/json",
                                     "X-Forwarded-For": forwarded_prefix + client})

    # when / then: each client has its own 3 an hour, across both processes
    assert [submit(a, f"a{i}@example.com")[0] for i in range(4)] == [201, 201, 201, 429]
    # a forged first hop does not make client a someone else (the proxy appended the real address)
    assert submit(a, "a9@example.com", forwarded_prefix="192.0.2.77, ")[0] == 429
    assert [submit(b, f"b{i}@example.com")[0] for i in range(3)] == [201, 201, 201]
    # and one mailbox gets at most 5 codes an hour, however many clients ask
    clients = [f"192.0.2.{n}" for n in range(10, 250)]
    codes = [submit(client, address.upper() if i % 2 else address)[0] for i, client in enumerate(clients[:6])]
    assert codes == [201] * 5 + [429], codes

"""No personal data in log lines: identities in query strings are redacted by the web server's
access log (the gunicorn that ``run_demo`` starts) and by Django's logging configuration."""

from __future__ import annotations

import io
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from governance.demo.management.commands.run_demo import web_argv
from governance.logredact import RedactFilter

EMAIL = "hanako.sato@example.jp"
PHONE = "09012345678"
URLS = [
    f"/api/v1/consent/check?purpose=analytics&identity_kind=email&identity_value={EMAIL}",
    f"/api/v1/consent/state?identity_kind=phone&identity_value={PHONE}&workspace=shop-jp",
    f"/api/v1/profiles/?email={EMAIL.replace('@', '%40')}&workspace=shop-jp",
    f"/admin/subjects/profile/?q={EMAIL}",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("gunicorn did not start")


def test_the_demo_web_servers_access_log_holds_no_identity(tmp_path: Path):
    # given: the web server exactly as `manage.py run_demo` starts it, logging to a file
    port, log = _free_port(), tmp_path / "access.log"
    argv = web_argv(python=sys.executable, bind=f"127.0.0.1:{port}", workers=1, access_log=str(log))
    env = {**os.environ, "MAMORU_VAR_DIR": str(tmp_path / "var")}
    env.pop("DATABASE_URL", None)
    env.pop("MAMORU_KEYSTORE_URL", None)
    proc = subprocess.Popen(argv, env=env, cwd=Path(__file__).resolve().parents[2],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(port, proc)
        # when: identities arrive in query strings (and in a referer)
        for url in URLS:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{url}",
                                             headers={"Referer": f"https://shop.example/?email={EMAIL}"})
            try:
                urllib.request.urlopen(request, timeout=10).close()  # noqa: S310 - loopback
            except urllib.error.HTTPError as exc:
                exc.close()
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=15)
    # then: every request is logged, none with its identity
    lines = log.read_text().splitlines()
    assert len(lines) >= len(URLS)  # (+ the admin's redirect to its login page)
    text = "\n".join(lines)
    for secret in (EMAIL, EMAIL.replace("@", "%40"), PHONE):
        assert secret not in text
    assert "identity_value=[redacted]" in text and "email=[redacted]" in text and "q=[redacted]" in text
    assert "purpose=analytics" in text and "workspace=shop-jp" in text  # the rest stays readable


def _console_handler() -> logging.Handler:
    handlers = [h for h in logging.getLogger().handlers if any(isinstance(f, RedactFilter) for f in h.filters)]
    assert handlers, "the root console handler has no RedactFilter (settings.LOGGING)"
    return handlers[0]


@pytest.mark.parametrize("logger_name", ["django.server", "django.request"])
def test_djangos_request_logging_holds_no_identity(logger_name):
    # given: the console handler from settings.LOGGING, writing into a buffer
    handler = _console_handler()
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    try:
        # when: the request line is logged as runserver does, and an error names the caller
        logging.getLogger(logger_name).warning(
            '"%s" %s %s', f"GET /api/v1/consent/check?identity_value={EMAIL}&purpose=analytics HTTP/1.1", 400, 88)
        logging.getLogger(logger_name).warning("Lookup failed for %s", EMAIL)
    finally:
        handler.setStream(old)
    # then
    out = buffer.getvalue()
    assert EMAIL not in out
    assert "identity_value=[redacted]&purpose=analytics HTTP/1.1" in out
    assert out.count("[redacted]") == 2

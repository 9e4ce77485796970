"""Long request lines (issue 13 QA): gunicorn as ``run_demo`` and the image start it reads request
lines up to 8190 bytes (its maximum; its default 4094 answered long /api/ queries with an HTML 414
page), so such requests reach Django and get its answer in problem JSON."""

from __future__ import annotations

import socket
from pathlib import Path

from tests.core.test_serving import PROMPT, _start_web, _stop


def _raw_get(port: int, target: str) -> tuple[int, str, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=PROMPT) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _sep, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _c, value in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers.get("content-type", ""), body


def test_a_request_line_past_gunicorns_default_reaches_the_api_and_gets_problem_json(tmp_path: Path):
    proc, port = _start_web(tmp_path, GUNICORN_THREADS="2")
    try:
        # given a request line of 6,000 bytes (over gunicorn's default 4094, under nginx's 8 KiB buffer)
        target = "/api/v1/no-such-endpoint/?q=" + "x" * 6000
        status, content_type, body = _raw_get(port, target)
        # then Django answers it, under /api/ in problem JSON, not gunicorn with an HTML 414 page
        assert status != 414, body[:300]
        assert content_type.startswith("application/problem+json"), (status, content_type, body[:300])
        # and past gunicorn's maximum (8190) the line is still refused
        assert _raw_get(port, "/api/v1/no-such-endpoint/?q=" + "x" * 9000)[0] == 414
    finally:
        _stop(proc)

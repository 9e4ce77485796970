"""Serving (issue 13, finding 2): the web server exactly as ``run_demo`` starts it keeps answering
while clients hold idle, half-sent or lingering connections; a saturated process sheds requests
with 503 + Retry-After; ``run_demo`` keeps its children up and takes them down with it."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from governance.demo.management.commands.run_demo import web_argv

ROOT = Path(__file__).resolve().parents[2]
# Far below what starved the old servers (a sync worker: 30 s until WORKER TIMEOUT; stock gthread:
# 5 s per idle connection, a half-sent request forever, 2 s per lingering close), far above what a
# free thread needs on a busy machine.
PROMPT = 10.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, path: str, *, timeout: float = PROMPT) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, dict(exc.headers), exc.read()


def _start_web(tmp_path: Path, **env_extra: str) -> tuple[subprocess.Popen, int]:
    """gunicorn as ``run_demo`` starts it (one process; threads from the environment), on SQLite."""
    port = _free_port()
    env = {**os.environ, "MAMORU_VAR_DIR": str(tmp_path / "var"), **env_extra}
    for name in ("DATABASE_URL", "MAMORU_KEYSTORE_URL", "WEB_CONCURRENCY", "MAMORU_OVERLOAD_MAX_INFLIGHT"):
        if name not in env_extra:
            env.pop(name, None)
    argv = web_argv(python=sys.executable, bind=f"127.0.0.1:{port}", workers=1)
    proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "web.log", "wb"))  # noqa: SIM115 - closed with the process
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gunicorn exited with {proc.returncode}: {(tmp_path / 'web.log').read_text()[-3000:]}")
        try:
            if _get(port, "/healthz", timeout=60)[0] == 200:
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise AssertionError("gunicorn did not answer /healthz")


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _connect(port: int, sent: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=PROMPT)
    if sent:
        sock.sendall(sent)
    return sock


def _healthz_answers(port: int) -> None:
    for _ in range(3):
        status, _headers, _body = _get(port, "/healthz")
        assert status == 200


# -- finding 2: idle and slow clients ------------------------------------------------------------

def test_idle_half_sent_and_lingering_connections_do_not_starve_the_web_server(tmp_path: Path):
    # given: the web server as `run_demo` starts it, one process with two threads
    proc, port = _start_web(tmp_path, GUNICORN_THREADS="2")
    held: list[socket.socket] = []
    try:
        # when: two clients open connections and send nothing (what froze run_demo for 33 s)
        held += [_connect(port) for _ in range(2)]
        # then: it still answers at once
        _healthz_answers(port)

        # when: many more idle connections, requests whose headers never finish, a body that
        # stops half-way, and clients that keep their socket open after a "Connection: close"
        held += [_connect(port) for _ in range(40)]
        held += [_connect(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n") for _ in range(10)]
        held.append(_connect(port, b"POST /api/v1/consent/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Content-Type: application/json\r\nContent-Length: 900\r\n\r\n{"))
        for _ in range(10):
            sock = _connect(port, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")  # answered; the client keeps it open
            held.append(sock)
        # then: still answered (a free thread, an event loop that never waits for a client)
        _healthz_answers(port)
        assert proc.poll() is None
    finally:
        for sock in held:
            sock.close()
        _stop(proc)
    assert "WORKER TIMEOUT" not in (tmp_path / "web.log").read_text()


def test_stalled_chunked_uploads_do_not_hold_the_threads(tmp_path: Path):
    # given: one process with two threads; a client has 60 s to send its request (the stalls below
    # last for the whole test, so only buffering can keep the threads free, not the read timeout)
    proc, port = _start_web(tmp_path, GUNICORN_THREADS="2", GUNICORN_REQUEST_READ_TIMEOUT="60")
    held: list[socket.socket] = []
    chunked_head = (b"POST /api/v1/consent/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        # when: four times as many chunked uploads as threads send one chunk, then nothing
        # (issue 13 QA, /tmp/prompts/slow3.py: /healthz took 25-40 s)
        held += [_connect(port, chunked_head + b"1\r\n[\r\n") for _ in range(8)]
        # then: health checks are answered at once
        _healthz_answers(port)
        # and a chunked upload that arrives in pieces is still served
        sock = _connect(port, chunked_head + b"1\r\n[\r\n")
        held.append(sock)
        time.sleep(0.3)
        sock.sendall(b"1\r\n]\r\n0\r\n\r\n")
        answer = sock.recv(65536)
        assert re.match(rb"HTTP/1\.1 (\d+)", answer) and not answer.startswith(b"HTTP/1.1 5"), answer[:200]
        assert proc.poll() is None
    finally:
        for sock in held:
            sock.close()
        _stop(proc)


# -- graceful overload ---------------------------------------------------------------------------

def test_a_saturated_web_process_answers_503_with_retry_after_and_recovers(tmp_path: Path):
    # given: one process, three threads, at most one request running (MAMORU_OVERLOAD_MAX_INFLIGHT),
    # bodies handed to the thread unbuffered
    proc, port = _start_web(tmp_path, GUNICORN_THREADS="3", MAMORU_OVERLOAD_MAX_INFLIGHT="1",
                            GUNICORN_BUFFER_BODY_BYTES="0")
    stalled = None
    try:
        # when: a request occupies the one slot (its form body never arrives: CSRF waits for it)
        stalled = _connect(port, b"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                 b"Content-Type: application/x-www-form-urlencoded\r\n"
                                 b"Content-Length: 1000\r\n\r\nusername=")
        # then: other requests are shed with a problem, Retry-After and no waiting
        shed = _wait_for(port, "/admin/login/", lambda status: status == 503)
        status, headers, body = shed
        assert headers["Retry-After"] == "1"
        assert headers["Content-Type"] == "application/problem+json"
        problem = json.loads(body)
        assert problem["code"] == "overloaded" and problem["status"] == 503
        # health checks are never shed
        _healthz_answers(port)

        # when: the slow request ends
        stalled.close()
        stalled = None
        # then: requests are served again
        status, _headers, _body = _wait_for(port, "/admin/login/", lambda status: status != 503)
        assert status == 200
    finally:
        if stalled is not None:
            stalled.close()
        _stop(proc)


def _wait_for(port: int, path: str, condition, *, within: float = 60.0):
    deadline = time.monotonic() + within
    while True:
        answer = _get(port, path)
        if condition(answer[0]) or time.monotonic() > deadline:
            return answer
        time.sleep(0.05)


# -- run_demo supervision ------------------------------------------------------------------------

class RunDemo:
    """``manage.py run_demo`` as a user starts it, on SQLite and the filesystem broker."""

    def __init__(self, tmp_path: Path):
        self.port = _free_port()
        self.log = tmp_path / "run_demo.log"
        env = {**os.environ, "MAMORU_VAR_DIR": str(tmp_path / "var"), "PYTHONUNBUFFERED": "1",
               "GUNICORN_THREADS": "2"}
        for name in ("DATABASE_URL", "MAMORU_KEYSTORE_URL", "CELERY_BROKER_URL", "WEB_CONCURRENCY"):
            env.pop(name, None)
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_demo", "--bind", f"127.0.0.1:{self.port}",
             "--web-workers", "1", "--concurrency", "1"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"),  # noqa: SIM115
            start_new_session=True,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def pid(self, name: str, *, after: int | None = None, within: float = 60.0) -> int:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            pids = [int(p) for p in re.findall(rf"(?:started|restarted) {name} \(pid (\d+)", self.text())]
            if pids and pids[-1] != after:
                return pids[-1]
            time.sleep(0.2)
        raise AssertionError(f"no new {name} process:\n{self.text()[-3000:]}")

    def children(self) -> list[int]:
        return [int(p) for p in re.findall(r"(?:started|restarted) \S+ \(pid (\d+)", self.text())]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in self.children():
            _kill_group(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _gone(pids: list[int], within: float = 60.0) -> list[int]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    return [pid for pid in pids if _alive(pid)]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux-only")
def test_run_demo_restarts_a_killed_worker_and_stops_everything_on_sigterm(tmp_path: Path):
    demo = RunDemo(tmp_path)
    try:
        worker = demo.pid("worker")
        web = demo.pid("web")
        # when: the Celery worker is killed
        os.killpg(worker, signal.SIGKILL)
        # then: it is started again, the web server kept running, and it was logged
        again = demo.pid("worker", after=worker)
        assert _alive(again) and _alive(web)
        assert re.search(r"worker exited \(signal 9\); restarting", demo.text())

        # when: run_demo gets SIGTERM
        children = demo.children()
        demo.proc.send_signal(signal.SIGTERM)
        # then: it stops every child and exits cleanly
        assert demo.proc.wait(timeout=60) == 0
        assert _gone(children, within=5) == []
    finally:
        demo.kill()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux-only")
def test_children_of_a_killed_run_demo_do_not_run_on(tmp_path: Path):
    demo = RunDemo(tmp_path)
    try:
        demo.pid("worker")
        demo.pid("web")
        children = demo.children()
        # when: run_demo itself is killed (SIGKILL, the out-of-memory killer: no clean-up runs)
        demo.proc.kill()
        demo.proc.wait(timeout=10)
        # then: its web server, worker and helpers stop too instead of holding the port
        assert _gone(children) == []
    finally:
        demo.kill()

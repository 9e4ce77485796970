"""Keep a demo's child processes running: a crashed child is restarted, the others keep going.

``manage.py run_demo`` starts the web server, the Celery worker (with beat) and helper services
through a :class:`Supervisor`. When one exits on its own (a crash, an out-of-memory kill, a
SIGKILL), it is started again after a backoff (1 s, doubling up to 30 s; back to 1 s once it has
stayed up for a minute) with a log line each time. Only Ctrl-C / SIGTERM stops everything.

On Linux each child is also told to receive SIGTERM when the supervisor itself dies (``prctl``
``PR_SET_PDEATHSIG``): a supervisor killed with SIGKILL (or by the out-of-memory killer) leaves no
web server or worker running on, holding the port and the broker's messages.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
STABLE_SECONDS = 60.0


PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int):
    """A ``preexec_fn``: SIGTERM this child when the process that started it dies (Linux)."""

    def preexec() -> None:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


@dataclass
class Child:
    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    restarts: int = 0
    backoff: float = BACKOFF_FIRST
    restart_at: float | None = None
    history: list[dict] = field(default_factory=list)


class Supervisor:
    def __init__(self, commands: dict[str, list[str]], *, env: dict | None = None,
                 log: Callable[[str], None] = print, backoff_first: float = BACKOFF_FIRST,
                 backoff_max: float = BACKOFF_MAX, stable_seconds: float = STABLE_SECONDS):
        self.children = {name: Child(name, argv, backoff=backoff_first) for name, argv in commands.items()}
        self.env = env if env is not None else os.environ.copy()
        self.log = log
        self.backoff_first = backoff_first
        self.backoff_max = backoff_max
        self.stable_seconds = stable_seconds

    def _spawn(self, child: Child) -> None:
        preexec = _die_with_parent(os.getpid()) if sys.platform.startswith("linux") else None
        child.proc = subprocess.Popen(child.argv, env=self.env, start_new_session=True, preexec_fn=preexec)
        child.started_at = time.monotonic()
        child.restart_at = None

    def start(self) -> None:
        for child in self.children.values():
            self._spawn(child)
            self.log(f"started {child.name} (pid {child.proc.pid})")

    def check(self) -> None:
        """Restart children that exited (after their backoff); call this every half second or so."""
        now = time.monotonic()
        for child in self.children.values():
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.restarts += 1
                    self._spawn(child)
                    self.log(f"restarted {child.name} (pid {child.proc.pid}, restart {child.restarts})")
                continue
            code = child.proc.poll() if child.proc else None
            if code is None:
                continue
            if now - child.started_at >= self.stable_seconds:
                child.backoff = self.backoff_first  # it ran fine for a while: start over quickly
            delay = child.backoff
            child.backoff = min(child.backoff * 2, self.backoff_max)
            child.restart_at = now + delay
            how = f"signal {-code}" if code < 0 else f"status {code}"
            child.history.append({"exited": how, "at": time.time(), "restart_in": delay})
            self.log(f"{child.name} exited ({how}); restarting in {delay:.0f}s — the others keep running")

    def stop(self, timeout: float = 15) -> None:
        """Warm shutdown of every child (each stops its own children), then SIGKILL what is left."""
        for child in self.children.values():
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for child in self.children.values():
            if child.proc is None:
                continue
            try:
                child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(timeout=10)

    def pid(self, name: str) -> int | None:
        child = self.children[name]
        return child.proc.pid if child.proc and child.proc.poll() is None else None

"""A gunicorn threaded worker that idle and slow clients cannot starve.

gunicorn's ``gthread`` worker hands every accepted connection to a thread at once; the thread then
waits (up to 5 s) for the first bytes and, once some arrive, blocks reading the rest of the request
for as long as the client takes. A few clients that open connections and send nothing, or send a
request a byte at a time, hold every thread: the server stops answering (issue 13, finding 2).

:class:`BufferingThreadWorker` (``worker_class`` in ``governance/gunicorn_conf.py``) reads requests
in the worker's event loop instead, as a buffering reverse proxy does:

- an accepted connection (and a kept-alive one) waits in the event loop, costing no thread;
- what the client sends is read there without blocking until the request's headers are complete
  and, for a body up to ``GUNICORN_BUFFER_BODY_BYTES`` (1 MiB; ``Content-Length`` or chunked, the
  latter counted as sent, chunk framing included), the body too; only then does a thread take the
  request, with every byte already in memory (a chunked upload that stalled held a thread until the
  client went away: issue 13, QA of finding 2);
- a connection that has not delivered that much within ``GUNICORN_REQUEST_READ_TIMEOUT`` seconds
  (10) of being accepted (or of starting its next request) is closed; idle kept-alive connections
  still close after ``keepalive`` seconds;
- larger bodies are read by the thread (streamed, as before).

TLS (``certfile``) and HTTP/2 prior knowledge make the event loop unable to read plain HTTP/1 bytes;
with either, connections are handed over as soon as they are readable (never blocking a thread
while idle). Terminate TLS at the proxy.

When a response ends the connection, gunicorn 27 lingers on it (up to 2 s, RFC 9112 §9.6) until
the client closes its side, in the event loop: one client that keeps its socket open froze the
whole process for 2 s. Here the lingering close is one more event in the loop.

The time a request was handed to the thread pool is kept for :mod:`governance.overload`, which
sheds requests that waited too long for a thread.
"""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from functools import partial

from gunicorn.http2 import negotiation
from gunicorn.workers.gthread import TConn, ThreadWorker

from governance import overload

HEADER_END = b"\r\n\r\n"
MAX_HEADER_BYTES = 64 * 1024  # gunicorn's own limits (request line 8190, 100 fields) reject more
RECV_BYTES = 64 * 1024
LINGER_SECONDS = 2.0  # as gunicorn.util.close_graceful
LINGER_MAX_BYTES = 64 * 1024
MAX_CHUNK_LINE_BYTES = 4096  # a chunk-size line (hex size and extensions) longer than this is malformed


def _env_float(name: str, default: float) -> float:
    value = os.environ.get(name, "")
    return float(value) if value.strip() else default


def _body_framing(head: bytes) -> int | str | None:
    """How the body of a request whose head (up to the blank line) is ``head`` is framed: its
    ``Content-Length`` (0 without a body), ``"chunked"``, or None when neither can be trusted (an
    unknown transfer coding, both headers, a malformed length: gunicorn's parser rejects those)."""
    length: int | None = 0
    chunked = seen_length = False
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name = name.strip().lower()
        if name == b"transfer-encoding":
            if chunked or value.strip().lower() != b"chunked":
                return None
            chunked = True
        elif name == b"content-length":
            value = value.strip()
            if seen_length or not value.isdigit():
                return None
            seen_length, length = True, int(value)
    if chunked:
        return None if seen_length else "chunked"
    return length


_HEX = frozenset(b"0123456789abcdefABCDEF")


def _chunks_complete(data: bytes | bytearray, pos: int) -> tuple[bool | None, int]:
    """Walk a chunked body in ``data`` from ``pos`` (the start of a chunk-size line): ``(True, _)``
    once the last chunk and the trailer section are in, ``(False, pos)`` while more is needed
    (``pos``: the first chunk not complete yet, where the next walk resumes), ``(None, _)`` when the
    framing is malformed (the parser answers 400)."""
    while True:
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            return (None if len(data) - pos > MAX_CHUNK_LINE_BYTES else False), pos
        size_text = bytes(data[pos:eol]).split(b";", 1)[0].strip()
        if not size_text or not _HEX.issuperset(size_text):
            return None, pos
        size = int(size_text, 16)
        if size == 0:  # the last chunk, then trailer fields up to a blank line
            return data.find(HEADER_END, eol) >= 0, pos
        end = eol + 2 + size
        if len(data) < end + 2:
            return False, pos
        if data[end:end + 2] != b"\r\n":
            return None, pos
        pos = end + 2


def request_buffered(data: bytes | bytearray, *, max_body: int, scan: list[int] | None = None) -> bool:
    """Whether ``data`` holds enough of a request to hand it to a thread without that thread
    waiting for the client: the whole head and the whole body, ``Content-Length`` or chunked
    (bodies longer than ``max_body`` and anything malformed: the whole head). ``scan`` (a
    one-item list, kept per connection) lets a chunked body's walk resume where it stopped."""
    end = data.find(HEADER_END)
    if end < 0:
        return len(data) > MAX_HEADER_BYTES  # the parser will answer 431/400
    body_start = end + len(HEADER_END)
    framing = _body_framing(bytes(data[:end]))
    if framing is None:
        return True
    if framing == "chunked":
        if len(data) - body_start > max_body:
            return True  # a larger body is streamed by the thread
        scan = scan if scan is not None else [0]
        complete, pos = _chunks_complete(data, max(body_start, scan[0]))
        scan[0] = pos
        return complete is not False
    if framing > max_body:
        return True
    return len(data) >= body_start + framing


class LoopConn(TConn):
    """A connection whose graceful close, when asked for in the event loop, happens there."""

    lingerer = None

    def close(self, graceful=False):
        if graceful and self.lingerer is not None:
            self.lingerer(self.sock)
        else:
            super().close(graceful)


class BufferingThreadWorker(ThreadWorker):
    """``gthread`` with request buffering in the event loop (see the module docstring)."""

    def init_process(self):
        self.read_timeout = _env_float("GUNICORN_REQUEST_READ_TIMEOUT", 10.0)
        self.max_body = int(_env_float("GUNICORN_BUFFER_BODY_BYTES", 1024 * 1024))
        self.reading: dict[TConn, float] = {}  # connections being read in the loop -> deadline
        self.lingering: dict[socket.socket, list] = {}  # closing sockets -> [deadline, bytes read]
        super().init_process()

    def _can_buffer(self, client) -> bool:
        return not self.cfg.is_ssl and not negotiation.prior_knowledge_allowed(self.cfg, client)

    # -- connections waiting for (the rest of) a request: in the event loop ----------------------
    def accept(self, listener):
        try:
            client_sock, client_addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = LoopConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        conn.lingerer = self._linger  # finish_request (event loop) closes gracefully through it
        self._read_in_loop(conn)

    def on_client_socket_readable(self, conn, client):
        """A kept-alive connection starts its next request: read it in the loop as well."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._read_in_loop(conn)
        self._on_readable(conn, client)

    def _read_in_loop(self, conn: TConn) -> None:
        conn.early = bytearray()
        conn.scan = [0]
        self.reading[conn] = time.monotonic() + self.read_timeout
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: TConn, client) -> None:
        if conn not in self.reading:
            return
        if not self._can_buffer(conn.client):
            self._hand_over(conn)  # readable: a thread will not wait for the first bytes
            return
        try:
            data = conn.sock.recv(RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:  # closed by the client
            self._drop(conn)
            return
        conn.early += data
        if request_buffered(conn.early, max_body=self.max_body, scan=conn.scan):
            self._hand_over(conn)

    def _hand_over(self, conn: TConn) -> None:
        del self.reading[conn]
        self.poller.unregister(conn.sock)
        conn.data_ready = True
        self.enqueue_req(conn)

    def _drop(self, conn: TConn) -> None:
        self.reading.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (OSError, KeyError, ValueError):
            pass
        self.nr_conns -= 1
        conn.close()

    def _linger(self, sock: socket.socket) -> None:
        """Half-close, then read (and discard) until the client closes or 2 s have passed."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, self._on_linger_readable)
        except (OSError, ValueError, KeyError):
            sock.close()
            return
        self.lingering[sock] = [time.monotonic() + LINGER_SECONDS, 0]

    def _on_linger_readable(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        state = self.lingering.get(sock)
        if state is None:
            return
        state[1] += len(data)
        if not data or state[1] >= LINGER_MAX_BYTES:
            self._closed_lingering(sock)

    def _closed_lingering(self, sock: socket.socket) -> None:
        self.lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (OSError, KeyError, ValueError):
            pass
        sock.close()

    def murder_pending(self):
        """Close connections that did not deliver a request in time (and, once the worker is
        stopping, those that have not started one)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, deadline in list(self.reading.items()):
            if now >= deadline or (not self.alive and not conn.early):
                self._drop(conn)
        for sock, (deadline, _read) in list(self.lingering.items()):
            if now >= deadline:
                self._closed_lingering(sock)

    # -- in a thread: the request is already in memory -------------------------------------------
    def enqueue_req(self, conn):
        conn.enqueued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn):
        overload.set_dispatched_at(getattr(conn, "enqueued_at", None))
        try:
            early = getattr(conn, "early", None)
            if early:
                conn.early = bytearray()
                conn.sock.setblocking(True)
                conn.init()  # the HTTP/1 parser (no TLS, no HTTP/2 preface sniffing here)
                conn.parser.unreader.unread(bytes(early))
            return super().handle(conn)
        finally:
            overload.set_dispatched_at(None)

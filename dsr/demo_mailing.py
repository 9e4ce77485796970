"""A tiny mailing-list REST API (WSGI) for the demo and the tests, backed by a SQLite file.

Endpoints (Bearer token required)::

    GET    /health
    GET    /members?email=…&page=1&per_page=100   -> {"data": [...], "page": 1}
    GET    /members/<id>                          -> {"data": {...}} | 404
    PATCH  /members/<id>   (JSON fields)          -> {"data": {...}} | 404
    DELETE /members/<id>                          -> 204 | 404

``fail_next`` (answer 503 that many times), ``down`` (always 503) and ``delay_seconds`` let tests
simulate an unreliable vendor.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from pathlib import Path
from socketserver import ThreadingMixIn
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

COLUMNS = ("id", "email", "name", "list_name", "status", "subscribed_at")
MEMBER_PATH = re.compile(r"^/members/(\d+)$")


class MailingApp:
    def __init__(self, db_path: str | Path, *, token: str = "demo-mailing-token"):  # noqa: S107 - demo
        self.db_path = str(db_path)
        self.token = token
        self.fail_next = 0
        self.down = False
        self.delay_seconds = 0.0
        self.requests = 0
        self.lock = threading.Lock()
        with self._db() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS members (id INTEGER PRIMARY KEY, email TEXT, name TEXT, "
                "list_name TEXT, status TEXT, subscribed_at TEXT)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS members_email_nocase ON members(email COLLATE NOCASE)")

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.db_path, timeout=30)
        db.row_factory = sqlite3.Row
        return db

    def add_members(self, rows: list[dict]) -> None:
        with self._db() as db:
            db.executemany(
                "INSERT INTO members (id, email, name, list_name, status, subscribed_at) "
                "VALUES (:id, :email, :name, :list_name, :status, :subscribed_at)",
                [{c: r.get(c) for c in COLUMNS} for r in rows],
            )

    def all_members(self) -> list[dict]:
        with self._db() as db:
            return [dict(r) for r in db.execute("SELECT * FROM members ORDER BY id")]

    def __call__(self, environ, start_response):
        self.requests += 1
        if self.delay_seconds:
            time.sleep(self.delay_seconds)
        with self.lock:
            failing = self.down or self.fail_next > 0
            if self.fail_next > 0:
                self.fail_next -= 1
        if failing:
            return self._json(start_response, "503 Service Unavailable", {"error": "try later"})
        path = environ.get("PATH_INFO", "")
        method = environ["REQUEST_METHOD"]
        if path == "/health":
            return self._json(start_response, "200 OK", {"ok": True})
        if environ.get("HTTP_AUTHORIZATION") != f"Bearer {self.token}":
            return self._json(start_response, "401 Unauthorized", {"error": "token required"})
        if path == "/members" and method == "GET":
            query = parse_qs(environ.get("QUERY_STRING", ""))
            page = max(1, int(query.get("page", ["1"])[0]))
            per_page = min(500, max(1, int(query.get("per_page", ["100"])[0])))
            email = query.get("email", [""])[0]
            with self._db() as db:
                rows = db.execute(
                    "SELECT * FROM members WHERE email = ? COLLATE NOCASE ORDER BY id LIMIT ? OFFSET ?",
                    (email, per_page, (page - 1) * per_page),
                ).fetchall()
            return self._json(start_response, "200 OK", {"data": [dict(r) for r in rows], "page": page})
        match = MEMBER_PATH.match(path)
        if not match:
            return self._json(start_response, "404 Not Found", {"error": "no such endpoint"})
        member_id = int(match.group(1))
        with self._db() as db:
            row = db.execute("SELECT * FROM members WHERE id = ?", (member_id,)).fetchone()
            if row is None:
                return self._json(start_response, "404 Not Found", {"error": "no such member"})
            if method == "GET":
                return self._json(start_response, "200 OK", {"data": dict(row)})
            if method == "DELETE":
                db.execute("DELETE FROM members WHERE id = ?", (member_id,))
                start_response("204 No Content", [])
                return [b""]
            if method == "PATCH":
                length = int(environ.get("CONTENT_LENGTH") or 0)
                body = json.loads(environ["wsgi.input"].read(length) or b"{}")
                changes = {k: v for k, v in body.items() if k in COLUMNS and k != "id"}
                for name, value in changes.items():
                    # Column names come from the fixed COLUMNS list above, never from the client.
                    db.execute(f"UPDATE members SET {name} = ? WHERE id = ?", (value, member_id))  # noqa: S608
                row = db.execute("SELECT * FROM members WHERE id = ?", (member_id,)).fetchone()
                return self._json(start_response, "200 OK", {"data": dict(row)})
        return self._json(start_response, "405 Method Not Allowed", {"error": "method"})

    @staticmethod
    def _json(start_response, status: str, body: dict):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


def serve(app: MailingApp, *, host: str = "127.0.0.1", port: int = 0) -> tuple[_Server, threading.Thread]:
    """Serve ``app`` on loopback in a background thread; port 0 picks a free port."""
    server = make_server(host, port, app, server_class=_Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True, name="demo-mailing")
    thread.start()
    return server, thread

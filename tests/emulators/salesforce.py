"""Salesforce REST API emulator (the subset the ``salesforce`` catalogue template uses).

From the REST API Developer Guide: the OAuth 2.0 refresh-token flow at My Domain's
``POST /services/oauth2/token`` (form: grant_type, client_id, client_secret, refresh_token; the
answer has ``access_token`` and ``instance_url``, no new refresh token); ``Authorization: Bearer``
with the session; ``GET /services/data/vXX.X/query?q=SOQL`` (``SELECT … FROM Contact|Lead WHERE
Field = '…' [OR Field = '…']``: text compared ignoring case, ``\\'`` escapes a quote) answering
``{totalSize, done, records, nextRecordsUrl}`` with ``records[].attributes``; the next batch at
``GET nextRecordsUrl`` (batch size from ``Sforce-Query-Options: batchSize=…``, 200–2000);
``GET``/``DELETE …/sobjects/{Contact|Lead}/{Id}`` (``?fields=`` limits the fields; a deleted
record is in the Recycle Bin and reads as 404 ``ENTITY_IS_DELETED``); error bodies are lists
``[{"message", "errorCode"}]``; an expired session is 401 ``INVALID_SESSION_ID``; the org's
request allowance 403 ``REQUEST_LIMIT_EXCEEDED``; an overloaded server 503 (with ``Retry-After``).
"""

from __future__ import annotations

import re
import secrets

from tests.emulators.base import Emulator, Request, Response

VERSION = "v61.0"
DATA = f"/services/data/{VERSION}"
SOQL = re.compile(r"^SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<object>\w+)\s+WHERE\s+(?P<where>.+)$", re.S)
CONDITION = re.compile(r"(\w+)\s*=\s*'((?:[^'\\]|\\.)*)'")
PREFIX = {"Contact": "003", "Lead": "00Q"}


def _errors(status: int, code: str, message: str) -> Response:
    return Response(status, [{"message": message, "errorCode": code}])


class SalesforceEmulator(Emulator):
    name = "salesforce"
    public_paths = ("/services/oauth2/token",)

    def __init__(self, *, client_id: str = "sf-client", client_secret: str = "sf-secret",
                 refresh_token: str = "sf-refresh"):
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.sessions: dict[str, int] = {}  # access token -> requests made with it
        #: a session expires after this many requests (stands in for the session timeout in tests)
        self.max_session_uses: int | None = None
        self.tokens_issued = 0
        self.expired_rejections = 0
        self.records: dict[str, dict[str, dict]] = {"Contact": {}, "Lead": {}}
        self.recycle_bin: dict[str, dict] = {}
        self.cursors: dict[str, list[dict]] = {}
        self.request_limit_exceeded = False
        self.route("POST", r"/services/oauth2/token", self.token)
        self.route("GET", DATA + r"/limits", self.limits)
        self.route("GET", DATA + r"/query", self.query)
        self.route("GET", DATA + r"/query/(?P<cursor>[\w-]+)", self.query_more)
        self.route("GET", DATA + r"/sobjects/(?P<object>Contact|Lead)/(?P<id>\w+)", self.record_get)
        self.route("DELETE", DATA + r"/sobjects/(?P<object>Contact|Lead)/(?P<id>\w+)", self.record_delete)

    def authorized(self, request: Request) -> bool:
        token = request.bearer()
        if token not in self.sessions:
            return False
        self.sessions[token] += 1
        if self.max_session_uses is not None and self.sessions[token] > self.max_session_uses:
            self.expired_rejections += 1
            return False
        return True

    def unauthorized(self, request: Request) -> Response:
        return _errors(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def not_found(self, request: Request) -> Response:
        return _errors(404, "NOT_FOUND", "The requested resource does not exist")

    def rate_limited_response(self, request: Request) -> Response:
        response = _errors(503, "SERVER_UNAVAILABLE", "The server is temporarily unable to handle the request")
        response.headers["Retry-After"] = self.retry_after
        return response

    # --- data ------------------------------------------------------------------------------
    def add(self, sobject: str, **fields) -> dict:
        rid = f"{PREFIX[sobject]}5g00000{len(self.records[sobject]) + len(self.recycle_bin) + 1:08d}"
        record = {"Id": rid, "CreatedDate": "2024-01-01T00:00:00.000+0000",
                  "LastModifiedDate": "2024-01-02T00:00:00.000+0000", **fields}
        self.records[sobject][rid] = record
        return record

    def _view(self, sobject: str, record: dict, fields: list[str]) -> dict:
        out = {"attributes": {"type": sobject, "url": f"{DATA}/sobjects/{sobject}/{record['Id']}"}}
        out.update({f: record.get(f) for f in fields} if fields else record)
        return out

    # --- endpoints -------------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        form = request.form()
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") != self.refresh_token:
            return Response(400, {"error": "invalid_grant", "error_description": "expired access/refresh token"})
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return Response(400, {"error": "invalid_client", "error_description": "invalid client credentials"})
        token = "00D" + secrets.token_hex(12)
        self.sessions[token] = 0
        self.tokens_issued += 1
        return Response(200, {"access_token": token, "instance_url": self.base_url, "token_type": "Bearer",
                              "id": f"{self.base_url}/id/00D000000000001/005000000000001",
                              "issued_at": "1700000000000", "signature": "c2lnbmF0dXJl"})

    def limits(self, request: Request) -> Response:
        return Response(200, {"DailyApiRequests": {"Max": 15000, "Remaining": 14990}})

    def query(self, request: Request) -> Response:
        if self.request_limit_exceeded:
            return _errors(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
        match = SOQL.match(request.query.get("q", "").strip())
        if not match or match.group("object") not in self.records:
            return _errors(400, "MALFORMED_QUERY", "unexpected token")
        fields = [f.strip() for f in match.group("fields").split(",")]
        conditions = [(f, v.replace("\\'", "'").replace("\\\\", "\\"))
                      for f, v in CONDITION.findall(match.group("where"))]
        if not conditions:
            return _errors(400, "MALFORMED_QUERY", "unexpected token")
        sobject = match.group("object")
        found = [self._view(sobject, r, fields) for r in self.records[sobject].values()
                 if any(str(r.get(f) or "").lower() == v.lower() for f, v in conditions)]
        options = request.headers.get("sforce-query-options", "")
        size = int(re.search(r"batchSize=(\d+)", options).group(1)) if "batchSize=" in options else 2000
        return self._batch(found, self.cap(size))

    def _batch(self, rows: list[dict], size: int) -> Response:
        body = {"totalSize": len(rows), "done": len(rows) <= size, "records": rows[:size]}
        if len(rows) > size:
            cursor = f"01g5g00000{len(self.cursors) + 1:05d}-{size}"
            self.cursors[cursor] = rows[size:]
            body["nextRecordsUrl"] = f"{DATA}/query/{cursor}"
        return Response(200, body)

    def query_more(self, request: Request) -> Response:
        rows = self.cursors.pop(request.match["cursor"], None)
        if rows is None:
            return _errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._batch(rows, int(request.match["cursor"].rsplit("-", 1)[1]))

    def record_get(self, request: Request) -> Response:
        record = self.records[request.match["object"]].get(request.match["id"])
        if record is None:
            if request.match["id"] in self.recycle_bin:
                return _errors(404, "ENTITY_IS_DELETED", "entity is deleted")
            return self.not_found(request)
        fields = [f for f in request.query.get("fields", "").split(",") if f]
        return Response(200, self._view(request.match["object"], record, fields))

    def record_delete(self, request: Request) -> Response:
        record = self.records[request.match["object"]].pop(request.match["id"], None)
        if record is None:
            if request.match["id"] in self.recycle_bin:
                return _errors(404, "ENTITY_IS_DELETED", "entity is deleted")
            return self.not_found(request)
        self.recycle_bin[record["Id"]] = record
        return Response(204)

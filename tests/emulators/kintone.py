"""kintone REST API emulator (the subset the ``kintone`` catalogue template uses).

From the kintone REST API reference: ``X-Cybozu-API-Token`` (one app's token); ``GET
/k/v1/records.json?app=…&query=…&fields[0]=…&totalCount=true`` with the query language's
``field like "…"`` (partial match, ignoring case), ``=`` (exact), ``order by $id asc`` and
``limit N offset M`` (limit at most 500, offset at most 10,000; default limit 100); records as
``{code: {"type", "value"}}`` with ``$id`` and ``$revision``; ``totalCount`` a string; ``GET
/k/v1/record.json?app=…&id=…`` (``{"record": …}``; 404 ``GAIA_RE01`` when there is none); ``DELETE
/k/v1/records.json?app=…&ids[0]=…`` (``{}``; no recycle bin); ``GET /k/v1/app.json?id=…``; errors
``{"code", "id", "message"}``; more than the concurrent requests allowed: 429 without
``Retry-After``.
"""

from __future__ import annotations

import re

from tests.emulators.base import Emulator, Request, Response

QUERY = re.compile(r'^(?P<field>[^\s]+)\s+(?P<op>like|=)\s+"(?P<value>(?:[^"\\]|\\.)*)"'
                   r'(?:\s+order by \$id asc)?(?:\s+limit (?P<limit>\d+))?(?:\s+offset (?P<offset>\d+))?\s*$')
TYPES = {"email": "LINK", "phone": "LINK", "notes": "MULTI_LINE_TEXT"}


def _error(status: int, code: str, message: str) -> Response:
    return Response(status, {"code": code, "id": "1505999166-897850006", "message": message})


class KintoneEmulator(Emulator):
    name = "kintone"

    def __init__(self, *, app: int = 7, api_token: str = "kintone-token"):
        super().__init__()
        self.app = app
        self.api_token = api_token
        self.records: dict[int, dict] = {}
        self.deleted: set[int] = set()
        self.next_id = 1
        self.route("GET", r"/k/v1/app\.json", self.app_get)
        self.route("GET", r"/k/v1/records\.json", self.records_get)
        self.route("GET", r"/k/v1/record\.json", self.record_get)
        self.route("DELETE", r"/k/v1/records\.json", self.records_delete)

    def authorized(self, request: Request) -> bool:
        return request.headers.get("x-cybozu-api-token") == self.api_token

    def unauthorized(self, request: Request) -> Response:
        return _error(401, "GAIA_IA02", "指定したAPIトークンが不正です。")

    def not_found(self, request: Request) -> Response:
        return _error(404, "GAIA_AP01", "指定したアプリ（id: 0）が見つかりません。")

    def rate_limited_response(self, request: Request) -> Response:
        return _error(429, "GAIA_TM12", "同時に処理できるリクエスト数の上限を超えています。")

    def _app_ok(self, value) -> bool:
        return str(value) == str(self.app)

    # --- data ------------------------------------------------------------------------------
    def add_record(self, **values) -> dict:
        rid = self.next_id
        self.next_id += 1
        record = {"$id": {"type": "__ID__", "value": str(rid)}, "$revision": {"type": "__REVISION__", "value": "1"}}
        for code in ("email", "phone", "name", "company", "postal_code", "address", "notes"):
            record[code] = {"type": TYPES.get(code, "SINGLE_LINE_TEXT"), "value": values.get(code, "")}
        self.records[rid] = record
        return record

    def emails(self) -> list[str]:
        return [r["email"]["value"] for r in self.records.values()]

    # --- endpoints -------------------------------------------------------------------------
    def app_get(self, request: Request) -> Response:
        if not self._app_ok(request.query.get("id")):
            return self.not_found(request)
        return Response(200, {"appId": str(self.app), "code": "", "name": "顧客リスト", "description": ""})

    def records_get(self, request: Request) -> Response:
        if not self._app_ok(request.query.get("app")):
            return self.not_found(request)
        match = QUERY.match(request.query.get("query", ""))
        if not match:
            return _error(400, "GAIA_IQ11", "指定したフィールド、またはクエリの記述が正しくありません。")
        limit, offset = int(match.group("limit") or 100), int(match.group("offset") or 0)
        if limit > 500 or offset > 10000:
            return _error(400, "CB_VA01", "入力内容が正しくありません。limit は 500 以下、offset は 10000 以下です。")
        code, value = match.group("field"), match.group("value").replace('\\"', '"').replace("\\\\", "\\").lower()
        found = [r for r in self.records.values() if code in r and (
            value in str(r[code]["value"]).lower() if match.group("op") == "like"
            else value == str(r[code]["value"]).lower())]
        rows = found[offset:offset + self.cap(limit)]
        fields = [v for k, v in sorted(request.query.items()) if k.startswith("fields[")]
        if fields:
            rows = [{k: v for k, v in r.items() if k in fields} for r in rows]
        total = str(len(found)) if request.query.get("totalCount") == "true" else None
        return Response(200, {"records": rows, "totalCount": total})

    def record_get(self, request: Request) -> Response:
        if not self._app_ok(request.query.get("app")):
            return self.not_found(request)
        rid = int(request.query.get("id") or 0)
        record = self.records.get(rid)
        if record is None:
            return _error(404, "GAIA_RE01", f"指定したレコード（id: {rid}）が見つかりません。")
        return Response(200, {"record": record})

    def records_delete(self, request: Request) -> Response:
        if not self._app_ok(request.query.get("app")):
            return self.not_found(request)
        ids = [int(v) for k, v in request.query.items() if k.startswith("ids[")]
        missing = [i for i in ids if i not in self.records]
        if missing:
            return _error(404, "GAIA_RE01", f"指定したレコード（id: {missing[0]}）が見つかりません。")
        for rid in ids:
            del self.records[rid]
            self.deleted.add(rid)
        return Response(200, {})

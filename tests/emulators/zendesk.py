"""Zendesk Support API emulator (the subset the ``zendesk`` catalogue template uses).

From Zendesk's API reference: HTTP Basic auth as ``{agent e-mail}/token`` with an API token;
``GET /api/v2/users/search.json?query=…`` (Zendesk search syntax; matches parts of values, so a
similar address comes back too; offset pages linked by ``next_page``); ``GET
/api/v2/users/{id}.json``; ``DELETE /api/v2/users/destroy_many.json?ids=…`` answers a
``job_status`` that is polled at ``GET /api/v2/job_statuses/{id}.json`` (queued → working →
completed) and soft-deletes; ``DELETE /api/v2/deleted_users/{id}.json`` then deletes permanently
(only a soft-deleted user: 404 before the job completed); requested tickets ``GET
/api/v2/users/{id}/tickets/requested.json`` with cursor pages (``page[size]``, ``page[after]``,
``meta.has_more``, ``meta.after_cursor``); tickets soft-deleted then permanently deleted;
errors ``{"error", "description"}``; 429 with ``Retry-After`` (seconds).
"""

from __future__ import annotations

import base64
import re

from tests.emulators.base import Emulator, Request, Response, page_url

QUERY = re.compile(r'^(email|phone):"?(.*?)"?$')


def _error(status: int, error: str, description: str) -> Response:
    return Response(status, {"error": error, "description": description})


class ZendeskEmulator(Emulator):
    name = "zendesk"

    def __init__(self, *, agent_email: str = "dpo@example.com", api_token: str = "zd-token"):
        super().__init__()
        self.agent_email = agent_email
        self.api_token = api_token
        self.users: dict[int, dict] = {}
        self.tickets: dict[int, dict] = {}
        self.soft_deleted_users: set[int] = set()
        self.soft_deleted_tickets: set[int] = set()
        self.jobs: dict[str, dict] = {}
        #: how many polls a job answers "queued"/"working" before "completed"
        self.job_polls_needed = 3
        self.job_polls: list[str] = []
        self.route("GET", r"/api/v2/users/me\.json", self.me)
        self.route("GET", r"/api/v2/users/search\.json", self.users_search)
        self.route("DELETE", r"/api/v2/users/destroy_many\.json", self.users_destroy_many)
        self.route("GET", r"/api/v2/users/(?P<id>\d+)\.json", self.user_get)
        self.route("DELETE", r"/api/v2/deleted_users/(?P<id>\d+)\.json", self.user_delete_permanently)
        self.route("GET", r"/api/v2/job_statuses/(?P<id>[0-9a-f]+)\.json", self.job_get)
        self.route("GET", r"/api/v2/users/(?P<id>\d+)/tickets/requested\.json", self.tickets_requested)
        self.route("GET", r"/api/v2/tickets/(?P<id>\d+)\.json", self.ticket_get)
        self.route("DELETE", r"/api/v2/tickets/(?P<id>\d+)\.json", self.ticket_delete)
        self.route("DELETE", r"/api/v2/deleted_tickets/(?P<id>\d+)\.json", self.ticket_delete_permanently)

    def authorized(self, request: Request) -> bool:
        return request.basic_auth() == (f"{self.agent_email}/token", self.api_token)

    def unauthorized(self, request: Request) -> Response:
        return _error(401, "Couldn't authenticate you", "")

    def not_found(self, request: Request) -> Response:
        return _error(404, "RecordNotFound", "Not found")

    def rate_limited_response(self, request: Request) -> Response:
        response = _error(429, "APIRateLimitExceeded", "Number of allowed API requests per minute exceeded")
        response.headers["Retry-After"] = self.retry_after
        return response

    # --- data ------------------------------------------------------------------------------
    def add_user(self, **fields) -> dict:
        uid = 1000 + len(self.users) + 1
        user = {"id": uid, "url": f"{self.base_url}/api/v2/users/{uid}.json", "name": "", "email": None,
                "phone": None, "role": "end-user", "active": True, "time_zone": "Tokyo", "locale": "ja",
                "notes": "", "details": "", "external_id": None, "created_at": "2024-01-01T00:00:00Z", **fields}
        self.users[uid] = user
        return user

    def add_ticket(self, requester_id: int, subject: str, description: str = "") -> dict:
        tid = len(self.tickets) + 1
        ticket = {"id": tid, "requester_id": requester_id, "subject": subject, "description": description,
                  "status": "open", "created_at": "2024-03-01T00:00:00Z"}
        self.tickets[tid] = ticket
        return ticket

    # --- endpoints -------------------------------------------------------------------------
    def me(self, request: Request) -> Response:
        return Response(200, {"user": {"id": 1, "email": self.agent_email, "role": "admin"}})

    def users_search(self, request: Request) -> Response:
        match = QUERY.match(request.query.get("query", ""))
        if not match:
            return _error(400, "InvalidValue", "query is missing or invalid")
        field_name, value = match.group(1), match.group(2).lower()
        found = [u for u in self.users.values()
                 if u["active"] and value and value in str(u.get(field_name) or "").lower()]
        per_page = self.cap(request.query.get("per_page", 100))
        page = int(request.query.get("page", 1))
        rows = found[(page - 1) * per_page:page * per_page]
        more = page * per_page < len(found)
        return Response(200, {"users": rows, "count": len(found),
                              "next_page": page_url(request, page=page + 1, per_page=per_page) if more else None,
                              "previous_page": None})

    def user_get(self, request: Request) -> Response:
        user = self.users.get(int(request.match["id"]))
        return Response(200, {"user": user}) if user else self.not_found(request)

    def users_destroy_many(self, request: Request) -> Response:
        ids = [int(i) for i in request.query.get("ids", "").split(",") if i.strip().isdigit()]
        job_id = base64.b16encode(f"job{len(self.jobs) + 1:05d}".encode()).decode().lower()
        self.jobs[job_id] = {"id": job_id, "status": "queued", "ids": ids, "polls": 0, "total": len(ids),
                             "progress": 0, "message": None, "results": None}
        return Response(200, {"job_status": self._job_view(job_id)})

    def _job_view(self, job_id: str) -> dict:
        job = self.jobs[job_id]
        return {"id": job_id, "url": f"{self.base_url}/api/v2/job_statuses/{job_id}.json", "status": job["status"],
                "total": job["total"], "progress": job["progress"], "message": job["message"],
                "results": job["results"]}

    def job_get(self, request: Request) -> Response:
        job = self.jobs.get(request.match["id"])
        if job is None:
            return self.not_found(request)
        self.job_polls.append(job["id"])
        job["polls"] += 1
        if job["status"] in {"queued", "working"}:
            if job["polls"] >= self.job_polls_needed:
                for uid in job["ids"]:
                    if uid in self.users:
                        self.users[uid]["active"] = False
                        self.soft_deleted_users.add(uid)
                job.update(status="completed", progress=job["total"], message="Completed",
                           results=[{"id": uid, "action": "delete", "success": True} for uid in job["ids"]])
            else:
                job["status"] = "working"
        return Response(200, {"job_status": self._job_view(job["id"])})

    def user_delete_permanently(self, request: Request) -> Response:
        uid = int(request.match["id"])
        if uid not in self.soft_deleted_users or uid not in self.users:
            return self.not_found(request)
        user = self.users.pop(uid)
        self.soft_deleted_users.discard(uid)
        return Response(200, {"deleted_user": {"id": uid, "name": user["name"], "active": False}})

    def tickets_requested(self, request: Request) -> Response:
        uid = int(request.match["id"])
        if uid not in self.users:
            return self.not_found(request)
        found = [t for t in self.tickets.values() if t["requester_id"] == uid and t["id"] not in self.soft_deleted_tickets]
        size = self.cap(request.query.get("page[size]", 100))
        after = request.query.get("page[after]")
        start = int(base64.b64decode(after).decode()) if after else 0
        rows = found[start:start + size]
        more = start + size < len(found)
        cursor = base64.b64encode(str(start + size).encode()).decode()
        return Response(200, {"tickets": rows,
                              "meta": {"has_more": more, "after_cursor": cursor if rows else None, "before_cursor": None},
                              "links": {"next": page_url(request, **{"page[after]": cursor}) if more else None,
                                        "prev": None}})

    def ticket_get(self, request: Request) -> Response:
        tid = int(request.match["id"])
        ticket = self.tickets.get(tid)
        if ticket is None or tid in self.soft_deleted_tickets:
            return self.not_found(request)
        return Response(200, {"ticket": ticket})

    def ticket_delete(self, request: Request) -> Response:
        tid = int(request.match["id"])
        if tid not in self.tickets or tid in self.soft_deleted_tickets:
            return self.not_found(request)
        self.soft_deleted_tickets.add(tid)
        return Response(204)

    def ticket_delete_permanently(self, request: Request) -> Response:
        tid = int(request.match["id"])
        if tid not in self.soft_deleted_tickets:
            return self.not_found(request)
        self.soft_deleted_tickets.discard(tid)
        del self.tickets[tid]
        return Response(204)

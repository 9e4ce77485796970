"""Klaviyo API emulator (the subset the ``klaviyo`` catalogue template uses).

From Klaviyo's API reference (JSON:API, revision header): ``Authorization: Klaviyo-API-Key …``;
``GET /api/profiles/?filter=equals(email,"…")`` or ``equals(phone_number,"…")`` (e-mail compared
ignoring case; ``page[size]`` up to 100; the next page's full URL in ``links.next`` with
``page[cursor]``); ``GET /api/profiles/{id}/`` (``{"data": {type, id, attributes}}``); ``POST
/api/data-privacy-deletion-jobs/`` with the profile's id answers 202 without a body and deletes
asynchronously (here: the profile still reads ``deletion_reads`` times, then 404); ``GET
/api/accounts/``; errors ``{"errors": [{id, status, code, title, detail}]}``; 429 ``throttled``
with ``Retry-After`` (seconds) and ``RateLimit-*`` headers.
"""

from __future__ import annotations

import base64
import re

from tests.emulators.base import Emulator, Request, Response, page_url

FILTER = re.compile(r'^equals\((email|phone_number),"((?:[^"\\]|\\.)*)"\)$')


def _errors(status: int, code: str, title: str, detail: str) -> Response:
    return Response(status, {"errors": [{"id": "00000000-0000-0000-0000-000000000000", "status": status,
                                         "code": code, "title": title, "detail": detail, "source": {}}]})


class KlaviyoEmulator(Emulator):
    name = "klaviyo"

    def __init__(self, *, api_key: str = "pk_emulator", revision: str = "2024-10-15"):
        super().__init__()
        self.api_key = api_key
        self.revision = revision
        self.profiles: dict[str, dict] = {}
        #: deletion requests received (profile ids) and profiles deleted so far
        self.deletion_jobs: list[str] = []
        self.deleted: set[str] = set()
        #: reads that still show a profile after its deletion was requested (the job is running)
        self.deletion_reads = 2
        self.pending: dict[str, int] = {}
        self.reads_while_deleting = 0
        self.route("GET", r"/api/accounts/", self.accounts)
        self.route("GET", r"/api/profiles/", self.profiles_list)
        self.route("GET", r"/api/profiles/(?P<id>\w+)/", self.profile_get)
        self.route("POST", r"/api/data-privacy-deletion-jobs/", self.deletion_job_create)

    def authorized(self, request: Request) -> bool:
        return (request.headers.get("authorization") == f"Klaviyo-API-Key {self.api_key}"
                and request.headers.get("revision") == self.revision)

    def unauthorized(self, request: Request) -> Response:
        return _errors(401, "not_authenticated", "Authentication credentials were not provided.",
                       "Missing or invalid private key.")

    def not_found(self, request: Request) -> Response:
        return _errors(404, "not_found", "Not found.", "A profile with id was not found.")

    def rate_limited_response(self, request: Request) -> Response:
        response = _errors(429, "throttled", "Request was throttled.",
                           f"Request was throttled. Expected available in {self.retry_after} second.")
        response.headers.update({"Retry-After": self.retry_after, "RateLimit-Limit": "150",
                                 "RateLimit-Remaining": "0", "RateLimit-Reset": self.retry_after})
        return response

    # --- data ------------------------------------------------------------------------------
    def add_profile(self, **attributes) -> dict:
        pid = f"01HK{len(self.profiles) + 1:022d}"
        profile = {"type": "profile", "id": pid, "attributes": {
            "email": None, "phone_number": None, "external_id": None, "first_name": None, "last_name": None,
            "organization": None, "title": None, "image": None, "created": "2024-01-01T00:00:00+00:00",
            "updated": "2024-01-02T00:00:00+00:00", "last_event_date": None,
            "location": {"address1": None, "city": None, "country": None, "zip": None, "ip": None},
            "properties": {}, **attributes}}
        self.profiles[pid] = profile
        return profile

    def _view(self, profile: dict) -> dict:
        return {**profile, "links": {"self": f"{self.base_url}/api/profiles/{profile['id']}/"}}

    # --- endpoints -------------------------------------------------------------------------
    def accounts(self, request: Request) -> Response:
        return Response(200, {"data": [{"type": "account", "id": "AbC123", "attributes": {}}]})

    def profiles_list(self, request: Request) -> Response:
        match = FILTER.match(request.query.get("filter", ""))
        if not match:
            return _errors(400, "invalid", "Invalid input.", "'filter' is not a valid filter for profiles")
        name, value = match.group(1), match.group(2).replace('\\"', '"').replace("\\\\", "\\")
        found = [p for p in self.profiles.values()
                 if str(p["attributes"].get(name) or "").lower() == value.lower()]
        size = self.cap(min(int(request.query.get("page[size]", 20)), 100))
        start = int(base64.b64decode(request.query["page[cursor]"]).decode()) if request.query.get("page[cursor]") else 0
        rows = found[start:start + size]
        nxt = None
        if start + size < len(found):
            nxt = page_url(request, **{"page[cursor]": base64.b64encode(str(start + size).encode()).decode()})
        return Response(200, {"data": [self._view(p) for p in rows],
                              "links": {"self": page_url(request), "next": nxt, "prev": None}})

    def profile_get(self, request: Request) -> Response:
        pid = request.match["id"]
        if pid in self.pending:  # the deletion job is still running
            self.reads_while_deleting += 1
            self.pending[pid] -= 1
            if self.pending[pid] < 0:
                del self.pending[pid]
                self.profiles.pop(pid, None)
                self.deleted.add(pid)
        profile = self.profiles.get(pid)
        return Response(200, {"data": self._view(profile)}) if profile else self.not_found(request)

    def deletion_job_create(self, request: Request) -> Response:
        body = request.json() or {}
        attributes = ((body.get("data") or {}).get("attributes") or {})
        subject = ((attributes.get("profile") or {}).get("data") or {})
        if (body.get("data") or {}).get("type") != "data-privacy-deletion-job" or subject.get("type") != "profile":
            return _errors(400, "invalid", "Invalid input.", "A data-privacy-deletion-job with a profile is required.")
        identifiers = [k for k in ("email", "phone_number") if (subject.get("attributes") or {}).get(k)]
        if subject.get("id"):
            identifiers.append("id")
        if len(identifiers) != 1:
            return _errors(400, "invalid", "Invalid input.", "Exactly one of email, phone_number or id is required.")
        pid = subject.get("id")
        self.deletion_jobs.append(pid)
        if pid in self.profiles and pid not in self.pending:
            self.pending[pid] = self.deletion_reads
        return Response(202)

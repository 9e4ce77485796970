"""Mailchimp Marketing API 3.0 emulator (the subset the ``mailchimp`` catalogue template uses).

From Mailchimp's API reference: HTTP Basic auth with any user name and the API key as password;
``GET /ping``; an audience member is addressed by its *subscriber hash*, the MD5 of the lower-cased
e-mail address (``GET /lists/{list_id}/members/{subscriber_hash}``); ``POST
…/members/{subscriber_hash}/actions/delete-permanent`` erases the member for good (204; the address
cannot be re-imported); member notes ``GET …/notes`` paged by ``count`` / ``offset`` with
``total_items``, ``DELETE …/notes/{note_id}``; errors are problem documents
(``{"type", "title", "status", "detail", "instance"}``); 429 when too many requests at once (no
``Retry-After``).
"""

from __future__ import annotations

import hashlib

from tests.emulators.base import Emulator, Request, Response


def subscriber_hash(email: str) -> str:
    return hashlib.md5(email.lower().encode("utf-8")).hexdigest()  # noqa: S324 - Mailchimp's id scheme


def _problem(status: int, title: str, detail: str) -> Response:
    return Response(status, {"type": "https://mailchimp.com/developer/marketing/docs/errors/", "title": title,
                             "status": status, "detail": detail, "instance": "emulator"})


class MailchimpEmulator(Emulator):
    name = "mailchimp"

    def __init__(self, *, api_key: str = "0123456789abcdef-us21", list_id: str = "a1b2c3d4e5"):
        super().__init__()
        self.api_key = api_key
        self.list_id = list_id
        self.members: dict[str, dict] = {}
        self.notes: dict[str, list[dict]] = {}
        self.permanently_deleted: set[str] = set()
        base = r"/lists/(?P<list>[^/]+)/members/(?P<hash>[0-9a-f]{32})"
        self.route("GET", r"/ping", self.ping)
        self.route("GET", base, self.member_get)
        self.route("POST", base + r"/actions/delete-permanent", self.member_delete_permanent)
        self.route("GET", base + r"/notes", self.notes_list)
        self.route("GET", base + r"/notes/(?P<note>\d+)", self.note_get)
        self.route("DELETE", base + r"/notes/(?P<note>\d+)", self.note_delete)

    def authorized(self, request: Request) -> bool:
        basic = request.basic_auth()
        return basic is not None and basic[1] == self.api_key

    def unauthorized(self, request: Request) -> Response:
        return _problem(401, "API Key Invalid", "Your API key may be invalid, or you've attempted to access the wrong datacenter.")

    def not_found(self, request: Request) -> Response:
        return _problem(404, "Resource Not Found", "The requested resource could not be found.")

    def rate_limited_response(self, request: Request) -> Response:
        return _problem(429, "Too Many Requests", "You have exceeded the limit of 10 simultaneous connections.")

    # --- data ------------------------------------------------------------------------------
    def add_member(self, email: str, **fields) -> dict:
        sid = subscriber_hash(email)
        merge = {"FNAME": "", "LNAME": "", "PHONE": "", "ADDRESS": "", **fields.pop("merge_fields", {})}
        member = {"id": sid, "email_address": email, "unique_email_id": sid[:10], "full_name":
                  f"{merge['FNAME']} {merge['LNAME']}".strip(), "status": "subscribed", "merge_fields": merge,
                  "ip_signup": "", "timestamp_signup": "2024-01-01T00:00:00+00:00", "language": "",
                  "list_id": self.list_id, "last_changed": "2024-01-02T00:00:00+00:00", **fields}
        self.members[sid] = member
        return member

    def add_note(self, email: str, text: str) -> dict:
        sid = subscriber_hash(email)
        notes = self.notes.setdefault(sid, [])
        note = {"id": sum(len(v) for v in self.notes.values()) + 1, "created_at": "2024-02-01T00:00:00+00:00",
                "created_by": "agent", "updated_at": "2024-02-01T00:00:00+00:00", "note": text,
                "list_id": self.list_id, "email_id": sid}
        notes.append(note)
        return note

    # --- endpoints -------------------------------------------------------------------------
    def ping(self, request: Request) -> Response:
        return Response(200, {"health_status": "Everything's Chimpy!"})

    def _member(self, request: Request) -> dict | None:
        if request.match["list"] != self.list_id:
            return None
        return self.members.get(request.match["hash"])

    def member_get(self, request: Request) -> Response:
        member = self._member(request)
        return Response(200, member) if member else self.not_found(request)

    def member_delete_permanent(self, request: Request) -> Response:
        member = self._member(request)
        if member is None:
            return self.not_found(request)
        del self.members[member["id"]]
        self.notes.pop(member["id"], None)
        self.permanently_deleted.add(member["id"])
        return Response(204)

    def notes_list(self, request: Request) -> Response:
        member = self._member(request)
        if member is None:
            return self.not_found(request)
        notes = self.notes.get(member["id"], [])
        count = self.cap(request.query.get("count", 10))
        offset = int(request.query.get("offset", 0))
        return Response(200, {"notes": notes[offset:offset + count], "list_id": self.list_id,
                              "email_id": member["id"], "total_items": len(notes)})

    def _note(self, request: Request) -> dict | None:
        member = self._member(request)
        if member is None:
            return None
        return next((n for n in self.notes.get(member["id"], []) if str(n["id"]) == request.match["note"]), None)

    def note_get(self, request: Request) -> Response:
        note = self._note(request)
        return Response(200, note) if note else self.not_found(request)

    def note_delete(self, request: Request) -> Response:
        note = self._note(request)
        if note is None:
            return self.not_found(request)
        self.notes[request.match["hash"]].remove(note)
        return Response(204)

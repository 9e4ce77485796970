"""The DSR app on the person page and in the admin search.

- a section listing the person's requests with status and due date (requests linked to the
  profile, and those filed with one of the person's e-mail addresses before they were linked);
- a search by request reference: the short id requesters see in their mails (``a043f54c``).
"""

from __future__ import annotations

import re
import uuid

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from dsr.models import DataSubjectRequest
from governance.access import policy
from governance.crypto.blind_index import blind_index
from governance.subjects.models import IdentityKind
from governance.subjects.person import (
    BasePersonSection,
    BaseSubjectSearch,
    SearchHit,
    person_sections,
    person_url,
    subject_searches,
)
from oversight.dashboard import sla_colour

VIEW_REQUESTS = "dsr.view_datasubjectrequest"
REFERENCE_RE = re.compile(r"#?([0-9a-fA-F]{8})(?:-?[0-9a-fA-F]{4}){0,3}(?:-?[0-9a-fA-F]{12})?")
LIMIT = 50


def _visible_requests(user):
    return DataSubjectRequest.objects.filter(workspace__in=policy.workspaces_visible_to(user))


@person_sections.register
class RequestsSection(BasePersonSection):
    identifier = "requests"
    order = 40
    title = _("Data-subject requests")
    template = "dsr/person/section.html"

    def build(self, *, user, profile):
        if not user.has_perm(VIEW_REQUESTS):
            return None
        emails = [i.value for i in profile.identities.filter(kind=IdentityKind.EMAIL)]
        indexes = [blind_index(kind="dsr-email", value=value) for value in emails if value]
        match = Q(profile=profile) | (Q(email_index__in=indexes, workspace=profile.workspace) if indexes else Q())
        now = timezone.now()
        rows = [
            {"reference": str(r.pk)[:8], "url": reverse("admin:dsr_datasubjectrequest_change", args=[r.pk]),
             "type": r.get_request_type_display(), "status": r.get_status_display(), "received": r.received_at,
             "due": r.due_at, "closed": r.completed_at,
             "sla": "" if r.completed_at else sla_colour(r.due_at, now),
             "linked": r.profile_id == profile.pk}
            for r in _visible_requests(user).filter(match).order_by("-received_at")[:LIMIT]
        ]
        return {"rows": rows}


@subject_searches.register
class RequestReferenceSearch(BaseSubjectSearch):
    """The 8-hex-digit reference (or the whole id): the request, and its person when linked."""

    identifier = "request_reference"
    order = 30

    def search(self, *, user, query):
        found = REFERENCE_RE.fullmatch(query.strip())
        if found is None or not user.has_perm(VIEW_REQUESTS):
            return []
        digits = re.sub(r"[^0-9a-f]", "", query.lower())
        if len(digits) == 32:
            lookup = Q(pk=uuid.UUID(digits))
        else:
            prefix = digits[:8]  # a range over the UUID: the same on every database
            lookup = Q(pk__gte=uuid.UUID(prefix + "0" * 24), pk__lte=uuid.UUID(prefix + "f" * 24))
        hits = []
        for r in _visible_requests(user).filter(lookup).select_related("profile__workspace")[:20]:
            label = f"{str(r.pk)[:8]} · {r.get_request_type_display()} · {r.get_status_display()}"
            profile = r.profile if r.profile_id and policy.can_view_profile(user, r.profile) else None
            detail = gettext("Request") if profile is None else gettext("Request of a person")
            if profile is not None:
                hits.append(SearchHit(kind=gettext("Request reference"), label=label, url=person_url(profile),
                                      profile=profile, detail=detail))
            else:
                hits.append(SearchHit(kind=gettext("Request reference"), label=label, detail=detail,
                                      url=reverse("admin:dsr_datasubjectrequest_change", args=[r.pk])))
        return hits

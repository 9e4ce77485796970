"""The person page and the admin's search: one page with everything about a data subject.

Subjects sits below the apps that own most of what a person page shows (consent, requests, PII
findings, the access log), so those apps contribute through two registries filled from their own
``AppConfig.ready()`` — the way dashboard panels register in ``oversight.dashboard``:

- :data:`person_sections`: a :class:`BasePersonSection` builds one section of the page for one
  user, or returns ``None`` when the user's role may not see it (the section is then left out,
  never shown as "not installed").
- :data:`subject_searches`: a :class:`BaseSubjectSearch` answers the header search box with hits
  (the DSR app finds requests by their short reference).

Example (an app adding a section)::

    from governance.subjects.person import BasePersonSection, person_sections

    @person_sections.register
    class LoyaltySection(BasePersonSection):
        identifier = "loyalty"
        order = 60
        title = _("Loyalty points")
        template = "loyalty/person_section.html"

        def build(self, *, user, profile):
            if not user.has_perm("loyalty.view_account"):
                return None
            return {"rows": [...]}
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from audit.services import access_record, access_search_record
from governance.access import policy
from governance.access.masking import mask_value
from governance.registry import Registry
from governance.subjects.identities import InvalidIdentity, name_fold, name_index
from governance.subjects.models import (
    SENSITIVE_PROFILE_FIELDS,
    Identity,
    IdentityKind,
    Profile,
    ProfileMerge,
    ProfileStatus,
)
from governance.subjects.selectors import profile_get_by_identity

logger = logging.getLogger(__name__)
MAX_QUERY = 200


class BasePersonSection:
    """One section of the person page.

    ``identifier`` names it; ``order`` places it (lower first); ``title`` heads it; ``template``
    renders the dict :meth:`build` returns as ``data``.
    """

    identifier: str = ""
    order: int = 100
    title: Any = ""
    template: str = ""

    def build(self, *, user, profile: Profile) -> dict[str, Any] | None:
        raise NotImplementedError(f"{type(self).__name__} must implement build(user=..., profile=...)")


person_sections: Registry[BasePersonSection] = Registry("person page section", base=BasePersonSection,
                                                       instantiate=True)


@dataclass(frozen=True)
class SearchHit:
    """One result of the admin search. ``profile`` is set when the hit is (or leads to) a person."""

    kind: str  # what matched, shown to the user ("E-mail", "Request reference")
    label: str  # masked: never the person's data in clear
    url: str
    profile: Profile | None = None
    detail: str = ""


class BaseSubjectSearch:
    """One way to answer the header search. Return only what ``user`` may see."""

    identifier: str = ""
    order: int = 100

    def search(self, *, user, query: str) -> list[SearchHit]:
        raise NotImplementedError(f"{type(self).__name__} must implement search(user=..., query=...)")


subject_searches: Registry[BaseSubjectSearch] = Registry("subject search", base=BaseSubjectSearch,
                                                        instantiate=True)


def _reveal_workspaces(user) -> list[int]:
    if user.has_perm(policy.REVEAL_ALL):
        return list(policy.workspaces_visible_to(user).values_list("pk", flat=True))
    return [w.pk for w in policy.workspaces_visible_to(user) if user.has_perm(policy.REVEAL_WORKSPACE, w)]


# --- search ------------------------------------------------------------------------------------

def person_url(profile: Profile) -> str:
    return reverse("admin:subjects_profile_person", args=[profile.pk])


def _profile_label(profile: Profile) -> str:
    return f"{str(profile.pk)[:8]} · {profile.workspace.name}"


def _looks_like_phone(query: str) -> bool:
    folded = unicodedata.normalize("NFKC", query)
    digits = sum(ch.isdigit() for ch in folded)
    return digits >= 6 and re.fullmatch(r"[\d\s()+\-.\u2010-\u2015\u2212\u30fc]+", folded) is not None


@subject_searches.register
class IdentitySearch(BaseSubjectSearch):
    """E-mail, phone and customer id: exact, through the blind index, in every visible workspace."""

    identifier = "identity"
    order = 10

    def search(self, *, user, query):
        if not policy.may_list_profiles(user):
            return []
        kinds: list[tuple[str, str, str]] = []  # (kind, namespace, value)
        if "@" in query:
            kinds.append((IdentityKind.EMAIL, "", query))
        else:
            if _looks_like_phone(query):
                kinds.append((IdentityKind.PHONE, "", query))
            namespace, sep, rest = query.partition(":")
            if sep and namespace.strip() and rest.strip():  # "shop:10042" names the store
                kinds.append((IdentityKind.CUSTOMER_ID, namespace.strip(), rest.strip()))
            namespaces = (Identity.objects.filter(kind=IdentityKind.CUSTOMER_ID)
                          .values_list("namespace", flat=True).distinct())
            kinds += [(IdentityKind.CUSTOMER_ID, ns, query) for ns in sorted(set(namespaces)) if ns]
        labels = dict(IdentityKind.choices)
        hits: list[SearchHit] = []
        seen: set = set()
        for workspace in policy.workspaces_visible_to(user):
            for kind, namespace, value in kinds:
                try:
                    profile = profile_get_by_identity(workspace=workspace, kind=kind, value=value,
                                                      namespace=namespace)
                except InvalidIdentity:
                    continue  # not a valid value of this kind (a phone that is no phone)
                if profile is None or profile.pk in seen or not policy.can_view_profile(user, profile):
                    continue
                seen.add(profile.pk)
                kind_label = str(labels[kind]) + (f" ({namespace})" if namespace else "")
                hits.append(SearchHit(kind=kind_label, label=_profile_label(profile),
                                      url=person_url(profile), profile=profile))
        return hits


@subject_searches.register
class NameSearch(BaseSubjectSearch):
    """A full name or its kana reading, exact (spaces and width ignored): roles that may reveal."""

    identifier = "name"
    order = 20

    def search(self, *, user, query):
        if "@" in query or _looks_like_phone(query) or not name_fold(query):
            return []
        workspaces = _reveal_workspaces(user)
        if not workspaces:
            return []
        index = name_index(query)
        profiles = (Profile.objects.select_related("workspace")
                    .filter(workspace__in=workspaces, status=ProfileStatus.ACTIVE)
                    .filter(name_index=index) | Profile.objects.select_related("workspace")
                    .filter(workspace__in=workspaces, status=ProfileStatus.ACTIVE, kana_name_index=index))
        return [
            SearchHit(kind=gettext("Name"), label=_profile_label(p), url=person_url(p), profile=p)
            for p in profiles.distinct()[:50] if policy.can_view_profile(user, p)
        ]


def subjects_search(*, user, query: str, request: HttpRequest | None = None) -> list[SearchHit]:
    """Every registered search's hits for ``query`` (de-duplicated), the search itself audited.

    The search is a read attempt: one entry records who searched, how (which kinds ran) and how
    many were found — never the searched value — and one access entry per person found, so the
    person's access log shows that someone looked them up.
    """
    query = (query or "").strip()[:MAX_QUERY]
    if not query:
        return []
    hits: list[SearchHit] = []
    seen: set[str] = set()
    ran: list[str] = []
    for search in sorted(subject_searches.values(), key=lambda s: (s.order, s.identifier)):
        try:
            found = search.search(user=user, query=query)
        except Exception:  # noqa: BLE001 - one broken search must not take the others down
            logger.exception("subject search %s failed", search.identifier)
            continue
        ran.append(search.identifier)
        for hit in found:
            if hit.url not in seen:
                seen.add(hit.url)
                hits.append(hit)
    people = list({hit.profile.pk: hit.profile for hit in hits if hit.profile is not None}.values())
    access_search_record(actor=user, model=Profile, kinds=ran, objs=people, results=len(hits),
                         request=request, via="admin:search")
    return hits


# --- the person page ---------------------------------------------------------------------------

def person_page_sections(*, user, profile: Profile) -> list[dict[str, Any]]:
    """The sections ``user`` may see, built; a failing section shows a note, not a 500."""
    shown = []
    for section in sorted(person_sections.values(), key=lambda s: (s.order, s.identifier)):
        try:
            data = section.build(user=user, profile=profile)
        except Exception:  # noqa: BLE001 - one broken section must not hide the rest of the person
            logger.exception("person page section %s failed", section.identifier)
            data = {"error": gettext("This section could not be loaded; see the server log.")}
        if data is not None:
            shown.append({"identifier": section.identifier, "title": section.title,
                          "template": section.template, "data": data})
    return shown


def person_page_view_record(*, user, profile: Profile, sections: list[dict], request: HttpRequest | None):
    """One access entry per view of the page, naming the sections shown (masked data only)."""
    return access_record(actor=user, obj=profile, fields=[f"person:{s['identifier']}" for s in sections],
                         request=request, via="admin:person")


@person_sections.register
class ProfileSection(BasePersonSection):
    identifier = "profile"
    order = 10
    title = _("Profile")
    template = "admin/subjects/profile/sections/profile.html"

    def build(self, *, user, profile):
        fields = [(Profile._meta.get_field(name).verbose_name, mask_value(getattr(profile, name)))
                  for name in SENSITIVE_PROFILE_FIELDS]
        return {
            "fields": fields, "profile": profile,
            "can_reveal": policy.can_reveal(user, profile),
            "reveal_url": reverse("admin:subjects_profile_reveal", args=[profile.pk]),
        }


@person_sections.register
class IdentitiesSection(BasePersonSection):
    identifier = "identities"
    order = 20
    title = _("Identities and merges")
    template = "admin/subjects/profile/sections/identities.html"

    def build(self, *, user, profile):
        identities = [
            {"kind": i.get_kind_display(), "namespace": i.namespace, "value": mask_value(i.value, kind=i.kind),
             "verified": i.verified, "created_at": i.created_at}
            for i in profile.identities.order_by("kind", "created_at")
        ]
        merges = None
        if user.has_perm("subjects.view_profilemerge"):
            merges = [
                {"merged": str(m.merged_profile_id)[:8], "moved": m.identities_moved,
                 "taken": ", ".join(str(Profile._meta.get_field(n).verbose_name) for n in m.attributes_taken
                                    if n in SENSITIVE_PROFILE_FIELDS),
                 "reason": m.reason, "at": m.created_at}
                for m in ProfileMerge.objects.filter(survivor=profile).order_by("-created_at")[:50]
            ]
        survivor = profile.merged_into if profile.status == ProfileStatus.MERGED else None
        return {"identities": identities, "merges": merges,
                "survivor_url": person_url(survivor) if survivor else "",
                "survivor": str(survivor.pk)[:8] if survivor else ""}

"""Writes to profiles: identity resolution (名寄せ), merge, reveal and crypto-shredding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.models import Outcome
from audit.services import CREATE, DELETE, UPDATE, access_record, change_record
from governance.api.errors import DomainError
from governance.crypto import envelope
from governance.crypto.blind_index import blind_index
from governance.locking import lock_rows
from governance.subjects.identities import index_kind, name_index, normalize_identity
from governance.subjects.models import (
    SENSITIVE_PROFILE_FIELDS,
    Identity,
    Profile,
    ProfileMerge,
    ProfileStatus,
    Workspace,
)
from governance.subjects.signals import profile_merged, profile_shredded

ERR_NO_IDENTITY = "Give at least one identity (email, phone, customer_id or browser_id)."
ERR_UNKNOWN_ATTRIBUTE = "Unknown profile attribute."
ERR_REVEAL_REASON = "Revealing personal data needs a reason of at least 5 characters."
ERR_REVEAL_FORBIDDEN = "You may not reveal personal data of this profile."


class ProfileError(DomainError):
    code = "profile_invalid"
    title = _("The profile cannot be changed like this.")


class RevealForbidden(DomainError):
    status_code = 403
    code = "reveal_forbidden"
    title = _("Revealing personal data is not allowed.")


@dataclass(frozen=True)
class IdentityInput:
    kind: str
    value: str
    namespace: str = ""
    verified: bool = False


@dataclass
class UpsertResult:
    profile: Profile
    created: bool
    merged_profile_ids: list = field(default_factory=list)
    identities_added: int = 0


def _indexed(identity: IdentityInput, jurisdiction: str) -> tuple[IdentityInput, str, str]:
    normalized = normalize_identity(
        kind=identity.kind, value=identity.value, namespace=identity.namespace, jurisdiction=jurisdiction
    )
    return identity, normalized, blind_index(kind=index_kind(identity.kind, identity.namespace), value=normalized)


def profile_upsert(
    *,
    workspace: Workspace,
    identities: Sequence[IdentityInput],
    attributes: dict[str, str | None] | None = None,
    jurisdiction: str | None = None,
    locale: str | None = None,
    actor=None,
    source: str = "api",
) -> UpsertResult:
    """Find the person by any known identity, create or update them, merge duplicates found."""
    if not identities:
        raise ProfileError(ERR_NO_IDENTITY, code="identity_required")
    attributes = attributes or {}
    unknown = sorted(set(attributes) - set(SENSITIVE_PROFILE_FIELDS))
    if unknown:
        raise ProfileError(
            f"{ERR_UNKNOWN_ATTRIBUTE}: {', '.join(unknown)}", code="unknown_attribute",
            extra={"known": list(SENSITIVE_PROFILE_FIELDS)},
        )
    region = jurisdiction or workspace.default_jurisdiction
    indexed = [_indexed(i, region) for i in identities]
    for attempt in range(3):
        try:
            with transaction.atomic():
                return _upsert(workspace, indexed, attributes, jurisdiction, locale, actor, source)
        except IntegrityError:
            # Another request created one of these identities at the same moment: resolve again.
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _upsert(workspace, indexed, attributes, jurisdiction, locale, actor, source) -> UpsertResult:
    matches = list(
        lock_rows(
            Identity.objects.filter(workspace=workspace, value_index__in=[ix for _, _, ix in indexed])
            .select_related("profile")
        )
    )
    profiles = {m.profile_id: m.profile for m in matches if m.profile.status == ProfileStatus.ACTIVE}
    created = False
    merged_ids = []
    if not profiles:
        profile = Profile(
            workspace=workspace,
            jurisdiction=jurisdiction or workspace.default_jurisdiction,
            locale=locale or "",
            data_key_id=envelope.data_key_create(owner="subjects.profile"),
        )
        created = True
    else:
        ordered = sorted(profiles.values(), key=lambda p: p.created_at)
        profile = ordered[0]
        for other in ordered[1:]:
            profile_merge(survivor=profile, other=other, actor=actor, reason=f"same identity seen ({source})")
            merged_ids.append(other.id)
        if jurisdiction:
            profile.jurisdiction = jurisdiction
        if locale:
            profile.locale = locale
    changed = []
    for name, value in attributes.items():
        if value is not None and value != "" and getattr(profile, name) != value:
            setattr(profile, name, value)
            changed.append(name)
    if created or {"full_name", "kana_name"} & set(changed):
        profile_name_indexes_set(profile)
    profile.save()
    known = {(m.kind, m.namespace, m.value_index) for m in matches}
    added = 0
    for identity, normalized, index in indexed:
        if (identity.kind, identity.namespace, index) in known:
            continue
        known.add((identity.kind, identity.namespace, index))
        Identity.objects.create(
            profile=profile, workspace=workspace, kind=identity.kind, namespace=identity.namespace,
            value=normalized, value_index=index, data_key_id=profile.data_key_id,
            verified=identity.verified,
        )
        added += 1
    if created or changed or added:
        change_record(
            actor=actor, obj=profile, action=CREATE if created else UPDATE,
            fields=changed + (["identities"] if added else []), note=f"upsert via {source}",
        )
    return UpsertResult(profile=profile, created=created, merged_profile_ids=merged_ids, identities_added=added)


def profile_name_indexes_set(profile: Profile) -> None:
    """Keep the name blind indexes in step with the (encrypted) names; call before saving a
    profile whose names changed (a masked name must not stay findable by its old index)."""
    profile.name_index = name_index(profile.full_name)
    profile.kana_name_index = name_index(profile.kana_name)


def profile_merge(*, survivor: Profile, other: Profile, actor=None, reason: str) -> ProfileMerge:
    """Merge ``other`` into ``survivor``: identities re-encrypted under the survivor's key, missing
    attributes copied, ``other`` kept as a tombstone pointing at the survivor, its key destroyed."""
    if survivor.pk == other.pk:
        raise ProfileError("A profile cannot be merged into itself.", code="merge_self")
    if survivor.workspace_id != other.workspace_id:
        raise ProfileError("Profiles of different workspaces are never merged.", code="merge_workspace")
    with transaction.atomic():
        taken = []
        for name in SENSITIVE_PROFILE_FIELDS:
            if not getattr(survivor, name) and getattr(other, name):
                setattr(survivor, name, getattr(other, name))
                taken.append(name)
        profile_name_indexes_set(survivor)
        survivor.save()
        moved = 0
        for identity in Identity.objects.select_for_update().filter(profile=other):
            plaintext = identity.value
            identity.profile = survivor
            identity.data_key_id = survivor.data_key_id
            identity.value = plaintext  # re-encrypted under the survivor's data key on save
            identity.save()
            moved += 1
        for name in SENSITIVE_PROFILE_FIELDS:
            setattr(other, name, None)
        profile_name_indexes_set(other)
        other.status = ProfileStatus.MERGED
        other.merged_into = survivor
        other.save()
        record = ProfileMerge.objects.create(
            survivor=survivor, merged_profile_id=other.id, identities_moved=moved,
            attributes_taken=taken, reason=reason[:200], actor=actor if getattr(actor, "pk", None) else None,
        )
        profile_merged.send(sender=Profile, survivor=survivor, merged=other, actor=actor)
        change_record(
            actor=actor, obj=survivor, action=UPDATE, fields=taken + ["identities"],
            note=f"merged {other.id} ({reason})", data={"merged_profile": str(other.id)},
        )
        change_record(
            actor=actor, obj=other, action=UPDATE, fields=["status", "merged_into"],
            note=f"merged into {survivor.id}",
        )
        transaction.on_commit(lambda: envelope.data_key_destroy(dek_id=other.data_key_id))
    return record


def profile_reveal(
    *, actor, profile: Profile, fields: Sequence[str], reason: str, request: HttpRequest | None = None,
    via: str = "api",
) -> dict[str, object]:
    """Return plaintext of the asked fields after checking permission; audit either way."""
    from governance.access.policy import can_reveal

    fields = list(dict.fromkeys(fields)) or list(SENSITIVE_PROFILE_FIELDS) + ["identities"]
    unknown = sorted(set(fields) - set(SENSITIVE_PROFILE_FIELDS) - {"identities"})
    if unknown:
        raise ProfileError(f"{ERR_UNKNOWN_ATTRIBUTE}: {', '.join(unknown)}", code="unknown_field")
    if len((reason or "").strip()) < 5:
        raise ProfileError(ERR_REVEAL_REASON, code="reason_required")
    if not can_reveal(actor, profile):
        access_record(
            actor=actor, obj=profile, fields=fields, reason=reason, outcome=Outcome.DENIED,
            request=request, via=f"{via}:reveal",
        )
        raise RevealForbidden(ERR_REVEAL_FORBIDDEN)
    revealed: dict[str, object] = {name: getattr(profile, name) for name in fields if name != "identities"}
    if "identities" in fields:
        revealed["identities"] = [
            {"kind": i.kind, "namespace": i.namespace, "value": i.value} for i in profile.identities.all()
        ]
    access_record(actor=actor, obj=profile, fields=fields, reason=reason, request=request, via=f"{via}:reveal")
    return revealed


def profile_shred(*, profile: Profile, actor=None, reason: str) -> Profile:
    """Crypto-shred a profile: destroy its data key, drop identities and their blind indexes."""
    with transaction.atomic():
        profile = Profile.objects.select_for_update().get(pk=profile.pk)
        if profile.status == ProfileStatus.SHREDDED:
            return profile
        Identity.objects.filter(profile=profile).delete()
        Profile.objects.filter(pk=profile.pk).update(
            status=ProfileStatus.SHREDDED, shredded_at=timezone.now(), name_index="", kana_name_index=""
        )
        profile.refresh_from_db()
        change_record(actor=actor, obj=profile, action=DELETE, fields=list(SENSITIVE_PROFILE_FIELDS) + ["identities"],
                      note=f"crypto-shredded: {reason}")
        # The key store commits on its own: if this transaction then failed, the data is still gone
        # and a retry finishes the bookkeeping (the service is idempotent).
        envelope.data_key_destroy(dek_id=profile.data_key_id)
        profile_shredded.send(sender=Profile, profile=profile, actor=actor)
    return profile

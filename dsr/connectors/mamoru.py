"""``mamoru``: Mamoru's own records of the subject — the profile, its identities and consent.

Always part of a request's plan (store key ``mamoru``); the subject's profiles come from the
request, not from inputs. Erasure deletes every row of the ``profile`` collection (``delete_row``
on its key): each profile the request covers is crypto-shredded (``profile_shred``) whether or not
it holds attributes — a profile with identities only is shredded too. Only a legal hold (a
``retain`` field in the collection) keeps the profile; its other attributes are then masked.
Verification counts a profile as still present until it is shredded and no identity resolves to
it. Consent records are retained as proof (GDPR Art. 7(1)) and their identities redacted by the
consent app on the ``profile_shredded`` signal.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from django.apps import apps

from dsr.connectors import register
from dsr.connectors.base import BaseConnector, StoreError
from dsr.masking import RETAIN
from governance.datamap.spec import CollectionSpec, FieldSpec, StoreSpec
from governance.subjects.models import SENSITIVE_PROFILE_FIELDS, Profile, ProfileStatus

CONSENT_PROOF = "GDPR Art. 7(1): proof of consent and of its withdrawal"
PROFILE_CATEGORIES = {
    "full_name": "user.name", "kana_name": "user.name", "address": "user.contact.address",
    "postal_code": "user.contact.address.postal_code", "birth_date": "user.demographic.date_of_birth",
}


def mamoru_store_spec() -> StoreSpec:
    """The implicit ``mamoru`` store of every plan."""
    profile = CollectionSpec(
        store="mamoru", name="profile", description="The subject's Mamoru profile",
        # The whole profile goes (crypto-shred), not only its attributes: identities-only profiles too.
        fields=[FieldSpec("id", primary_key=True, strategy="delete_row",
                          description="the profile is crypto-shredded"),
                FieldSpec("jurisdiction"), FieldSpec("locale")]
        + [FieldSpec(n, category=PROFILE_CATEGORIES[n]) for n in SENSITIVE_PROFILE_FIELDS],
    )
    identities = CollectionSpec(
        store="mamoru", name="identities", description="Identities linked to the profile",
        fields=[FieldSpec("id", primary_key=True), FieldSpec("kind"), FieldSpec("namespace"),
                FieldSpec("value", category="user.unique_id", strategy="retain",
                          legal_basis="removed with the profile (crypto-shredded)")],
    )
    collections = [profile, identities]
    if apps.is_installed("consent") and _consent_model() is not None:
        collections.append(CollectionSpec(
            store="mamoru", name="consent", description="Consent state per purpose",
            fields=[FieldSpec("id", primary_key=True),
                    FieldSpec("purpose", category="system.operations"),
                    FieldSpec("state", category="user.behavior", strategy="retain", legal_basis=CONSENT_PROOF),
                    FieldSpec("updated_at", category="system.operations")],
        ))
    return StoreSpec(key="mamoru", type="mamoru", name="Mamoru", collections=collections)


def _consent_model():
    for name in ("ConsentState", "ConsentRecord"):
        try:
            return apps.get_model("consent", name)
        except LookupError:
            continue
    return None


@register
class MamoruConnector(BaseConnector):
    identifier = "mamoru"
    verbose_name = "Mamoru (own profiles and consent records)"

    def test_connection(self) -> str:
        return f"{Profile.objects.count()} profiles"

    def _profile(self) -> Profile | None:
        profile_id = self.context.get("profile_id")
        if not profile_id:
            return None
        return Profile.objects.filter(pk=profile_id, status=ProfileStatus.ACTIVE).first()

    def _profile_ids(self) -> set[str]:
        """The subject's profiles: ``profile_ids`` (one per workspace the request covers)."""
        ids = self.context.get("profile_ids") or [self.context.get("profile_id")]
        return {str(i) for i in ids if i}

    def retrieve(self, collection: CollectionSpec, inputs: dict[str, list]) -> Iterator[dict]:
        profiles = Profile.objects.filter(pk__in=self._profile_ids(), status=ProfileStatus.ACTIVE)
        for profile in profiles.order_by("workspace_id", "id"):
            yield from self._rows(collection, profile)

    def _rows(self, collection: CollectionSpec, profile: Profile) -> Iterator[dict]:
        if collection.name == "profile":
            row = {"id": str(profile.id), "jurisdiction": profile.jurisdiction, "locale": profile.locale}
            row.update({name: getattr(profile, name) for name in SENSITIVE_PROFILE_FIELDS})
            yield row
        elif collection.name == "identities":
            for identity in profile.identities.order_by("kind", "namespace"):
                yield {"id": str(identity.id), "kind": identity.kind, "namespace": identity.namespace,
                       "value": identity.value}
        elif collection.name == "consent":
            model = _consent_model()
            for state in model.objects.filter(profile=profile):
                purpose = getattr(state, "purpose", None)
                yield {
                    "id": str(state.pk),
                    "purpose": getattr(purpose, "code", str(purpose)) if purpose is not None else "",
                    "state": str(getattr(state, "state", getattr(state, "status", ""))),
                    "updated_at": getattr(state, "updated_at", None) or getattr(state, "occurred_at", None),
                }
        else:
            raise StoreError(f"the mamoru store has no collection {collection.name!r}")

    def retrieve_by_key(self, collection: CollectionSpec, rows: list[dict]) -> Iterator[dict]:
        """The subject's records as they are now, by ``id``.

        A profile is gone only once it is shredded and no identity resolves to it any more: any
        other profile asked for (active, merged, or shredded with identities left) is returned.
        """
        ids = {str(r.get("id")) for r in rows}
        if collection.name != "profile":
            for row in self.retrieve(collection, {}):
                if str(row.get("id")) in ids:
                    yield row
            return
        for profile in Profile.objects.filter(pk__in=ids).order_by("workspace_id", "id"):
            if profile.status == ProfileStatus.ACTIVE:
                yield from self._rows(collection, profile)
            elif profile.status != ProfileStatus.SHREDDED or profile.identities.exists():
                # Its data key may be gone: only the non-personal columns are read.
                yield {"id": str(profile.id), "jurisdiction": profile.jurisdiction, "locale": profile.locale}

    def mask(self, collection: CollectionSpec, plans: Iterable) -> int:
        """Profile rows kept (a legal hold on the collection): only the planned attributes change.

        A plan made without a hold (a request planned before the profile's key had ``delete_row``)
        shreds the profile, as erasure always did.
        """
        plans = list(plans)
        if collection.name != "profile" or not plans:
            return 0
        if not any(f.effective_strategy == RETAIN for f in collection.fields):
            return self.delete(collection, plans)
        from audit.services import UPDATE, change_record
        from governance.subjects.services import profile_name_indexes_set

        by_id = {str(p.key.get("id")): p for p in plans}
        changed = 0
        profiles = Profile.objects.filter(pk__in=set(by_id) & self._profile_ids(), status=ProfileStatus.ACTIVE)
        for profile in profiles:
            values = {k: v for k, v in by_id[str(profile.pk)].values.items() if k in SENSITIVE_PROFILE_FIELDS}
            for name, value in values.items():
                setattr(profile, name, value)
            profile_name_indexes_set(profile)  # the old name's blind index goes with the name
            profile.save()
            change_record(actor=None, obj=profile, action=UPDATE, fields=sorted(values),
                          note=f"masked (legal hold on the profile): erasure request {self.context.get('request_id')}")
            changed += 1
        return changed

    def delete(self, collection: CollectionSpec, plans: Iterable) -> int:
        """Crypto-shred every planned profile the request covers (identities and blind indexes go)."""
        plans = list(plans)
        if collection.name != "profile" or not plans:
            return 0
        from governance.subjects.services import profile_shred

        ids = {str(p.key.get("id")) for p in plans} & self._profile_ids()
        shredded = 0
        for profile in Profile.objects.filter(pk__in=ids).exclude(status=ProfileStatus.SHREDDED):
            profile_shred(profile=profile, actor=None, reason=f"erasure request {self.context.get('request_id')}")
            shredded += 1
        return shredded

"""factory_boy factories for the core models and a helper for role users."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from faker import Faker

from governance.access.roles import (
    AUDITOR,
    DPO,
    MARKETING,
    PRIVACY_ANALYST,
    SUPPORT_AGENT,
    access_workspace_assign,
    roles_sync,
)
from governance.subjects.models import Workspace
from governance.subjects.services import IdentityInput, profile_upsert

ROLES = (DPO, PRIVACY_ANALYST, SUPPORT_AGENT, MARKETING, AUDITOR)


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"ws-{n}")
    name = factory.Sequence(lambda n: f"Workspace {n}")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@staff.example")
    is_staff = True
    password = factory.django.Password("correct horse battery staple")


def make_profile(workspace: Workspace, *, locale: str = "en_US", seed: int | None = None, **attrs):
    """A realistic profile (Faker) with an e-mail and a phone, through identity resolution."""
    fake = Faker(locale)
    if seed is not None:
        fake.seed_instance(seed)
    attrs_jurisdiction = attrs.pop("jurisdiction", None)
    email = attrs.pop("email", None) or fake.unique.email()
    phone = attrs.pop("phone", None) or ("090" + fake.numerify("%#######") if locale == "ja_JP" else "+1415555" + fake.numerify("####"))
    attributes = {"full_name": fake.name(), "address": fake.address().replace("\n", " ")}
    if locale == "ja_JP":
        attributes["kana_name"] = fake.kana_name()
    attributes.update(attrs)
    jurisdiction = attrs_jurisdiction or ("JP" if locale == "ja_JP" else None)
    return profile_upsert(
        workspace=workspace,
        identities=[IdentityInput("email", email), IdentityInput("phone", phone)],
        attributes=attributes,
        jurisdiction=jurisdiction,
    ).profile


def make_role_users(workspaces) -> dict:
    groups = roles_sync()
    users = {}
    for role in ROLES:
        user = UserFactory(username=role)
        user.groups.add(groups[role])
        users[role] = user
    access_workspace_assign(user=users[SUPPORT_AGENT], workspace=workspaces[0])
    users["nobody"] = UserFactory(username="nobody")
    assert Group.objects.count() >= len(ROLES)
    return users

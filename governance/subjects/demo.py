"""Demo data for the core: two workspaces, one user per role, realistic profiles (ja_JP, en_US)."""

from __future__ import annotations

import secrets

from django.contrib.auth import get_user_model
from django.db import transaction
from faker import Faker

from governance.access.mfa import totp_device_create_confirmed, totp_secret_b32
from governance.access.roles import (
    AUDITOR,
    DPO,
    MARKETING,
    PRIVACY_ANALYST,
    ROLE_LABELS,
    SUPPORT_AGENT,
    access_workspace_assign,
    roles_sync,
)
from governance.subjects.models import Jurisdiction, Profile, Workspace
from governance.subjects.services import IdentityInput, profile_upsert

DEMO_USERS = [
    (DPO, "dpo", "Dana DPO"),
    (PRIVACY_ANALYST, "analyst", "Aki Analyst"),
    (SUPPORT_AGENT, "support", "Sam Support"),
    (MARKETING, "marketing", "Mika Marketing"),
    (AUDITOR, "auditor", "Alex Auditor"),
]
PROFILES_JP = 120
PROFILES_EU = 80


def _password() -> str:
    return "-".join(secrets.token_urlsafe(4) for _ in range(4))


def _profiles(workspace: Workspace, locale: str, count: int, seed: int) -> int:
    fake = Faker(locale)
    fake.seed_instance(seed)
    created = 0
    for n in range(count):
        if locale == "ja_JP":
            phone = "090" + fake.numerify("%#######") if n % 2 else "080" + fake.numerify("%#######")
            attributes = {
                "full_name": fake.name(),
                "kana_name": fake.kana_name(),
                "address": f"{fake.prefecture()}{fake.city()}{fake.town()}{fake.chome()}{fake.ban()}",
                "postal_code": fake.zipcode(),
                "birth_date": fake.date_of_birth(minimum_age=18, maximum_age=85).isoformat(),
            }
            jurisdiction = Jurisdiction.JP
        else:
            phone = "+49 151 " + fake.numerify("########")
            attributes = {
                "full_name": fake.name(),
                "address": fake.address().replace("\n", ", "),
                "postal_code": fake.postcode(),
                "birth_date": fake.date_of_birth(minimum_age=18, maximum_age=85).isoformat(),
            }
            jurisdiction = Jurisdiction.EU if n % 4 else Jurisdiction.US_CA
        identities = [
            IdentityInput("email", f"{fake.user_name()}{n}@{fake.free_email_domain()}"),
            IdentityInput("phone", phone),
            IdentityInput("customer_id", f"C-{seed * 10000 + n:06d}", namespace="shop"),
        ]
        result = profile_upsert(
            workspace=workspace, identities=identities, attributes=attributes,
            jurisdiction=jurisdiction, locale="ja" if locale == "ja_JP" else "en", source="seed_demo",
        )
        created += int(result.created)
    return created


def seed(*, stdout, credentials: dict) -> None:
    jp, _ = Workspace.objects.get_or_create(
        slug="shop-jp", defaults={"name": "Sakura Shop (Japan)", "default_jurisdiction": Jurisdiction.JP}
    )
    eu, _ = Workspace.objects.get_or_create(
        slug="shop-eu", defaults={"name": "Sakura Shop (Europe)", "default_jurisdiction": Jurisdiction.EU}
    )
    groups = roles_sync()
    users = []
    User = get_user_model()
    for role, username, name in DEMO_USERS:
        user, _ = User.objects.get_or_create(username=username)
        user.first_name, _, user.last_name = name.partition(" ")
        user.email = f"{username}@mamoru.localhost"
        user.is_staff = True
        password = _password()
        user.set_password(password)
        user.save()
        user.groups.set([groups[role]])
        # A second factor from the start (kept when re-seeding, so an authenticator app that has
        # the key keeps working): add the key to any TOTP app, or `manage.py demo_mfa_code USER`.
        device = totp_device_create_confirmed(user=user)
        users.append({"role": str(ROLE_LABELS[role]), "username": username, "password": password,
                      "totp_key": totp_secret_b32(device), "otpauth_uri": device.config_url})
    access_workspace_assign(user=User.objects.get(username="support"), workspace=jp)
    credentials["users"] = users
    credentials["workspaces"] = [jp.slug, eu.slug]

    if not Profile.objects.filter(workspace__in=[jp, eu]).exists():
        with transaction.atomic():  # all or nothing, so a re-run never sees half the demo
            made = _profiles(jp, "ja_JP", PROFILES_JP, seed=1) + _profiles(eu, "en_US", PROFILES_EU, seed=2)
        stdout.write(f"  created {made} demo profiles (encrypted, with blind-indexed identities)")
    else:
        stdout.write("  demo profiles already present; users' passwords were reset")
    stdout.write("  support agent 'support' is assigned to workspace shop-jp only")

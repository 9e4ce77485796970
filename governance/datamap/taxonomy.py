"""Data categories (a subset of fideslang's ``user.*`` / ``system.*`` taxonomy) and identity kinds.

A field's category is valid when it is listed here or is a dotted child of a listed one
(``user.contact.address.postal_code`` under ``user.contact.address``).
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

DATA_CATEGORIES: dict[str, object] = {
    "user": _("User data"),
    "user.account": _("Account data"),
    "user.authorization": _("Credentials and authorisation"),
    "user.behavior": _("Behaviour"),
    "user.behavior.browsing_history": _("Browsing history"),
    "user.behavior.purchase_history": _("Purchase history"),
    "user.contact": _("Contact details"),
    "user.contact.email": _("E-mail address"),
    "user.contact.phone_number": _("Phone number"),
    "user.contact.address": _("Postal address"),
    "user.demographic": _("Demographic data"),
    "user.demographic.date_of_birth": _("Date of birth"),
    "user.demographic.gender": _("Gender"),
    "user.device": _("Device data"),
    "user.device.cookie_id": _("Cookie or device id"),
    "user.device.ip_address": _("IP address"),
    "user.financial": _("Financial data"),
    "user.financial.bank_account": _("Bank account"),
    "user.government_id": _("Government id"),
    "user.health_and_medical": _("Health data"),
    "user.location": _("Location"),
    "user.name": _("Name"),
    "user.unique_id": _("Unique id"),
    "user.content": _("User-provided content"),
    "user.content.private": _("Private messages and tickets"),
    "user.sensitive": _("Sensitive personal information"),
    "system": _("System data"),
    "system.operations": _("Operational data"),
}

# Which categories are "sensitive": special categories (GDPR Art. 9/10), APPI 要配慮個人情報
# (race, creed, medical history, criminal record) and CCPA §7027-flavoured ones; labels and reports.
SENSITIVE_PREFIXES = ("user.health_and_medical", "user.government_id", "user.sensitive",
                      "user.financial.bank_account", "user.demographic.race_ethnicity",
                      "user.demographic.religious_belief", "user.demographic.political_opinion",
                      "user.demographic.sexual_orientation")

IDENTITY_KINDS = ("email", "phone", "customer_id", "browser_id")


def category_is_known(code: str) -> bool:
    """Return whether ``code`` is a listed category or a dotted child of one."""
    if code in DATA_CATEGORIES:
        return True
    parts = code.split(".")
    return any(".".join(parts[:i]) in DATA_CATEGORIES for i in range(2, len(parts)))


def category_is_personal(code: str) -> bool:
    return code == "user" or code.startswith("user.")


def category_is_sensitive(code: str) -> bool:
    """Whether ``code`` is a special category / 要配慮個人情報 (or a child of one)."""
    return any(code == p or code.startswith(p + ".") for p in SENSITIVE_PREFIXES)


def category_label(code: str) -> str:
    parts = code.split(".")
    for i in range(len(parts), 0, -1):
        label = DATA_CATEGORIES.get(".".join(parts[:i]))
        if label is not None:
            return str(label)
    return code

"""Normalising identity values before they are indexed: one person, one blind index.

- e-mail: trimmed and lower-cased (whole address), then validated;
- phone: NFKC (full-width digits), parsed for the profile's region, stored as E.164;
- customer id: trimmed, needs a namespace (the store that issued it);
- browser id: 8–128 of ``A–Z a–z 0–9 _ -``.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError
from governance.subjects.models import IdentityKind, Jurisdiction

REGION_BY_JURISDICTION = {
    Jurisdiction.JP: "JP",
    Jurisdiction.US: "US",
    Jurisdiction.US_CA: "US",
    Jurisdiction.EU: None,
    Jurisdiction.OTHER: None,
}
BROWSER_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,128}$")

ERR_EMAIL = "Not a valid e-mail address."
ERR_PHONE = "Not a valid phone number: use international format (+81…, +1…) or a number of the profile's country."
ERR_CUSTOMER_ID = "A customer id needs a namespace (the store that issued it) and 1–128 characters."
ERR_BROWSER_ID = "A browser id has 8–128 characters from A–Z, a–z, 0–9, '_' and '-'."
ERR_KIND = "Unknown identity kind."


class InvalidIdentity(DomainError):
    code = "invalid_identity"
    title = _("An identity value is not valid.")


def normalize_identity(*, kind: str, value: str, namespace: str = "", jurisdiction: str = "") -> str:
    """Return the canonical form of an identity value or raise :class:`InvalidIdentity`."""
    if not isinstance(value, str):
        raise InvalidIdentity(f"{kind}: value must be a string", extra={"kind": kind})
    value = unicodedata.normalize("NFKC", value).strip()
    if kind == IdentityKind.EMAIL:
        value = value.lower()
        try:
            validate_email(value)
        except ValidationError:
            raise InvalidIdentity(ERR_EMAIL, extra={"kind": kind}) from None
        return value
    if kind == IdentityKind.PHONE:
        region = REGION_BY_JURISDICTION.get(jurisdiction) if jurisdiction else None
        try:
            number = phonenumbers.parse(value, region)
        except phonenumbers.NumberParseException:
            raise InvalidIdentity(ERR_PHONE, extra={"kind": kind}) from None
        if not phonenumbers.is_valid_number(number):
            raise InvalidIdentity(ERR_PHONE, extra={"kind": kind})
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if kind == IdentityKind.CUSTOMER_ID:
        if not namespace or not value or len(value) > 128 or not value.isprintable():
            raise InvalidIdentity(ERR_CUSTOMER_ID, extra={"kind": kind})
        return value
    if kind == IdentityKind.BROWSER_ID:
        if not BROWSER_ID_RE.match(value):
            raise InvalidIdentity(ERR_BROWSER_ID, extra={"kind": kind})
        return value
    raise InvalidIdentity(ERR_KIND, extra={"kind": kind, "known": list(IdentityKind.values)})


def index_kind(kind: str, namespace: str) -> str:
    """The blind-index domain: customer ids of different stores never collide."""
    return f"{kind}:{namespace}" if namespace else kind

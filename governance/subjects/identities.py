"""Normalising identity values before they are indexed: one person, one blind index.

- e-mail: NFKC, trimmed, the domain in Unicode (``xn--`` labels IDNA-decoded), the whole address
  lower-cased, then validated. Internationalised addresses (RFC 6531 UTF-8 local parts, IDN
  domains) are accepted: ``Taro@XN--R8JZ45G.jp`` and ``taro@例え.jp`` are one canonical
  ``taro@例え.jp`` and so one blind index;
- phone: NFKC (full-width digits), parsed for the profile's region, stored as E.164;
- customer id: trimmed, needs a namespace (the store that issued it);
- browser id: 8–128 of ``A–Z a–z 0–9 _ -``.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

import email_validator
import idna
import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError
from governance.crypto.blind_index import blind_index
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
ERR_EMAIL_HOST = _("Enter a valid e-mail address with a public domain name (not an IP address or a local host name).")
GMAIL_DOMAINS = {"gmail.com", "googlemail.com"}


class InvalidIdentity(DomainError):
    code = "invalid_identity"
    title = _("An identity value is not valid.")


class InvalidEmail(InvalidIdentity):
    """A requester's e-mail address we will not send mail to (see :func:`email_requester_canonical`)."""

    code = "invalid_email"
    title = _("The e-mail address is not valid.")


def normalize_identity(*, kind: str, value: str, namespace: str = "", jurisdiction: str = "") -> str:
    """Return the canonical form of an identity value or raise :class:`InvalidIdentity`."""
    if not isinstance(value, str):
        raise InvalidIdentity(f"{kind}: value must be a string", extra={"kind": kind})
    value = unicodedata.normalize("NFKC", value).strip()
    if kind == IdentityKind.EMAIL:
        return email_canonical(value)
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


# --- e-mail ------------------------------------------------------------------------------------

def _domain_unicode(domain: str) -> str:
    """The domain in lower-case Unicode (``xn--`` labels decoded); as given, lower-cased, if not IDNA."""
    if domain.isascii() and "xn--" not in domain.lower():
        return domain.lower()
    try:
        return idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain.lower()


def _domain_ascii(domain: str) -> str:
    if domain.isascii():
        return domain.lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError, ValueError):
        return domain.lower()


def email_fold(value: object) -> str:
    """The comparison key of an e-mail address as a store may hold it; never raises.

    NFKC, trimmed, domain in Unicode, lower-cased (local part too: mailbox providers treat it
    case-insensitively). Two values are the same address when their keys are equal.
    """
    text = unicodedata.normalize("NFKC", str(value)).strip()
    local, sep, domain = text.rpartition("@")
    if not sep:
        return text.lower()
    return unicodedata.normalize("NFC", f"{local}@{_domain_unicode(domain)}".lower())


def email_canonical(value: str) -> str:
    """Validate an e-mail address and return its canonical form (see :func:`email_fold`)."""
    text = unicodedata.normalize("NFKC", value).strip()
    local, sep, domain = text.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidIdentity(ERR_EMAIL, extra={"kind": IdentityKind.EMAIL})
    if text.isascii() and "xn--" not in domain.lower():
        text = text.lower()
        try:
            validate_email(text)
        except ValidationError:
            raise InvalidIdentity(ERR_EMAIL, extra={"kind": IdentityKind.EMAIL}) from None
        return text
    try:
        result = email_validator.validate_email(
            text, allow_smtputf8=True, check_deliverability=False, globally_deliverable=False,
        )
    except email_validator.EmailNotValidError:
        raise InvalidIdentity(ERR_EMAIL, extra={"kind": IdentityKind.EMAIL}) from None
    return email_fold(result.normalized)


def email_requester_canonical(value: str) -> str:
    """:func:`email_canonical` for an address we are about to e-mail on an anonymous caller's
    word (the DSR requester): the domain must be a public host name, so no domain literal
    (``x@[127.0.0.1]``) and no single-label name (``x@localhost``, ``x@mailhost``) — mail to
    internal hosts. Raises :class:`InvalidEmail` (code ``invalid_email``) for such a domain,
    :class:`InvalidIdentity` for what is no address at all."""
    if unicodedata.normalize("NFKC", value).strip().rpartition("@")[2].startswith("["):
        raise InvalidEmail(str(ERR_EMAIL_HOST))  # any domain literal, valid or not
    canonical = email_canonical(value)
    domain = canonical.rpartition("@")[2]
    if "." not in domain.strip(".") or _is_ip(domain):
        raise InvalidEmail(str(ERR_EMAIL_HOST))
    return canonical


def _is_ip(domain: str) -> bool:
    try:
        ipaddress.ip_address(domain.strip("[]"))
    except ValueError:
        return False
    return True


def email_mailbox_key(value: object) -> str:
    """The mailbox an address delivers to, as limits on mail count it (never stored, never used
    to send): :func:`email_fold`, the domain in punycode, the sub-address removed from the local
    part (``erika+anything@`` is ``erika@``, for every domain) and, for ``gmail.com`` /
    ``googlemail.com``, the dots too (``e.r.ika@googlemail.com`` is ``erika@gmail.com``)."""
    key = email_fold(value)
    local, sep, domain = key.rpartition("@")
    if not sep or not local:
        return key
    domain = _domain_ascii(domain).rstrip(".")
    base = local.split("+", 1)[0] if not local.startswith('"') else local
    local = base or local
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def email_search_forms(value: str) -> list[str]:
    """The lower-case forms a store may hold an address in: Unicode and punycode domain, NFC and NFD."""
    key = email_fold(value)
    local, _sep, domain = key.rpartition("@")
    forms = {key, f"{local}@{_domain_ascii(domain)}" if local else key}
    forms |= {unicodedata.normalize("NFD", f) for f in forms}
    return sorted(forms)


# --- phone -------------------------------------------------------------------------------------

# Characters people and input methods put between digit groups. Every one folds back in
# :func:`phone_fold` (NFKC, then libphonenumber's punctuation), so a row found with one is confirmed.
PHONE_DASHES = (
    "-"        # hyphen-minus
    "\u2010"  # hyphen
    "\u2011"  # non-breaking hyphen
    "\u2012"  # figure dash
    "\u2013"  # en dash
    "\u2014"  # em dash
    "\u2015"  # horizontal bar
    "\u2212"  # minus sign
    "\u30fc"  # katakana prolonged sound mark (the Japanese IME's "-")
    "\uff70"  # half-width prolonged sound mark
    "\uff0d"  # full-width hyphen-minus
    "\ufe63"  # small hyphen-minus
)
# Separators with ASCII digits: every one; in the less common shapes only the usual ones.
_SEPARATORS = ("", " ", ".", *PHONE_DASHES)
_SEPARATORS_COMMON = ("", " ", "-", ".", "\u30fc", "\uff0d", "\u2212", "\u2010")
# With full-width digits (typed in a Japanese IME's full-width mode).
_FULL_WIDTH_SEPARATORS = ("", "\u3000", " ", "\uff0e", "\uff0d", "\u30fc", "\u2010", "\u2212", "\u2015", "-")
_FULL_WIDTH_SEPARATORS_COMMON = ("", "\u3000", "\uff0d", "\u30fc")
_FULL_WIDTH = str.maketrans("0123456789+() ", "０１２３４５６７８９＋（）\u3000")
PHONE_FORMS_MAX = 200
PHONE_FORMATS = ("e164", "international", "national", "digits")


def phone_region(e164: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


def _phone_shapes(number: phonenumbers.PhoneNumber) -> dict[str, list[tuple]]:
    """Per stored format, the shapes of the number: ``(template, groups, common_only)``; a
    template's ``{}`` is filled with the groups joined by one separator."""
    fmt = phonenumbers.PhoneNumberFormat
    cc = str(number.country_code)
    intl = re.findall(r"\d+", phonenumbers.format_number(number, fmt.INTERNATIONAL))[1:]
    natl = re.findall(r"\d+", phonenumbers.format_number(number, fmt.NATIONAL))
    region = phonenumbers.region_code_for_number(number)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    trunk = (metadata.national_prefix or "") if metadata else ""
    nsn = phonenumbers.national_significant_number(number)
    has_trunk = bool(trunk) and "".join(natl) == trunk + nsn
    shapes: dict[str, list[tuple]] = {
        "international": [
            ("+" + cc + "{}", ["", *intl], False),        # +81-90-1234-5678, +81.90.1234.5678
            ("+" + cc + " {}", intl, False),              # +81 90-1234-5678 (libphonenumber's form)
            (cc + "{}", ["", *intl], False),              # 81-90-1234-5678 (no plus)
            ("(+" + cc + "){}", intl, True),              # (+81)90-1234-5678
        ],
        "national": [
            ("{}", natl, False),                          # 090-1234-5678, 090ー1234ー5678, 090.1234.5678
        ],
        "digits": [("{}", ["".join(natl)], True), (cc + "{}", [nsn], True)],
    }
    if has_trunk:                                         # +81 (0)90 1234 5678
        shapes["international"] += [("+" + cc + " (" + trunk + "){}", intl, True),
                                    ("+" + cc + "(" + trunk + "){}", intl, True)]
    if len(natl) >= 2:                                    # (090)1234-5678, (201) 555-0123
        shapes["national"] += [("(" + natl[0] + "){}", natl[1:], True),
                               ("(" + natl[0] + ") {}", natl[1:], True)]
    if len(natl) == 3:                                    # 090(1234)5678
        shapes["national"].append((f"{natl[0]}({natl[1]}){natl[2]}", [], True))
    return shapes


def phone_search_forms(e164: str, *, stored_format: str = "any") -> list[str]:
    """Every way the number may be written in a store of the given format, from its E.164 form.

    ``e164`` (+819012345678), ``international`` (+81 90-1234-5678, +81-90-1234-5678,
    81-90-1234-5678, +81 (0)90 1234 5678, (+81)90-1234-5678), ``national`` (090-1234-5678,
    090 1234 5678, 09012345678, 090.1234.5678, (090)1234-5678, 090(1234)5678), ``digits``
    (09012345678, 819012345678); ``any`` is all of them. Groups are separated by nothing, a
    space, a dot or any dash look-alike (``‐ ‑ ‒ – — ― − ー ｰ － ﹣``), the digits are ASCII or
    full-width (０９０ー１２３４ー５６７８). At most :data:`PHONE_FORMS_MAX` forms.
    """
    if stored_format not in {"any", *PHONE_FORMATS}:
        raise ValueError(f"unknown phone format {stored_format!r}; known: any, {', '.join(PHONE_FORMATS)}")
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return [e164]
    canonical = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    shapes = _phone_shapes(number)
    chosen = list(PHONE_FORMATS) if stored_format == "any" else [stored_format]
    forms = {canonical, canonical.translate(_FULL_WIDTH)} if "e164" in chosen else set()
    for name in chosen:
        for template, groups, common in shapes.get(name, []):
            forms.update(template.format(sep.join(groups))
                         for sep in (_SEPARATORS_COMMON if common else _SEPARATORS))
            wide_template, wide_groups = template.translate(_FULL_WIDTH), [g.translate(_FULL_WIDTH) for g in groups]
            forms.update(wide_template.format(sep.join(wide_groups))
                         for sep in (_FULL_WIDTH_SEPARATORS_COMMON if common else _FULL_WIDTH_SEPARATORS))
    return sorted(forms)


def phone_fold(value: object, *, region: str | None) -> str | None:
    """The E.164 form of a stored phone value read for ``region``, or None if it is not a number."""
    text = unicodedata.normalize("NFKC", str(value)).strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# --- names (exact search by name, for roles that may reveal) ----------------------------------

NAME_INDEX_KIND = "profile-name"


def name_fold(value: object) -> str:
    """A name as people type it, folded for an exact match: NFKC (full-width letters, half-width
    kana), case-folded, spaces (ASCII and ideographic U+3000), middle dots and commas removed."""
    text = unicodedata.normalize("NFKC", value if isinstance(value, str) else "").casefold()
    return re.sub(r"[\s\u30fb\u00b7.,]+", "", text)


def name_index(value: object) -> str:
    """Blind index of a name, or "" for no name. Stored beside the encrypted name so a search by
    name is an exact lookup; blanked when the name is (erasure, merge tombstone)."""
    folded = name_fold(value)
    return blind_index(kind=NAME_INDEX_KIND, value=folded) if folded else ""

"""Free text that staff type (reveal and denial reasons, acknowledgements, notes) without plaintext PII.

A reason such as "customer hanako@example.jp called" is stored twice: masked in the plain column
("customer <EMAIL_ADDRESS> called") and, only when something was masked, in full as ciphertext in a
JSON column — for audit entries ``additional_data["reason_enc"]``. Roles that may reveal personal
data (:data:`REVEAL_PERMISSION`) read the full text; each such read is itself an audit entry.

Whose key seals the full text: the text dies with the person it is about.

- Text about a *subject* — an object with a ``data_key_id`` (a profile or identity: the person's
  key; a data subject request: the request's key, shredded when its data is destroyed) — is
  sealed under that key (``{"k", "t", "s": 1}``). Erasing the person (or destroying the request's
  data) crypto-shreds it with everything else; the masked text stays. If that key is already
  destroyed or missing, no full text is kept at all: never a copy under another key.
  Any other object with its own data key (a store, a webhook, an export) keeps it under that key.
- Only text about an object without a data key (configuration changes, alerts) is sealed under the
  system data key (``owner="audit.freetext"``), which no erasure shreds.

The kernel imports no app: the key is read generically from ``subject.data_key_id``.

The masker is pluggable: ``governance.pii`` registers its pattern recognizers (e-mail, phones,
cards, My Number, …) from its ``AppConfig.ready()`` through :func:`freetext_masker_register`; the
audit kernel does not import it. Without a registered masker the built-in e-mail/phone
patterns (:func:`governance.textpii.pii_mask`: the text folded with NFKC and zero-width/bidi
controls removed; internationalised, quoted and IDN addresses; full-width digits) still apply, and
they always run after the registered masker as a safety net.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from governance.crypto import envelope
from governance.textpii import pii_mask

logger = logging.getLogger(__name__)
REVEAL_PERMISSION = "subjects.reveal_profile_pii"
KEY_OWNER = "audit.freetext"
_AAD = b"audit.freetext:v1"

_masker: Callable[[str], str] | None = None
_clean_cache: dict[str, None] = {}  # texts known to hold nothing to mask (system reasons)
_CLEAN_CACHE_SIZE = 4096
_key_id: uuid.UUID | None = None


def freetext_masker_register(masker: Callable[[str], str]) -> None:
    """Install the masker (``text -> text with PII replaced``); the PII app calls this at start-up."""
    global _masker
    _masker = masker
    _clean_cache.clear()


def _builtin_mask(text: str) -> str:
    return pii_mask(text)


def freetext_mask(text: str) -> str:
    """``text`` with identified personal data replaced by ``<ENTITY_TYPE>``."""
    if not text or text in _clean_cache:
        return text
    masked = text
    if _masker is not None:
        try:
            masked = _masker(text)
        except Exception:  # a recognizer bug must not stop an audited action: the built-in masks still apply
            logger.exception("free-text masker failed; built-in e-mail/phone masking only")
    masked = _builtin_mask(masked)
    if masked == text:
        if len(_clean_cache) >= _CLEAN_CACHE_SIZE:
            _clean_cache.clear()
        _clean_cache[text] = None
    return masked


@dataclass(frozen=True)
class ProtectedText:
    masked: str  # for the plain column
    sealed: dict | None  # {"k": data key id, "t": ciphertext[, "s": 1 under a subject's key]} when masked

    def data(self, name: str = "reason_enc") -> dict:
        """The JSON to merge into a row's additional data (empty when nothing was masked)."""
        return {name: self.sealed} if self.sealed else {}


# What freetext_reveal_state() found.
REVEALED = "revealed"
DESTROYED = "destroyed"  # the key was crypto-shredded: the full text is gone for good
UNREADABLE = "unreadable"  # no sealed text, its key is unknown, or it does not authenticate


def _system_key() -> uuid.UUID:
    global _key_id
    if _key_id is None:
        from governance.crypto.models import DataKey

        _key_id = (DataKey.objects.filter(owner=KEY_OWNER, destroyed_at=None).order_by("created_at")
                   .values_list("id", flat=True).first()) or envelope.data_key_create(owner=KEY_OWNER)
    return _key_id


def freetext_subject_key(subject: object | None) -> uuid.UUID | None:
    """The data key of the person (or request) ``subject`` is about: its ``data_key_id``, if any."""
    key = getattr(subject, "data_key_id", None) if subject is not None else None
    if not key:
        return None
    try:
        return key if isinstance(key, uuid.UUID) else uuid.UUID(str(key))
    except ValueError:
        return None


def freetext_protect(text: str, *, max_length: int | None = None, subject: object | None = None) -> ProtectedText:
    """Mask ``text`` for its plain column and seal the full text when anything was masked.

    ``subject``: the object the text is about. With a ``data_key_id`` the full text is sealed under
    that key (and dies with it); without one, under the system key.
    """
    global _key_id
    text = text or ""
    masked = freetext_mask(text)
    plain = masked[:max_length] if max_length else masked
    if masked == text:
        return ProtectedText(plain, None)
    subject_key = freetext_subject_key(subject)
    if subject_key is not None:
        try:
            token = envelope.encrypt(dek_id=subject_key, plaintext=text, aad=_AAD)
        except (envelope.DataKeyMissing, envelope.DataKeyDestroyed) as exc:
            # The person is erased (or merged away): no full text may outlive them, under any key.
            logger.info("free text about %s kept masked only: its data key is %s", type(subject).__name__,
                        "destroyed" if isinstance(exc, envelope.DataKeyDestroyed) else "missing")
            return ProtectedText(plain, None)
        return ProtectedText(plain, {"k": str(subject_key), "t": token, "s": 1})
    for attempt in (0, 1):
        key = _system_key()
        try:
            token = envelope.encrypt(dek_id=key, plaintext=text, aad=_AAD)
            break
        except (envelope.DataKeyMissing, envelope.DataKeyDestroyed):
            _key_id = None  # another database (tests) or the key was shredded: use a fresh one
            if attempt:
                raise
    return ProtectedText(plain, {"k": str(key), "t": token})


def freetext_reveal_state(sealed: dict | None) -> tuple[str | None, str]:
    """``(full text, REVEALED)``, or ``(None, DESTROYED)`` when its key was shredded (the person
    was erased), or ``(None, UNREADABLE)``."""
    if not sealed or not isinstance(sealed, dict):
        return None, UNREADABLE
    try:
        return envelope.decrypt(dek_id=uuid.UUID(sealed["k"]), token=sealed["t"], aad=_AAD), REVEALED
    except envelope.DataKeyDestroyed:
        return None, DESTROYED
    except (envelope.DataKeyMissing, envelope.DecryptionFailed, KeyError, ValueError, TypeError):
        return None, UNREADABLE


def freetext_reveal(sealed: dict | None) -> str | None:
    """The full text of a sealed value, or ``None`` when there is none or its key is destroyed."""
    return freetext_reveal_state(sealed)[0]


def freetext_keys_destroyed(sealed: Iterable[dict | None]) -> set[str]:
    """Of the keys naming these sealed values, the ones crypto-shredded (one key-store query)."""
    from governance.crypto.models import DataKey

    ids = set()
    for value in sealed:
        try:
            ids.add(uuid.UUID(str(value["k"])))
        except (TypeError, KeyError, ValueError):
            continue
    if not ids:
        return set()
    destroyed = DataKey.objects.filter(id__in=ids, destroyed_at__isnull=False).values_list("id", flat=True)
    return {str(key) for key in destroyed}


def may_reveal_freetext(user) -> bool:
    return bool(user is not None and getattr(user, "is_active", False) and user.has_perm(REVEAL_PERMISSION))

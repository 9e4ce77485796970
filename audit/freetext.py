"""Free text that staff type (reveal and denial reasons, acknowledgements, notes) without plaintext PII.

A reason such as "customer hanako@example.jp called" is stored twice: masked in the plain column
("customer <EMAIL_ADDRESS> called") and, only when something was masked, in full as ciphertext
(envelope encryption under a system data key, ``owner="audit.freetext"``) in a JSON column — for
audit entries ``additional_data["reason_enc"]``. Roles that may reveal personal data
(:data:`REVEAL_PERMISSION`) read the full text; each such read is itself an audit entry.

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
from collections.abc import Callable
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
    sealed: dict | None  # {"k": data key id, "t": ciphertext} when something was masked

    def data(self, name: str = "reason_enc") -> dict:
        """The JSON to merge into a row's additional data (empty when nothing was masked)."""
        return {name: self.sealed} if self.sealed else {}


def _system_key() -> uuid.UUID:
    global _key_id
    if _key_id is None:
        from governance.crypto.models import DataKey

        _key_id = (DataKey.objects.filter(owner=KEY_OWNER, destroyed_at=None).order_by("created_at")
                   .values_list("id", flat=True).first()) or envelope.data_key_create(owner=KEY_OWNER)
    return _key_id


def freetext_protect(text: str, *, max_length: int | None = None) -> ProtectedText:
    """Mask ``text`` for its plain column and seal the full text when anything was masked."""
    global _key_id
    text = text or ""
    masked = freetext_mask(text)
    if masked == text:
        return ProtectedText(masked[:max_length] if max_length else masked, None)
    for attempt in (0, 1):
        key = _system_key()
        try:
            token = envelope.encrypt(dek_id=key, plaintext=text, aad=_AAD)
            break
        except (envelope.DataKeyMissing, envelope.DataKeyDestroyed):
            _key_id = None  # another database (tests) or the key was shredded: use a fresh one
            if attempt:
                raise
    return ProtectedText(masked[:max_length] if max_length else masked, {"k": str(key), "t": token})


def freetext_reveal(sealed: dict | None) -> str | None:
    """The full text of a sealed value, or ``None`` when there is none or its key is destroyed."""
    if not sealed or not isinstance(sealed, dict):
        return None
    try:
        return envelope.decrypt(dek_id=uuid.UUID(sealed["k"]), token=sealed["t"], aad=_AAD)
    except (envelope.DataKeyDestroyed, envelope.DataKeyMissing, envelope.DecryptionFailed, KeyError, ValueError):
        return None


def may_reveal_freetext(user) -> bool:
    return bool(user is not None and getattr(user, "is_active", False) and user.has_perm(REVEAL_PERMISSION))

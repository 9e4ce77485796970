"""Master keys (KEKs) from ``MAMORU_MASTER_KEYS``.

Format: ``id:base64key[,id:base64key…]`` — 32-byte keys, url-safe or standard base64. The first
entry is the active key that wraps new data keys; the others only unwrap, which is what lets
``rotate_keys`` move every data key to the newest master key while reads continue.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class KeyRingError(ValueError):
    """MAMORU_MASTER_KEYS cannot be parsed."""


@dataclass(frozen=True)
class KeyRing:
    active_id: str
    keys: dict[str, bytes]

    def get(self, key_id: str) -> bytes:
        try:
            return self.keys[key_id]
        except KeyError:
            raise KeyRingError(
                f"Master key {key_id!r} is not in MAMORU_MASTER_KEYS (known: {', '.join(self.keys)})."
                " Add it back (after the active key) until rotate_keys has finished."
            ) from None


def _decode(value: str) -> bytes:
    padded = value + "=" * (-len(value) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except (binascii.Error, ValueError) as exc:
        raise KeyRingError("a master key is not valid base64") from exc


def parse_master_keys(spec: str) -> KeyRing:
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not KEY_ID_RE.match(key_id):
            raise KeyRingError(
                "each MAMORU_MASTER_KEYS entry must be 'id:base64key' with an id of letters,"
                " digits, '.', '_' or '-'"
            )
        raw = _decode(encoded)
        if len(raw) != 32:
            raise KeyRingError(f"master key {key_id!r} must be 32 bytes, got {len(raw)}")
        if key_id in keys:
            raise KeyRingError(f"master key id {key_id!r} appears twice")
        keys[key_id] = raw
        order.append(key_id)
    if not order:
        raise KeyRingError("MAMORU_MASTER_KEYS is empty")
    return KeyRing(active_id=order[0], keys=keys)


@lru_cache(maxsize=4)
def _cached(spec: str) -> KeyRing:
    return parse_master_keys(spec)


def get_keyring() -> KeyRing:
    return _cached(settings.MAMORU_MASTER_KEYS)

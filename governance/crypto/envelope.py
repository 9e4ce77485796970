"""Envelope encryption: AES-256-GCM data keys (DEKs) wrapped by master keys (KEKs).

Ciphertext format (text, portable across SQLite, PostgreSQL and MariaDB):
``v1.<base64url(nonce[12] || ciphertext || tag[16])>``. The associated data names the model,
field and row, so a ciphertext copied into another row or column fails authentication.
"""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from governance.crypto.keyring import get_keyring
from governance.crypto.models import DataKey

TOKEN_PREFIX = "v1."
NONCE_BYTES = 12


class CryptoError(Exception):
    """Base class for encryption errors."""


class DataKeyDestroyed(CryptoError):
    """The data key was crypto-shredded: the value is gone for good."""


class DataKeyMissing(CryptoError):
    """No data key with this id exists in the key store."""


class DecryptionFailed(CryptoError):
    """The ciphertext does not authenticate: tampered, or copied from another row or field."""


def _dek_aad(dek_id: uuid.UUID) -> bytes:
    return b"mamoru-dek:" + dek_id.bytes


def wrap_key(*, dek_id: uuid.UUID, raw: bytes, kek_id: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    kek = get_keyring().get(kek_id)
    return nonce + AESGCM(kek).encrypt(nonce, raw, _dek_aad(dek_id))


def unwrap_key(*, dek_id: uuid.UUID, wrapped: bytes, kek_id: str) -> bytes:
    kek = get_keyring().get(kek_id)
    try:
        return AESGCM(kek).decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _dek_aad(dek_id))
    except InvalidTag as exc:
        raise DecryptionFailed(f"data key {dek_id} does not unwrap under master key {kek_id}") from exc


class _DekCache:
    """Unwrapped DEKs per process for ``MAMORU_DEK_CACHE_SECONDS`` (the window after a shred in
    which another process may still decrypt; this process evicts at once)."""

    def __init__(self) -> None:
        self._items: dict[uuid.UUID, tuple[AESGCM, float]] = {}
        self._lock = threading.Lock()

    def get(self, dek_id: uuid.UUID) -> AESGCM | None:
        item = self._items.get(dek_id)
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]

    def put(self, dek_id: uuid.UUID, aead: AESGCM) -> None:
        ttl = settings.MAMORU_DEK_CACHE_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            if len(self._items) > 50_000:
                self._items.clear()
            self._items[dek_id] = (aead, time.monotonic() + ttl)

    def evict(self, dek_id: uuid.UUID) -> None:
        with self._lock:
            self._items.pop(dek_id, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


dek_cache = _DekCache()


def data_key_create(*, owner: str = "") -> uuid.UUID:
    """Create and store a fresh DEK wrapped under the active master key; return its id."""
    keyring = get_keyring()
    dek_id = uuid.uuid4()
    raw = AESGCM.generate_key(bit_length=256)
    DataKey.objects.create(
        id=dek_id,
        kek_id=keyring.active_id,
        wrapped=wrap_key(dek_id=dek_id, raw=raw, kek_id=keyring.active_id),
        owner=owner,
    )
    dek_cache.put(dek_id, AESGCM(raw))
    return dek_id


def data_keys_create(*, count: int, owner: str = "") -> list[uuid.UUID]:
    """Create many DEKs in one round trip (bulk loads, demo data)."""
    keyring = get_keyring()
    rows = []
    for _ in range(count):
        dek_id = uuid.uuid4()
        raw = AESGCM.generate_key(bit_length=256)
        rows.append(
            DataKey(
                id=dek_id,
                kek_id=keyring.active_id,
                wrapped=wrap_key(dek_id=dek_id, raw=raw, kek_id=keyring.active_id),
                owner=owner,
            )
        )
        dek_cache.put(dek_id, AESGCM(raw))
    DataKey.objects.bulk_create(rows, batch_size=500)
    return [row.id for row in rows]


def _fetch_wrapped(dek_id: uuid.UUID) -> tuple | None:
    # Raw SQL on a hot path (first read of each profile); the ORM doubled its cost.
    connection = connections["keystore"]
    table = connection.ops.quote_name(DataKey._meta.db_table)
    param = DataKey._meta.pk.get_db_prep_value(dek_id, connection)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT kek_id, wrapped, destroyed_at FROM {table} WHERE id = %s", [param])  # noqa: S608
        return cursor.fetchone()


def _load(dek_id: uuid.UUID) -> AESGCM:
    aead = dek_cache.get(dek_id)
    if aead is not None:
        return aead
    row = _fetch_wrapped(dek_id)
    if row is None:
        raise DataKeyMissing(f"data key {dek_id} does not exist")
    kek_id, wrapped, destroyed_at = row
    if destroyed_at is not None or not wrapped:
        raise DataKeyDestroyed(f"data key {dek_id} was destroyed at {destroyed_at}")
    aead = AESGCM(unwrap_key(dek_id=dek_id, wrapped=bytes(wrapped), kek_id=kek_id))
    dek_cache.put(dek_id, aead)
    return aead


def preload(dek_ids: Iterable[uuid.UUID]) -> None:
    """Unwrap many DEKs with one key-store query (list views, exports)."""
    missing = [d for d in set(dek_ids) if d is not None and dek_cache.get(d) is None]
    for start in range(0, len(missing), 500):
        for row in DataKey.objects.filter(id__in=missing[start : start + 500], destroyed_at=None):
            if row.wrapped:
                dek_cache.put(
                    row.id,
                    AESGCM(unwrap_key(dek_id=row.id, wrapped=bytes(row.wrapped), kek_id=row.kek_id)),
                )


def data_key_destroy(*, dek_id: uuid.UUID) -> None:
    """Crypto-shred: overwrite the wrapped DEK and keep a tombstone with the time."""
    with transaction.atomic(using="keystore"):
        DataKey.objects.filter(id=dek_id).update(
            wrapped=b"", kek_id="", destroyed_at=timezone.now()
        )
    dek_cache.evict(dek_id)
    connection = connections["keystore"]
    if connection.vendor == "sqlite" and not connection.in_atomic_block:
        # Move the overwritten page out of the write-ahead log into the (secure_delete) file.
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def encrypt(*, dek_id: uuid.UUID, plaintext: str, aad: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = _load(dek_id).encrypt(nonce, plaintext.encode("utf-8"), aad)
    return TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt(*, dek_id: uuid.UUID, token: str, aad: bytes) -> str:
    if not token.startswith(TOKEN_PREFIX):
        raise DecryptionFailed("not a Mamoru ciphertext")
    blob = base64.urlsafe_b64decode(token[len(TOKEN_PREFIX) :])
    try:
        return _load(dek_id).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad).decode("utf-8")
    except InvalidTag as exc:
        raise DecryptionFailed(
            "ciphertext does not authenticate for this row and field (tampered or copied)"
        ) from exc

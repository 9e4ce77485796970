"""Sealed files: the one encrypted-file format (DSR results, access packages, audit exports).

A stream of bytes is cut into chunks, each sealed with AES-256-GCM under a data key (DEK) from the
key store, and closed by an authenticated end-of-stream record::

    header   MAGIC (8 bytes) | file id (16 random bytes)
    record   kind (1 byte: 0 data, 1 end) | length (4 bytes, big endian) | nonce (12) | ciphertext+tag
    ...      data records 0..n-1, then exactly one end record, then nothing

Every record's associated data binds it to the file: the caller's ``context`` (what the file is,
e.g. ``dsr:<request>:<name>``), the random file id from the header, the record's index and its
kind. The end record holds the number of data records and the plain size. So a truncated file
(no end record), a reordered, duplicated or dropped chunk (wrong index), a chunk from another file
or another version of the same file (wrong file id or context), a flipped bit, or bytes appended
after the end record all raise :class:`SealedFileDamaged`; an empty file has no header and is
refused too. Readers stream: a chunk is yielded only once it authenticates, and the error comes at
the point of damage, so a consumer must treat what it read as valid only when iteration finished.

Destroying the DEK (``envelope.data_key_destroy``) makes every copy of the file unreadable.
"""

from __future__ import annotations

import os
import struct
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag

from governance.crypto import envelope

MAGIC = b"MSEALF1\n"
CHUNK_SIZE = 1024 * 1024
NONCE_BYTES = 12
TAG_BYTES = 16
KIND_DATA, KIND_END = 0, 1
_RECORD_HEAD = struct.Struct(">BI")
_END_BODY = struct.Struct(">QQ")  # data records, plain bytes
_MAX_RECORD = 64 * 1024 * 1024 + NONCE_BYTES + TAG_BYTES


class SealedFileDamaged(envelope.CryptoError):
    """The file is truncated, reordered, spliced, extended or altered: nothing in it can be trusted."""


@dataclass(frozen=True)
class SealedFileInfo:
    path: Path
    size: int  # plain bytes
    chunks: int


def _aad(context: str, file_id: bytes, index: int, kind: int) -> bytes:
    label = context.encode("utf-8")
    return b"mamoru-sealed-file/1\x00" + struct.pack(">I", len(label)) + label + file_id + struct.pack(
        ">QB", index, kind
    )


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer.extend(chunk)
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


def sealed_file_write(
    *, path: Path, dek_id: uuid.UUID, context: str, chunks: Iterable[bytes], chunk_size: int = CHUNK_SIZE
) -> SealedFileInfo:
    """Seal the bytes of ``chunks`` into ``path`` (atomically: a temporary file renamed into place)."""
    if not 0 < chunk_size <= _MAX_RECORD - NONCE_BYTES - TAG_BYTES:
        raise ValueError("chunk_size out of range")
    aead = envelope._load(dek_id)  # noqa: SLF001 - same package; raises DataKeyDestroyed/Missing
    path = Path(path)
    file_id = os.urandom(16)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.part")
    index = size = 0

    def record(kind: int, plain: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        body = nonce + aead.encrypt(nonce, plain, _aad(context, file_id, index, kind))
        return _RECORD_HEAD.pack(kind, len(body)) + body

    try:
        with open(tmp, "wb") as handle:
            handle.write(MAGIC + file_id)
            for piece in _rechunk(chunks, chunk_size):
                handle.write(record(KIND_DATA, piece))
                index += 1
                size += len(piece)
            handle.write(record(KIND_END, _END_BODY.pack(index, size)))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return SealedFileInfo(path=path, size=size, chunks=index)


def _read_exact(handle, count: int, what: str) -> bytes:
    data = handle.read(count)
    if len(data) != count:
        raise SealedFileDamaged(f"sealed file ends inside {what} (truncated)")
    return data


def sealed_file_read(*, path: Path, dek_id: uuid.UUID, context: str) -> Iterator[bytes]:
    """Yield the plain chunks of a sealed file; raise :class:`SealedFileDamaged` on any damage."""
    with open(path, "rb") as handle:
        head = handle.read(len(MAGIC) + 16)
        if len(head) < len(MAGIC) + 16 or head[: len(MAGIC)] != MAGIC:
            raise SealedFileDamaged("not a sealed file (missing or wrong header)")
        file_id = head[len(MAGIC):]
        aead = envelope._load(dek_id)  # noqa: SLF001
        index = size = 0
        while True:
            raw = handle.read(_RECORD_HEAD.size)
            if not raw:
                raise SealedFileDamaged(f"sealed file ends after {index} chunks without its end record (truncated)")
            if len(raw) != _RECORD_HEAD.size:
                raise SealedFileDamaged("sealed file ends inside a record header (truncated)")
            kind, length = _RECORD_HEAD.unpack(raw)
            if kind not in (KIND_DATA, KIND_END) or not NONCE_BYTES + TAG_BYTES <= length <= _MAX_RECORD:
                raise SealedFileDamaged(f"record {index} has a damaged header")
            body = _read_exact(handle, length, f"record {index}")
            try:
                plain = aead.decrypt(body[:NONCE_BYTES], body[NONCE_BYTES:], _aad(context, file_id, index, kind))
            except InvalidTag as exc:
                raise SealedFileDamaged(
                    f"record {index} does not authenticate (altered, reordered, or from another file)"
                ) from exc
            if kind == KIND_DATA:
                index += 1
                size += len(plain)
                yield plain
                continue
            if len(plain) != _END_BODY.size or _END_BODY.unpack(plain) != (index, size):
                raise SealedFileDamaged("end record does not match the chunks read")
            if handle.read(1):
                raise SealedFileDamaged("bytes after the end record (appended)")
            return

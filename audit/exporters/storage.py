"""Export files on disk, encrypted at rest with their own data key (crypto-shredded on expiry).

File format: one line per chunk, each ``envelope.encrypt`` of the base64 of up to ``CHUNK`` bytes.
The associated data binds each chunk to the export, its position and whether it is the last one,
so chunks cannot be reordered, swapped between exports or cut off at the end unnoticed.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings

from governance.crypto import envelope

CHUNK = 1024 * 1024


class ExportFileDamaged(Exception):
    """The file ends early or a chunk does not authenticate."""


def exports_dir() -> Path:
    path = Path(settings.VAR_DIR) / "audit-exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _aad(export_id: uuid.UUID, index: int, last: bool) -> bytes:
    return f"mamoru-audit-export:{export_id}:{index}:{int(last)}".encode()


def _rechunk(chunks: Iterable[bytes]) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer.extend(chunk)
        while len(buffer) >= CHUNK:
            yield bytes(buffer[:CHUNK])
            del buffer[:CHUNK]
    yield bytes(buffer)


def file_write(
    *, path: Path, chunks: Iterable[bytes], export_id: uuid.UUID, dek_id: uuid.UUID | None
) -> int:
    """Write ``chunks`` to ``path`` (encrypted when ``dek_id`` is given); return the plain size."""
    size = 0
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as handle:
        if dek_id is None:
            for chunk in chunks:
                handle.write(chunk)
                size += len(chunk)
        else:
            previous: bytes | None = None
            index = 0
            for piece in _rechunk(chunks):
                if previous is not None:
                    handle.write(_seal(previous, export_id, index, False, dek_id))
                    index += 1
                previous = piece
                size += len(piece)
            handle.write(_seal(previous or b"", export_id, index, True, dek_id))
    tmp.replace(path)
    return size


def _seal(data: bytes, export_id, index: int, last: bool, dek_id) -> bytes:
    token = envelope.encrypt(
        dek_id=dek_id, plaintext=base64.b64encode(data).decode("ascii"), aad=_aad(export_id, index, last)
    )
    return token.encode("ascii") + b"\n"


def file_read(*, path: Path, export_id: uuid.UUID, dek_id: uuid.UUID | None) -> Iterator[bytes]:
    """Yield the plain bytes of an export file."""
    with open(path, "rb") as handle:
        if dek_id is None:
            while chunk := handle.read(CHUNK):
                yield chunk
            return
        lines = iter(handle)
        current = next(lines, None)
        index = 0
        while current is not None:
            following = next(lines, None)
            last = following is None
            try:
                plain = envelope.decrypt(
                    dek_id=dek_id, token=current.strip().decode("ascii"), aad=_aad(export_id, index, last)
                )
            except envelope.DecryptionFailed as exc:
                raise ExportFileDamaged(f"chunk {index} of export {export_id} is damaged or truncated") from exc
            yield base64.b64decode(plain)
            current, index = following, index + 1

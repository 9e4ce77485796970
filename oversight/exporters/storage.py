"""Export files on disk, encrypted at rest with their own data key (crypto-shredded on expiry).

Encrypted exports are sealed files (:mod:`governance.crypto.sealedfile`, the one format shared
with DSR results and access packages): chunked AES-256-GCM bound to the export, with an
authenticated end-of-stream record, so chunks cannot be reordered, swapped between exports or cut
off at the end unnoticed. Exports without personal data and without a key are written plain.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings

from governance.crypto.sealedfile import SealedFileDamaged, sealed_file_read, sealed_file_write

CHUNK = 1024 * 1024

# The sealed-file error under the name callers of this module already catch.
ExportFileDamaged = SealedFileDamaged


def exports_dir() -> Path:
    path = Path(settings.VAR_DIR) / "audit-exports"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _context(export_id: uuid.UUID) -> str:
    return f"audit-export:{export_id}"


def file_write(
    *, path: Path, chunks: Iterable[bytes], export_id: uuid.UUID, dek_id: uuid.UUID | None
) -> int:
    """Write ``chunks`` to ``path`` (sealed when ``dek_id`` is given); return the plain size."""
    if dek_id is not None:
        return sealed_file_write(
            path=path, dek_id=dek_id, context=_context(export_id), chunks=chunks, chunk_size=CHUNK
        ).size
    size = 0
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
            size += len(chunk)
    tmp.replace(path)
    return size


def file_read(*, path: Path, export_id: uuid.UUID, dek_id: uuid.UUID | None) -> Iterator[bytes]:
    """Yield the plain bytes of an export file."""
    if dek_id is not None:
        yield from sealed_file_read(path=path, dek_id=dek_id, context=_context(export_id))
        return
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk

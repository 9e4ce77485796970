"""Request files (node results, access packages) and their destruction.

Each file is a sealed file (:mod:`governance.crypto.sealedfile`: chunked AES-256-GCM with an
authenticated end-of-stream record) under the request's data key, bound to the request and the
file's name. Writes go to a temporary file renamed into place, so a crash never leaves half a
result; a truncated, reordered or spliced file raises ``SealedFileDamaged`` when read.

Destruction (:func:`request_data_destroy`) deletes the request's directory and crypto-shreds its
data key. Deleting alone proves nothing on journaling or copy-on-write file systems and SSDs (the
old blocks may survive, and an overwrite may land elsewhere); what makes every copy, including
backups of ``var/``, unreadable is that the key is gone.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings

from dsr.values import json_default
from governance.crypto import envelope
from governance.crypto.sealedfile import SealedFileDamaged, sealed_file_read, sealed_file_write

__all__ = ["SealedFileDamaged", "read_chunks", "read_rows", "request_data_destroy", "request_dir",
           "request_dir_remove", "request_files_remove", "write_chunks", "write_rows"]

logger = logging.getLogger(__name__)

CHUNK_BYTES = 1024 * 1024


def _root() -> Path:
    return Path(getattr(settings, "MAMORU_DSR_FILES_DIR", None) or Path(settings.VAR_DIR) / "dsr")


def request_dir(request_id: uuid.UUID) -> Path:
    path = _root() / str(request_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def request_dir_remove(request_id: uuid.UUID) -> None:
    """Delete every file of a request (its directory)."""
    shutil.rmtree(_root() / str(request_id), ignore_errors=True)


def request_files_remove(request_id: uuid.UUID, *, keep: Iterable[str] = ()) -> int:
    """Delete the request's files except those named in ``keep``; return how many were deleted."""
    directory = _root() / str(request_id)
    kept = set(keep)
    removed = 0
    if directory.is_dir():
        for path in directory.iterdir():
            if path.name not in kept and path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
    return removed


def request_data_destroy(*, request_id: uuid.UUID, dek_id: uuid.UUID | None) -> None:
    """Delete the request's files and crypto-shred its data key (idempotent).

    With the key go the files (and any copy of them) and the request's encrypted columns (e-mail,
    details, identity seeds, masking key): they read as ``None`` afterwards.
    """
    request_dir_remove(request_id)
    if dek_id is not None:
        envelope.data_key_destroy(dek_id=dek_id)
    logger.info("DSR %s: files deleted and data key destroyed", request_id)


def _context(request_id: uuid.UUID, name: str) -> str:
    return f"dsr-file:{request_id}:{name}"


def write_chunks(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str, chunks: Iterable[bytes]) -> Path:
    info = sealed_file_write(path=request_dir(request_id) / name, dek_id=dek_id,
                             context=_context(request_id, name), chunks=chunks, chunk_size=CHUNK_BYTES)
    return info.path


def read_chunks(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str) -> Iterator[bytes]:
    path = _root() / str(request_id) / name
    yield from sealed_file_read(path=path, dek_id=dek_id, context=_context(request_id, name))


def write_rows(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str, rows: Iterable[dict]) -> tuple[Path, int]:
    """Write rows as encrypted JSON lines (streamed); return the path and the row count."""
    count = 0

    def lines() -> Iterator[bytes]:
        nonlocal count
        for row in rows:
            count += 1
            yield (json.dumps(row, default=json_default, ensure_ascii=False) + "\n").encode("utf-8")

    path = write_chunks(request_id=request_id, dek_id=dek_id, name=name, chunks=lines())
    return path, count


def read_rows(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str) -> Iterator[dict]:
    """Yield the rows of a result file (lines may span chunks)."""
    pending = b""
    for chunk in read_chunks(request_id=request_id, dek_id=dek_id, name=name):
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            if line:
                yield json.loads(line)
    if pending:
        yield json.loads(pending)

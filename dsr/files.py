"""Request files (node results, packages): streamed to disk, encrypted with the request's DEK.

Format: one line per chunk, each ``v1.…`` envelope ciphertext of a base64 chunk, with associated
data naming the request, the file and the chunk number (chunks cannot be reordered or swapped).
Writes go to a temporary file renamed into place, so a crash never leaves half a result.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings

from governance.crypto import envelope

CHUNK_BYTES = 1024 * 1024
ROWS_PER_CHUNK = 2000


def request_dir(request_id: uuid.UUID) -> Path:
    root = Path(getattr(settings, "MAMORU_DSR_FILES_DIR", None) or Path(settings.VAR_DIR) / "dsr")
    path = root / str(request_id)
    path.mkdir(parents=True, exist_ok=True)
    return path


def request_dir_remove(request_id: uuid.UUID) -> None:
    root = Path(getattr(settings, "MAMORU_DSR_FILES_DIR", None) or Path(settings.VAR_DIR) / "dsr")
    shutil.rmtree(root / str(request_id), ignore_errors=True)


def _aad(request_id: uuid.UUID, name: str, index: int) -> bytes:
    return f"dsr-file:{request_id}:{name}:{index}".encode()


def write_chunks(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str, chunks: Iterable[bytes]) -> Path:
    path = request_dir(request_id) / name
    tmp = path.with_suffix(path.suffix + f".{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="ascii") as fh:
        for index, chunk in enumerate(chunks):
            token = envelope.encrypt(
                dek_id=dek_id, plaintext=base64.b64encode(chunk).decode("ascii"),
                aad=_aad(request_id, name, index),
            )
            fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def read_chunks(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str) -> Iterator[bytes]:
    path = request_dir(request_id) / name
    with open(path, encoding="ascii") as fh:
        for index, line in enumerate(fh):
            plaintext = envelope.decrypt(dek_id=dek_id, token=line.strip(), aad=_aad(request_id, name, index))
            yield base64.b64decode(plaintext)


def write_rows(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str, rows: Iterable[dict]) -> tuple[Path, int]:
    """Write rows as encrypted JSON-lines chunks; return the path and the row count."""
    count = 0

    def chunks() -> Iterator[bytes]:
        nonlocal count
        batch: list[str] = []
        for row in rows:
            batch.append(json.dumps(row, default=str, ensure_ascii=False))
            count += 1
            if len(batch) >= ROWS_PER_CHUNK:
                yield ("\n".join(batch) + "\n").encode("utf-8")
                batch = []
        if batch:
            yield ("\n".join(batch) + "\n").encode("utf-8")

    path = write_chunks(request_id=request_id, dek_id=dek_id, name=name, chunks=chunks())
    return path, count


def read_rows(*, request_id: uuid.UUID, dek_id: uuid.UUID, name: str) -> Iterator[dict]:
    for chunk in read_chunks(request_id=request_id, dek_id=dek_id, name=name):
        for line in chunk.decode("utf-8").splitlines():
            if line:
                yield json.loads(line)

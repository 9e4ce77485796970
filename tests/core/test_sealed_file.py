"""The one encrypted-file format: round trips stream; any damage to the stream is refused."""

from __future__ import annotations

import os
import struct
import tracemalloc

import pytest

from governance.crypto import sealedfile
from governance.crypto.envelope import DataKeyDestroyed, data_key_create, data_key_destroy
from governance.crypto.sealedfile import SealedFileDamaged, sealed_file_read, sealed_file_write

pytestmark = pytest.mark.django_db(databases=["default", "keystore"])

HEADER = len(sealedfile.MAGIC) + 16


@pytest.fixture
def dek():
    return data_key_create(owner="test")


def _write(path, dek, data: bytes, *, context="ctx:a", chunk_size=16):
    pieces = [data[i:i + 7] for i in range(0, len(data), 7)]
    return sealed_file_write(path=path, dek_id=dek, context=context, chunks=pieces, chunk_size=chunk_size)


def _read(path, dek, context="ctx:a") -> bytes:
    return b"".join(sealed_file_read(path=path, dek_id=dek, context=context))


def _records(path) -> tuple[bytes, list[bytes]]:
    """Split a sealed file into its header and its raw records (test helper, mirrors the format)."""
    raw = path.read_bytes()
    header, rest, records = raw[:HEADER], raw[HEADER:], []
    while rest:
        _kind, length = struct.unpack(">BI", rest[:5])
        records.append(rest[:5 + length])
        rest = rest[5 + length:]
    return header, records


@pytest.mark.parametrize("size", [0, 1, 16, 17, 1000])
def test_round_trip_of_zero_one_and_many_chunks(tmp_path, dek, size):
    data = os.urandom(size)
    path = tmp_path / "f.sealed"
    info = _write(path, dek, data)
    assert info.size == size and info.chunks == -(-size // 16)
    assert _read(path, dek) == data
    if size >= 16:
        assert data not in path.read_bytes()


def _damaged(path, damage: str, other=None):
    header, records = _records(path)
    if damage == "drop_last_chunk":
        records = records[:-2] + records[-1:]
    elif damage == "drop_end_record":
        records = records[:-1]
    elif damage == "cut_mid_record":
        path.write_bytes(header + b"".join(records)[:-5])
        return
    elif damage == "reorder":
        records = [records[1], records[0], *records[2:]]
    elif damage == "duplicate":
        records = [records[0], *records]
    elif damage == "append":
        records = [*records, records[0]]
    elif damage == "swap_from_other_file":
        _other_header, other_records = _records(other)
        records = [other_records[0], *records[1:]]
    elif damage == "bit_flip":
        blob = bytearray(header + b"".join(records))
        blob[HEADER + 30] ^= 0x01
        path.write_bytes(bytes(blob))
        return
    elif damage == "flip_kind":
        first = bytearray(records[0])
        first[0] = sealedfile.KIND_END
        records = [bytes(first), *records[1:]]
    elif damage == "empty":
        path.write_bytes(b"")
        return
    elif damage == "header_only":
        records = []
    path.write_bytes(header + b"".join(records))


@pytest.mark.parametrize("damage", ["drop_last_chunk", "drop_end_record", "cut_mid_record", "reorder",
                                    "duplicate", "append", "swap_from_other_file", "bit_flip", "flip_kind",
                                    "empty", "header_only"])
def test_damaged_files_are_refused(tmp_path, dek, damage):
    data = bytes(range(256)) * 2  # 32 chunks of 16 bytes
    path, other = tmp_path / "f.sealed", tmp_path / "g.sealed"
    _write(path, dek, data)
    _write(other, dek, data)  # same key, same context, same content: only the file id differs
    _damaged(path, damage, other)
    with pytest.raises(SealedFileDamaged):
        _read(path, dek)


def test_a_file_read_under_another_context_is_refused(tmp_path, dek):
    path = tmp_path / "f.sealed"
    _write(path, dek, b"hello world, more than one chunk")
    with pytest.raises(SealedFileDamaged):
        _read(path, dek, context="ctx:b")


def test_shredded_key_leaves_the_file_unreadable(tmp_path, dek):
    path = tmp_path / "f.sealed"
    _write(path, dek, b"secret")
    data_key_destroy(dek_id=dek)
    with pytest.raises(DataKeyDestroyed):
        _read(path, dek)


def test_large_files_stream_without_loading_everything(tmp_path, dek):
    chunk, count = 64 * 1024, 200  # 12.5 MiB through 64 KiB chunks
    path = tmp_path / "big.sealed"
    tracemalloc.start()
    try:
        info = sealed_file_write(path=path, dek_id=dek, context="big",
                                 chunks=(bytes([i % 251]) * chunk for i in range(count)), chunk_size=chunk)
        total = 0
        for i, piece in enumerate(sealed_file_read(path=path, dek_id=dek, context="big")):
            assert piece == bytes([i % 251]) * chunk
            total += len(piece)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == total == chunk * count
    assert peak < 2 * 1024 * 1024  # a few chunks at a time, never the 12.5 MiB


def test_truncated_dsr_result_file_is_an_error_not_a_shorter_result(monkeypatch, dek):
    """Finding 5: a DSR result cut at a chunk (line) boundary used to read as a complete, shorter result."""
    import uuid

    from dsr import files

    monkeypatch.setattr(files, "CHUNK_BYTES", 4096)
    request_id = uuid.uuid4()
    rows = [{"id": i, "email": f"person{i}@example.com"} for i in range(5000)]
    path, count = files.write_rows(request_id=request_id, dek_id=dek, name="access-x.jsonl.enc", rows=rows)
    assert count == 5000
    assert list(files.read_rows(request_id=request_id, dek_id=dek, name="access-x.jsonl.enc")) == rows
    raw = path.read_bytes()
    boundaries = [i + 1 for i, byte in enumerate(raw[:-1]) if byte == 0x0A]
    cuts = sorted(set(boundaries[:20] + boundaries[-20:] + [len(raw) - 1, len(raw) // 2]))
    try:
        for cut in cuts:
            path.write_bytes(raw[:cut])
            with pytest.raises(files.SealedFileDamaged):
                list(files.read_rows(request_id=request_id, dek_id=dek, name="access-x.jsonl.enc"))
    finally:
        files.request_dir_remove(request_id)

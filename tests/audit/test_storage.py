"""Export files at rest: encrypted per export; reordering, truncation and expiry are handled."""

from __future__ import annotations

import pytest

from governance.crypto.envelope import data_key_create
from oversight.exporters import storage
from oversight.exporters.services import (
    ExportGone,
    audit_export_create,
    audit_export_download,
    audit_export_run,
    audit_exports_purge,
)

pytestmark = pytest.mark.django_db


def _write(tmp_path, monkeypatch, data: bytes):
    import uuid

    monkeypatch.setattr(storage, "CHUNK", 16)
    export_id, dek = uuid.uuid4(), data_key_create(owner="test")
    path = tmp_path / "f.enc"
    storage.file_write(path=path, chunks=[data[:10], data[10:]], export_id=export_id, dek_id=dek)
    return path, export_id, dek


def test_round_trip(tmp_path, monkeypatch):
    data = bytes(range(256)) * 3
    path, export_id, dek = _write(tmp_path, monkeypatch, data)
    assert data not in path.read_bytes()
    assert b"".join(storage.file_read(path=path, export_id=export_id, dek_id=dek)) == data


@pytest.mark.parametrize("damage", ["reorder", "truncate"])
def test_reordered_or_truncated_files_are_refused(tmp_path, monkeypatch, damage):
    path, export_id, dek = _write(tmp_path, monkeypatch, b"x" * 100)
    lines = path.read_bytes().splitlines(keepends=True)
    lines = [lines[1], lines[0], *lines[2:]] if damage == "reorder" else lines[:-1]
    path.write_bytes(b"".join(lines))
    with pytest.raises(storage.ExportFileDamaged):
        b"".join(storage.file_read(path=path, export_id=export_id, dek_id=dek))


def test_expired_exports_are_purged_and_shredded(audited_profiles, role_users):
    from django.utils import timezone

    from governance.crypto.models import DataKey

    dpo = role_users["dpo"]
    export = audit_export_run(export_id=audit_export_create(
        user=dpo, report="access_log", fmt="csv", filters={}, streamed=False).pk)
    path = storage.exports_dir() / export.file_name
    assert path.exists()
    assert audit_exports_purge(now=export.expires_at + timezone.timedelta(seconds=1)) == 1
    assert not path.exists()
    assert DataKey.objects.get(pk=export.data_key_id).destroyed_at is not None
    export.refresh_from_db()
    with pytest.raises(ExportGone):
        audit_export_download(export=export, user=dpo)

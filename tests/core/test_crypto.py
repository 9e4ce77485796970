"""Envelope encryption, AAD binding, blind index, key rotation and crypto-shredding."""

from __future__ import annotations

import base64
import os
import shutil
import sqlite3
import subprocess

import pytest
from django.core.management import call_command
from django.db import connection, connections

from governance.crypto import envelope
from governance.crypto.keyring import KeyRingError, parse_master_keys
from governance.crypto.models import DataKey
from governance.subjects.models import Identity, Profile
from governance.subjects.selectors import profile_get_by_identity
from governance.subjects.services import IdentityInput, profile_shred, profile_upsert
from tests.factories import make_profile


def _key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def _raw_column(table: str, column: str, pk) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk.hex if connection.vendor == "sqlite" else pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_values_are_stored_as_ciphertext_and_read_back(workspaces):
    profile = make_profile(workspaces[0], locale="ja_JP", full_name="山田 太郎")
    raw = _raw_column("subjects_profile", "full_name", profile.pk)
    assert raw.startswith("v1.") and "山田" not in raw
    assert Profile.objects.get(pk=profile.pk).full_name == "山田 太郎"


@pytest.mark.django_db
def test_ciphertext_copied_to_another_row_fails_to_decrypt(workspaces):
    alice = make_profile(workspaces[0], full_name="Alice Example")
    bob = make_profile(workspaces[0], full_name="Bob Example")
    stolen = _raw_column("subjects_profile", "full_name", alice.pk)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE subjects_profile SET full_name = %s WHERE id = %s",
            [stolen, bob.pk.hex if connection.vendor == "sqlite" else bob.pk],
        )
    # Even with the same data key the row id in the associated data differs.
    with pytest.raises(envelope.DecryptionFailed):
        Profile.objects.get(pk=bob.pk).full_name  # noqa: B018


@pytest.mark.django_db
def test_ciphertext_moved_to_another_field_fails(workspaces):
    alice = make_profile(workspaces[0], full_name="Alice Example")
    token = _raw_column("subjects_profile", "full_name", alice.pk)
    with pytest.raises(envelope.DecryptionFailed):
        envelope.decrypt(dek_id=alice.data_key_id, token=token, aad=f"subjects.profile.address:{alice.pk}".encode())


@pytest.mark.django_db
def test_encrypted_fields_refuse_plaintext_queries(workspaces):
    make_profile(workspaces[0])
    with pytest.raises(TypeError):
        Profile.objects.update(full_name="plain")
    with pytest.raises(Exception):  # noqa: B017 - FieldError: no 'exact' lookup on ciphertext
        list(Profile.objects.filter(full_name="x"))


@pytest.mark.django_db
def test_lookup_by_blind_index_normalises(workspaces):
    profile = make_profile(workspaces[0], locale="ja_JP", email="Hanako.Sato@Example.JP", phone="090-1234-5678")
    assert profile_get_by_identity(workspace=workspaces[0], kind="email", value="hanako.sato@example.jp") == profile
    # Full-width digits and national format find the E.164 phone.
    assert profile_get_by_identity(workspace=workspaces[0], kind="phone", value="０９０１２３４５６７８") == profile
    assert profile_get_by_identity(workspace=workspaces[0], kind="phone", value="+81 90-1234-5678") == profile
    assert profile_get_by_identity(workspace=workspaces[1], kind="email", value="hanako.sato@example.jp") is None
    index = Identity.objects.get(profile=profile, kind="email").value_index
    assert len(index) == 64 and "hanako" not in index


def test_master_key_parsing_errors():
    with pytest.raises(KeyRingError):
        parse_master_keys("")
    with pytest.raises(KeyRingError):
        parse_master_keys("k1:" + base64.urlsafe_b64encode(b"short").decode())
    with pytest.raises(KeyRingError):
        parse_master_keys("bad id:" + _key())
    ring = parse_master_keys(f"new:{_key()},old:{_key()}")
    assert ring.active_id == "new" and set(ring.keys) == {"new", "old"}


@pytest.mark.django_db
def test_rotation_with_two_keys_keeps_data_readable_and_resumes(workspaces, settings):
    old = settings.MAMORU_MASTER_KEYS
    profiles = [make_profile(workspaces[0], full_name=f"Person {n}") for n in range(7)]
    settings.MAMORU_MASTER_KEYS = f"rot2:{_key()},{old}"
    envelope.dek_cache.clear()
    # Readable before any key is re-wrapped (old key still listed).
    assert Profile.objects.get(pk=profiles[0].pk).full_name == "Person 0"

    # Interrupt after the first batch: the keys done so far stay done, the rest still readable.
    real_wrap = envelope.wrap_key
    calls = {"n": 0}

    def failing_wrap(**kwargs):
        calls["n"] += 1
        if calls["n"] > 3:
            raise KeyboardInterrupt
        return real_wrap(**kwargs)

    from governance.crypto.management.commands import rotate_keys

    rotate_keys.wrap_key = failing_wrap
    try:
        with pytest.raises(KeyboardInterrupt):
            call_command("rotate_keys", batch_size=3)
    finally:
        rotate_keys.wrap_key = real_wrap
    counts = {k: DataKey.objects.filter(kek_id=k, destroyed_at=None).count() for k in ("rot2",)}
    assert counts["rot2"] == 3
    envelope.dek_cache.clear()
    assert [Profile.objects.get(pk=p.pk).full_name for p in profiles] == [f"Person {n}" for n in range(7)]

    call_command("rotate_keys", batch_size=3)
    assert not DataKey.objects.exclude(kek_id="rot2").filter(destroyed_at=None).exists()
    # The old master key can now be dropped.
    settings.MAMORU_MASTER_KEYS = settings.MAMORU_MASTER_KEYS.split(",")[0]
    envelope.dek_cache.clear()
    assert [Profile.objects.get(pk=p.pk).full_name for p in profiles] == [f"Person {n}" for n in range(7)]


@pytest.mark.django_db
def test_rotation_reads_continue_during_rotation(workspaces, settings):
    old = settings.MAMORU_MASTER_KEYS
    profiles = [make_profile(workspaces[0], full_name=f"Reader {n}") for n in range(5)]
    settings.MAMORU_MASTER_KEYS = f"rot3:{_key()},{old}"
    seen = []
    real_unwrap = envelope.unwrap_key

    from governance.crypto.management.commands import rotate_keys

    def unwrap_and_read(**kwargs):
        # A reader in the middle of the rotation (cold cache) still decrypts everything.
        envelope.dek_cache.clear()
        seen.append([Profile.objects.get(pk=p.pk).full_name for p in profiles])
        return real_unwrap(**kwargs)

    rotate_keys.unwrap_key = unwrap_and_read
    try:
        call_command("rotate_keys", batch_size=2)
    finally:
        rotate_keys.unwrap_key = real_unwrap
    assert len(seen) == 5
    assert all(names == [f"Reader {n}" for n in range(5)] for names in seen)


@pytest.mark.django_db(transaction=True)
def test_crypto_shred_survives_restore_of_an_earlier_main_database_copy(workspaces, tmp_path):
    profile = make_profile(workspaces[0], locale="ja_JP", full_name="削除 される人", email="shred.me@example.jp")
    token = _raw_column("subjects_profile", "full_name", profile.pk)
    backup = None
    if connection.vendor == "sqlite":
        backup = tmp_path / "backup.sqlite3"
        source = sqlite3.connect(connection.settings_dict["NAME"])
        target = sqlite3.connect(backup)
        source.backup(target)
        source.close()
        target.close()

    wrapped_before = bytes(DataKey.objects.get(pk=profile.data_key_id).wrapped)

    profile_shred(profile=profile, reason="erasure request")

    envelope.dek_cache.clear()
    assert Profile.objects.get(pk=profile.pk).full_name is None
    if backup is not None:
        # Restore the earlier copy as the main database: the row and its ciphertext are back...
        restored = tmp_path / "restored.sqlite3"
        shutil.copy(backup, restored)
        row = sqlite3.connect(restored).execute(
            "SELECT full_name, data_key_id FROM subjects_profile WHERE id = ?", [profile.pk.hex]
        ).fetchone()
        assert row[0] == token
    # ...but the data key lives in the key store, where it is destroyed.
    with pytest.raises(envelope.DataKeyDestroyed):
        envelope.decrypt(dek_id=profile.data_key_id, token=token, aad=f"subjects.profile.full_name:{profile.pk}".encode())
    key = DataKey.objects.get(pk=profile.data_key_id)
    assert bytes(key.wrapped) == b"" and key.destroyed_at is not None
    assert not Identity.objects.filter(profile_id=profile.pk).exists()
    if connections["keystore"].vendor == "sqlite":
        # secure_delete + checkpoint: the wrapped key bytes are gone from the key store file too.
        name = connections["keystore"].settings_dict["NAME"]
        for path in (name, f"{name}-wal"):
            if os.path.exists(path):
                # Read by a child process: closing a descriptor of a database file in this process
                # drops the locks its SQLite connections hold (SQLite, "How To Corrupt", 2.2).
                raw = subprocess.run(["cat", path], check=True, capture_output=True, timeout=60).stdout
                assert wrapped_before not in raw


@pytest.mark.django_db
def test_identity_resolution_merges_two_profiles_with_audit_trail(workspaces):
    first = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("email", "a@example.jp")],
                           attributes={"full_name": "A"}).profile
    second = profile_upsert(workspace=workspaces[0], identities=[IdentityInput("phone", "03-1234-5678")],
                            attributes={"address": "東京都千代田区"}).profile
    result = profile_upsert(
        workspace=workspaces[0],
        identities=[IdentityInput("email", "A@example.jp"), IdentityInput("phone", "+81312345678")],
    )
    assert result.profile == first and result.merged_profile_ids == [second.id]
    survivor = Profile.objects.get(pk=first.pk)
    assert survivor.address == "東京都千代田区"
    assert sorted(i.kind for i in survivor.identities.all()) == ["email", "phone"]
    merged = Profile.objects.get(pk=second.pk)
    assert merged.status == "merged" and merged.merged_into_id == first.pk
    assert survivor.merges_received.get().identities_moved == 1

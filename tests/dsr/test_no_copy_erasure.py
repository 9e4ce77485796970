"""Finding 4: a completed erasure leaves no copy of what it erased.

The test knows the subject's values beforehand, runs an access request and then an erasure request
to completion, and searches everything Mamoru keeps afterwards: every table of the main database and
of the key store (raw), every encrypted column decrypted with the keys that remain, every file under
``MAMORU_VAR_DIR`` written during the test (request files, Celery's filesystem queue, worker logs),
the Redis broker when it is the broker, and the logs (DEBUG). No value, and no ciphertext that still
decrypts to one, may be left.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connections
from django.test import TestCase

from dsr import files
from dsr.execution import inline_mode, run_inline
from dsr.models import DataSubjectRequest, RequestStatus, RequestTask
from governance.crypto import envelope
from governance.crypto.fields import EncryptedTextField
from governance.crypto.models import DataKey
from tests.dsr.conftest import SUBJECT_ID, code_from, load_map

FINAL = {RequestStatus.COMPLETED, RequestStatus.NEEDS_ATTENTION, RequestStatus.REJECTED}
TYPED_EMAIL = "Subject.Person@Example.COM"  # mixed case, as a person types it


def _values(stores) -> list[str]:
    """What identifies the subject, lower-cased (searches are case-insensitive)."""
    person = next(c for c in stores.data["customers"] if c["id"] == SUBJECT_ID)
    others = [c for c in stores.data["customers"] if c["id"] != SUBJECT_ID]
    values = [person["email"], person["phone"], person["phone"].lstrip("+"), "Subject Person",
              "Probe-Secret-Street 7"]
    if not any(o["name"] == person["name"] for o in others):  # a name shared with a kept person stays
        values.append(person["name"])
    values += [quote(person["email"]), quote_plus(person["phone"]), quote_plus("Subject Person")]  # in URLs
    return [v.lower() for v in values]


def _profile(workspace):
    from governance.subjects.services import IdentityInput, profile_upsert

    return profile_upsert(
        workspace=workspace,
        identities=[IdentityInput("email", "subject.person@example.com"),
                    IdentityInput("customer_id", str(SUBJECT_ID), "shop")],
        attributes={"full_name": "Subject Person", "address": "Probe-Secret-Street 7"},
    ).profile


def _hits(text: str, values: list[str]) -> list[str]:
    low = text.lower()
    return [v for v in values if v in low]


def _db_dump_hits(alias: str, values: list[str]) -> list[str]:
    connection = connections[alias]
    found = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                text = " ".join(
                    bytes(c).decode("latin-1") if isinstance(c, bytes | memoryview) else str(c) for c in row)
                found += [f"{alias}.{table}: {v}" for v in _hits(text, values)]
    return found


def _decryptable_hits(values: list[str]) -> list[str]:
    """Read every encrypted column of every row with the keys that remain."""
    found = []
    for model in apps.get_models():
        fields = [f for f in model._meta.concrete_fields if isinstance(f, EncryptedTextField)]
        if not fields:
            continue
        for obj in model._base_manager.all():
            for f in fields:
                plain = getattr(obj, f.attname)
                if plain:
                    found += [f"{model._meta.label}.{f.name}: {v}" for v in _hits(str(plain), values)]
    return found


def _sealed_reason_hits(values: list[str]) -> list[str]:
    """Every reason/note sealed in the audit log (``additional_data.reason_enc``), decrypted with the
    keys that remain (a reason about the person must have died with their key)."""
    from audit.freetext import freetext_reveal
    from audit.models import AuditEntry

    found = []
    for entry in AuditEntry.objects.exclude(additional_data=None).iterator():
        plain = freetext_reveal((entry.additional_data or {}).get("reason_enc"))
        if plain:
            found += [f"audit entry seq={entry.seq} reason_enc: {v}" for v in _hits(plain, values)]
    return found


def _reveal_with_reason(profile, stores, actor) -> None:
    """Staff reveal the person's profile, typing their e-mail and phone into the reason."""
    from governance.subjects.services import profile_reveal

    person = next(c for c in stores.data["customers"] if c["id"] == SUBJECT_ID)
    profile_reveal(actor=actor, profile=profile, fields=["full_name"], via="test",
                   reason=f"{person['email']} called from {person['phone']} about an order")


_READ_FILES = """
import json, sys
job = json.load(sys.stdin)
hits = []
for path in job["paths"]:
    try:
        with open(path, "rb") as fh:
            low = fh.read().decode("latin-1").lower()
    except OSError:
        continue
    hits += [f"{path}: {v}" for v in job["values"] if v in low]
print(json.dumps(hits))
"""


def _file_hits(since: float, values: list[str]) -> list[str]:
    """Search every file written under var/ since ``since``, the SQLite files included.

    The files are read by a child process: closing a descriptor of a database file in this process
    would drop the POSIX locks this process's own SQLite connections hold on it, and a worker
    writing meanwhile would corrupt the test database (SQLite, "How To Corrupt", 2.2).
    """
    paths = [str(p) for p in Path(settings.VAR_DIR).rglob("*") if p.is_file() and p.stat().st_mtime >= since]
    result = subprocess.run(
        [sys.executable, "-c", _READ_FILES], input=json.dumps({"paths": paths, "values": values}),
        capture_output=True, text=True, timeout=300, check=True,
    )
    return json.loads(result.stdout)


def _request_file_hits(request: DataSubjectRequest, values: list[str]) -> list[str]:
    """Files the request left behind, decrypted with its key if that key still works."""
    directory = Path(settings.MAMORU_DSR_FILES_DIR) / str(request.id)
    found = []
    for path in directory.glob("*") if directory.is_dir() else []:
        try:
            plain = b"".join(files.read_chunks(request_id=request.id, dek_id=request.data_key_id, name=path.name))
        except Exception:  # noqa: BLE001 - a file that no longer decrypts is what we want
            continue
        found += [f"{path.name}: {v}" for v in _hits(plain.decode("utf-8", "replace"), values)]
    return found


def _broker_hits(values: list[str]) -> list[str]:
    url = settings.CELERY_BROKER_URL
    if not url.startswith("redis://"):
        return []  # the filesystem broker's queue is a directory under var/, searched as files
    import redis

    client = redis.Redis.from_url(url)
    found = []
    try:
        for key in client.scan_iter():
            kind = client.type(key)
            if kind == b"string":
                blob = client.get(key) or b""
            elif kind == b"list":
                blob = b" ".join(client.lrange(key, 0, -1))
            elif kind == b"hash":
                blob = b" ".join(k + b" " + v for k, v in client.hgetall(key).items())
            elif kind in (b"set", b"zset"):
                blob = b" ".join(client.zrange(key, 0, -1) if kind == b"zset" else client.smembers(key))
            else:
                continue
            found += [f"redis:{key!r}: {v}" for v in _hits(blob.decode("latin-1"), values)]
    finally:
        client.close()
    return found


def _log_text(caplog) -> str:
    """The captured records (DEBUG and up) as the configured handlers would write them: through
    their filters (the redaction filter of the console handler), with tracebacks."""
    filters = [f for handler in logging.getLogger().handlers if not isinstance(handler, type(caplog.handler))
               for f in handler.filters]
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = []
    for record in caplog.records:
        for f in filters:
            f.filter(record)
        lines.append(formatter.format(record))
    return "\n".join(lines)


def _assert_nothing_left(requests, values, since, log_text: str) -> None:
    problems = []
    for request in requests:
        problems += _request_file_hits(request, values)
        if (Path(settings.MAMORU_DSR_FILES_DIR) / str(request.id)).exists():
            problems.append(f"files of {request} left")
        key = DataKey.objects.get(pk=request.data_key_id)
        if key.destroyed_at is None or bytes(key.wrapped):
            problems.append(f"data key of {request} not shredded")
        # The record keeps counts and categories.
        assert request.summary and all("rows_found" in p for p in request.summary.values())
        for task in RequestTask.objects.filter(request=request):
            problems += [f"task {task.key}: {v}" for v in _hits(f"{task.outcome} {task.error}", values)]
    # Only the key store counts: forget the keys this process unwrapped before the worker shredded
    # them (the per-process cache, MAMORU_DEK_CACHE_SECONDS, is memory, not a copy at rest).
    envelope.dek_cache.clear()
    problems += _db_dump_hits("default", values)
    problems += _db_dump_hits("keystore", values)
    problems += _decryptable_hits(values)
    problems += _sealed_reason_hits(values)
    problems += _file_hits(since, values)
    problems += _broker_hits(values)
    problems += [f"log: {v}" for v in _hits(log_text, values)]
    assert not problems, "copies left after erasure:\n" + "\n".join(sorted(set(problems)))


def _run_inline(workspace, mailoutbox, request_type: str) -> DataSubjectRequest:
    from dsr.services import dsr_request_submit, dsr_request_verify

    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_submit(workspace=workspace, request_type=request_type, email=TYPED_EMAIL)
    with inline_mode(), TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_verify(request=request, code=code_from(mailoutbox))
    with TestCase.captureOnCommitCallbacks(execute=True):
        run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    return request


@pytest.mark.django_db
def test_access_then_erasure_leaves_no_decryptable_copy(workspaces, mailoutbox, sqlite_stores, caplog, role_users):
    caplog.set_level(logging.DEBUG)
    since = time.time() - 1
    values = _values(sqlite_stores)
    load_map(sqlite_stores)
    _reveal_with_reason(_profile(workspaces[0]), sqlite_stores, role_users["dpo"])
    # given an access request whose package is still offered
    access = _run_inline(workspaces[0], mailoutbox, "access")
    # (its access-phase files are deleted once the package is built; the package waits for download)
    left = sorted(p.name for p in (Path(settings.MAMORU_DSR_FILES_DIR) / str(access.id)).glob("*"))
    # when the same person's erasure request completes
    erasure = _run_inline(workspaces[0], mailoutbox, "erasure")
    # then nothing of theirs is left anywhere Mamoru keeps data
    access.refresh_from_db()
    assert access.email is None and erasure.email is None and erasure.seeds is None
    assert erasure.summary["erasure"]["categories"], "the record keeps the categories erased"
    assert left == ["package.zip.enc"], left
    _assert_nothing_left([access, erasure], values, since, _log_text(caplog))


def _wait(request, timeout: float = 90) -> DataSubjectRequest:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request.refresh_from_db()
        if request.status in FINAL and not (Path(settings.MAMORU_DSR_FILES_DIR) / str(request.id)).exists():
            return request
        time.sleep(0.2)
    return request


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_erasure_by_a_real_worker_leaves_no_decryptable_copy(live_worker, workspaces, mailoutbox, sqlite_stores,
                                                             caplog, role_users):
    from dsr.services import dsr_request_submit, dsr_request_verify

    caplog.set_level(logging.DEBUG)
    since = time.time() - 1
    values = _values(sqlite_stores)
    load_map(sqlite_stores)
    _reveal_with_reason(_profile(workspaces[0]), sqlite_stores, role_users["dpo"])
    request = dsr_request_submit(workspace=workspaces[0], request_type="erasure", email=TYPED_EMAIL)
    request = _wait(dsr_request_verify(request=request, code=code_from(mailoutbox)))
    assert request.status == RequestStatus.COMPLETED, request.attention_reason
    live_worker.stop()  # flushes the worker's log, searched with the other files under var/
    _assert_nothing_left([request], values, since, _log_text(caplog))

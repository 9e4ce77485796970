"""Signed chain heads exported to S3-compatible object storage (issue 11: "object storage when
configured"), against a real S3 server on loopback (moto in server mode; boto3 is not mocked):
every export is a new object, verification reads the heads back from the bucket, a truncated tail
with its head row rolled back is caught from the bucket's copy, and a store that cannot be reached
is a recorded, mailed problem."""

from __future__ import annotations

import datetime as dt
import http.client
import io
import json
import os
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config
from django.core import mail
from django.core.management import call_command
from django.db import connection
from moto.server import ThreadedMotoServer

from audit.head_stores import HeadStoreUnavailable, S3HeadStore, check_head_store, head_store
from audit.models import AuditEntry, ChainHead
from audit.services import access_record
from audit.verification import chains_verify, heads_export, heads_exported
from tests.factories import make_profile

pytestmark = pytest.mark.django_db
REASON = "restored the 2026-11-30 backup, ticket 812"


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3-compatible server (moto) on loopback; MAMORU_TEST_MOTO_PORT picks the port."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "mamoru-test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "mamoru-test-secret")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(os.environ.get("MAMORU_TEST_MOTO_PORT", "0")),
                                verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _client(endpoint: str):
    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"))


@pytest.fixture
def s3(s3_endpoint):
    return _client(s3_endpoint)


@pytest.fixture
def bucket(s3):
    name = f"heads-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def locked_bucket(s3):
    name = f"locked-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


@pytest.fixture
def heads_dir(settings, tmp_path):
    """The directory store's place: with an s3 URL nothing may be written here."""
    settings.MAMORU_CHAIN_HEADS_DIR = str(tmp_path / "chain-heads")
    return tmp_path / "chain-heads"


def _use(settings, endpoint: str, bucket: str, prefix: str = "mamoru/prod", **query) -> None:
    extra = "".join(f"&{k}={v}" for k, v in query.items())
    settings.MAMORU_CHAIN_HEADS_URL = f"s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1&addressing=path{extra}"


def _objects(s3, bucket: str) -> dict[str, bytes]:
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in sorted(keys)}


def _reads(profile, n: int) -> None:
    for i in range(n):
        access_record(actor=None, obj=profile, fields=["full_name"], via=f"test:{i}")


def _restore_backup(remove: int) -> ChainHead:
    """The newest entries of an audit partition removed and its head row rolled back with them."""
    head = ChainHead.objects.order_by("-seq").first()
    kept = AuditEntry.objects.get(partition=head.pk, pseq=head.seq - remove)
    table, partition, pseq = (connection.ops.quote_name(n) for n in (AuditEntry._meta.db_table, "partition", "pseq"))
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE {partition} = %s AND {pseq} > %s", [head.pk, kept.pseq])  # noqa: S608
    ChainHead.objects.filter(pk=head.pk).update(seq=kept.pseq, hash=kept.entry_hash, last_seq=kept.seq)
    return ChainHead.objects.get(pk=head.pk)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_every_clean_run_writes_a_new_signed_object_and_nothing_to_the_directory(
        settings, s3_endpoint, s3, bucket, heads_dir, workspaces):
    _use(settings, s3_endpoint, bucket)
    profile = make_profile(workspaces[0])
    _reads(profile, 2)
    assert chains_verify().run.ok
    _reads(profile, 1)
    assert chains_verify().run.ok

    objects = _objects(s3, bucket)
    assert len(objects) == 2 and not heads_dir.exists()
    today = dt.datetime.now(dt.UTC)
    for key, body in objects.items():
        assert key.startswith(f"mamoru/prod/chain-heads/{today:%Y/%m}/") and key.endswith(".jsonl")
        lines = [json.loads(line) for line in body.decode().splitlines()]
        assert {line["chain"] for line in lines} >= {"audit"} and all(line["sig"] for line in lines)
    newest = [json.loads(line) for line in objects[max(objects)].decode().splitlines()]
    head = ChainHead.objects.order_by("-seq").first()
    assert next(line for line in newest if line["key"] == f"audit:{head.pk}")["hash"] == head.hash
    # without Object Lock on the bucket the objects are written unlocked
    assert "ObjectLockMode" not in s3.head_object(Bucket=bucket, Key=max(objects))


def test_verification_reads_the_newest_heads_back_from_the_bucket(settings, s3_endpoint, bucket, heads_dir, workspaces):
    _use(settings, s3_endpoint, bucket)
    profile = make_profile(workspaces[0])
    _reads(profile, 2)
    heads_export(now=dt.datetime(2026, 10, 31, 23, 59, tzinfo=dt.UTC))  # an older month
    _reads(profile, 3)
    exported = heads_export()
    found, problems = heads_exported()
    assert problems == []
    assert {key: r["hash"] for key, r in found.items()} == {r["key"]: r["hash"] for r in exported}


def test_exports_to_a_bucket_with_object_lock_are_retention_locked(settings, s3_endpoint, s3, locked_bucket, workspaces):
    settings.MAMORU_CHAIN_HEADS_RETENTION_DAYS = 30
    settings.MAMORU_CHAIN_HEADS_LOCK_MODE = "COMPLIANCE"
    _use(settings, s3_endpoint, locked_bucket)
    _reads(make_profile(workspaces[0]), 2)
    assert chains_verify().run.ok
    (key,) = _objects(s3, locked_bucket)
    head = s3.head_object(Bucket=locked_bucket, Key=key)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert dt.timedelta(days=29) < head["ObjectLockRetainUntilDate"] - dt.datetime.now(dt.UTC) <= dt.timedelta(days=30)
    with pytest.raises(s3.exceptions.ClientError):  # the store itself refuses to remove it
        s3.delete_object(Bucket=locked_bucket, Key=key, VersionId=head["VersionId"])


def test_objects_are_never_overwritten(settings, s3_endpoint, s3, bucket, workspaces):
    _use(settings, s3_endpoint, bucket)
    _reads(make_profile(workspaces[0]), 2)
    moment = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    heads_export(now=moment)
    heads_export(now=moment)  # the same instant: still a second object
    assert len(_objects(s3, bucket)) == 2

    store = head_store()
    assert isinstance(store, S3HeadStore)
    key = f"{store.base}2026/12/20261201T090000.000000Z-000000000001-00000000.jsonl"
    store.put_new(key, b"first\n", now=moment)
    with pytest.raises(HeadStoreUnavailable, match="PreconditionFailed"):
        store.put_new(key, b"second\n", now=moment)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"first\n"


@pytest.mark.tampers_evidence
def test_a_truncated_audit_tail_with_its_head_is_caught_from_the_bucket_copy(
        settings, s3_endpoint, s3, bucket, heads_dir, workspaces):
    _use(settings, s3_endpoint, bucket)
    profile = make_profile(workspaces[0])
    _reads(profile, 3)
    assert chains_verify().run.ok
    _reads(profile, 4)
    assert chains_verify().run.ok  # the heads with the four newest reads are in the bucket
    restored = _restore_backup(remove=2)

    summary = chains_verify(full=True)

    assert not summary.run.ok
    assert ("exports", "truncated") in [(c, p.kind) for c, p in summary.problems]
    assert any(p.message.startswith(f"audit:{restored.pk}: the head exported at") for _c, p in summary.problems)
    assert not heads_dir.exists()  # found from the object store's copy, not from a directory
    assert len(_objects(s3, bucket)) == 2  # nothing exported over the break

    # accepting the restored heads works the same with the bucket, and the next run is clean
    out = io.StringIO()
    call_command("verify_chains", "--accept-heads", REASON, stdout=out, stderr=io.StringIO())
    assert f"audit: accepted in place of: audit:{restored.pk}" in out.getvalue()
    objects = _objects(s3, bucket)
    assert len(objects) == 3 and REASON in objects[max(objects)].decode()
    assert chains_verify().run.ok


@pytest.mark.tampers_evidence
def test_an_old_export_copied_under_a_newer_key_is_reported(settings, s3_endpoint, s3, bucket, workspaces):
    _use(settings, s3_endpoint, bucket)
    profile = make_profile(workspaces[0])
    _reads(profile, 2)
    assert chains_verify().run.ok
    (old_key, old_body), = _objects(s3, bucket).items()
    _reads(profile, 3)
    assert chains_verify().run.ok
    # someone with write access to the bucket replays the first export as the newest one
    store = head_store()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    s3.put_object(Bucket=bucket, Key=store.key_for(later, 1), Body=old_body)

    summary = chains_verify()

    assert ("exports", "export_signature") in [(c, p.kind) for c, p in summary.problems]
    assert any("not at the time its name states" in p.message for _c, p in summary.problems)
    assert not summary.run.ok


def test_an_unreachable_store_is_recorded_and_mailed(settings, heads_dir, workspaces, role_users):
    settings.MAMORU_CHAIN_HEADS_URL = f"s3://heads/mamoru?endpoint=http://127.0.0.1:{_closed_port()}&region=us-east-1"
    _reads(make_profile(workspaces[0]), 2)

    run = chains_verify().run

    run.refresh_from_db()
    assert not run.ok and run.problem_count == 1
    (problem,) = run.problems
    assert problem["chain"] == "exports" and problem["kind"] == "export_unreadable"
    assert "EndpointConnectionError" in problem["message"] and "s3://heads/mamoru/chain-heads/" in problem["message"]
    assert len(mail.outbox) == 1 and "export_unreadable" in mail.outbox[0].body
    assert not heads_dir.exists()  # never silently falls back to the directory


class _ReadOnlyGateway(BaseHTTPRequestHandler):
    """A real S3 endpoint whose credentials may read but not write: forwards reads, refuses writes."""

    upstream: tuple[str, int] = ("127.0.0.1", 0)

    def _forward(self) -> None:
        upstream = http.client.HTTPConnection(*self.upstream, timeout=10)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request(self.command, self.path, headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in {"transfer-encoding", "connection", "content-length"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = _forward

    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0") or 0))
        body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_a_store_that_refuses_the_write_is_recorded_and_mailed(settings, s3_endpoint, bucket, workspaces, role_users):
    host, port = s3_endpoint.removeprefix("http://").split(":")
    handler = type("Gateway", (_ReadOnlyGateway,), {"upstream": (host, int(port))})
    gateway = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=gateway.serve_forever, daemon=True).start()
    try:
        _use(settings, f"http://127.0.0.1:{gateway.server_address[1]}", bucket)
        _reads(make_profile(workspaces[0]), 2)
        run = chains_verify().run
    finally:
        gateway.shutdown()
        gateway.server_close()
    run.refresh_from_db()
    assert not run.ok and [(p["chain"], p["kind"]) for p in run.problems] == [("exports", "export_failed")]
    assert "AccessDenied" in run.problems[0]["message"]
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_no_database_transaction_is_open_while_the_bucket_is_contacted(settings, s3_endpoint, bucket, workspaces):
    _use(settings, s3_endpoint, bucket, prefix="txn")
    _reads(make_profile(workspaces[0]), 2)
    store = head_store()
    seen: list[tuple[str, bool]] = []

    def observe(request, **_kwargs):  # observes each HTTP request as it is sent; changes nothing
        seen.append((request.method, connection.in_atomic_block))

    store.client.meta.events.register("before-send.s3.*", observe)
    try:
        assert chains_verify().run.ok
        assert chains_verify().run.ok
    finally:
        store.client.meta.events.unregister("before-send.s3.*", observe)
    assert {"GET", "PUT"} <= {method for method, _atomic in seen}
    assert not any(atomic for _method, atomic in seen), seen


def test_a_wrong_url_is_a_recorded_problem_naming_the_option(settings, heads_dir, workspaces):
    settings.MAMORU_CHAIN_HEADS_URL = "s3://heads/mamoru?endpont=http://127.0.0.1:9"
    run = chains_verify().run
    assert not run.ok and run.problems[0]["kind"] == "export_unreadable"
    assert "endpont" in run.problems[0]["message"]
    assert [e.id for e in check_head_store(None)] == ["audit.E001"]  # and `manage.py check` says so
    settings.MAMORU_CHAIN_HEADS_URL = "ftp://heads/"
    assert "unknown head store 'ftp'" in chains_verify().run.problems[0]["message"]
    settings.MAMORU_CHAIN_HEADS_URL = "s3://heads/mamoru?endpoint=http://127.0.0.1:9&region=eu-west-1&read_back=3"
    assert check_head_store(None) == []


def test_a_file_url_is_the_directory_store(settings, tmp_path, workspaces):
    settings.MAMORU_CHAIN_HEADS_URL = f"file://{tmp_path}/elsewhere"
    _reads(make_profile(workspaces[0]), 2)
    assert chains_verify().run.ok
    assert len(list((tmp_path / "elsewhere").glob("chain-heads-*.jsonl"))) == 1

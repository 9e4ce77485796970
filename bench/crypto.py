#!/usr/bin/env python
"""Benchmark the security core: field encryption, blind-index lookup, and what encryption plus
read auditing cost on the profile retrieve endpoint.

Prints:
  1. AES-256-GCM field encrypt/decrypt operations per second (envelope, warm data key);
  2. lookup of a profile by e-mail through the blind index at N profiles (p50, p99);
  3. GET /api/v1/profiles/{id}/ with encryption and read logging ON versus both OFF, same run,
     same data shape, random profiles (cold data-key cache per profile as in production);
     goal: overhead of both together at most 15 %;
  4. read-logging throughput: access_record() calls per second, each in its own transaction as in
     a request, from 1, 2 and 4 concurrent processes; goal: 2 processes at least 1.6x one process
     (no global lock on the audit chain; PostgreSQL only).

Runs on a fresh embedded SQLite database under var/bench-crypto/ unless DATABASE_URL and
MAMORU_KEYSTORE_URL are set (e.g. PostgreSQL). Example:
    .venv/bin/python bench/crypto.py --profiles 100000
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profiles", type=int, default=100_000, help="profiles to create (default 100000)")
    parser.add_argument("--lookups", type=int, default=5_000, help="blind-index lookups to time")
    parser.add_argument("--requests", type=int, default=3_000, help="retrieve requests per mode")
    parser.add_argument("--ops", type=int, default=200_000, help="encrypt/decrypt operations to time")
    parser.add_argument("--log-seconds", type=float, default=10.0,
                        help="seconds per process count for the read-logging throughput (default 10)")
    parser.add_argument("--only-logging", action="store_true", help="run only the read-logging throughput")
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--keep", action="store_true", help="reuse an existing bench database")
    return parser.parse_args()


def _postgres_fresh(url: str, keep: bool) -> None:
    """Create the PostgreSQL database named in ``url`` (drop it first unless --keep)."""
    from urllib.parse import urlsplit

    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and not keep:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        if not exists or not keep:
            conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(keep: bool) -> None:
    for var_name in ("DATABASE_URL", "MAMORU_KEYSTORE_URL"):
        url = os.environ.get(var_name, "")
        if url.startswith(("postgres://", "postgresql://")):
            _postgres_fresh(url, keep)
    if not os.environ.get("DATABASE_URL"):
        var = ROOT / "var" / "bench-crypto"
        if var.exists() and not keep:
            shutil.rmtree(var)
        var.mkdir(parents=True, exist_ok=True)
        os.environ["MAMORU_VAR_DIR"] = str(var)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("migrate", database="keystore", verbosity=0)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def bench_ops(n: int) -> tuple[float, float]:
    from governance.crypto import envelope

    dek = envelope.data_key_create(owner="bench")
    aad = b"bench.field:1"
    text = "山田 太郎 / 東京都千代田区千代田1-1"
    start = time.perf_counter()
    tokens = [envelope.encrypt(dek_id=dek, plaintext=text, aad=aad) for _ in range(n)]
    enc = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for token in tokens:
        envelope.decrypt(dek_id=dek, token=token, aad=aad)
    dec = n / (time.perf_counter() - start)
    return enc, dec


def bulk_profiles(workspace, count: int, *, label: str) -> list[str]:
    """Create profiles in bulk through the real fields (encrypted on save) and blind indexes."""
    from django.db import transaction
    from faker import Faker

    from governance.crypto import envelope
    from governance.crypto.blind_index import blind_index
    from governance.subjects.models import Identity, Profile

    fake = Faker("ja_JP")
    fake.seed_instance(7)
    emails = []
    batch = 2000
    for start in range(0, count, batch):
        size = min(batch, count - start)
        deks = envelope.data_keys_create(count=size, owner="subjects.profile")
        profiles, identities = [], []
        for i, dek in enumerate(deks):
            n = start + i
            p = Profile(workspace=workspace, jurisdiction="JP", data_key_id=dek, full_name=fake.name(),
                        kana_name=fake.kana_name(), address=f"{fake.prefecture()}{fake.city()}{fake.town()}",
                        postal_code=fake.zipcode(), birth_date="1980-01-01")
            email = f"{label}{n}@example.jp"
            emails.append(email)
            profiles.append(p)
            identities.append(Identity(profile=p, workspace=workspace, kind="email", value=email,
                                       value_index=blind_index(kind="email", value=email), data_key_id=dek))
            phone = f"+8190{n:08d}"
            identities.append(Identity(profile=p, workspace=workspace, kind="phone", value=phone,
                                       value_index=blind_index(kind="phone", value=phone), data_key_id=dek))
        with transaction.atomic():
            Profile.objects.bulk_create(profiles, batch_size=500)
            Identity.objects.bulk_create(identities, batch_size=500)
        print(f"\r  {label}: {start + size}/{count} profiles", end="", flush=True)
    print()
    return emails


@contextmanager
def security_off():
    """Turn field encryption and read logging off (the baseline only exists in this harness)."""
    from governance.crypto import envelope
    from governance.subjects import api

    saved = envelope.encrypt, envelope.decrypt, api.access_record, api.access_recording
    envelope.encrypt = lambda *, dek_id, plaintext, aad: plaintext
    envelope.decrypt = lambda *, dek_id, token, aad: token
    api.access_record = lambda **kwargs: None
    api.access_recording = lambda **kwargs: nullcontext()  # the retrieve view's read logging
    try:
        yield
    finally:
        envelope.encrypt, envelope.decrypt, api.access_record, api.access_recording = saved


def time_requests(client, header: str, ids: list, n: int) -> list[float]:
    from governance.crypto.envelope import dek_cache

    latencies = []
    for _ in range(n):
        pid = random.choice(ids)
        dek_cache.clear()  # production-like: a random profile's key is rarely in this process's cache
        start = time.perf_counter()
        response = client.get(f"/api/v1/profiles/{pid}/", HTTP_AUTHORIZATION=header)
        latencies.append(time.perf_counter() - start)
        assert response.status_code == 200, response.content[:200]
    return latencies


def _log_worker(profile_id: int, user_id: int, seconds: float, start, results) -> None:
    """One process: access_record() in a loop, each call its own transaction (autocommit)."""
    from django.contrib.auth.models import User
    from django.db import connections

    from audit.services import access_record
    from governance.subjects.models import Profile

    connections.close_all()  # never share the parent's connection after fork
    profile, user = Profile.objects.get(pk=profile_id), User.objects.get(pk=user_id)
    access_record(actor=user, obj=profile, fields=["full_name"], via="bench")  # connect, warm caches
    start.wait()
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        access_record(actor=user, obj=profile, fields=["full_name"], via="bench")
        count += 1
    results.put(count)
    connections.close_all()


def bench_logging(profile_id: int, user_id: int, seconds: float) -> dict[int, float]:
    import multiprocessing

    from django.db import connections

    ctx = multiprocessing.get_context("fork")
    rates = {}
    for procs in (1, 2, 4):
        connections.close_all()
        start, results = ctx.Barrier(procs + 1), ctx.Queue()
        workers = [ctx.Process(target=_log_worker, args=(profile_id, user_id, seconds, start, results))
                   for _ in range(procs)]
        for w in workers:
            w.start()
        start.wait()
        total = sum(results.get(timeout=seconds + 120) for _ in workers)
        for w in workers:
            w.join()
        rates[procs] = total / seconds
    return rates


def main() -> None:
    args = parse_args()
    if args.quick:
        args.profiles, args.lookups, args.requests, args.ops = 5_000, 1_000, 500, 20_000
        args.log_seconds = min(args.log_seconds, 3.0)
    setup_django(args.keep)
    from django.contrib.auth.models import User
    from django.db import connection

    from governance.access.roles import DPO, roles_sync
    from governance.subjects.models import Profile, Workspace

    print(f"Database: {connection.vendor}; CPU cores: {os.cpu_count()}; Python {sys.version.split()[0]}")
    if not args.only_logging:
        enc, dec = bench_ops(args.ops)
        print(f"[1] field encryption: encrypt {enc:,.0f} ops/s, decrypt {dec:,.0f} ops/s (AES-256-GCM, 40-byte value)")

    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench", "default_jurisdiction": "JP"})
    plain_ws, _ = Workspace.objects.get_or_create(slug="bench-plain", defaults={"name": "Bench plain", "default_jurisdiction": "JP"})
    if not Profile.objects.filter(workspace=workspace).exists():
        t0 = time.perf_counter()
        emails = bulk_profiles(workspace, args.profiles, label="p")
        print(f"  created {args.profiles:,} encrypted profiles in {time.perf_counter() - t0:.1f}s")
        with security_off():
            bulk_profiles(plain_ws, min(args.profiles, 20_000), label="plain")
    else:
        emails = [f"p{n}@example.jp" for n in range(args.profiles)]

    roles_sync()
    user, _ = User.objects.get_or_create(username="bench-dpo", defaults={"is_staff": True})
    from django.contrib.auth.models import Group

    user.groups.add(Group.objects.get(name=DPO))
    if not args.only_logging:
        bench_endpoint(args, workspace, plain_ws, emails, user)

    if connection.vendor != "postgresql":
        print("[4] read-logging throughput: PostgreSQL only (SQLite serialises writers by design)")
        return
    profile_id = Profile.objects.filter(workspace=workspace).values_list("id", flat=True).first()
    rates = bench_logging(profile_id, user.pk, args.log_seconds)
    print(f"[4] read-logging throughput (access_record, one transaction each, {args.log_seconds:g} s per run):")
    for procs, rate in rates.items():
        print(f"    {procs} process{'es' if procs > 1 else '  '}: {rate:,.0f} entries/s ({rate / rates[1]:.2f}x one process)")
    scale = rates[2] / rates[1]
    verdict = "meets" if scale >= 1.6 else "MISSES"
    print(f"    1 -> 2 processes: {scale:.2f}x ({verdict} the 1.6x goal)")
    from audit.chain import chain_verify

    problems = sum(1 for _ in chain_verify())
    print(f"    audit chain after the run: {'intact' if not problems else f'{problems} PROBLEMS'}")


def bench_endpoint(args, workspace, plain_ws, emails, user) -> None:
    from django.test import Client

    from governance.access.tokens import api_token_create
    from governance.subjects.models import Profile
    from governance.subjects.selectors import profile_get_by_identity

    lat = []
    for email in random.sample(emails, min(args.lookups, len(emails))):
        start = time.perf_counter()
        found = profile_get_by_identity(workspace=workspace, kind="email", value=email.upper())
        lat.append(time.perf_counter() - start)
        assert found is not None
    print(f"[2] lookup by e-mail (blind index) at {Profile.objects.filter(workspace=workspace).count():,} profiles: "
          f"p50 {pct(lat, .5) * 1000:.2f} ms, p99 {pct(lat, .99) * 1000:.2f} ms ({len(lat)} lookups)")

    _token, secret = api_token_create(user=user, name="bench")
    header = f"Bearer {secret}"
    client = Client()
    on_ids = list(Profile.objects.filter(workspace=workspace).values_list("id", flat=True)[:20_000])
    off_ids = list(Profile.objects.filter(workspace=plain_ws).values_list("id", flat=True))
    time_requests(client, header, on_ids, 200)  # warm up both paths
    with security_off():
        time_requests(client, header, off_ids, 200)
    # Interleave rounds so drift on a shared machine hits both modes alike.
    on, off = [], []
    rounds = 5
    for _ in range(rounds):
        on += time_requests(client, header, on_ids, args.requests // rounds)
        with security_off():
            off += time_requests(client, header, off_ids, args.requests // rounds)
    on_med, off_med = statistics.median(on), statistics.median(off)
    on_rps, off_rps = len(on) / sum(on), len(off) / sum(off)
    overhead = (sum(on) / len(on)) / (sum(off) / len(off)) - 1
    print("[3] GET /api/v1/profiles/{id}/ in-process (Django test client, token auth), random profiles:")
    print(f"    encryption + read audit ON : p50 {on_med * 1000:.2f} ms, p99 {pct(on, .99) * 1000:.2f} ms, {on_rps:,.0f} req/s")
    print(f"    both OFF (baseline)        : p50 {off_med * 1000:.2f} ms, p99 {pct(off, .99) * 1000:.2f} ms, {off_rps:,.0f} req/s")
    verdict = "meets" if overhead <= 0.15 else "MISSES"
    print(f"    overhead of both together  : {overhead * 100:.1f} % of mean latency ({verdict} the 15 % goal)")


if __name__ == "__main__":
    main()

"""Benchmark: data-subject requests across four stores (PostgreSQL, MariaDB, Redis, HTTP+SQLite).

1. Builds the demo dataset with N customers (each: 1 customer, 2 orders, 4 order lines, 1 ticket,
   1 mailing-list member, 1 session hash, 1 device set member = 11 rows) — 1M rows by default.
2. One access request and one erasure request end to end (executed in-process; verification
   and approval waits excluded), with per-node latency.
3. 1,000 queued access requests run by two Celery worker processes; wall time and per-node
   latency percentiles.
4. Recovery after a worker SIGKILL: an erasure request whose mailing-list node is running when
   every worker is killed; new workers start at once (as ``run_demo``'s supervisor does) and a
   beat process runs the watchdog. Reported: seconds from the kill until the node is done again,
   and how it was taken over (lease expiry, by the watchdog or by a redelivered message).

Goals (issues 3 and 12): one request under 5 s (with the verification re-reading every row by
key); 1,000 requests under 5 minutes; recovery after a SIGKILL within 60 s.

    .venv/bin/python bench/dsr.py --quick
    .venv/bin/python bench/dsr.py --rows 1000000 --requests 1000 --workers 2
    .venv/bin/python bench/dsr.py --rows 2000 --requests 20      # a short check that it runs
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ROWS_PER_CUSTOMER = 11


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="total rows across the stores")
    parser.add_argument("--requests", type=int, default=1000, help="queued requests for the worker run")
    parser.add_argument("--workers", type=int, default=2, help="Celery worker processes (concurrency 1 each)")
    parser.add_argument("--quick", action="store_true", help="55k rows, 100 requests")
    parser.add_argument("--keep", action="store_true", help="keep the throwaway databases")
    parser.add_argument("--broker", default="redis://127.0.0.1:6379/14",
                        help="Celery broker for the worker run (filesystem:// also works)")
    parser.add_argument("--var-dir", default=str(ROOT / "var" / "bench-dsr"))
    parser.add_argument("--mamoru-db", choices=["sqlite", "postgres"], default="sqlite",
                        help="Mamoru's own database (default: the embedded SQLite files)")
    parser.add_argument("--no-recovery", action="store_true", help="skip the worker SIGKILL recovery run")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.requests = 55_000, 100
    return args


def setup_django(args) -> None:
    var = Path(args.var_dir)
    if var.exists():
        import shutil

        shutil.rmtree(var)
    var.mkdir(parents=True)
    os.environ["MAMORU_VAR_DIR"] = str(var)
    if args.mamoru_db == "postgres":
        import sqlalchemy as sa

        from tests.servers import POSTGRES_ADMIN_URL

        tag = uuid.uuid4().hex[:8]
        args.mamoru_dbs = [f"mamoru_bench_main_{tag}", f"mamoru_bench_keys_{tag}"]
        admin = sa.create_engine(POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            for name in args.mamoru_dbs:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        base = POSTGRES_ADMIN_URL.replace("postgresql://", "postgres://").rsplit("/", 1)[0]
        os.environ["DATABASE_URL"] = f"{base}/{args.mamoru_dbs[0]}"
        os.environ["MAMORU_KEYSTORE_URL"] = f"{base}/{args.mamoru_dbs[1]}"
    os.environ["CELERY_BROKER_URL"] = args.broker
    os.environ["EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("migrate", database="keystore", verbosity=0)


def throwaway_databases(tag: str) -> tuple[str, str]:
    import sqlalchemy as sa

    from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL

    name = f"mamoru_dsr_bench_{tag}"
    pg_admin = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://")
    with sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    maria_base = MARIADB_ADMIN_URL.rsplit("/", 1)[0]
    with sa.create_engine(maria_base + "/").connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    return pg_admin.rsplit("/", 1)[0] + f"/{name}", f"{maria_base}/{name}"


def drop_databases(tag: str) -> None:
    import sqlalchemy as sa

    from dsr.connectors.sql import engines_dispose
    from tests.servers import MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL

    engines_dispose()
    name = f"mamoru_dsr_bench_{tag}"
    pg_admin = POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://")
    with sa.create_engine(pg_admin, isolation_level="AUTOCOMMIT").connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    with sa.create_engine(MARIADB_ADMIN_URL.rsplit("/", 1)[0] + "/").connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))


def build_dataset(args, shop_url: str, crm_url: str, redis_prefix: str, mailing) -> int:
    import redis
    import sqlalchemy as sa

    from dsr import demo
    from tests.servers import REDIS_URL

    customers = max(10, args.rows // ROWS_PER_CUSTOMER)
    shop, crm = sa.create_engine(shop_url), sa.create_engine(crm_url)
    demo.schemas_create(shop=shop, crm=crm)
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    rng = random.Random(3)
    step = 10_000
    for start in range(1, customers + 1, step):
        people = [demo.person(i, rng) for i in range(start, min(customers, start + step - 1) + 1)]
        data = demo.dataset_rows(people, rng=rng)
        demo.dataset_write(data=data, shop=shop, crm=crm, mailing=mailing, redis_client=client,
                           redis_prefix=redis_prefix)
    client.close()
    shop.dispose()
    crm.dispose()
    return customers


def submit_verified(workspace, email: str, request_type: str, *, inline: bool = True):
    """Submit and verify; inline: nodes are run by ``run_inline``, else sent to Celery."""
    import contextlib

    from django.core import mail

    from dsr.execution import inline_mode
    from dsr.services import dsr_request_submit, dsr_request_verify

    mail.outbox = []
    with inline_mode() if inline else contextlib.nullcontext():
        request = dsr_request_submit(workspace=workspace, request_type=request_type, email=email)
        return dsr_request_verify(request=request, code=_code(request))


def _code(request) -> str:
    # The code mail is sent on commit; the bench runs in autocommit, so it is in the outbox now.
    from django.core import mail

    return re.search(r"\b(\d{6})\b", mail.outbox[-1].body).group(1)


def node_table(request) -> list[tuple[str, int, int | None]]:
    return [(t.key, t.duration_ms or 0, t.rows_found) for t in request.tasks.order_by("position")]


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    args = parse_args()
    setup_django(args)
    from django.conf import settings
    from django.test.utils import setup_test_environment

    setup_test_environment()  # locmem mail outbox
    from dsr.demo import datamap_yaml
    from dsr.demo_mailing import MailingApp, serve
    from dsr.execution import run_inline
    from dsr.models import DataSubjectRequest, RequestStatus, RequestTask
    from governance.datamap.services import datamap_load_text
    from governance.subjects.models import Workspace
    from tests.servers import REDIS_URL

    tag = uuid.uuid4().hex[:8]
    shop_url, crm_url = throwaway_databases(tag)
    redis_prefix = f"mamoru-bench-{tag}:"
    mailing = MailingApp(Path(settings.VAR_DIR) / "mailing.sqlite3", token="bench-token")
    server, _thread = serve(mailing)
    workers: list[subprocess.Popen] = []
    try:
        t0 = time.monotonic()
        customers = build_dataset(args, shop_url, crm_url, redis_prefix, mailing)
        load_seconds = time.monotonic() - t0
        total_rows = customers * ROWS_PER_CUSTOMER
        print(f"dataset: {customers:,} customers, {total_rows:,} rows in 4 stores "
              f"(PostgreSQL, MariaDB, Redis, HTTP/SQLite) loaded in {load_seconds:.0f}s")
        datamap_load_text(text=datamap_yaml(
            shop_url=shop_url, crm_url=crm_url, mailing_url=f"http://127.0.0.1:{server.server_port}",
            token="bench-token", redis_url=REDIS_URL, redis_prefix=redis_prefix), filename="bench.yaml")
        workspace = Workspace.objects.create(slug="bench", name="Bench", default_jurisdiction="EU")

        # 1. One access + one erasure request end to end (in-process).
        print("\n== one request end to end (execution only) ==")
        subject = _email_of(shop_url, 7)
        single = {}
        for kind in ("access", "erasure"):
            request = submit_verified(workspace, subject, kind)
            started = time.monotonic()
            run_inline(request)
            single[kind] = time.monotonic() - started
            request.refresh_from_db()
            print(f"{kind}: {request.status} in {single[kind]:.2f}s; nodes:")
            for key, ms, rows in node_table(request):
                print(f"   {key:32s} {ms:6d} ms  rows={rows}")
            assert request.status == RequestStatus.COMPLETED, request.attention_reason

        # 2. Many queued requests, two workers.
        print(f"\n== {args.requests} queued access requests, {args.workers} workers ==")
        emails = [_email_of(shop_url, i) for i in random.Random(5).sample(range(10, customers), args.requests)]
        t1 = time.monotonic()
        ids = []
        from governance.celery import app

        if not args.broker.startswith("filesystem"):
            app.control.purge()
        for email in emails:
            ids.append(submit_verified(workspace, email, "access", inline=False).pk)
        submit_seconds = time.monotonic() - t1
        print(f"submitted + verified {len(ids)} requests in {submit_seconds:.1f}s (planning included)")
        env = os.environ.copy()
        env.update({"MAMORU_DEK_CACHE_SECONDS": "60", "PYTHONUNBUFFERED": "1"})
        t2 = time.monotonic()
        workers.extend(start_workers(args.workers, env, tag))
        startup = time.monotonic() - t2
        t2 = time.monotonic()
        pending = set(ids)
        while pending:
            done = set(DataSubjectRequest.objects.filter(
                pk__in=list(pending), status__in=[RequestStatus.COMPLETED, RequestStatus.NEEDS_ATTENTION])
                .values_list("pk", flat=True))
            pending -= done
            if time.monotonic() - t2 > 1800:
                raise SystemExit(f"timed out with {len(pending)} requests left")
            time.sleep(0.5)
        run_seconds = time.monotonic() - t2
        failed = DataSubjectRequest.objects.filter(pk__in=ids, status=RequestStatus.NEEDS_ATTENTION).count()
        per_node: dict[str, list[int]] = {}
        for key_node, phase, ms in RequestTask.objects.filter(request_id__in=ids).values_list("node", "phase", "duration_ms"):
            per_node.setdefault(f"{phase}:{key_node}", []).append(ms or 0)
        print(f"{len(ids)} requests executed in {run_seconds:.1f}s with {args.workers} workers "
              f"(after {startup:.1f}s worker start-up; {failed} need attention)")
        print(f"{'node':34s} {'p50 ms':>7s} {'p95 ms':>7s} {'max ms':>7s}")
        for key in sorted(per_node):
            values = per_node[key]
            print(f"{key:34s} {statistics.median(values):7.0f} {percentile(values, 0.95):7.0f} {max(values):7.0f}")
        recovery = None
        if not args.no_recovery:
            recovery = measure_recovery(args, workspace, shop_url, customers, mailing, workers, env, tag)
        print("\n== goals ==")
        print(f"one request < 5 s: access {single['access']:.2f}s, erasure {single['erasure']:.2f}s -> "
              f"{'met' if max(single.values()) < 5 else 'NOT met'}")
        scaled = run_seconds * 1000 / max(1, len(ids))
        print(f"1,000 requests < 300 s: {run_seconds:.0f}s for {len(ids)} (≈{scaled:.0f}s per 1,000) -> "
              f"{'met' if scaled < 300 else 'NOT met'}")
        if recovery is not None:
            print(f"recovery after a worker SIGKILL <= 60 s: {recovery:.1f}s -> "
                  f"{'met' if recovery <= 60 else 'NOT met'}")
    finally:
        for proc in workers:
            try:
                os.killpg(proc.pid, 15)
                proc.wait(timeout=20)
            except Exception:  # noqa: BLE001, S110 - best effort cleanup
                pass
        server.shutdown()
        if not args.keep:
            drop_databases(tag)
            if args.mamoru_db == "postgres":
                import sqlalchemy as sa
                from django.db import connections

                from tests.servers import POSTGRES_ADMIN_URL

                connections.close_all()
                admin = sa.create_engine(POSTGRES_ADMIN_URL.replace("postgresql://", "postgresql+psycopg://"),
                                         isolation_level="AUTOCOMMIT")
                with admin.connect() as conn:
                    for name in args.mamoru_dbs:
                        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            import redis

            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=redis_prefix + "*", count=5000):
                client.delete(key)


def start_workers(count: int, env: dict, tag: str, generation: int = 0) -> list[subprocess.Popen]:
    """Start ``count`` Celery workers (concurrency 1 each) and wait until they are ready."""
    from django.conf import settings

    started = time.monotonic()
    procs, logs = [], []
    for n in range(count):
        log_path = Path(settings.VAR_DIR) / f"worker-{generation}-{n}.log"
        log = open(log_path, "w")  # noqa: SIM115 - closed with the process
        logs.append(log_path)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "governance", "worker", "-l", "INFO", "-c", "1",
             "-n", f"bench{generation}-{n}-{tag}@%h", "--without-gossip", "--without-mingle",
             "--without-heartbeat"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    for n, log_path in enumerate(logs):
        while "ready." not in log_path.read_text():
            if time.monotonic() - started > 120:
                raise SystemExit(f"worker {n} did not start:\n{log_path.read_text()[-2000:]}")
            time.sleep(0.1)
    return procs


def measure_recovery(args, workspace, shop_url: str, customers: int, mailing, workers: list, env: dict,
                     tag: str) -> float:
    """SIGKILL every worker while a node runs; new workers and beat take over. Seconds until done."""
    import signal
    from datetime import datetime

    from django.conf import settings
    from django.utils import timezone

    from dsr.models import DataSubjectRequest, RequestStatus, RequestTask, TaskStatus

    print("\n== recovery after a worker SIGKILL ==")
    print(f"lease {settings.MAMORU_DSR_LEASE_SECONDS}s, heartbeat every {settings.MAMORU_DSR_HEARTBEAT_SECONDS}s, "
          f"watchdog every {settings.CELERY_BEAT_SCHEDULE['dsr-watchdog']['schedule']:.0f}s (beat), "
          f"broker visibility {getattr(settings, 'MAMORU_DSR_BROKER_VISIBILITY_SECONDS', '-')}s")
    beat_log = open(Path(settings.VAR_DIR) / "beat.log", "w")  # noqa: SIM115 - closed with the process
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "governance", "beat", "-l", "INFO",
         "-s", str(Path(settings.VAR_DIR) / "celerybeat-schedule")],
        cwd=ROOT, env=env, stdout=beat_log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        mailing.delay_seconds = 3.0  # the mailing-list lookup answers slowly: the node is running when killed
        request = submit_verified(workspace, _email_of(shop_url, customers - 1), "erasure", inline=False)
        deadline = time.monotonic() + 120
        task = None
        while time.monotonic() < deadline:
            task = RequestTask.objects.filter(request=request, phase="access", node="mailing.members").first()
            if task is not None and task.status == TaskStatus.RUNNING:
                break
            time.sleep(0.05)
        else:
            raise SystemExit("the mailing-list node never started")
        time.sleep(1.0)  # well inside the node
        for proc in workers:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        killed = time.monotonic()
        killed_at = timezone.now()
        mailing.delay_seconds = 0
        workers[:] = start_workers(len(workers), env, tag, generation=1)
        print(f"killed {len(workers)} workers mid-node; new ones ready after {time.monotonic() - killed:.1f}s")
        while time.monotonic() - killed < 600:
            task.refresh_from_db()
            if task.status == TaskStatus.DONE:
                break
            time.sleep(0.2)
        recovered = time.monotonic() - killed
        event = request.events.filter(kind="node_requeued").first()
        how = (f"{event.data.get('reason')} via {event.data.get('how')}, detected "
               f"{(datetime.fromisoformat(event.data['detected_at']) - killed_at).total_seconds():.1f}s "
               "after the kill") if event else "no takeover event"
        print(f"node {task.key} done again {recovered:.1f}s after the kill (attempts {task.attempts}; {how})")
        while time.monotonic() - killed < 600:
            request.refresh_from_db()
            if request.status in {RequestStatus.COMPLETED, RequestStatus.NEEDS_ATTENTION}:
                break
            time.sleep(0.2)
        request = DataSubjectRequest.objects.get(pk=request.pk)
        print(f"request {request.status} {time.monotonic() - killed:.1f}s after the kill")
        return recovered
    finally:
        mailing.delay_seconds = 0
        beat.terminate()
        beat.wait(timeout=20)


def _email_of(shop_url: str, customer_id: int) -> str:
    import sqlalchemy as sa

    from dsr.connectors.sql import engine_for

    with engine_for(shop_url).connect() as conn:
        return conn.execute(sa.text("SELECT email FROM customers WHERE id = :i"), {"i": customer_id}).scalar_one()


if __name__ == "__main__":
    main()

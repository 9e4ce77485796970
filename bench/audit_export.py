"""Benchmark: export N audit entries to CSV through the access-log report and the CSV exporter.

Inserts entries in bulk (sealed into the hash chain like real ones) into a throw-away SQLite database
(or DATABASE_URL if you set it), then exports at each size, printing rows per second, the peak of
Python allocations (tracemalloc) and the peak resident set size (VmHWM) of a fresh process that
only exports (so the loader's memory is not counted).

    .venv/bin/python bench/audit_export.py              # 250k, 500k, 1M
    .venv/bin/python bench/audit_export.py --quick      # 20k, 50k
    .venv/bin/python bench/audit_export.py --sizes 100000 300000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000],
                        help="total entries at each measurement (ascending)")
    parser.add_argument("--quick", action="store_true", help="sizes 20k and 50k")
    parser.add_argument("--profiles", type=int, default=2000, help="distinct profiles referenced")
    parser.add_argument("--no-tracemalloc", action="store_true", help="skip the tracemalloc pass")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--export-only", metavar="CSV_PATH", help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def export_child(args) -> None:
    """Export in a fresh process so that its peak RSS is the export's, not the loader's."""
    import json

    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from oversight.exporters import exporter_get
    from oversight.reports import report_get

    user = get_user_model().objects.get(username="bench")
    report, csv_exporter = report_get("access_log"), exporter_get("csv")
    base_rss = rss_mb("VmRSS")
    if args.trace:
        tracemalloc.start()
    params = report.clean({})
    params.update(report.snapshot(params))
    began = time.perf_counter()
    with open(args.export_only, "wb", buffering=1024 * 1024) as handle:
        for chunk in csv_exporter.stream(report.table(params, user=user)):
            handle.write(chunk)
    elapsed = time.perf_counter() - began
    traced = tracemalloc.get_traced_memory()[1] / 1024 / 1024 if args.trace else None
    with open(args.export_only, "rb") as handle:
        rows = sum(1 for _ in handle) - 1
    print(json.dumps({"rows": rows, "seconds": elapsed, "base_rss": base_rss,
                      "peak_rss": rss_mb("VmHWM"), "traced": traced}))


def run_child(csv_path: Path, trace: bool) -> dict:
    import json
    import subprocess

    cmd = [sys.executable, __file__, "--export-only", str(csv_path)] + (["--trace"] if trace else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=os.environ.copy())
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    if args.export_only:
        export_child(args)
        return
    sizes = [20_000, 50_000] if args.quick else sorted(args.sizes)
    workdir = Path(tempfile.mkdtemp(prefix="mamoru-bench-audit-"))
    # A throw-away var dir (SQLite files, keystore, secrets), inherited by the export processes;
    # DATABASE_URL, when set, points the main database elsewhere (use an empty database).
    os.environ["MAMORU_VAR_DIR"] = str(workdir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, database="default")
    call_command("migrate", verbosity=0, database="keystore")

    import datetime as dt
    import uuid

    from django.contrib.auth import get_user_model
    from django.contrib.contenttypes.models import ContentType
    from django.db import connection, transaction

    from audit.chain import chain_seal
    from audit.models import AuditEntry
    from governance.subjects.models import Profile, Workspace

    ws = Workspace.objects.create(slug="bench", name="Bench")
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x" * 16)
    ct = ContentType.objects.get_for_model(Profile)
    profile_ids = [str(uuid.uuid4()) for _ in range(args.profiles)]
    start_ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def insert(count: int, offset: int) -> float:
        began = time.perf_counter()
        batch = 20_000
        for first in range(offset, offset + count, batch):
            entries = [
                AuditEntry(
                    content_type=ct, object_pk=profile_ids[i % len(profile_ids)], object_repr="Profile",
                    action=AuditEntry.Action.ACCESS, actor=user, actor_email=user.email,
                    timestamp=start_ts + dt.timedelta(seconds=i), fields=["full_name", "address"],
                    reason="support ticket", outcome="allowed", additional_data={"via": "api"},
                    remote_addr="192.0.2.1", cid=f"req-{i}", changes={}, workspace_id=ws.pk,
                )
                for i in range(first, min(first + batch, offset + count))
            ]
            with transaction.atomic():
                chain_seal(entries)
                AuditEntry.objects.bulk_create(entries, batch_size=2000)
        # Fresh planner statistics, as autovacuum/ANALYZE would have after a bulk load; without
        # them PostgreSQL guesses the content type is rare and sorts every chunk.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE audit_auditentry")
        return time.perf_counter() - began

    print(f"database: {connection.vendor}  cpus: {os.cpu_count()}  python: {sys.version.split()[0]}")
    print(f"{'entries':>10} {'rows/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'RSS growth MB':>14} "
          f"{'tracemalloc peak MB':>20}")
    results = []
    have = 0
    for size in sizes:
        insert(size - have, have)
        have = size
        out = workdir / f"export-{size}.csv"
        plain = run_child(out, trace=False)
        traced = run_child(out, trace=True)["traced"] if not args.no_tracemalloc else float("nan")
        assert plain["rows"] == size, (plain["rows"], size)
        rate = plain["rows"] / plain["seconds"]
        growth = plain["peak_rss"] - plain["base_rss"]
        results.append((size, rate, plain["seconds"], plain["peak_rss"], growth, traced))
        print(f"{size:>10,} {rate:>10,.0f} {plain['seconds']:>8.1f} {plain['peak_rss']:>12.1f} "
              f"{growth:>14.1f} {traced:>20.1f}", flush=True)

    goal_rate, goal_mem = 50_000, 200
    worst_rate = min(r[1] for r in results)
    worst_mem = max(r[3] for r in results)
    print(f"\ngoal: >= {goal_rate:,} rows/s and peak RSS < {goal_mem} MB, flat as the export grows")
    print(f"lowest rate {worst_rate:,.0f} rows/s -> {'met' if worst_rate >= goal_rate else 'NOT met'}; "
          f"highest peak RSS {worst_mem:.0f} MB -> {'met' if worst_mem < goal_mem else 'NOT met'}")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

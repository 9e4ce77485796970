#!/usr/bin/env python
"""Benchmark the consent API on gunicorn + PostgreSQL with at least 1M consent states.

Prints, from one run on the same server:
  1. ceiling: a bare Django view returning a constant (``/bench/constant``), wrk, max req/s;
  2. ``GET /api/v1/consent/check`` at max throughput (wrk, random people), req/s, p50/p99;
     goal: at least half the ceiling's throughput. 1 and 2 alternate for ``--rounds`` rounds and
     the median of the per-round ratios counts (the shared machine's speed drifts);
  3. ``check`` at a fixed 200 req/s (open-loop raw-socket client, latency measured from the
     intended send time, so queueing is counted), ``--rounds`` runs pooled: p50/p99; goal: p99
     under 10 ms;
  4. ``POST /api/v1/consent/events`` in batches of 500: events/s; goal: at least 2,000 events/s.

Data: PostgreSQL databases ``mamoru_bench_consent`` (+ ``_keys``) on 127.0.0.1, rebuilt unless
``--keep``; N/2 browser profiles × 2 purposes = N consent states (and N events), loaded with COPY.
The loaded history is synthetic and not hash-chained (the chain continues after it).
Needs ``wrk`` (``apt-get install -y wrk``). Example:
    .venv/bin/python bench/consent.py --states 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PY = str(ROOT / ".venv" / "bin" / "python")
DB = "mamoru_bench_consent"
PG_URLS = {
    # Same host: PostgreSQL's Unix socket (libpq's default directory), the usual set-up when the app
    # and the database share a machine; a loopback TCP round trip costs about twice as much here.
    "socket": "postgres://postgres@/",
    "tcp": "postgres://postgres@127.0.0.1:5432/",
}


def pg_url() -> str:
    return PG_URLS[os.environ.get("MAMORU_BENCH_PG_TRANSPORT", "socket")]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=1_000_000, help="consent states to load (default 1M)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved ceiling/check rounds and fixed-rate runs")
    parser.add_argument("--rate", type=int, default=200, help="fixed request rate for the latency run")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (gthread)")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--batches", type=int, default=40, help="batches of 500 events to POST")
    parser.add_argument("--writers", type=int, default=2, help="concurrent batch writers")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--transport", choices=sorted(PG_URLS), default="socket",
                        help="how gunicorn reaches PostgreSQL: Unix socket (default) or TCP on 127.0.0.1")
    parser.add_argument("--keep", action="store_true", help="reuse the loaded bench database")
    parser.add_argument("--quick", action="store_true", help="100k states, 5 s runs")
    parser.add_argument("--results", help="write a markdown summary to this file")
    args = parser.parse_args()
    if args.quick:
        args.states, args.duration, args.batches = min(args.states, 100_000), 5, 10
    return args


def bench_env() -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=pg_url() + DB, MAMORU_KEYSTORE_URL=pg_url() + DB + "_keys",
        DJANGO_SETTINGS_MODULE="bench.consent_settings", DATABASE_CONN_MAX_AGE="600",
        PYTHONPATH=str(ROOT),
    )
    return env


def psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-q", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def prepare_databases(keep: bool) -> bool:
    """Create the databases; return True when data must be loaded."""
    exists = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-tAc", f"SELECT 1 FROM pg_database WHERE datname='{DB}'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip() == "1"
    fresh = not (keep and exists)
    if fresh:
        for name in (DB, DB + "_keys"):
            psql(f"DROP DATABASE IF EXISTS {name}")
            psql(f"CREATE DATABASE {name}")
    env = bench_env()
    for database in ("default", "keystore"):  # also brings a kept database up to date
        subprocess.run([PY, "manage.py", "migrate", "--database", database, "-v", "0"], cwd=ROOT, env=env, check=True)
    return fresh


def load(states: int) -> dict:
    """Seed purposes, a site and keys; COPY profiles, identities, events and states."""
    import django

    os.environ.update(bench_env())
    django.setup()
    from django.db import connection
    from django.utils import timezone

    from consent.demo import purposes_seed
    from consent.models import ChainHead, KeyKind, Purpose, Site
    from consent.proof import subject_pseudonym
    from consent.services import site_key_create
    from governance.crypto.blind_index import blind_index
    from governance.subjects.models import Jurisdiction, Workspace

    purposes_seed()
    workspace, _ = Workspace.objects.get_or_create(slug="bench", defaults={"name": "Bench", "default_jurisdiction": Jurisdiction.EU})
    site, _ = Site.objects.get_or_create(slug="bench", defaults={"workspace": workspace, "name": "Bench",
                                                                  "rate_limit_per_minute": 100_000_000})
    _key, secret = site_key_create(site=site, kind=KeyKind.SECRET)
    info = {"secret": secret, "people": states // 2}
    if Purpose.objects.filter(code="analytics").exists() and connection.cursor().execute(
        "SELECT count(*) FROM consent_consentstate"
    ).fetchone()[0] >= states:
        return info
    codes = ["analytics", "marketing_email"]
    purpose_ids = dict(Purpose.objects.filter(code__in=codes).values_list("code", "id"))
    now = timezone.now()
    people = states // 2
    started = time.perf_counter()
    print(f"loading {people:,} profiles, {people:,} identities, {states:,} events and states …", flush=True)
    seq = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        chunk = 100_000
        for start in range(0, people, chunk):
            profiles, identities, events, state_rows = [], [], [], []
            for i in range(start, min(start + chunk, people)):
                pid, dek = uuid.uuid4(), uuid.uuid4()
                bid = f"bench-{i:08d}"
                index = blind_index(kind="browser_id", value=bid)
                profiles.append((pid, workspace.pk, "EU", "active", dek, "", now, now))
                identities.append((uuid.uuid4(), pid, workspace.pk, "browser_id", "", index, dek, False, now))
                pseudonym = subject_pseudonym(identity_index=index)
                for code in codes:
                    seq += 1
                    eid = uuid.uuid4()
                    state = "given" if (i + len(code)) % 3 else "refused"
                    events.append((eid, seq, "0" * 64, "0" * 64, workspace.pk, site.pk, pid, pseudonym, "browser_id",
                                   index, purpose_ids[code], 1, state, "banner", now, now, "EU", "en", "", "", "",
                                   "bench", "", "", "{}", ""))
                    state_rows.append((workspace.pk, pid, purpose_ids[code], 1, state, "banner", now, eid, False))
            with raw.copy("COPY subjects_profile (id, workspace_id, jurisdiction, status, data_key_id, locale, "
                          "created_at, updated_at) FROM STDIN") as copy:
                for row in profiles:
                    copy.write_row(row)
            with raw.copy("COPY subjects_identity (id, profile_id, workspace_id, kind, namespace, value_index, "
                          "data_key_id, verified, created_at) FROM STDIN") as copy:
                for row in identities:
                    copy.write_row(row)
            with raw.copy("COPY consent_consentevent (id, seq, prev_hash, entry_hash, workspace_id, site_id, "
                          "profile_id, subject_pseudonym, identity_kind, identity_index, purpose_id, purpose_version, "
                          "state, method, occurred_at, recorded_at, jurisdiction, language, page_url, notice_url, "
                          "proof, actor_label, tcf_string, gpp_string, signals, note) FROM STDIN") as copy:
                for row in events:
                    copy.write_row(row)
            with raw.copy("COPY consent_consentstate (workspace_id, profile_id, purpose_id, purpose_version, state, "
                          "method, occurred_at, last_event_id, needs_renewal) FROM STDIN") as copy:
                for row in state_rows:
                    copy.write_row(row)
            print(f"  {min(start + chunk, people):,} people", flush=True)
        cursor.execute("ANALYZE")
    ChainHead.objects.update_or_create(pk=1, defaults={"seq": seq, "hash": "0" * 64})
    print(f"loaded in {time.perf_counter() - started:.0f} s", flush=True)
    return info


def start_server(args) -> subprocess.Popen:
    gunicorn = str(ROOT / ".venv" / "bin" / "gunicorn")
    proc = subprocess.Popen(
        # gthread: keep-alive connections and idle sockets do not pin a worker (sync workers would
        # block on a connection the client opened but has not used yet).
        [gunicorn, "governance.wsgi:application", "-k", "gthread", "-w", str(args.workers),
         "--threads", str(args.threads), "-b", f"127.0.0.1:{args.port}", "--log-level", "warning",
         "--keep-alive", "30"],
        cwd=ROOT, env=bench_env(),
    )
    import httpx

    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{args.port}/bench/constant", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise SystemExit("gunicorn did not start")


LUA = """
math.randomseed(os.time())
local people = {people}
wrk.headers["Authorization"] = "Bearer {secret}"
request = function()
  local id = string.format("bench-%08d", math.random(0, people - 1))
  local purpose = (math.random() < 0.5) and "analytics" or "marketing_email"
  return wrk.format("GET", "/api/v1/consent/check?browser_id=" .. id .. "&purpose=" .. purpose)
end
"""


PACE = """
function delay()
  return {interval}
end
"""


def wrk(url: str, args, script: str | None = None, connections: int | None = None) -> dict:
    cmd = ["wrk", "-t", "2", "-c", str(connections or args.connections), "-d", f"{args.duration}s", "--latency"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def pct(label):
        m = re.search(rf"\s{label}%\s+([\d.]+)(us|ms|s)", out)
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    return {"rps": rps, "p50_ms": pct("50"), "p99_ms": pct("99"), "non_2xx": int(errors.group(1)) if errors else 0}


class _Conn:
    """One keep-alive HTTP/1.1 connection; a raw-socket client keeps the load generator's own CPU
    use small (the server under test shares the two CPUs with it)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    async def get(self, request: bytes) -> tuple[int, bool]:
        """Send one request; return the status and whether the server keeps the connection open."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        await self.reader.readexactly(length)
        return status, re.search(rb"(?i)connection:\s*close", head) is None


async def _fixed_rate(url: str, secret: str, people: int, rate: int, duration: int,
                      path: str = "/api/v1/consent/check") -> dict:
    """Open loop: request i is due at start + i/rate whatever happened to earlier ones; latency is
    counted from that due time, so a stall of the server (or of this client) is not hidden."""
    host, port = url.split("//", 1)[1].split(":")
    idle: list[_Conn] = []
    latencies: list[float] = []
    lags: list[float] = []
    errors = 0

    async def one(due: float, bid: str, purpose: str) -> None:
        nonlocal errors
        conn = idle.pop() if idle else _Conn(*await asyncio.open_connection(host, int(port)))
        lags.append((time.perf_counter() - due) * 1000)
        request = (f"GET {path}?browser_id={bid}&purpose={purpose} HTTP/1.1\r\n"
                   f"Host: {host}:{port}\r\nAuthorization: Bearer {secret}\r\n\r\n").encode()
        try:
            status, keep = await conn.get(request)
            ok = status == 200
            if keep:
                idle.append(conn)
            else:
                conn.writer.close()
        except (OSError, asyncio.IncompleteReadError, ValueError, AttributeError):
            ok = False  # counted, and its latency stays in the distribution
            conn.writer.close()
        if not ok:
            errors += 1
        latencies.append((time.perf_counter() - due) * 1000)

    # Connections are opened when needed and then kept alive. (Opening a pool up front and
    # leaving some idle would pin gunicorn gthread threads, which block reading a new connection's
    # first request.)
    rng = random.Random(7)
    tasks = []
    start = time.perf_counter() + 0.2
    for i in range(rate * duration):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        bid = f"bench-{rng.randrange(people):08d}"
        tasks.append(asyncio.create_task(one(due, bid, rng.choice(["analytics", "marketing_email"]))))
    await asyncio.gather(*tasks)
    for conn in idle:
        conn.writer.close()
    latencies.sort()
    lags.sort()
    return {
        "sent": len(latencies), "errors": errors,
        "p50_ms": statistics.median(latencies), "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1], "lag_p99_ms": lags[int(len(lags) * 0.99) - 1], "latencies": latencies,
    }


def batch_writes(url: str, secret: str, people: int, batches: int, writers: int) -> dict:
    import httpx

    done = []
    lock = threading.Lock()
    counter = iter(range(batches))

    def writer(seed: int):
        rng = random.Random(seed)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=60) as client:
            while True:
                with lock:
                    n = next(counter, None)
                if n is None:
                    return
                events = [{"browser_id": f"bench-{rng.randrange(people):08d}",
                           "purpose": rng.choice(["analytics", "marketing_email"]),
                           "state": rng.choice(["given", "refused", "withdrawn"]), "method": "banner"}
                          for _ in range(500)]
                response = client.post("/api/v1/consent/events", json={"events": events})
                if response.status_code != 201:
                    raise SystemExit(f"batch failed: {response.status_code} {response.text[:300]}")
                with lock:
                    done.append(len(events))

    started = time.perf_counter()
    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    return {"events": sum(done), "seconds": elapsed, "events_per_s": sum(done) / elapsed}


def _median_run(runs: list[dict]) -> dict:
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def _pooled(runs: list[dict]) -> dict:
    """All fixed-rate runs' latencies as one distribution, plus each run's p99."""
    latencies = sorted(x for r in runs for x in r["latencies"])
    return {
        "sent": len(latencies), "errors": sum(r["errors"] for r in runs),
        "p50_ms": statistics.median(latencies), "p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "max_ms": latencies[-1], "lag_p99_ms": max(r["lag_p99_ms"] for r in runs),
        "each_p99": [r["p99_ms"] for r in runs],
    }


def main() -> None:
    args = parse_args()
    # SIGTERM (e.g. from `timeout`) must still stop the gunicorn this script started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    os.environ["MAMORU_BENCH_PG_TRANSPORT"] = args.transport
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    fresh = prepare_databases(args.keep)
    loader = subprocess.run(
        [PY, "-c", f"import json, bench.consent as b; print('INFO' + json.dumps(b.load({args.states})))"],
        cwd=ROOT, env=bench_env(), capture_output=True, text=True,
    )
    if loader.returncode:
        print(loader.stdout, loader.stderr)
        raise SystemExit("loading failed")
    print(loader.stdout.rsplit("INFO", 1)[0], end="")
    info = json.loads(loader.stdout.rsplit("INFO", 1)[1])
    # A kept database holds the previous run's batch writes: vacuum now rather than have autovacuum
    # start during the first measured round.
    psql("VACUUM (ANALYZE) subjects_profile, subjects_identity, consent_consentstate, consent_consentevent, "
         "consent_ratewindow", DB)
    base = f"http://127.0.0.1:{args.port}"
    server = start_server(args)
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(LUA.replace("{people}", str(info["people"])).replace("{secret}", info["secret"]))
            script = handle.name
        wrk(base + "/bench/constant", argparse.Namespace(**{**vars(args), "duration": 2}))  # warm-up
        wrk(base + "/", argparse.Namespace(**{**vars(args), "duration": 2}), script)
        # Interleaved rounds: this machine's speed drifts by ±20 % within a minute (shared host),
        # so each check run is compared with the ceiling run just before it; the median counts.
        rounds = []
        for _ in range(args.rounds):
            rounds.append((wrk(base + "/bench/constant", args), wrk(base + "/", args, script)))
        ceiling, check = (_median_run([r[i] for r in rounds]) for i in (0, 1))
        ratios = sorted(k["rps"] / c["rps"] for c, k in rounds)
        # The constant view at the same fixed rate, alternating with check: the latency floor this
        # machine gives any Django view at that moment.
        fixed_runs, floor_runs = [], []
        for _ in range(args.rounds):
            floor_runs.append(asyncio.run(_fixed_rate(base, info["secret"], info["people"], args.rate, args.duration,
                                                      path="/bench/constant")))
            fixed_runs.append(asyncio.run(_fixed_rate(base, info["secret"], info["people"], args.rate, args.duration)))
        fixed, floor = _pooled(fixed_runs), _pooled(floor_runs)
        # The same rate from wrk (8 connections, each pausing 8000/rate ms between requests): a
        # lighter client than Python, but latency is counted from the actual send time.
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(open(script).read() + PACE.replace("{interval}", str(round(8000 / args.rate))))
            paced_script = handle.name
        paced = wrk(base + "/", args, paced_script, connections=8)
        writes = batch_writes(base, info["secret"], info["people"], args.batches, args.writers)
    finally:
        server.terminate()
        server.wait(10)
    ratio = statistics.median(ratios)
    lines = [
        f"consent bench: {args.states:,} states ({'fresh load' if fresh else 'kept'}), gunicorn gthread "
        f"-w {args.workers} --threads {args.threads}, "
        f"PostgreSQL over {'its Unix socket' if args.transport == 'socket' else 'TCP 127.0.0.1'}, "
        f"{os.cpu_count()} CPUs",
        f"ceiling  /bench/constant   {ceiling['rps']:8.0f} req/s (median round)  p50 {ceiling['p50_ms']:.2f} ms  p99 {ceiling['p99_ms']:.2f} ms",
        f"check    max throughput    {check['rps']:8.0f} req/s (median round)  p50 {check['p50_ms']:.2f} ms  p99 {check['p99_ms']:.2f} ms"
        f"  non-2xx {check['non_2xx']}",
        f"check / ceiling            {ratio:8.2f}   median of {len(ratios)} interleaved rounds "
        f"({', '.join(f'{r:.2f}' for r in ratios)}; goal ≥ 0.50: {'met' if ratio >= 0.5 else 'NOT met'})",
        f"check at {args.rate} req/s        {len(fixed['each_p99'])} runs pooled, sent {fixed['sent']}  errors {fixed['errors']}  p50 {fixed['p50_ms']:.2f} ms  "
        f"p99 {fixed['p99_ms']:.2f} ms  max {fixed['max_ms']:.1f} ms  (client send lag p99 "
        f"{fixed['lag_p99_ms']:.2f} ms; p99 per run {', '.join(f'{p:.1f}' for p in fixed['each_p99'])} ms; "
        f"goal p99 < 10 ms: "
        f"{'met' if fixed['p99_ms'] < 10 else 'NOT met'})",
        f"constant at {args.rate} req/s     {len(floor['each_p99'])} runs pooled, p50 {floor['p50_ms']:.2f} ms  "
        f"p99 {floor['p99_ms']:.2f} ms  (p99 per run {', '.join(f'{p:.1f}' for p in floor['each_p99'])} ms: "
        f"the machine's floor for any view)",
        f"check paced (wrk) ~{args.rate} req/s  got {paced['rps']:.0f} req/s  p50 {paced['p50_ms']:.2f} ms  "
        f"p99 {paced['p99_ms']:.2f} ms  non-2xx {paced['non_2xx']}",
        f"batch writes               {writes['events_per_s']:8.0f} events/s  ({writes['events']} events, "
        f"{args.writers} writers, batches of 500; goal ≥ 2000: {'met' if writes['events_per_s'] >= 2000 else 'NOT met'})",
    ]
    print("\n".join(lines))
    if args.results:
        Path(args.results).write_text("```\n" + "\n".join(lines) + "\n```\n", encoding="utf-8")


if __name__ == "__main__":
    main()

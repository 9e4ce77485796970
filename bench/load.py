#!/usr/bin/env python
"""Production load test (issue 13): mixed traffic against gunicorn + PostgreSQL + Redis + Celery.

The server is what production runs: gunicorn with ``governance/gunicorn_conf.py`` (threaded
workers, overload shedding), PostgreSQL (main database and key store), Redis as Celery broker and
shared cache, a real Celery worker. The load is open loop: request i is due at start + i/rate
whatever happened to earlier ones, and its latency is counted from that due time, so a stalled
server (or client) is not hidden. Traffic mix (weights): consent check (publishable key, browser
``Origin``) 40, consent event ``POST`` 20, profile read with a staff API token
(``GET /api/v1/profiles/{id}/``: one person, decrypted and read-audited) 20, portal pages 15, DSR
submission (``POST /api/v1/dsr/requests``, a code e-mailed to the file backend) 5.

Phases, printed with their goals:
  1. ``/healthz`` latency at 20 req/s without and with 2 idle TCP connections held open
     (goal: the same; the old server froze for 30 s);
  2. step-up: ``--start`` req/s and up by ``--step`` for ``--step-seconds`` each, until a step has
     an error or p99 ≥ 100 ms; the last clean step is the base rate (or ``--base-rate``);
  3. base rate for ``--duration`` s (goal: 0 errors, p99 < 100 ms);
  4. 2 × base for ``--duration`` s (goal: the excess answered 503/429 with ``Retry-After`` quickly —
     p99 of those answers < 100 ms — and no other errors);
  4b. ``--flood`` req/s (150) for ``--flood-seconds`` (30): far past capacity even when the base
     rate was limited by something else (a noisy machine); goal as in 4;
  5. base rate again for ``--duration`` s right after (goal: recovered, 0 errors, p99 < 100 ms);
  6. every consent event acknowledged (201) is stored (goal: acknowledged = stored).

Rate limits per client address would answer 429 to a load that comes from one address: the DSR
API and per-e-mail limits are raised for the run (``MAMORU_DSR_API_PER_HOUR``,
``MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR``, the portal's) and each submission uses a new e-mail address.

Data: PostgreSQL databases ``m_serving_load`` (+ ``_keys``), rebuilt unless ``--keep``, with
``manage.py seed_demo``; Redis database ``--redis-db`` (7). Example:
    .venv/bin/python bench/load.py                 # find the rate, then 60 s phases
    .venv/bin/python bench/load.py --base-rate 80  # skip the step-up
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
DB = "m_serving_load"
PG_URLS = {"socket": "postgres://postgres@/", "tcp": "postgres://postgres@127.0.0.1:5432/"}
GOAL_P99_MS = 100.0
MIX = [("check", 40), ("event", 20), ("profiles", 20), ("portal", 15), ("dsr", 5)]
IDLE_REUSE_SECONDS = 3.0
ORIGIN = "http://127.0.0.1:8000"  # allowed by the demo site (consent/demo.py)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=60, help="seconds of the base, overload and recovery phases")
    parser.add_argument("--base-rate", type=int, default=0, help="skip the step-up and use this rate")
    parser.add_argument("--start", type=int, default=40, help="first step-up rate (req/s)")
    parser.add_argument("--step", type=int, default=20, help="step-up increment (req/s)")
    parser.add_argument("--step-seconds", type=int, default=20, help="seconds per step-up step")
    parser.add_argument("--flood", type=int, default=150,
                        help="after the 2x phase, this rate for --flood-seconds (0: skip): far past "
                             "capacity, whatever the base rate was")
    parser.add_argument("--flood-seconds", type=int, default=30)
    parser.add_argument("--workers", type=int, default=0, help="gunicorn processes (default: the config's)")
    parser.add_argument("--threads", type=int, default=0, help="threads per process (default: the config's)")
    parser.add_argument("--celery-concurrency", type=int, default=1)
    parser.add_argument("--port", type=int, default=8143)
    parser.add_argument("--redis-db", type=int, default=7)
    parser.add_argument("--pg", choices=sorted(PG_URLS), default="socket",
                        help="how the server reaches PostgreSQL (same host: the Unix socket)")
    parser.add_argument("--keep", action="store_true", help="reuse the databases of an earlier run")
    parser.add_argument("--var-dir", default="/tmp/m_serving/load-var")
    parser.add_argument("--json", help="also write the figures to this file")
    return parser.parse_args()


# -- the server ------------------------------------------------------------------------------------

def server_env(args) -> dict:
    env = dict(os.environ)
    redis = f"redis://127.0.0.1:6379/{args.redis_db}"
    many = str(10**9)
    env.update(
        DATABASE_URL=PG_URLS[args.pg] + DB, MAMORU_KEYSTORE_URL=PG_URLS[args.pg] + DB + "_keys",
        DATABASE_CONN_MAX_AGE="600", CELERY_BROKER_URL=redis, CACHE_URL=redis, MAMORU_VAR_DIR=args.var_dir,
        DJANGO_SETTINGS_MODULE="governance.settings", DJANGO_DEBUG="0", PYTHONUNBUFFERED="1",
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(Path(args.var_dir) / "mail"),
        # one client address sends everything: per-address and per-e-mail limits raised (see above)
        MAMORU_DSR_API_PER_HOUR=many, MAMORU_DSR_CODES_PER_EMAIL_PER_HOUR=many,
        MAMORU_PORTAL_SUBMITS_PER_HOUR=many, MAMORU_PORTAL_VERIFY_PER_10MIN=many,
        GUNICORN_ACCESS_LOG="", LOG_LEVEL="WARNING",
    )
    for name in ("WEB_CONCURRENCY", "GUNICORN_THREADS"):
        env.pop(name, None)
    if args.workers:
        env["WEB_CONCURRENCY"] = str(args.workers)
    if args.threads:
        env["GUNICORN_THREADS"] = str(args.threads)
    return env


def psql(sql: str) -> str:
    return subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAqc", sql],
                          capture_output=True, text=True, check=True).stdout.strip()


def prepare(args, env: dict) -> dict:
    """Databases, demo data, a staff token; returns what the load needs."""
    Path(args.var_dir).mkdir(parents=True, exist_ok=True)
    exists = psql(f"SELECT 1 FROM pg_database WHERE datname='{DB}'") == "1"
    fresh = not (args.keep and exists)
    if fresh:
        for name in (DB, DB + "_keys"):
            psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            psql(f'CREATE DATABASE "{name}"')
    for database in ("default", "keystore"):  # kept databases too: the code may have new migrations
        subprocess.run([PY, "manage.py", "migrate", "--database", database, "-v", "0"], cwd=ROOT, env=env, check=True)
    if fresh:
        subprocess.run([PY, "manage.py", "seed_demo", "--quiet-logins"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
    credentials = json.loads((Path(args.var_dir) / "demo_credentials.json").read_text())
    token = subprocess.run(
        [PY, "manage.py", "create_api_token", "dpo", f"load-{uuid.uuid4().hex[:6]}", "--scope", "read"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    return {"publishable": credentials["consent_demo_site"]["publishable_key"], "token": token}


def start(args, env: dict) -> list[subprocess.Popen]:
    log = open(Path(args.var_dir) / "server.log", "w")  # noqa: SIM115 - for the process' lifetime
    worker = subprocess.Popen(
        [PY, "-m", "celery", "-A", "governance", "worker", "-l", "WARNING", "-c", str(args.celery_concurrency),
         "-n", f"load-{os.getpid()}@%h", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    web = subprocess.Popen(
        [PY, "-m", "gunicorn", "-c", "python:governance.gunicorn_conf", "--bind", f"127.0.0.1:{args.port}"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    return [web, worker]


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


# -- the load --------------------------------------------------------------------------------------

class Conn:
    """One keep-alive HTTP/1.1 connection on raw sockets (the client shares the CPUs with the server)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.used = 0  # requests sent on it
        self.idle_since = time.monotonic()

    async def send(self, request: bytes) -> tuple[int, dict, bytes, bool]:
        self.used += 1
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name:
                headers[name.strip().lower().decode()] = value.strip().decode("latin-1")
        if "content-length" in headers:
            body = await self.reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                parts.append(await self.reader.readexactly(size + 2))
                if size == 0:
                    break
            body = b"".join(parts)
        else:
            body = await self.reader.read()
        keep = headers.get("connection", "").lower() != "close" and not self.reader.at_eof()
        return status, headers, body, keep


class Load:
    def __init__(self, port: int, secrets: dict, run: str):
        self.port, self.secrets, self.run = port, secrets, run
        self.idle: list[Conn] = []
        self.open = 0
        self.max_conns = 256
        self.acknowledged: set[str] = set()  # record ids of consent events answered 201
        self.profiles: list[str] = []  # ids the staff token may read (fetched once)
        self.seq = 0
        self.rng = random.Random(13)
        self.kinds = [kind for kind, weight in MIX for _ in range(weight)]

    def request(self, kind: str) -> bytes:
        self.seq += 1
        host = f"Host: 127.0.0.1:{self.port}\r\n"
        browser = f"load-{self.run}-{self.rng.randrange(5000):05d}"
        purpose = self.rng.choice(["analytics", "marketing_email"])
        if kind == "check":
            return (f"GET /api/v1/consent/check?browser_id={browser}&purpose={purpose} HTTP/1.1\r\n{host}"
                    f"Authorization: Bearer {self.secrets['publishable']}\r\nOrigin: {ORIGIN}\r\n\r\n").encode()
        if kind == "event":
            body = json.dumps({"browser_id": browser, "purpose": purpose, "method": "banner",
                               "state": self.rng.choice(["given", "refused"])}).encode()
            return (f"POST /api/v1/consent/events HTTP/1.1\r\n{host}Authorization: Bearer {self.secrets['publishable']}"
                    f"\r\nOrigin: {ORIGIN}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    ).encode() + body
        if kind == "profiles":
            profile = self.rng.choice(self.profiles)
            return (f"GET /api/v1/profiles/{profile}/ HTTP/1.1\r\n{host}"
                    f"Authorization: Bearer {self.secrets['token']}\r\n\r\n").encode()
        if kind == "portal":
            path = self.rng.choice(["/privacy/", "/privacy/request/", "/privacy/notice/"])
            return f"GET {path} HTTP/1.1\r\n{host}Accept-Language: ja\r\n\r\n".encode()
        body = json.dumps({"workspace": "shop-jp", "request_type": "access", "locale": "ja",
                           "email": f"load-{self.run}-{self.seq}@example.jp"}).encode()
        return (f"POST /api/v1/dsr/requests HTTP/1.1\r\n{host}Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def profile_ids(self) -> None:
        """The ids of the first pages of profiles (the demo's 120 in shop-jp)."""
        for page in (1, 2, 3):
            conn = await self.conn()
            status, _headers, body, _keep = await conn.send(
                (f"GET /api/v1/profiles/?workspace=shop-jp&page={page} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {self.secrets['token']}\r\nConnection: close\r\n\r\n").encode())
            conn.writer.close()
            self.open -= 1
            if status != 200:
                break
            data = json.loads(body)
            self.profiles += [str(row["id"]) for row in data.get("results", data)]
        if not self.profiles:
            raise SystemExit("the staff token could not list profiles")

    async def conn(self) -> Conn:
        while True:
            while self.idle:
                conn = self.idle.pop()
                # as a client (or proxy) should: never reuse a connection idle for longer than the
                # server keeps it (GUNICORN_KEEPALIVE, 5 s)
                if time.monotonic() - conn.idle_since < IDLE_REUSE_SECONDS:
                    return conn
                conn.writer.close()
                self.open -= 1
            if self.open < self.max_conns:
                self.open += 1
                try:
                    return Conn(*await asyncio.open_connection("127.0.0.1", self.port))
                except OSError:
                    self.open -= 1
                    raise
            await asyncio.sleep(0.001)

    async def one(self, due: float, kind: str, results: list) -> None:
        request = self.request(kind)
        status, headers, body = 0, {}, b""
        conn = None
        try:
            for attempt in (1, 2):
                conn = await asyncio.wait_for(self.conn(), timeout=10)
                try:
                    status, headers, body, keep = await asyncio.wait_for(conn.send(request), timeout=10)
                    break
                except (ConnectionError, asyncio.IncompleteReadError) as exc:
                    # the server closed a kept-alive connection as we reused it: HTTP clients send
                    # the request again on a new one (nothing was answered)
                    partial = getattr(exc, "partial", b"")
                    if attempt == 2 or conn.used == 1 or partial:
                        raise
                    conn.writer.close()
                    self.open -= 1
                    conn = None
            if keep:
                conn.idle_since = time.monotonic()
                self.idle.append(conn)
            else:
                conn.writer.close()
                self.open -= 1
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            status = 0  # counted as an error, with its latency
            if conn is not None:
                conn.writer.close()
                self.open -= 1
        latency = (time.perf_counter() - due) * 1000
        if kind == "event" and status == 201:
            for event in json.loads(body)["events"]:
                self.acknowledged.add(event["record_id"])
        results.append((kind, status, latency, "retry-after" in headers))

    async def phase(self, rate: float, seconds: float, kinds: list[str] | None = None) -> list:
        results: list = []
        tasks = []
        start = time.perf_counter() + 0.1
        for i in range(int(rate * seconds)):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            kind = self.rng.choice(kinds or self.kinds)
            tasks.append(asyncio.create_task(self.one(due, kind, results)))
        await asyncio.gather(*tasks)
        return results


def pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def summary(results: list, seconds: float) -> dict:
    ok = [r for r in results if 200 <= r[1] < 400]
    shed = [r for r in results if r[1] in (429, 503)]
    errors = [r for r in results if not (200 <= r[1] < 400) and r[1] not in (429, 503)]
    out = {
        "requests": len(results), "rate": round(len(results) / seconds, 1), "ok": len(ok),
        "shed": len(shed), "shed_with_retry_after": sum(1 for r in shed if r[3]),
        "errors": len(errors) + len(shed), "other_errors": len(errors),
        "p50_ms": round(pct([r[2] for r in results], 50), 1), "p99_ms": round(pct([r[2] for r in results], 99), 1),
        "ok_p99_ms": round(pct([r[2] for r in ok], 99), 1),
        "shed_p50_ms": round(pct([r[2] for r in shed], 50), 1), "shed_p99_ms": round(pct([r[2] for r in shed], 99), 1),
        "statuses": {},
        "per_kind_p99_ms": {},
        "per_kind_p50_ms": {},
    }
    for r in results:
        out["statuses"][str(r[1])] = out["statuses"].get(str(r[1]), 0) + 1
    for kind, _w in MIX:
        lat = [r[2] for r in results if r[0] == kind]
        out["per_kind_p99_ms"][kind] = round(pct(lat, 99), 1)
        out["per_kind_p50_ms"][kind] = round(pct(lat, 50), 1)
    return out


def clean(s: dict) -> bool:
    return s["errors"] == 0 and s["p99_ms"] < GOAL_P99_MS


def show(name: str, s: dict, goal: str) -> None:
    print(f"{name:<22} {s['rate']:>6} req/s  p50 {s['p50_ms']:>7} ms  p99 {s['p99_ms']:>7} ms  ok {s['ok']:>6}  "
          f"503/429 {s['shed']:>5} (p99 {s['shed_p99_ms']} ms)  other errors {s['other_errors']}  | goal: {goal}",
          flush=True)
    print(f"{'':<22} statuses {s['statuses']}  p99 per kind {s['per_kind_p99_ms']}", flush=True)


async def healthz(load: Load, idle_conns: int, seconds: float = 10) -> dict:
    held = [await asyncio.open_connection("127.0.0.1", load.port) for _ in range(idle_conns)]
    try:
        results = await load.phase_path("/healthz", 20, seconds)
    finally:
        for _reader, writer in held:
            writer.close()
    lat = [r[2] for r in results]
    return {"idle_connections": idle_conns, "requests": len(results),
            "errors": sum(1 for r in results if r[1] != 200),
            "p50_ms": round(pct(lat, 50), 1), "p99_ms": round(pct(lat, 99), 1), "max_ms": round(max(lat), 1)}


async def _phase_path(self: Load, path: str, rate: float, seconds: float) -> list:
    """Fresh connection per request, as a load balancer's health probe does."""
    results: list = []

    async def one(due: float) -> None:
        status = 0
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", self.port), 40)
            status, _h, _b, _k = await asyncio.wait_for(Conn(reader, writer).send(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()), 40)
            writer.close()
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            pass
        results.append(("healthz", status, (time.perf_counter() - due) * 1000, False))

    tasks = []
    start = time.perf_counter() + 0.1
    for i in range(int(rate * seconds)):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    return results


Load.phase_path = _phase_path


def stored_events(env: dict, ids: set[str]) -> int:
    import psycopg

    url = env["DATABASE_URL"].replace("postgres://postgres@/", "dbname=").replace(
        "postgres://postgres@127.0.0.1:5432/", "host=127.0.0.1 dbname=")
    with psycopg.connect(url + " user=postgres") as conn:
        row = conn.execute("SELECT count(*) FROM consent_consentevent WHERE id = ANY(%s::uuid[])",
                           [list(ids)]).fetchone()
    return row[0]


async def wait_ready(port: int, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("the server or the worker exited; see server.log")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            status, *_ = await Conn(reader, writer).send(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            writer.close()
            if status == 200:
                return
        except (OSError, asyncio.IncompleteReadError):
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("the server did not become healthy")


async def main_async(args, env: dict, secrets: dict, procs) -> dict:
    await wait_ready(args.port, procs)
    load = Load(args.port, secrets, uuid.uuid4().hex[:6])
    await load.profile_ids()
    out: dict = {"load_average_start": os.getloadavg()}
    # warm-up: every worker process and thread loads its code, connections are opened
    warm = summary(await load.phase(10, 10), 10)
    if warm["other_errors"]:
        print("warm-up errors:", warm["statuses"], flush=True)
    print("\n/healthz at 20 req/s, a new connection each (a load balancer's probe)", flush=True)
    out["healthz"] = [await healthz(load, 0), await healthz(load, 2)]
    for h in out["healthz"]:
        print(f"  {h['idle_connections']} idle connections held: p50 {h['p50_ms']} ms  p99 {h['p99_ms']} ms  "
              f"max {h['max_ms']} ms  errors {h['errors']}  | goal: same with and without", flush=True)

    base = args.base_rate
    if not base:
        print(f"\nstep-up ({args.step_seconds} s per step): highest rate with 0 errors and p99 < {GOAL_P99_MS:.0f} ms",
              flush=True)
        out["steps"] = []
        rate = args.start
        while True:
            s = summary(await load.phase(rate, args.step_seconds), args.step_seconds)
            out["steps"].append({"target": rate, **s})
            show(f"  step {rate}", s, "0 errors, p99 < 100 ms")
            if not clean(s):
                break
            base = rate
            rate += args.step
        if not base:
            raise SystemExit("not even the first step was clean; lower --start")
    out["base_rate"] = base
    print(f"\nbase rate {base} req/s, {args.duration} s per phase", flush=True)
    s = summary(await load.phase(base, args.duration), args.duration)
    out["base"] = s
    show("base", s, "0 errors, p99 < 100 ms")
    s = summary(await load.phase(2 * base, args.duration), args.duration)
    out["overload"] = s
    show("2x base (overload)", s, "excess 503/429 + Retry-After, their p99 < 100 ms, no other errors")
    if args.flood:
        s = summary(await load.phase(args.flood, args.flood_seconds), args.flood_seconds)
        out["flood"] = s
        show(f"flood {args.flood} req/s", s, "saturated: excess 503/429 + Retry-After quickly, no other errors")
    s = summary(await load.phase(base, args.duration), args.duration)
    out["recovery"] = s
    show("recovery (base)", s, "0 errors, p99 < 100 ms")
    out["events_acknowledged"] = len(load.acknowledged)
    out["events_stored"] = stored_events(env, load.acknowledged)
    print(f"\nconsent events acknowledged (201) {out['events_acknowledged']}, stored {out['events_stored']}  "
          f"| goal: equal", flush=True)
    out["load_average_end"] = os.getloadavg()
    print(f"load average (1/5/15 min) at start {out['load_average_start']}, at end {out['load_average_end']}")
    return out


def main() -> None:
    args = parse_args()
    env = server_env(args)
    secrets = prepare(args, env)
    procs = start(args, env)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        out = asyncio.run(main_async(args, env, secrets, procs))
    finally:
        stop(procs)
    out["config"] = {"workers": args.workers or "config default", "threads": args.threads or "config default",
                     "celery_concurrency": args.celery_concurrency, "pg": args.pg, "cpus": os.cpu_count()}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    verdict = {
        "healthz unchanged by idle connections": out["healthz"][1]["errors"] == 0
        and out["healthz"][1]["p99_ms"] < max(10.0, 3 * out["healthz"][0]["p99_ms"]),
        "base: 0 errors, p99 < 100 ms": clean(out["base"]),
        "overload: shed quickly, nothing else fails": out["overload"]["other_errors"] == 0
        and out["overload"]["shed_p99_ms"] < GOAL_P99_MS
        and out["overload"]["shed_with_retry_after"] == out["overload"]["shed"],
        "flood: saturated, shed quickly, nothing else fails": "flood" not in out or (
            out["flood"]["other_errors"] == 0 and out["flood"]["shed"] > 0
            and out["flood"]["shed_p99_ms"] < GOAL_P99_MS
            and out["flood"]["shed_with_retry_after"] == out["flood"]["shed"]),
        "recovery: 0 errors, p99 < 100 ms": clean(out["recovery"]),
        "acknowledged events = stored": out["events_acknowledged"] == out["events_stored"],
    }
    print()
    for goal, met in verdict.items():
        print(f"  {'met ' if met else 'MISSED'}  {goal}")
    sys.exit(0 if all(verdict.values()) else 1)


if __name__ == "__main__":
    main()

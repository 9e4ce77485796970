"""The image's files: the compose file and Dockerfile checked as data, the entrypoint run as the image runs it."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def test_compose_starts_every_role_with_one_scheduler(compose):
    services = compose["services"]
    assert {"db", "keystore-db", "redis", "migrate", "web", "worker", "scheduler", "proxy"} <= set(services)
    assert [services[name]["command"] for name in ("migrate", "web", "worker", "scheduler")] == [
        ["migrate"], ["web"], ["worker"], ["scheduler"]]
    assert services["scheduler"]["deploy"]["replicas"] == 1
    assert "WEB_REPLICAS" in str(services["web"]["deploy"]["replicas"])
    assert "WORKER_REPLICAS" in str(services["worker"]["deploy"]["replicas"])
    for name in ("web", "worker", "scheduler"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    for name in ("db", "keystore-db", "redis", "web", "worker"):
        assert services[name]["healthcheck"]["test"], name
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])


def test_compose_takes_secrets_from_the_environment(compose):
    env = compose["services"]["web"]["environment"]
    for name in ("DJANGO_SECRET_KEY", "MAMORU_MASTER_KEYS", "MAMORU_BLIND_INDEX_KEY", "MAMORU_PROOF_KEY",
                 "MAMORU_METRICS_TOKEN"):
        assert re.fullmatch(r"\$\{" + name + r":\?[^}]+\}", env[name]), (name, env[name])
    assert "${POSTGRES_PASSWORD:?" in env["DATABASE_URL"] and "@db:" in env["DATABASE_URL"]
    assert "@keystore-db:" in env["MAMORU_KEYSTORE_URL"]
    assert env["CELERY_BROKER_URL"].startswith("redis://redis")
    assert env["LOG_FORMAT"] == "json" and env["MAMORU_DEPLOYMENT"].endswith("production}")
    # the workers and the scheduler get the same configuration
    assert compose["services"]["worker"]["environment"]["DATABASE_URL"] == env["DATABASE_URL"]
    assert compose["services"]["scheduler"]["environment"] == compose["services"]["migrate"]["environment"]


def test_dockerfile_is_multi_stage_non_root_without_compilers():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) == 2 and stages[0].startswith("python:3.11") and " AS builder" in stages[0]
    runtime = stages[1]
    assert runtime.startswith("python:3.11-slim")
    assert "build-essential" in stages[0] and not re.search(r"build-essential|gcc|-dev\b", runtime)
    assert re.search(r"^USER mamoru", runtime, flags=re.M)
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    assert "collectstatic" in runtime and "COPY --from=builder /opt/venv" in runtime
    assert 'ENTRYPOINT ["/usr/bin/tini", "--", "/app/deploy/entrypoint.sh"]' in runtime
    for app in ("governance", "consent", "dsr", "audit", "oversight", "locale"):
        assert f"COPY {app} ./{app}" in runtime, app


def test_dockerfile_runtime_installs_japanese_fonts_without_recommends():
    # PDFs (DSR packages, audit exports) embed Japanese only if a CJK font is in the runtime image
    runtime = re.split(r"^FROM ", (ROOT / "Dockerfile").read_text(), flags=re.M)[2]
    installs = re.findall(r"apt-get install ([^&]+)", runtime)
    assert installs and all("--no-install-recommends" in line for line in installs), installs
    assert any(re.search(r"\bfonts-noto-cjk\b", line) for line in installs), installs


def test_compose_trusts_only_the_proxy_container_not_the_docker_gateway(compose):
    import ipaddress

    # given the compose network: its gateway is where docker-proxy's connections from the host come from
    (pool,) = compose["networks"]["mamoru"]["ipam"]["config"]
    subnet, gateway = ipaddress.ip_network(pool["subnet"]), ipaddress.ip_address(pool["gateway"])
    dynamic = ipaddress.ip_network(pool["ip_range"])
    proxy = ipaddress.ip_address(compose["services"]["proxy"]["networks"]["mamoru"]["ipv4_address"])
    # then the proxy has a fixed address in the subnet that no other container can be given
    assert proxy in subnet and gateway in subnet and dynamic.subnet_of(subnet)
    assert proxy != gateway and proxy not in dynamic and gateway not in dynamic
    # and every role that reads X-Forwarded-For trusts that one address, not the gateway nor a network
    for name in ("web", "worker", "scheduler", "migrate"):
        trusted = [ipaddress.ip_network(item.strip(), strict=False)
                   for item in compose["services"][name]["environment"]["MAMORU_TRUSTED_PROXIES"].split(",")]
        assert trusted == [ipaddress.ip_network(f"{proxy}/32")], (name, trusted)
        assert not any(gateway in network for network in trusted)


def test_nginx_passes_the_tls_terminators_scheme_on():
    text = (ROOT / "deploy" / "nginx.conf").read_text()
    # given a map from the upstream X-Forwarded-Proto, falling back to the proxy's own scheme
    found = re.search(r"map \$http_x_forwarded_proto \$(\w+) \{([^}]*)\}", text)
    assert found, "no map of $http_x_forwarded_proto"
    variable, body = found.groups()
    entries = dict(line.split(None, 1) for line in (part.strip().rstrip(";") for part in body.split("\n")) if line)
    assert entries == {"default": "$scheme", "http": "http", "https": "https"}, entries
    # then that is what the web replicas get, never the proxy's own (always http) scheme
    headers = re.findall(r"proxy_set_header X-Forwarded-Proto (\S+);", text)
    assert headers == [f"${variable}"], headers


def test_operations_doc_describes_tls_in_front_of_the_proxy():
    doc = (ROOT / "docs" / "operations.md").read_text()
    section = doc[doc.index("**TLS in front of the bundled proxy**"):][:2000]
    for needle in ("X-Forwarded-Proto: https", "SECURE_SSL_REDIRECT=true", "MAMORU_HTTP_PORT=127.0.0.1:8080",
                   "set_real_ip_from"):
        assert needle in section, needle
    assert "terminate it in front of the proxy and\n  set `SECURE_SSL_REDIRECT=true` again" not in doc


# --- the entrypoint, run on this host with the image's environment ---------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def image_env(tmp_path):
    """The image's environment (compose.yaml) pointed at this host's PostgreSQL and Redis."""
    import psycopg

    from tests.servers import POSTGRES_ADMIN_URL, REDIS_URL, server_required

    server_required("postgres")
    server_required("redis")
    suffix = uuid.uuid4().hex[:8]
    names = [f"m_ops_img_{suffix}", f"m_ops_img_{suffix}_keys"]
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgres://")
    redis_base = REDIS_URL.rsplit("/", 1)[0]
    var = tmp_path / "var"
    env = {
        "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PYTHON": os.sys.executable,
        "DJANGO_SETTINGS_MODULE": "governance.settings",
        "MAMORU_APP_DIR": str(ROOT),
        "MAMORU_VAR_DIR": str(var),
        "MAMORU_DEPLOYMENT": "production",
        "DJANGO_SECRET_KEY": "test-" + uuid.uuid4().hex * 2,
        "MAMORU_MASTER_KEYS": "k1:" + __import__("base64").urlsafe_b64encode(os.urandom(32)).decode(),
        "MAMORU_BLIND_INDEX_KEY": __import__("base64").urlsafe_b64encode(os.urandom(32)).decode(),
        "MAMORU_PROOF_KEY": __import__("base64").urlsafe_b64encode(os.urandom(32)).decode(),
        "MAMORU_METRICS_TOKEN": "scrape-" + suffix,
        "DATABASE_URL": f"{base}/{names[0]}",
        "MAMORU_KEYSTORE_URL": f"{base}/{names[1]}",
        "CELERY_BROKER_URL": f"{redis_base}/8",
        "CACHE_URL": f"{redis_base}/8",
        "ALLOWED_HOSTS": "privacy.example.com",
        "SECURE_SSL_REDIRECT": "true",
        "LOG_FORMAT": "json",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_THREADS": "4",
        "MAMORU_WORKER_HEARTBEAT_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    yield env
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    shutil.rmtree(var, ignore_errors=True)


class Role:
    def __init__(self, env: dict, role: str, log: Path):
        self.log = log
        self.proc = subprocess.Popen(["/bin/sh", str(ENTRYPOINT), role], env=env, cwd="/",
                                     stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text()

    def wait_for(self, needle: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.text():
                return
            assert self.proc.poll() is None, self.text()[-3000:]
            time.sleep(0.3)
        raise AssertionError(f"{needle!r} not seen:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.worker
def test_entrypoint_roles_as_the_image_runs_them(image_env, tmp_path):
    # migrate: both databases, and a second run changes nothing
    for _ in range(2):
        done = subprocess.run(["/bin/sh", str(ENTRYPOINT), "migrate"], env=image_env, cwd="/",
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "No migrations to apply" in done.stdout

    port = _free_port()
    web = Role({**image_env, "GUNICORN_BIND": f"127.0.0.1:{port}"}, "web", tmp_path / "web.log")
    worker = Role(image_env, "worker", tmp_path / "worker.log")
    scheduler = Role({**image_env, "CELERY_BEAT_SCHEDULE_FILE": str(tmp_path / "beat")}, "scheduler",
                     tmp_path / "scheduler.log")
    try:
        # web: ready (databases and broker) although production settings redirect and check hosts
        deadline = time.monotonic() + 120
        status = None
        while time.monotonic() < deadline:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/readyz")
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert status == 200, web.text()[-3000:]
        assert json.loads(body)["checks"]["broker"]["status"] == "ok"
        # scheduler sends the watchdog (every 15 s); the worker consumes it
        scheduler.wait_for("Sending due task dsr-watchdog", timeout=60)
        worker.wait_for("dsr.watchdog", timeout=60)
        worker.wait_for("succeeded", timeout=60)
        # metrics of both gunicorn workers, through the token; the worker's heartbeat is there
        for _ in range(6):
            _get(f"http://127.0.0.1:{port}/healthz")
        status, metrics = _get(f"http://127.0.0.1:{port}/metrics", token=image_env["MAMORU_METRICS_TOKEN"])
        assert status == 200
        text = metrics.decode()
        healthz = re.findall(r'mamoru_http_requests_total\{method="GET",status="200",view="healthz"\} (\S+)', text)
        assert healthz and float(healthz[0]) >= 6, text[:3000]
        assert re.search(r'mamoru_workers_alive\{role="worker"\} 1\.0', text), text[-3000:]
        assert _get(f"http://127.0.0.1:{port}/metrics")[0] == 401
    finally:
        for role in (scheduler, worker, web):
            role.stop()
    # JSON logs: every line of the worker that is JSON names its request id field
    lines = [json.loads(line) for line in worker.text().splitlines() if line.startswith("{")]
    assert lines and all("request_id" in line for line in lines)
    assert any(line.get("task") == "dsr.watchdog" and line["request_id"] != "-" for line in lines), lines[-5:]

"""Outgoing mail as an operator configures it: STARTTLS or implicit TLS with a login, EMAIL_URL or
the separate variables, and the file backend for local use.

A real SMTP server (aiosmtpd) on loopback, with a certificate made for the test; Mamoru runs in a
child process with the environment an operator would set, so the settings are read as in production.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
from aiosmtpd.smtp import AuthResult, LoginPassword  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PORTS = range(8132, 8140)  # this slice's ports
USER, PASSWORD = "mamoru@mail.example", "p@ss:w0rd/1%"  # characters that need URL-encoding

SEND = """
from django.conf import settings
from django.core.mail import send_mail
send_mail("Your code", "Code: 424242", None, ["taro@example.jp"])
print("sent", settings.EMAIL_BACKEND)
"""


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Path:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder


class Recorder:
    def __init__(self) -> None:
        self.messages: list[dict] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.messages.append({"to": envelope.rcpt_tos, "body": envelope.content.decode(),
                              "login": session.authenticated,
                              # STARTTLS sets session.ssl; implicit TLS shows on the transport
                              "tls": session.ssl is not None
                              or server.transport.get_extra_info("ssl_object") is not None})
        return "250 OK"


def _authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == (USER, PASSWORD)
    return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself


def _smtp_server(certificate: Path, *, implicit_tls: bool):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")
    recorder = Recorder()
    for port in PORTS:
        options = {"ssl_context": context} if implicit_tls else {"tls_context": context, "require_starttls": True}
        controller = aiosmtpd_controller.Controller(
            recorder, hostname="127.0.0.1", port=port, authenticator=_authenticator,
            # implicit TLS: the whole connection is TLS (aiosmtpd only tracks STARTTLS for this)
            auth_require_tls=not implicit_tls, **options,
        )
        try:
            controller.start()
        except (OSError, RuntimeError):
            continue
        return controller, recorder
    raise RuntimeError("no free port in 8132-8139")


def _send(env_extra: dict, tmp_path: Path, certificate: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMAIL_")}
    env.update(env_extra)
    env["MAMORU_VAR_DIR"] = str(tmp_path / "var")
    env["SSL_CERT_FILE"] = str(certificate / "cert.pem")  # the operator's CA bundle, for a private CA
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", SEND], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("style", ["url", "variables"])
def test_starttls_with_login(style, tmp_path, certificate):
    from urllib.parse import quote

    controller, recorder = _smtp_server(certificate, implicit_tls=False)
    port = controller.port
    try:
        if style == "url":
            env = {"EMAIL_URL": f"smtp+tls://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"}
        else:
            env = {"EMAIL_BACKEND": "governance.mail.EmailBackend", "EMAIL_HOST": "127.0.0.1",
                   "EMAIL_PORT": str(port), "EMAIL_USE_TLS": "true", "EMAIL_HOST_USER": USER,
                   "EMAIL_HOST_PASSWORD": PASSWORD}
        result = _send(env, tmp_path, certificate)
    finally:
        controller.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    assert "governance.mail.EmailBackend" in result.stdout  # SMTPUTF8-capable backend for smtp URLs
    (message,) = recorder.messages
    assert message["to"] == ["taro@example.jp"] and "Code: 424242" in message["body"]
    assert message["tls"] and message["login"]


def test_implicit_tls_with_login(tmp_path, certificate):
    from urllib.parse import quote

    controller, recorder = _smtp_server(certificate, implicit_tls=True)
    try:
        result = _send({"EMAIL_URL": f"smtp+ssl://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}"
                                     f"@127.0.0.1:{controller.port}"}, tmp_path, certificate)
    finally:
        controller.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    (message,) = recorder.messages
    assert message["tls"] and message["login"]


def test_a_wrong_password_fails_the_send_instead_of_passing_silently(tmp_path, certificate):
    controller, recorder = _smtp_server(certificate, implicit_tls=False)
    try:
        result = _send({"EMAIL_URL": f"smtp+tls://{USER.replace('@', '%40')}:wrong@127.0.0.1:{controller.port}"},
                       tmp_path, certificate)
    finally:
        controller.stop()
    assert result.returncode != 0 and "SMTPAuthenticationError" in result.stderr, result.stderr[-1500:]
    assert recorder.messages == []


def test_file_backend_writes_under_the_var_directory(tmp_path, certificate):
    result = _send({"EMAIL_URL": "filemail://"}, tmp_path, certificate)
    assert result.returncode == 0, result.stderr[-3000:]
    files = list((tmp_path / "var" / "mail").iterdir())
    assert len(files) == 1 and "Code: 424242" in files[0].read_text()

"""Confirmation codes reach internationalised addresses: SMTPUTF8 on a real loopback SMTP server."""

from __future__ import annotations

import smtplib
import socketserver
import threading

import pytest
from django.core.mail import get_connection, send_mail
from django.test import TestCase


class SmtpServer(socketserver.ThreadingTCPServer):
    """A minimal SMTP server (RFC 5321 commands the backends use) that records what it receives."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, *, smtputf8: bool = True):
        super().__init__(("127.0.0.1", 0), SmtpHandler)
        self.smtputf8 = smtputf8
        self.received: list[dict] = []
        threading.Thread(target=self.serve_forever, daemon=True).start()


class SmtpHandler(socketserver.StreamRequestHandler):
    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 loopback ESMTP")
        envelope: dict = {"rcpt": []}
        while line := self.rfile.readline():
            command = line.decode("utf-8").rstrip("\r\n")
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-loopback\r\n250-8BITMIME" + ("\r\n250 SMTPUTF8" if self.server.smtputf8 else "\r\n250 OK"))
            elif verb == "MAIL":
                envelope = {"mail": command[5:], "rcpt": []}
                self.reply("250 OK")
            elif verb == "RCPT":
                envelope["rcpt"].append(command[8:].strip("<>"))
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                envelope["data"] = data.decode("utf-8")
                self.server.received.append(envelope)
                self.reply("250 queued")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


@pytest.fixture
def smtp_server():
    servers = []

    def start(**kwargs) -> SmtpServer:
        servers.append(SmtpServer(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def backend(server: SmtpServer):
    return get_connection("governance.mail.EmailBackend", host="127.0.0.1", port=server.server_address[1],
                          timeout=5)


def test_mail_to_a_non_ascii_local_part_is_addressed_in_utf8(smtp_server):
    server = smtp_server()
    send_mail("確認コード", "123456", "privacy@mamoru.localhost", ["stanisław.wójcik@wp.pl"], connection=backend(server))
    [received] = server.received
    assert received["rcpt"] == ["stanisław.wójcik@wp.pl"]
    assert "SMTPUTF8" in received["mail"]
    assert "To: stanisław.wójcik@wp.pl" in received["data"] and "123456" in received["data"]


def test_ascii_addresses_go_the_usual_way(smtp_server):
    server = smtp_server()
    send_mail("Code", "123456", "privacy@mamoru.localhost", ["taro@例え.jp"], connection=backend(server))
    [received] = server.received
    assert received["rcpt"] == ["taro@xn--r8jz45g.jp"] and "SMTPUTF8" not in received["mail"]


def test_a_server_without_smtputf8_fails_clearly(smtp_server):
    server = smtp_server(smtputf8=False)
    with pytest.raises(smtplib.SMTPNotSupportedError, match="SMTPUTF8"):
        send_mail("Code", "123456", "privacy@mamoru.localhost", ["stanisław.wójcik@wp.pl"],
                  connection=backend(server))
    assert server.received == []


@pytest.mark.django_db
def test_dsr_confirmation_code_reaches_an_internationalised_address(api_client, workspaces, smtp_server, settings):
    server = smtp_server()
    settings.EMAIL_BACKEND = "governance.mail.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.server_address[1]
    with TestCase.captureOnCommitCallbacks(execute=True):
        response = api_client.post("/api/v1/dsr/requests", {"workspace": "shop-eu", "request_type": "access",
                                                            "email": "Stanisław.Wójcik@wp.pl"}, format="json")
    assert response.status_code == 201, response.json()
    [received] = server.received
    assert received["rcpt"] == ["Stanisław.Wójcik@wp.pl"]  # as typed

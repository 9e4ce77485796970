"""Webhook deliveries: sent once while the task, its retries and the sweep race; backoff; failed.

A real HTTP receiver on loopback counts what arrives, per ``Mamoru-Delivery`` header.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import connections
from django.utils import timezone

from consent.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from governance.crypto import envelope

PORTS = range(8131, 8140)  # this slice's ports


class Receiver:
    """An HTTP server that counts the deliveries it receives and answers ``status`` slowly enough
    that two senders of the same delivery would overlap."""

    def __init__(self, *, status: int = 200, delay: float = 0.3):
        self.received: Counter[str] = Counter()
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.received[self.headers.get("Mamoru-Delivery", "?")] += 1
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        for port in PORTS:
            try:
                self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
                break
            except OSError:
                continue
        else:
            raise RuntimeError("no free port in 8131-8139")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def _deliveries(site, url: str, count: int, *, due_ago: timedelta) -> list[int]:
    endpoint = WebhookEndpoint(workspace=site.workspace, name="crm", url=url,
                               allow_internal_hosts=True,  # the receivers run on loopback
                               data_key_id=envelope.data_key_create(owner="test"))
    endpoint.secret = "whsec_test"
    endpoint.save()
    due = timezone.now() - due_ago
    return [
        WebhookDelivery.objects.create(endpoint=endpoint, next_attempt_at=due,
                                       payload={"type": "consent.changed", "n": n}).pk
        for n in range(count)
    ]


def _in_thread(work):
    def run():
        try:
            work()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_each_delivery_is_sent_once_while_task_retries_and_sweep_race(live_worker, site, receiver):
    """Runs on the suite's database: SQLite by default, PostgreSQL with DATABASE_URL."""
    from consent.tasks import webhook_deliver, webhook_sweep

    # given overdue pending deliveries (their first message lost: the sweep's business)
    pks = _deliveries(site, receiver.url, 12, due_ago=timedelta(minutes=10))
    # when the worker gets each delivery twice (the task's message and the sweep's) while two
    # threads of this process run the task for every delivery at the same time
    threads = [
        _in_thread(lambda: [webhook_deliver.delay(pk) for pk in pks]),
        _in_thread(webhook_sweep),
        _in_thread(lambda: [webhook_deliver.apply(args=[pk]) for pk in pks]),
        _in_thread(lambda: [webhook_deliver.apply(args=[pk]) for pk in reversed(pks)]),
    ]
    for thread in threads:
        thread.join(120)
    deadline = time.monotonic() + 120
    while WebhookDelivery.objects.filter(pk__in=pks, status=DeliveryStatus.DELIVERED).count() < len(pks):
        assert time.monotonic() < deadline, live_worker.log()[-3000:]
        time.sleep(0.2)
    live_worker.stop()  # a warm shutdown: the messages it still held run to their end first
    # then the receiver got every delivery exactly once
    assert receiver.received == Counter({str(pk): 1 for pk in pks}), live_worker.log()[-3000:]
    assert not WebhookDelivery.objects.filter(pk__in=pks, attempts__gt=1).exists()
    assert not WebhookDelivery.objects.filter(pk__in=pks, claimed_until__isnull=False).exists()


@pytest.mark.django_db
def test_failing_receiver_gets_backoff_with_jitter_then_the_delivery_fails_visibly(
    site, settings, admin_client
):
    from consent.tasks import webhook_deliver

    settings.MAMORU_WEBHOOK_MAX_ATTEMPTS = 4
    settings.MAMORU_WEBHOOK_BACKOFF_SECONDS = 30
    settings.MAMORU_MFA_REQUIRED = False  # the admin page is what is tested here, not the sign-in
    failing = Receiver(status=503, delay=0)
    try:
        (pk,) = _deliveries(site, failing.url, 1, due_ago=timedelta(seconds=1))
        delays = []
        for attempt in range(1, 5):
            before = timezone.now()
            webhook_deliver.apply(args=[pk])  # an eager retry runs at once: the claim skips it (not due)
            delivery = WebhookDelivery.objects.get(pk=pk)
            assert delivery.attempts == attempt and delivery.last_status_code == 503
            assert delivery.claimed_until is None
            if attempt < 4:
                # then the next attempt waits 30 s · 2^(n-1) ± 20 %
                assert delivery.status == DeliveryStatus.PENDING
                delay = (delivery.next_attempt_at - before).total_seconds()
                base = 30 * 2 ** (attempt - 1)
                assert 0.8 * base - 1 <= delay <= 1.2 * base + 1, (attempt, delay)
                delays.append(delay)
                # a run before it is due does not send (a duplicate message, an early sweep)
                assert webhook_deliver.apply(args=[pk]).get() == "skipped"
                WebhookDelivery.objects.filter(pk=pk).update(next_attempt_at=timezone.now())
        # then after the last attempt the delivery is failed, nothing more is scheduled
        assert delivery.status == DeliveryStatus.FAILED and delivery.next_attempt_at is None
        assert failing.received == Counter({str(pk): 4})
        assert webhook_deliver.apply(args=[pk]).get() == "skipped"
        # and the DPO sees it among the failed deliveries with the receiver's answer
        page = admin_client.get("/admin/consent/webhookdelivery/", {"status__exact": "failed"})
        assert page.status_code == 200
        assert f'>{pk}<' in page.content.decode() and "HTTP 503" in page.content.decode()
    finally:
        failing.close()


@pytest.mark.django_db
def test_the_sweep_leaves_claimed_and_fresh_deliveries_alone(site, receiver, monkeypatch):
    from consent import tasks

    sent = []
    monkeypatch.setattr(tasks.webhook_deliver, "delay", sent.append)
    overdue, claimed, fresh = (
        _deliveries(site, receiver.url, 1, due_ago=timedelta(minutes=10))[0],
        _deliveries(site, receiver.url, 1, due_ago=timedelta(minutes=10))[0],
        _deliveries(site, receiver.url, 1, due_ago=timedelta(seconds=5))[0],
    )
    WebhookDelivery.objects.filter(pk=claimed).update(claimed_until=timezone.now() + timedelta(seconds=30))
    assert tasks.webhook_sweep() == 1 and sent == [overdue]
    # a claim whose run died (lease expired) is swept again
    WebhookDelivery.objects.filter(pk=claimed).update(claimed_until=timezone.now() - timedelta(seconds=1))
    sent.clear()
    assert tasks.webhook_sweep() == 2 and set(sent) == {overdue, claimed}
    assert fresh not in sent

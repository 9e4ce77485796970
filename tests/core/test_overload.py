"""Graceful overload middleware and the worker's request buffering, without a server or timings."""

from __future__ import annotations

import json
import time

import pytest
from django.http import HttpResponse
from django.test import RequestFactory, override_settings

from governance import overload
from governance.gunicorn_worker import request_buffered
from governance.overload import OverloadMiddleware

factory = RequestFactory()
# response.close() sends request_finished, which closes the request's database connections
needs_db = pytest.mark.django_db


def _middleware(inner):
    return OverloadMiddleware(inner)


@needs_db
@override_settings(MAMORU_OVERLOAD_MAX_INFLIGHT=1, MAMORU_OVERLOAD_MAX_WAIT=0)
def test_a_request_beyond_the_in_flight_limit_is_shed_with_retry_after():
    seen = {}

    def inner(request):
        if request.path == "/first":
            # while the first request runs, a second one arrives
            seen["second"] = middleware(factory.get("/second"))
            seen["health"] = middleware(factory.get("/healthz"))
        return HttpResponse("ok")

    middleware = _middleware(inner)
    first = middleware(factory.get("/first"))
    assert first.status_code == 200
    second = seen["second"]
    assert second.status_code == 503
    assert second["Retry-After"] == "1"
    assert second["Content-Type"] == "application/problem+json"
    body = json.loads(second.content)
    assert body["code"] == "overloaded" and body["reason"] == "busy"
    assert seen["health"].status_code == 200  # exempt: never shed nor counted
    # the slot is held until the server has sent the first response
    assert middleware(factory.get("/third")).status_code == 503
    first.close()
    assert middleware(factory.get("/third")).status_code == 200
    assert middleware.shed_count == 2


@override_settings(MAMORU_OVERLOAD_MAX_INFLIGHT=1, MAMORU_OVERLOAD_MAX_WAIT=0)
def test_a_failing_request_gives_its_slot_back():
    def inner(request):
        raise RuntimeError("boom")

    middleware = _middleware(inner)
    for _ in range(2):
        try:
            middleware(factory.get("/x"))
        except RuntimeError:
            pass
    assert middleware.slots.acquire(blocking=False)


@override_settings(MAMORU_OVERLOAD_MAX_INFLIGHT=0, MAMORU_OVERLOAD_MAX_WAIT=0.5)
def test_a_request_that_waited_too_long_for_a_thread_is_shed():
    middleware = _middleware(lambda request: HttpResponse("ok"))
    try:
        overload.set_dispatched_at(time.monotonic() - 5)
        shed = middleware(factory.get("/api/v1/consent/check"))
        assert shed.status_code == 503 and json.loads(shed.content)["reason"] == "queue"
        assert middleware(factory.get("/healthz")).status_code == 200
        overload.set_dispatched_at(time.monotonic())
        assert middleware(factory.get("/api/v1/consent/check")).status_code == 200
        overload.set_dispatched_at(None)  # not under gunicorn: unknown, never shed for waiting
        assert middleware(factory.get("/api/v1/consent/check")).status_code == 200
    finally:
        overload.set_dispatched_at(None)


@override_settings(MAMORU_OVERLOAD_MAX_INFLIGHT=0, MAMORU_OVERLOAD_MAX_WAIT=0)
def test_no_limits_configured_means_nothing_is_shed():
    middleware = _middleware(lambda request: HttpResponse("ok"))
    assert middleware.slots is None
    assert middleware(factory.get("/x")).status_code == 200


@needs_db
@override_settings(MAMORU_OVERLOAD_MAX_INFLIGHT=1, MAMORU_OVERLOAD_MAX_WAIT=0, MAMORU_OVERLOAD_RETRY_AFTER=3)
def test_the_shed_answer_is_in_the_clients_language():
    def inner(request):
        seen.append(middleware(factory.get("/second", HTTP_ACCEPT_LANGUAGE="ja")))
        return HttpResponse("ok")

    seen: list = []
    middleware = _middleware(inner)
    middleware(factory.get("/first")).close()
    body = json.loads(seen[0].content)
    assert seen[0]["Retry-After"] == "3"
    assert body["title"] == "サービスが混み合っています。"
    assert "3" in body["detail"]


def test_the_worker_hands_over_a_request_once_it_is_in_memory():
    head = b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"
    assert not request_buffered(b"", max_body=1024)
    assert not request_buffered(b"GET / HTTP/1.1\r\nHost: a\r\n", max_body=1024)  # headers unfinished
    assert request_buffered(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", max_body=1024)
    assert not request_buffered(head + b"12", max_body=1024)  # body unfinished
    assert request_buffered(head + b"12345", max_body=1024)
    assert request_buffered(head, max_body=4)  # a larger body is streamed by the thread
    chunked = b"POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert not request_buffered(chunked, max_body=1024)  # a chunked body is buffered too
    assert not request_buffered(chunked + b"1\r\n[\r\n", max_body=1024)  # stalled after a chunk
    assert not request_buffered(chunked + b"3;ext=1\r\n[1]\r\n0\r\n", max_body=1024)  # trailers to come
    assert request_buffered(chunked + b"3;ext=1\r\n[1]\r\n0\r\n\r\n", max_body=1024)
    assert request_buffered(chunked + b"1\r\n[\r\n1\r\n]\r\n0\r\nX-T: 1\r\n\r\n", max_body=1024)
    assert request_buffered(chunked + b"400\r\n" + b"x" * 1030, max_body=1024)  # larger: streamed
    assert request_buffered(chunked + b"zz\r\n", max_body=1024)  # malformed: the parser answers
    assert request_buffered(chunked + b"2\r\n[]xx", max_body=1024)
    # the walk resumes where it stopped, across reads
    scan = [0]
    data = bytearray(chunked + b"2\r\n[]\r\n1\r\n")
    assert not request_buffered(data, max_body=1024, scan=scan) and scan[0] == len(chunked) + 7
    data += b"1\r\n0\r\n\r\n"
    assert request_buffered(data, max_body=1024, scan=scan)
    both = b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert request_buffered(both, max_body=1024)  # the parser rejects it
    assert request_buffered(b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", max_body=1024)
    assert request_buffered(b"POST /x HTTP/1.1\r\nContent-Length: x1\r\n\r\n", max_body=1024)  # the parser rejects it
    assert request_buffered(b"G" * (64 * 1024 + 1), max_body=1024)  # too long for a head: the parser answers

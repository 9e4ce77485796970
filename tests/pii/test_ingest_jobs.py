"""Large ingest batches run in a worker (issue 13, finding 8): 202, a job to poll, results per row.

A real Celery worker (tests/worker.py) runs the job; the web request only queues it.
"""

from __future__ import annotations

import json
import time

import pytest

from governance.access.tokens import api_token_create
from governance.pii.models import IngestJob, IngestJobStatus
from governance.subjects.models import Profile

INGEST = "/api/v1/ingest/profiles"
pytestmark = pytest.mark.django_db(transaction=True)


def _client_for(api_client_class, user):
    _token, secret = api_token_create(user=user, name="pipeline", scopes=["read", "write"])
    client = api_client_class()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


@pytest.fixture
def clients(role_users):
    from rest_framework.test import APIClient

    return {role: _client_for(APIClient, user) for role, user in role_users.items()}


def _batch(count: int, bad_at: int | None = None) -> dict:
    profiles = [{"email": f"Person.{n}@Example.jp", "full_name": f"山田 太郎{n}", "phone": f"090-1234-{n:04d}"}
                for n in range(count)]
    if bad_at is not None:
        profiles[bad_at] = {"email": "not-an-address", "full_name": "壊れた 行"}
    return {"workspace": "shop-jp", "source": "crm-export", "profiles": profiles}


def _poll(client, location: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(location).json()
        if body["status"] in (IngestJobStatus.DONE, IngestJobStatus.FAILED) or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_a_large_batch_is_a_job_the_worker_runs_and_its_creator_polls(live_worker, clients, workspaces, settings):
    settings.MAMORU_PII_INGEST_ASYNC_THRESHOLD = 100
    analyst = clients["privacy_analyst"]
    # given 150 profiles, one of them with an identity that is not an e-mail address
    # when the pipeline posts them
    response = analyst.post(INGEST, _batch(150, bad_at=7), format="json")
    # then the request is answered at once with a job to poll
    assert response.status_code == 202, response.content
    accepted = response.json()
    assert accepted["status"] in ("queued", "running", "done") and accepted["total"] == 150
    location = response["Location"]
    assert location.endswith(f"/api/v1/ingest/jobs/{accepted['id']}")
    # and the worker ingests every good row and reports the bad one by index
    job = _poll(analyst, location)
    assert job["status"] == "done", (job, live_worker.log()[-3000:])
    assert job["processed"] == 150 and job["percent"] == 100
    result = job["result"]
    assert result["created"] == 149 and result["updated"] == 0
    assert [e["index"] for e in result["errors"]] == [7] and result["errors"][0]["code"]
    assert sorted(p["index"] for p in result["profiles"]) == [n for n in range(150) if n != 7]
    assert Profile.objects.filter(workspace=workspaces[0]).count() == 149
    # and neither the answer nor the stored job keeps a submitted value
    text = json.dumps(job, ensure_ascii=False)
    assert "example.jp" not in text.lower() and "山田" not in text and "not-an-address" not in text
    stored = IngestJob.objects.get(pk=accepted["id"])
    assert stored.payload is None
    # and only its creator or a role that may view ingest jobs sees it
    assert clients["marketing"].get(location).status_code == 404
    assert clients["support_agent"].get(location).status_code == 404
    assert clients["dpo"].get(location).status_code == 200


def test_a_small_batch_stays_synchronous(clients, workspaces, settings, pii_scanner):
    settings.MAMORU_PII_INGEST_ASYNC_THRESHOLD = 100
    response = clients["privacy_analyst"].post(INGEST, _batch(3), format="json")
    assert response.status_code == 200, response.content
    assert len(response.json()["profiles"]) == 3 and not IngestJob.objects.exists()


def test_a_job_in_reject_mode_stores_nothing_when_a_row_has_unexpected_pii(live_worker, clients, workspaces, settings):
    settings.MAMORU_PII_INGEST_ASYNC_THRESHOLD = 2
    body = _batch(4)
    body["on_unexpected"] = "reject"
    body["profiles"][2]["extra"] = {"notes": "カード 4111 1111 1111 1111 で支払い"}
    response = clients["privacy_analyst"].post(INGEST, body, format="json")
    assert response.status_code == 202, response.content
    job = _poll(clients["privacy_analyst"], response["Location"])
    assert job["status"] == "failed", job
    assert {(e["index"], e["code"], e["entity_type"]) for e in job["result"]["errors"]} == {
        (2, "unexpected_pii", "CREDIT_CARD")}
    assert Profile.objects.count() == 0
    assert "4111" not in json.dumps(job)

"""Catalogue connectors end to end: an emulator on loopback, a store added from the catalogue,
requests through the real DSR pipeline (in-process runner), results read from the emulator."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from dsr.execution import run_inline
from dsr.models import RequestStatus
from dsr.package import package_stream
from tests.dsr.conftest import submit_verified
from tests.emulators.base import serve

SUBJECT = "subject.person@example.com"      # what the person types on the portal
STORED = "Subject.Person@Example.com"        # how the service holds it
SIMILAR = ("xsubject.person@example.com", "subject.person@example.co", "subject.person2@example.com")
SUBJECT_PHONE = "+819012345678"


@pytest.fixture
def emulator(request):
    """``@pytest.mark.parametrize``-free: tests call ``running(app)``; servers are closed after."""
    started = []

    def running(app):
        server = serve(app)
        started.append(server)
        return server

    yield running
    for server in started:
        server.close()


def add_store(slug: str, url: str, *, key: str | None = None, params: dict | None = None, secrets: dict,
              offline: bool = False):
    from dsr.catalogue.services import catalogue_store_add

    return catalogue_store_add(slug=slug, key=key or slug, params=params or {}, secrets=secrets, shared=True,
                               base_url=url, allow_internal_hosts=True, offline=offline)


def profile(workspace, *, phone: str | None = None):
    from governance.subjects.services import IdentityInput, profile_upsert

    identities = [IdentityInput("email", SUBJECT)]
    if phone:
        identities.append(IdentityInput("phone", phone))
    return profile_upsert(workspace=workspace, identities=identities,
                          attributes={"full_name": "Subject Person"}).profile


def run(workspace, mailoutbox, kind: str):
    request = submit_verified(workspace, mailoutbox, kind, email=SUBJECT)
    run_inline(request)
    request.refresh_from_db()
    assert request.status == RequestStatus.COMPLETED, (request.attention_reason,
                                                       [(t.key, t.error) for t in request.tasks.all() if t.error])
    return request


def package(request) -> dict[str, list]:
    archive = zipfile.ZipFile(io.BytesIO(b"".join(package_stream(package=request.package))))
    return {name: json.loads(archive.read(name)) for name in archive.namelist() if name.endswith(".json")}

"""Every class of hostile input (issue 13, finding 3) against EVERY endpoint of the OpenAPI schema.

The endpoints come from the generated schema (paths, methods, path parameters, request bodies), so
a new endpoint is fuzzed without anyone adding it here. Each answer must be a 4xx problem JSON
``{"type", "title", "detail", "code"}`` — never a 5xx, an HTML page or an empty 200 — and after
each class no row of the domain's tables may have been added or changed in number.
"""

from __future__ import annotations

import io
import itertools
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from django.apps import apps
from django.db import router
from django.test import Client, TestCase
from drf_spectacular.generators import SchemaGenerator

from tests.accounts import OtpVerifiedClient

pytestmark = pytest.mark.django_db

BODY_METHODS = {"post", "put", "patch", "delete"}
DEEP = "[" * 1000 + "]" * 1000
DEEP_OBJECT = '{"a":' * 950 + "1" + "}" * 950
BIDI_EMAIL = "erika@exa\u202emple.de\u200f"
BIDI_PHONE = "+49\u2066 30 1234567\u2069"
IDENTITY_FIELDS = {"email": BIDI_EMAIL, "value": BIDI_EMAIL, "identity_value": BIDI_EMAIL,
                   "phone": BIDI_PHONE, "browser_id": "b-\u202e7f3a9c2e41", "customer_id": "C\u202e1"}
# Logs, not domain data: denied attempts are audited on purpose, sessions and caches come and go.
NOT_DOMAIN_DATA = {"audit", "sessions", "axes", "admin", "contenttypes", "auth", "guardian",
                   "otp_totp", "otp_static", "django_otp"}
# Counters, not records: the consent API's per-key rate windows.
NOT_DOMAIN_MODELS = {"consent.RateWindow"}
LIMIT = 64 * 1024


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # as in the schema, with {parameters}
    params: tuple[tuple[str, str | None], ...]  # (name, format)
    body_schema: dict | None

    def url(self, ids: dict[str, str]) -> str:
        url = self.path
        for name, fmt in self.params:
            value = ids.get(f"{self.path}:{name}") or ids.get(name) or (str(uuid.uuid4()) if fmt == "uuid" else "1")
            url = url.replace("{" + name + "}", value)
        return url

    def malformed_url(self) -> str:
        if not self.params:
            return self.path.rstrip("/") + "/not-an-id/"
        url = self.path
        for name, _fmt in self.params:
            url = url.replace("{" + name + "}", "not-an-id%20x")
        return url

    def __str__(self) -> str:
        return f"{self.method.upper()} {self.path}"


def _resolve(schema: dict, node: dict | None) -> dict:
    while node and "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node or {}


def _endpoints() -> list[Endpoint]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            params = tuple((p["name"], p.get("schema", {}).get("format"))
                           for p in operation.get("parameters", []) if p["in"] == "path")
            content = operation.get("requestBody", {}).get("content", {})
            body = _resolve(schema, content.get("application/json", {}).get("schema")) if content else None
            if body:
                body = {"schema": schema, "root": body}
            found.append(Endpoint(method, path, params, body))
    return found


ENDPOINTS = _endpoints()


def _sample(schema: dict, node: dict, name: str = "", depth: int = 0, *, text: str | None = None):
    """A schema-shaped value with bidi/control characters in every identity field (or ``text`` in
    every string)."""
    node = _resolve(schema, node)
    if text is not None and node.get("type", "string") == "string" and "enum" not in node and not (
        node.get("properties") or node.get("items")
    ):
        return text
    if name in IDENTITY_FIELDS and text is None:
        return IDENTITY_FIELDS[name]
    kind = node.get("type")
    if "enum" in node:
        return node["enum"][0]
    if kind == "object" and not node.get("properties") and text is not None:
        return {"note": text}  # a free-form object (details, attributes, extra)
    if kind == "object" or "properties" in node:
        return {key: _sample(schema, sub, key, depth + 1, text=text)
                for key, sub in node.get("properties", {}).items() if depth < 4}
    if kind == "array":
        return [_sample(schema, node.get("items", {}), name, depth + 1, text=text)] if depth < 4 else []
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.5
    if kind == "boolean":
        return True
    return "shop-jp" if name == "workspace" else "x"


def _has_identity(schema: dict, node: dict, depth: int = 0) -> bool:
    node = _resolve(schema, node)
    for key, sub in node.get("properties", {}).items():
        if key in IDENTITY_FIELDS or (depth < 4 and _has_identity(schema, sub, depth + 1)):
            return True
    items = node.get("items")
    return bool(items) and depth < 4 and _has_identity(schema, items, depth + 1)


def _domain_counts() -> dict[str, int]:
    counts = {}
    for model in apps.get_models():
        if (model._meta.app_label in NOT_DOMAIN_DATA or model._meta.label in NOT_DOMAIN_MODELS
                or not model._meta.managed):
            continue
        counts[model._meta.label] = model._default_manager.using(router.db_for_read(model)).count()
    return counts


@pytest.fixture
def world(settings, role_users, workspaces):
    """A DPO session, a site with a secret key, one profile and one request to aim at."""
    from consent.demo import purposes_seed
    from consent.models import KeyKind, Site
    from consent.services import site_key_create
    from dsr.services import dsr_request_submit
    from tests.factories import make_profile

    settings.MAMORU_API_MAX_BODY_BYTES = LIMIT
    site = Site.objects.create(workspace=workspaces[0], slug="shop", name="Shop",
                               allowed_origins=["https://shop.example"])
    site.purposes.set(purposes_seed())
    _key, secret = site_key_create(site=site, kind=KeyKind.SECRET)
    profile = make_profile(workspaces[0])
    with TestCase.captureOnCommitCallbacks(execute=True):
        request = dsr_request_submit(workspace=workspaces[0], request_type="access", email="hanako@example.jp")
    staff = OtpVerifiedClient()  # signed in with the second factor
    staff.force_login(role_users["dpo"])
    ids = {"/api/v1/profiles/{id}/:id": str(profile.pk), "/api/v1/profiles/{id}/reveal/:id": str(profile.pk),
           "id": str(request.pk), "request_id": str(request.pk)}
    return {"staff": staff, "secret": secret, "ids": ids}


_addresses = (f"198.51.100.{n}" for n in itertools.cycle(range(1, 255)))


def _send(world, endpoint: Endpoint, *, url: str | None = None, body: bytes | str | None = None,
          content_type: str = "application/json", chunked: bool = False, method: str | None = None):
    url = url or endpoint.url(world["ids"])
    extra = {"REMOTE_ADDR": next(_addresses)}  # the public throttles must not hide the answer
    if url.startswith("/api/v1/consent/"):
        extra["HTTP_AUTHORIZATION"] = f"Bearer {world['secret']}"
    if chunked:
        raw = body.encode() if isinstance(body, str) else (body or b"")
        extra.update({"wsgi.input": io.BytesIO(raw), "wsgi.input_terminated": True,
                      "HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": ""})
    client = Client() if url.startswith("/api/v1/consent/") else world["staff"]
    data = body.encode() if isinstance(body, str) else (body or b"")  # bytes: sent as they are
    return client.generic((method or endpoint.method).upper(), url, data, content_type=content_type, **extra)


def _problem_or_reason(response, *, statuses: range = range(400, 500)) -> str | None:
    """``None`` when the answer is a problem JSON with a status in ``statuses``; else why not."""
    if response.status_code not in statuses:
        return f"status {response.status_code}: {response.content[:200]!r}"
    if response.get("Content-Type") != "application/problem+json":
        return f"{response.status_code} {response.get('Content-Type')}: {response.content[:120]!r}"
    body = json.loads(response.content)
    missing = [k for k in ("type", "title", "detail", "code") if not body.get(k)]
    return f"problem without {missing}: {body}" if missing else None


def _cases(kind: str) -> Iterator[tuple[Endpoint, dict]]:
    """(endpoint, request arguments) for one class of hostile input."""
    for endpoint in ENDPOINTS:
        has_body = endpoint.method in BODY_METHODS
        if kind == "deep_json" and has_body:
            yield endpoint, {"body": DEEP}
            yield endpoint, {"body": DEEP_OBJECT}
        elif kind == "huge_json" and has_body:
            yield endpoint, {"body": json.dumps({"x": "y" * (LIMIT * 2)})}  # over the body limit: 413
            yield endpoint, {"body": json.dumps(list(range(LIMIT // 8)))}  # wide, under the limit
        elif kind == "controls_in_query":
            for value in ("a%00b", "%01", "a%1bb%7f"):
                sep = "&" if "?" in endpoint.path else "?"
                yield endpoint, {"url": endpoint.url({}) + f"{sep}workspace={value}&status={value}",
                                 "body": "{}" if has_body else None}
        elif kind == "controls_in_path":
            yield endpoint, {"url": endpoint.path.split("{")[0].rstrip("/") + "/a%00b/",
                             "body": "{}" if has_body else None}
        elif kind == "bidi_identities" and has_body and endpoint.body_schema and _has_identity(
            endpoint.body_schema["schema"], endpoint.body_schema["root"]
        ):
            yield endpoint, {"body": json.dumps(_sample(endpoint.body_schema["schema"],
                                                        endpoint.body_schema["root"]))}
        elif kind == "nul_in_body" and has_body and endpoint.body_schema:
            # NUL in every string of a schema-shaped body: PostgreSQL cannot store it, anywhere
            yield endpoint, {"body": json.dumps(_sample(endpoint.body_schema["schema"],
                                                        endpoint.body_schema["root"], text="a\u0000b"))}
        elif kind == "malformed_ids":
            yield endpoint, {"url": endpoint.malformed_url(), "body": "{}" if has_body else None}
        elif kind == "wrong_content_type" and has_body:
            for content_type, body in (("text/plain", "a=b"), ("application/xml", "<a/>"),
                                       ("multipart/form-data", "--x\r\n"),  # no boundary
                                       ("application/json; charset=utf-8", b'{"workspace": "\xff\xfe"}')):
                yield endpoint, {"body": body, "content_type": content_type}
        elif kind == "chunked" and has_body:
            yield endpoint, {"body": DEEP, "chunked": True}  # read (not empty): the parser refuses it
            yield endpoint, {"body": json.dumps({"x": "y" * (LIMIT * 2)}), "chunked": True}  # 413


CLASSES = ["deep_json", "huge_json", "controls_in_query", "controls_in_path", "bidi_identities",
           "nul_in_body", "malformed_ids", "wrong_content_type", "chunked"]


@pytest.mark.parametrize("kind", CLASSES)
def test_every_endpoint_answers_hostile_input_with_a_problem(world, kind, mailoutbox):
    # given
    before = _domain_counts()
    failures, sent = [], 0
    # when
    for endpoint, arguments in _cases(kind):
        with TestCase.captureOnCommitCallbacks(execute=True):
            response = _send(world, endpoint, **arguments)
        sent += 1
        reason = _problem_or_reason(response)
        if not reason and arguments.get("chunked"):
            # read, not taken as empty: the same answer as the same body sent with its length
            sized = _send(world, endpoint, **{k: v for k, v in arguments.items() if k != "chunked"})
            if (sized.status_code, sized.json()["code"]) != (response.status_code, response.json()["code"]):
                reason = (f"chunked {response.status_code} {response.json()['code']} but sized "
                          f"{sized.status_code} {sized.json()['code']}")
        if reason:
            shown = {k: v for k, v in arguments.items() if k != "body"}
            failures.append(f"{endpoint} {shown}: {reason}")
    # then
    assert sent, f"no endpoint takes {kind}?"
    assert not failures, f"{len(failures)} of {sent} {kind} requests:\n  " + "\n  ".join(failures)
    after = _domain_counts()
    assert after == before, {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}


def test_the_schema_lists_every_api_endpoint():
    """The fuzzer covers what the schema lists: make sure that is all of /api/v1/."""
    listed = {str(e) for e in ENDPOINTS}
    assert len(listed) >= 25 and "POST /api/v1/dsr/requests" in listed and "POST /api/v1/scan/" in listed
    assert "GET /api/v1/consent/check" in listed and "POST /api/v1/consent/events" in listed

"""The http connector features the second five catalogue templates brought (docs/connectors.md):
list items in error paths, nested cursors in a JSON body, an offset written into a query text,
and waiting until an asynchronously erased row answers "not found"."""

from __future__ import annotations

import pytest

from dsr.connectors import StoreUnavailable
from dsr.connectors.http_extras import Pager, dig, error_text, gone_wait


def test_error_paths_pick_list_items():
    salesforce = [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]
    klaviyo = {"errors": [{"code": "throttled", "detail": "Request was throttled."}]}
    assert error_text(salesforce, "0.message") == "Session expired or invalid"
    assert error_text(klaviyo, "errors.0.detail") == "Request was throttled."
    assert dig(klaviyo, "errors.1.detail") is None and dig({"a": {"0": "x"}}, "a.0") == "x"


def test_cursor_into_a_nested_body_key():
    body = {"query": {"field": "email", "operator": "=", "value": "a@example.com"}, "pagination": {"per_page": 150}}
    pager = Pager({"type": "cursor", "in": "body", "param": "pagination.starting_after",
                   "next": "pages.next.starting_after"}, {}, body)
    assert pager.advance({"pages": {"next": {"starting_after": "WzE0XQ=="}}}, [{"id": 1}])
    assert pager.body["pagination"] == {"per_page": 150, "starting_after": "WzE0XQ=="}
    assert body["pagination"] == {"per_page": 150}  # the lookup's template is not changed
    assert not pager.advance({"pages": {}}, [{"id": 2}])


def test_offset_written_into_the_query_text():
    pager = Pager({"type": "offset", "param": "query", "text": "limit {size} offset {offset}", "size": 2,
                   "total": "totalCount"}, {"app": "7", "query": 'email like "a@example.com" order by $id asc'}, None)
    assert pager.params == {"app": "7", "query": 'email like "a@example.com" order by $id asc limit 2 offset 0'}
    assert pager.advance({"totalCount": "5"}, [{}, {}])
    assert pager.params["query"].endswith("order by $id asc limit 2 offset 2")
    assert pager.advance({"totalCount": "5"}, [{}, {}])
    assert not pager.advance({"totalCount": "5"}, [{}])
    assert "limit" not in pager.params  # no separate size parameter for a query language


def test_until_gone_polls_the_row_and_gives_up_as_unavailable():
    seen: list[str] = []
    answers = iter([False, False, True])
    gone_wait(lambda path, params: seen.append(path) or next(answers),
              {"path": "/api/profiles/{id}/", "interval_seconds": 0}, {"id": "01 HK"}, sleep=lambda s: None)
    assert seen == ["/api/profiles/01%20HK/"] * 3
    with pytest.raises(StoreUnavailable, match="still there after 0s"):
        gone_wait(lambda path, params: False, {"path": "/x/{id}", "interval_seconds": 0, "timeout_seconds": 0},
                  {"id": 1}, sleep=lambda s: None)

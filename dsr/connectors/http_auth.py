"""Authentication schemes of the ``http`` connector beyond a static header (``connection.auth``).

``{name}`` in a value is filled from the store's resolved top-level settings (``connection``
plus the encrypted ``secrets``), so a secret is written once and never in the clear::

    auth: {type: basic, username: "{username}", password: "{api_key}"}
    auth: {type: bearer, token: "{access_token}"}
    auth: {type: api_key, headers: {X-Api-Key: "{api_key}"}, query: {key: "{api_key}"}}
    auth: {type: oauth2_client_credentials, token_path: /oauth/token,
           client_id: "{client_id}", client_secret: "{client_secret}", scope: "contacts"}
    auth: {type: oauth2_refresh, token_path: /oauth/token, client_id: "{client_id}",
           client_secret: "{client_secret}", refresh_token: "{refresh_token}"}

Credentials are added only to requests for the store's own origin (scheme, host and port of
``base_url``): a pagination link or redirect elsewhere is sent without them. OAuth2 access tokens
are fetched when first needed (``client_credentials``, or the ``refresh_token`` grant), kept in
memory for the connector's life, and fetched again once when the API answers 401.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Generator

import httpx

from dsr.connectors.base import StoreError

AUTH_TYPES = ("basic", "bearer", "api_key", "oauth2_client_credentials", "oauth2_refresh")
_SETTING = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def setting_fill(value, settings: dict) -> str:
    """Replace ``{name}`` with the top-level setting ``name`` (left as written when absent)."""
    def repl(match: re.Match) -> str:
        found = settings.get(match.group(1))
        return match.group(0) if found is None or isinstance(found, dict | list) else str(found)

    return _SETTING.sub(repl, str(value))


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _origin(url: httpx.URL) -> tuple:
    return url.scheme, url.host, url.port or {"http": 80, "https": 443}.get(url.scheme)


class StoreAuth(httpx.Auth):
    """One of :data:`AUTH_TYPES`, applied to same-origin requests only."""

    requires_response_body = True

    def __init__(self, config: dict, *, settings: dict, base_url: str):
        kind = config.get("type")
        if kind not in AUTH_TYPES:
            raise StoreError(f"connection.auth.type {kind!r} is not known; known: {', '.join(AUTH_TYPES)}")
        self.kind = kind
        self.config = {k: (setting_fill(v, settings) if isinstance(v, str) else v) for k, v in config.items()}
        for block in ("headers", "query"):
            if isinstance(config.get(block), dict):
                self.config[block] = {k: setting_fill(v, settings) for k, v in config[block].items()}
        self.base = httpx.URL(base_url)
        self.access_token: str | None = self.config.get("access_token") or None
        if self.access_token and _SETTING.fullmatch(self.access_token):
            self.access_token = None  # the setting is not there: fetch one
        self.refresh_token: str | None = self.config.get("refresh_token") or None
        missing = [k for k, v in self.config.items() if isinstance(v, str) and _SETTING.search(v)
                   and k != "access_token"]
        if missing:
            raise StoreError(f"connection.auth: no setting for {', '.join(sorted(missing))} "
                             "(add it to the store's connection or secrets)")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) != _origin(self.base):
            yield request  # another origin never receives the store's credentials
            return
        if self.kind.startswith("oauth2"):
            if not self.access_token:
                yield from self._token_fetch()
            request.headers["Authorization"] = f"Bearer {self.access_token}"
            response = yield request
            if response.status_code == 401:
                yield from self._token_fetch()
                request.headers["Authorization"] = f"Bearer {self.access_token}"
                yield request
            return
        if self.kind == "basic":
            request.headers["Authorization"] = _basic(self.config.get("username", ""),
                                                   self.config.get("password", ""))
        elif self.kind == "bearer":
            request.headers["Authorization"] = f"Bearer {self.config.get('token', '')}"
        else:
            for name, value in (self.config.get("headers") or {}).items():
                request.headers[name] = value
            if self.config.get("query"):
                request.url = request.url.copy_merge_params(self.config["query"])
        yield request

    def _token_fetch(self) -> Generator[httpx.Request, httpx.Response, None]:
        path = self.config.get("token_path") or "/oauth/token"
        url = self.base.join(path)
        if _origin(url) != _origin(self.base) and not self.config.get("token_url_other_origin"):
            raise StoreError(f"connection.auth.token_path {path!r} is not on the store's origin")
        form = {"client_id": self.config.get("client_id", "")}
        if self.kind == "oauth2_refresh":
            if not self.refresh_token:
                raise StoreError("connection.auth: oauth2_refresh needs a refresh_token (a secret)")
            form.update(grant_type="refresh_token", refresh_token=self.refresh_token)
        else:
            form["grant_type"] = "client_credentials"
        if self.config.get("scope"):
            form["scope"] = str(self.config["scope"])
        headers = {"Accept": "application/json"}
        if self.config.get("client_auth") == "basic":
            form.pop("client_id")
            headers["Authorization"] = _basic(self.config.get("client_id", ""),
                                              self.config.get("client_secret", ""))
        else:
            form["client_secret"] = self.config.get("client_secret", "")
        response = yield httpx.Request("POST", url, data=form, headers=headers)
        if response.status_code >= 400:
            raise StoreError(f"token request to {path}: HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise StoreError(f"token request to {path}: the answer is not JSON") from exc
        token = body.get("access_token") if isinstance(body, dict) else None
        if not token:
            raise StoreError(f"token request to {path}: no access_token in the answer")
        self.access_token = str(token)
        if body.get("refresh_token"):
            self.refresh_token = str(body["refresh_token"])

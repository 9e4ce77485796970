"""The declarative part of a Fides SaaS config, mapped onto the ``http`` connector's format.

Called by :mod:`governance.datamap.fides` for a SaaS config paired with its dataset: the store
becomes ``type: http``; ``client_config`` its ``base_url`` and ``auth``; each endpoint's
``read`` / ``update`` / ``delete`` request the collection's ``lookup`` / ``update`` / ``delete``
options (docs/datamap.md "Importing from Fides" lists what maps and what does not).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from governance.datamap.fides import (
    ANGLE,
    Element,
    angle_to_braces,
    fides_vocabulary,
    is_secret_param,
)

PERIOD_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_INFO_KEYS = {"fides_key", "name", "type", "description", "version", "replaceable", "user_guide",
              "display_info"}
_MASKED_BODY = re.compile(r'^\{\s*(?:"([A-Za-z0-9_\-]+)"\s*:\s*\{\s*)?<masked_object_fields>\s*\}?\s*\}$')


def saas_apply(builder, store: dict, collections: dict[str, dict], key: str, file: str, cfg: dict) -> None:
    """Fill ``store`` (connection, secrets) and ``collections`` (options) from a SaaS config."""
    fides_key = str(cfg.get("fides_key"))
    here = Element(file, "", dataset=fides_key)
    params_spec = {str(p.get("name")): p for p in cfg.get("connector_params") or [] if isinstance(p, dict)}
    env_prefix = key.upper().replace("-", "_")
    connection: dict[str, Any] = {}
    secrets: dict[str, str] = {}

    def param_value(name: str) -> str | None:
        """A non-secret connector param's value now (given or default), else None."""
        if name in builder.params:
            return str(builder.params[name])
        default = (params_spec.get(name) or {}).get("default_value")
        return None if default is None else str(default)

    def setting(name: str) -> str:
        """Make connector param ``name`` a top-level setting of the store; return ``{name}``."""
        if name in connection or name in secrets:
            return "{" + name + "}"
        if is_secret_param(name, params_spec.get(name)) or name in {"access_token", "refresh_token"}:
            variable = f"{env_prefix}_{name.upper()}"
            environ = os.environ if builder.environ is None else builder.environ
            if builder.secrets_from_env and environ.get(variable):
                secrets[name] = environ[variable]
            else:
                connection[name] = f"${{{variable}}}"
        else:
            value = param_value(name)
            connection[name] = value if value is not None else f"${{{env_prefix}_{name.upper()}}}"
        return "{" + name + "}"

    def substitute(text: str, where: Element, key_path: str) -> str | None:
        """Connector params in a request template replaced by their values now (None: missing)."""
        missing = []

        def repl(match: re.Match) -> str:
            value = param_value(match.group(1))
            if value is None:
                missing.append(match.group(1))
                return match.group(0)
            return value

        out = ANGLE.sub(repl, str(text))
        if missing:
            builder.lost(where, f"connector param {', '.join(missing)} has no value: pass "
                                f"--param {missing[0]}=…", key=key_path)
            return None
        return out

    for k in sorted(set(cfg) - _INFO_KEYS - {"connector_params", "client_config", "test_request", "endpoints",
                                             "rate_limit_config"}):
        builder.lost(here, "SaaS config key not supported", key=k)

    # --- client: base URL and authentication --------------------------------------------------
    client = cfg.get("client_config") or {}
    raw_host = str(client.get("host") or "")
    unknown = [n for n in ANGLE.findall(raw_host) if param_value(n) is None]
    host = ANGLE.sub(lambda m: param_value(m.group(1)) or f"${{{env_prefix}_{m.group(1).upper()}}}", raw_host)
    if unknown:
        builder.note(here, "host from the environment: set "
                           + ", ".join(f"{env_prefix}_{n.upper()}" for n in unknown), key="client_config.host")
    connection["base_url"] = f"{client.get('protocol') or 'https'}://{host}"
    for k in sorted(set(client) - {"protocol", "host", "authentication"}):
        builder.lost(here, "client_config key not supported", key=f"client_config.{k}")
    auth = client.get("authentication")
    if auth:
        mapped = _auth(builder, here, auth, setting)
        if mapped:
            connection["auth"] = mapped
    if builder.allow_internal_hosts:
        connection["allow_internal_hosts"] = True
    limits = (cfg.get("rate_limit_config") or {})
    if limits.get("enabled", True) and limits.get("limits"):
        per_second = []
        for i, limit in enumerate(limits["limits"]):
            seconds = PERIOD_SECONDS.get(str(limit.get("period")))
            if seconds is None or not limit.get("rate"):
                builder.lost(here, "rate limit without a rate and a known period", key=f"rate_limit_config.limits.{i}")
                continue
            per_second.append(float(limit["rate"]) / seconds)
            for extra in sorted(set(limit) - {"rate", "period"}):
                builder.lost(here, "rate limit key not supported", key=f"rate_limit_config.limits.{i}.{extra}")
        if per_second:
            connection["rate_limit_per_second"] = round(min(per_second), 6)
    test = cfg.get("test_request") or {}
    if test:
        path = substitute(str(test.get("path") or "/"), here, "test_request.path")
        if path is not None and str(test.get("method", "GET")).upper() == "GET" and not test.get("body"):
            connection["health_path"] = path
        elif path is not None:
            builder.lost(here, "test_request other than a GET without body", key="test_request")

    # --- endpoints ----------------------------------------------------------------------------
    endpoints = {str(e.get("name")): e for e in cfg.get("endpoints") or [] if isinstance(e, dict)}
    for cname in list(collections):
        if cname not in endpoints:
            builder.lost(Element(file, "", fides_key, cname), "no endpoint of this name in the SaaS config: "
                                                              "the collection cannot be read")
            del collections[cname]
    for ename, endpoint in endpoints.items():
        where = Element(file, "", fides_key, ename)
        coll = collections.get(ename)
        if coll is None:
            builder.lost(where, "endpoint without a collection of this name in the dataset")
            continue
        if endpoint.get("skip_processing"):
            builder.lost(where, "skip_processing: not imported", key="skip_processing")
            del collections[ename]
            continue
        for order in ("after", "erase_after"):
            if endpoint.get(order):
                builder.pending_order.append((where, key, ename, order, [str(v) for v in endpoint[order]]))
        for k in sorted(set(endpoint) - {"name", "requests", "after", "erase_after", "skip_processing"}):
            builder.lost(where, "endpoint key not supported", key=k)
        requests = endpoint.get("requests") or {}
        for k in sorted(set(requests) - {"read", "update", "delete"}):
            builder.lost(where, "request kind not supported", key=f"requests.{k}")
        options = coll.setdefault("options", {})
        read = requests.get("read")
        if not isinstance(read, dict) or not _read(builder, where, key, fides_key, coll, options, read, substitute):
            del collections[ename]
            continue
        for kind in ("update", "delete"):
            request = requests.get(kind)
            if isinstance(request, dict):
                mapped = _write(builder, where, fides_key, ename, kind, request, substitute)
                if mapped:
                    options[kind] = mapped
        if "update" not in options and "delete" in options:
            for f in coll["fields"].values():
                if f.get("category", "").startswith("user") and not f.get("primary_key") \
                        and not f.get("references") and not f.get("strategy"):
                    f["strategy"] = "delete_row"
        elif "update" not in options and "delete" not in options:
            builder.lost(where, "no update or delete request: the data can be read, erasure will fail "
                                "and the request will need attention", key="requests")
    store["connection"] = connection
    if secrets:
        store["secrets"] = secrets


def _auth(builder, here: Element, auth: dict, setting) -> dict | None:
    strategy = str(auth.get("strategy"))
    config = dict(auth.get("configuration") or {})

    def value(text) -> str:
        return ANGLE.sub(lambda m: setting(m.group(1)), str(text))

    where = "client_config.authentication"
    if strategy == "basic":
        return {"type": "basic", "username": value(config.get("username", "")),
                "password": value(config.get("password", ""))}
    if strategy == "bearer":
        return {"type": "bearer", "token": value(config.get("token", ""))}
    if strategy == "api_key":
        out: dict[str, Any] = {"type": "api_key"}
        for block, target in (("headers", "headers"), ("query_params", "query")):
            items = config.get(block) or []
            if items:
                out[target] = {str(i["name"]): value(i.get("value", "")) for i in items if isinstance(i, dict)}
        for extra in sorted(set(config) - {"headers", "query_params"}):
            builder.lost(here, "api_key option not supported", key=f"{where}.configuration.{extra}")
        return out
    if strategy in {"oauth2_client_credentials", "oauth2_authorization_code"}:
        token = config.get("token_request") or {}
        refresh = config.get("refresh_request") or {}
        request = refresh if strategy == "oauth2_authorization_code" and refresh else token
        out = {"type": "oauth2_client_credentials" if strategy == "oauth2_client_credentials" else "oauth2_refresh",
               "token_path": ANGLE.sub(lambda m: setting(m.group(1)), str(request.get("path") or "/oauth/token"))}
        sent = {str(i.get("name")): str(i.get("value", "")) for block in ("query_params", "body_params")
                for i in request.get(block) or [] if isinstance(i, dict)}
        body = request.get("body")
        if isinstance(body, str) and body.strip().startswith("{"):
            try:
                sent.update({str(k): str(v) for k, v in json.loads(ANGLE.sub(r'\1', body)).items()})
            except ValueError:
                builder.lost(here, "token request body not understood", key=f"{where}.configuration.token_request.body")
        for name in ("client_id", "client_secret", "scope"):
            if name in sent:
                out[name] = value(sent[name])
            elif name != "scope":
                out[name] = setting(name)
        if strategy == "oauth2_authorization_code":
            out["refresh_token"] = setting("refresh_token")
            out["access_token"] = setting("access_token")
            builder.lost(here, "authorization_request: Mamoru does not run the interactive authorisation; "
                               "authorise once and set the refresh token (secret refresh_token)",
                         key=f"{where}.configuration.authorization_request")
        for extra in sorted(set(config) - {"token_request", "refresh_request", "authorization_request",
                                           "expires_in"}):
            builder.lost(here, "OAuth2 option not supported", key=f"{where}.configuration.{extra}")
        if request.get("headers"):
            builder.lost(here, "token request headers not supported (credentials are sent in the form body)",
                         key=f"{where}.configuration.token_request.headers")
        return out
    builder.lost(here, f"authentication strategy {strategy!r} not supported", key=f"{where}.strategy")
    return None


def _identity_field(coll: dict, kind: str, param: str, prefer: str | None) -> str:
    fields = coll["fields"]
    category = {"email": "user.contact.email", "phone": "user.contact.phone_number"}.get(kind)
    for name in ([prefer] if prefer else []):
        if name in fields:
            fields[name]["identity"] = kind
            return name
    for name, f in fields.items():
        if f.get("identity") == kind:
            return name
    for name, f in fields.items():
        if category and f.get("category", "").startswith(category):
            f["identity"] = kind
            return name
    fields[param] = {"identity": kind, "description": "lookup identity (added by import_fides)"}
    return param


def _read(builder, where: Element, store_key: str, fides_key: str, coll: dict, options: dict,
          read: dict, substitute) -> bool:
    identities = fides_vocabulary()["identities"]
    k = "requests.read"
    for extra in sorted(set(read) - {"method", "path", "query_params", "param_values", "data_path",
                                     "pagination", "postprocessors"}):
        builder.lost(where, "read request key not supported", key=f"{k}.{extra}")
    method = str(read.get("method") or "GET").upper()
    if method != "GET":
        builder.lost(where, f"read with {method}: lookups are GET requests", key=f"{k}.method")
        return False
    prefer = None
    for i, post in enumerate(read.get("postprocessors") or []):
        conf = (post or {}).get("configuration") or {}
        if post.get("strategy") == "filter" and isinstance(conf.get("value"), dict) and \
                conf["value"].get("identity") in identities:
            prefer = str(conf.get("field"))  # Mamoru keeps only rows whose identity field matches
        else:
            builder.lost(where, f"postprocessor {post.get('strategy')!r} not supported",
                         key=f"{k}.postprocessors.{i}")
    names: dict[str, str] = {}
    inputs = []
    for pv in read.get("param_values") or []:
        name = str(pv.get("name"))
        if pv.get("identity"):
            kind = identities.get(str(pv["identity"]))
            if kind is None:
                builder.lost(where, f"identity {pv['identity']!r} is not one Mamoru resolves",
                             key=f"{k}.param_values.{name}")
                return False
            names[name] = _identity_field(coll, kind, name, prefer)
            inputs.append(name)
        elif pv.get("references"):
            refs = pv["references"]
            fname = name
            field = coll["fields"].setdefault(fname, {"description": "reference (added by import_fides)"})
            for ref in refs:
                target_coll, _, target_field = str(ref.get("field", "")).partition(".")
                if ref.get("direction", "from") != "from" or "." in target_field or not target_field:
                    builder.lost(where, "param reference other than 'from' one top-level field",
                                 key=f"{k}.param_values.{name}")
                    return False
                builder.pending_refs.append((where, store_key, where.collection, fname,
                                             f"{builder.store_key(str(ref['dataset']))}.{target_coll}.{target_field}"))
            field.pop("category", None)
            names[name] = fname
            inputs.append(name)
        elif pv.get("connector_param"):
            names[name] = "<cp>"
        else:
            builder.lost(where, "param value without identity, references or connector_param",
                         key=f"{k}.param_values.{name}")
            return False
    templates = [str(read.get("path") or "")] + [str(q.get("value", "")) for q in read.get("query_params") or []]
    used = [n for n in inputs if any(f"<{n}>" in t for t in templates)]
    if len(used) != 1:
        builder.lost(where, "the read request must use exactly one identity or reference value "
                            f"(uses {', '.join(used) or 'none'}): Mamoru looks rows up by one value at a time",
                     key=f"{k}.param_values")
        return False
    values = {n: v for n, v in names.items() if v != "<cp>"}

    def template(text: str, key_path: str) -> str | None:
        text = angle_to_braces(str(text), values)
        return substitute(text, where, key_path)

    path = template(read.get("path") or "/", f"{k}.path")
    if path is None:
        return False
    lookup: dict[str, Any] = {"path": path}
    pagination = read.get("pagination") or {}
    params = {}
    for q in read.get("query_params") or []:
        value = template(q.get("value", ""), f"{k}.query_params.{q.get('name')}")
        if value is None:
            return False
        params[str(q.get("name"))] = value
    if pagination:
        mapped = _pagination(builder, where, pagination, params)
        if mapped is not None:
            options["pagination"] = mapped
    if params:
        lookup["params"] = params
    if read.get("data_path"):
        lookup["rows"] = str(read["data_path"])
    options["lookup"] = lookup
    return True


def _pagination(builder, where: Element, pagination: dict, params: dict) -> dict | None:
    strategy = str(pagination.get("strategy"))
    conf = pagination.get("configuration") or {}
    k = "requests.read.pagination"
    if strategy == "offset":
        param = str(conf.get("incremental_param"))
        start = int(params.pop(param, 0) or 0)
        step = int(conf.get("increment_by") or 1)
        if conf.get("limit") is not None:
            builder.lost(where, "offset limit: Mamoru reads every page (up to its own page cap)",
                         key=f"{k}.configuration.limit")
        # The page size is the query param whose value is the step (``count: 100``, ``increment_by: 100``).
        size_param = next((n for n, v in params.items() if str(v) == str(step)), None)
        if step == 1:
            size_param = size_param if size_param and size_param != param else None
            out = {"type": "page", "param": param, "start": start}
            if size_param:
                out.update(size_param=size_param, size=int(params.pop(size_param)))
            else:
                builder.lost(where, "page-number pagination without a page-size query param: Mamoru needs "
                                    "the page size to know the last page", key=f"{k}.configuration")
                return None
            return out
        if size_param:
            params.pop(size_param)
        return {"type": "offset", "param": param, "start": start, "size_param": size_param or "limit",
                "size": step}
    if strategy == "link":
        if conf.get("source") == "headers":
            if str(conf.get("rel", "next")).lower() != "next":
                builder.lost(where, "link pagination by a rel other than next", key=f"{k}.configuration.rel")
                return None
            return {"type": "link_header"}
        if conf.get("source") == "body" and conf.get("path"):
            return {"type": "link", "next": str(conf["path"])}
    if strategy == "cursor" and conf.get("cursor_param") and conf.get("field"):
        return {"type": "cursor", "param": str(conf["cursor_param"]), "from_last_row": str(conf["field"])}
    builder.lost(where, f"pagination {strategy!r} with this configuration not supported", key=k)
    return None


def _write(builder, where: Element, fides_key: str, cname: str, kind: str, request: dict,
           substitute) -> dict | None:
    k = f"requests.{kind}"
    for extra in sorted(set(request) - {"method", "path", "param_values", "body"}):
        builder.lost(where, f"{kind} request key not supported", key=f"{k}.{extra}")
        return None
    names = {}
    for pv in request.get("param_values") or []:
        name = str(pv.get("name"))
        refs = pv.get("references") or []
        own = [r for r in refs if str(r.get("dataset")) == fides_key
               and str(r.get("field", "")).startswith(f"{cname}.") and str(r["field"]).count(".") == 1]
        if own and len(own) == len(refs):
            names[name] = str(own[0]["field"]).split(".", 1)[1]  # filled from the row
        elif pv.get("connector_param"):
            continue
        else:
            builder.lost(where, f"{kind} param other than a field of the row or a connector param",
                         key=f"{k}.param_values.{name}")
            return None
    path = substitute(angle_to_braces(str(request.get("path") or ""), names), where, f"{k}.path")
    if path is None:
        return None
    out: dict[str, Any] = {"method": str(request.get("method") or ("PATCH" if kind == "update" else "DELETE")).upper(),
                           "path": path}
    body = request.get("body")
    if body is not None:
        match = _MASKED_BODY.match(str(body).strip()) if kind == "update" else None
        if match is None:
            builder.lost(where, f"{kind} body other than the masked fields (optionally under one key)",
                         key=f"{k}.body")
            return None
        if match.group(1):
            out["body_key"] = match.group(1)
    return out

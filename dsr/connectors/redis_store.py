"""``redis``: keys by pattern, hashes, sets and strings.

Settings: ``url`` (``redis://host:6379/0``). Collection options:

- ``type``: ``hash`` (each key one row of hash fields), ``set`` (each member one row) or
  ``string`` (each key one row with ``value``);
- ``key``: a template such as ``session:{session_id}``. When every placeholder has input values
  the keys are read directly; otherwise keys matching the pattern (placeholders as ``*``) are
  scanned and filtered. Placeholder values are parsed back into the row;
- ``member_field`` (sets, default ``member``) and ``value_field`` (strings, default ``value``);
- ``key_case`` (keys with an e-mail placeholder): ``any`` (default) — keys may hold the address
  in any letter case, they are found with a case-insensitive ``SCAN MATCH`` pattern
  (``*[fF][tT]…*``: also with spaces around the address; O(keys of the pattern) per request);
  ``lower`` — the application builds keys from the trimmed, lower-cased address, they are read
  directly.

Phone placeholders are read directly in every spelling of the number (or of the field's declared
``format``). Every row is confirmed in Python (same address once trimmed, same E.164 number, see
docs/datamap.md), so the wide scan pattern never over-matches. Every row carries ``_key`` (the Redis key).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator

import redis

from dsr.connectors import register
from dsr.connectors.base import (
    BaseConnector,
    IdentityMatch,
    StoreError,
    StoreUnavailable,
    identity_matches,
)
from governance.datamap.spec import CollectionSpec

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _key_regex(template: str) -> re.Pattern:
    pattern, last = "", 0
    for match in PLACEHOLDER.finditer(template):
        pattern += re.escape(template[last : match.start()]) + f"(?P<{match.group(1)}>.+?)"
        last = match.end()
    # DOTALL and \Z: a key part may hold any character, a trailing newline too (found, then trimmed)
    return re.compile("^" + pattern + re.escape(template[last:]) + r"\Z", re.DOTALL)



def _glob_escape(value: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", value)


def _glob_escape_literal(template: str) -> str:
    """Escape glob characters in the template's literal parts (not in its placeholders)."""
    parts, last = [], 0
    for match in PLACEHOLDER.finditer(template):
        parts.append(_glob_escape(template[last : match.start()]) + match.group(0))
        last = match.end()
    return "".join(parts) + _glob_escape(template[last:])


def _glob_any_case(value: str) -> str:
    """A SCAN pattern matching ``value`` in any letter case (bytes-based: non-ASCII letters
    become ``*``; the rows are confirmed in Python afterwards)."""
    out = []
    for char in value:
        if not char.isascii():
            if not out or out[-1] != "*":
                out.append("*")
        elif char.isalpha():
            out.append(f"[{char.lower()}{char.upper()}]")
        else:
            out.append(_glob_escape(char))
    return "".join(out)


@register
class RedisConnector(BaseConnector):
    identifier = "redis"
    verbose_name = "Redis (hashes, sets, strings by key pattern)"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        url = self.settings.get("url")
        if not url:
            raise StoreError(f"store {self.store_key!r}: the redis connector needs connection.url")
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_timeout=5,
                                           socket_connect_timeout=5)

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise StoreUnavailable(f"redis: {exc}") from exc
        except redis.RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc

    def test_connection(self) -> str:
        self._call(self.client.ping)
        return "redis reachable"

    @staticmethod
    def _options(collection: CollectionSpec) -> tuple[str, str]:
        kind = collection.options.get("type", "hash")
        template = collection.options.get("key")
        if kind not in {"hash", "set", "string"} or not template:
            raise StoreError(
                f"redis collection {collection.address} needs options.type (hash, set or string) "
                "and options.key"
            )
        return kind, template

    @staticmethod
    def _direct(match: IdentityMatch, key_case: str) -> list[str] | None:
        """The literal key parts to read for a placeholder, or None when only a scan finds them."""
        if match.kind == "email":
            return match.forms if key_case == "lower" else None
        if match.kind == "phone":
            return match.forms
        return [str(v) for v in match.values]

    def _keys(self, collection: CollectionSpec, template: str, matches: list[IdentityMatch]) -> Iterable[str]:
        names = PLACEHOLDER.findall(template)
        by_name = {m.name: m for m in matches}
        key_case = collection.options.get("key_case", "any")
        if key_case not in {"any", "lower"}:
            raise StoreError(f"redis collection {collection.address}: options.key_case is 'any' or 'lower'")
        direct = {n: self._direct(by_name[n], key_case) for n in names if n in by_name}
        if names and all(direct.get(n) for n in names):
            for combo in itertools.product(*[direct[n] for n in names]):
                yield template.format(**dict(zip(names, combo, strict=True)))
            return
        # Scan, narrowing the pattern with the placeholders that do have values.
        known = [n for n in names if n in by_name]
        patterns = {
            # e-mails: any letter case, with anything (surrounding spaces) around; confirmed below
            n: sorted({f"*{_glob_any_case(v)}*" for v in by_name[n].forms}) if direct[n] is None
            else [_glob_escape(v) for v in direct[n]]
            for n in known
        }
        combos = itertools.product(*[patterns[n] for n in known]) if known else [()]
        for combo in combos:
            values = dict(zip(known, combo, strict=True))
            pattern = PLACEHOLDER.sub(lambda m, v=values: v.get(m.group(1), "*"), _glob_escape_literal(template))
            try:
                yield from self.client.scan_iter(match=pattern, count=1000)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise StoreUnavailable(f"redis: {exc}") from exc

    def _rows(self, collection: CollectionSpec, kind: str, template: str, keys: list[str]) -> list[dict]:
        regex = _key_regex(template)
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            {"hash": pipe.hgetall, "set": pipe.smembers, "string": pipe.get}[kind](key)
        results = self._call(pipe.execute)
        rows = []
        for key, value in zip(keys, results, strict=True):
            if not value:
                continue
            match = regex.match(key)
            base = {"_key": key, **(match.groupdict() if match else {})}
            if kind == "hash":
                rows.append({**value, **base})
            elif kind == "set":
                member_field = collection.options.get("member_field", "member")
                rows.extend({**base, member_field: m} for m in sorted(value))
            else:
                rows.append({**base, collection.options.get("value_field", "value"): value})
        return rows

    def retrieve(self, collection: CollectionSpec, inputs: dict[str, list]) -> Iterator[dict]:
        kind, template = self._options(collection)
        matches = identity_matches(collection, inputs)
        keys = list(dict.fromkeys(self._keys(collection, template, matches)))
        for start in range(0, len(keys), 1000):
            for row in self._rows(collection, kind, template, keys[start : start + 1000]):
                if any(m.accepts(row.get(m.name)) for m in matches):
                    yield row

    def mask(self, collection: CollectionSpec, plans: Iterable) -> int:
        kind, _template = self._options(collection)
        pipe = self.client.pipeline(transaction=True)
        count = 0
        for plan in plans:
            key = plan.original["_key"]
            if kind == "hash":
                removed = [f for f, v in plan.values.items() if v is None]
                kept = {f: str(v) for f, v in plan.values.items() if v is not None}
                if removed:
                    pipe.hdel(key, *removed)
                if kept:
                    pipe.hset(key, mapping=kept)
            elif kind == "set":
                member_field = collection.options.get("member_field", "member")
                if member_field in plan.values:
                    pipe.srem(key, plan.original[member_field])
                    if plan.values[member_field] is not None:
                        pipe.sadd(key, str(plan.values[member_field]))
            else:
                value = plan.values.get(collection.options.get("value_field", "value"))
                pipe.delete(key) if value is None else pipe.set(key, str(value))
            count += 1
        self._call(pipe.execute)
        return count

    def delete(self, collection: CollectionSpec, plans: Iterable) -> int:
        kind, _template = self._options(collection)
        pipe = self.client.pipeline(transaction=True)
        count = 0
        for plan in plans:
            key = plan.original["_key"]
            if kind == "set":
                pipe.srem(key, plan.original[collection.options.get("member_field", "member")])
            else:
                pipe.delete(key)
            count += 1
        self._call(pipe.execute)
        return count

    def retrieve_by_key(self, collection: CollectionSpec, rows: list[dict]) -> Iterator[dict]:
        """Re-read the keys (``_key``) of ``rows``; of a set, only the members those rows were."""
        kind, template = self._options(collection)
        member_field = collection.options.get("member_field", "member")
        wanted: dict[str, set] = {}
        for row in rows:
            if row.get("_key"):
                wanted.setdefault(row["_key"], set()).add(str(row.get(member_field)))
        keys = sorted(wanted)
        for start in range(0, len(keys), 1000):
            for row in self._rows(collection, kind, template, keys[start : start + 1000]):
                if kind != "set" or str(row.get(member_field)) in wanted[row["_key"]]:
                    yield row

    def close(self) -> None:
        self.client.close()

"""Where the signed chain heads go: pluggable *head stores* outside the database.

The scheduled verification (:mod:`audit.verification`) appends the signed heads of every chain to a
head store after each clean run and reads the last exported heads back to compare them with the
database. Two stores are built in, registered in :data:`head_stores`:

- ``directory`` (default): ``chain-heads-YYYY-MM.jsonl`` files in ``MAMORU_CHAIN_HEADS_DIR``, opened
  in append mode only; every file is read back.
- ``s3``: S3-compatible object storage (AWS S3, MinIO, Wasabi, Sakura/IIJ object storage …). Every
  export is a NEW object, ``<prefix>chain-heads/YYYY/MM/<UTC time>-<sequence>-<random>.jsonl``,
  written with ``If-None-Match: *`` (an existing key is never overwritten) and, when the bucket has
  Object Lock enabled, with a retention date ``MAMORU_CHAIN_HEADS_RETENTION_DAYS`` ahead
  (``MAMORU_CHAIN_HEADS_LOCK_MODE``). Verification reads back the newest objects
  (``read_back``, default 5); the time in an object's key must equal the signed ``exported_at`` of
  its lines, so an old export copied under a newer key is reported, not believed.

``MAMORU_CHAIN_HEADS_URL`` chooses the store: empty (``MAMORU_CHAIN_HEADS_DIR``), ``file:///path``
or ``s3://bucket/prefix?endpoint=https://…&region=…`` (options: ``endpoint``, ``region``,
``addressing`` = auto|path|virtual, ``read_back``, ``conditional`` = true|false). Keys come from the
standard AWS chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, an instance
role), never from the URL. Every failure to reach a store is :class:`HeadStoreUnavailable` (an
``OSError``), which the verification records on its run and alerts like a break.

A store does network or file I/O only: callers must not hold a database transaction around it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

import pydantic
from django.conf import settings
from django.core import checks

from governance.registry import OptionsInvalid, Registry, StrictOptions, UnknownName

logger = logging.getLogger(__name__)


class HeadStoreUnavailable(OSError):
    """The store could not be read or written (network, credentials, permissions, a missing bucket)."""


class HeadStoreMisconfigured(ValueError):
    """``MAMORU_CHAIN_HEADS_URL`` names no store, or options the store does not take."""


@dataclass(frozen=True)
class HeadDocument:
    """One exported document read back: its name, its text, and (objects) the time its key states."""

    name: str
    text: str
    stamp: dt.datetime | None = None


@dataclass(frozen=True)
class HeadWrite:
    """Where an export went, and until when the store keeps it locked (None: no lock)."""

    location: str
    retain_until: dt.datetime | None = None


class HeadStore:
    """Base class: subclass, set ``identifier`` (and ``Options``), register in :data:`head_stores`."""

    identifier = ""
    Options: type[StrictOptions] | None = None

    def __init__(self, **options) -> None:
        self.options = options

    def describe(self) -> str:
        """Where the heads go, for messages (never a credential)."""
        raise NotImplementedError

    def append(self, text: str, *, now: dt.datetime, sequence: int) -> HeadWrite:
        """Store one export (signed JSON lines) without changing anything exported before."""
        raise NotImplementedError

    def documents(self) -> list[HeadDocument]:
        """The exports to compare with, oldest first (the newest line per head key counts)."""
        raise NotImplementedError


head_stores: Registry[HeadStore] = Registry("head store", base=HeadStore)


@head_stores.register
class DirectoryHeadStore(HeadStore):
    """Monthly JSON-lines files in a directory, only ever opened for appending."""

    identifier = "directory"

    class Options(StrictOptions):
        path: str = pydantic.Field(min_length=1)

    @property
    def path(self) -> Path:
        return Path(self.options["path"])

    def describe(self) -> str:
        return str(self.path)

    def append(self, text: str, *, now: dt.datetime, sequence: int) -> HeadWrite:
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / f"chain-heads-{now:%Y-%m}.jsonl"
        # Append only: earlier lines are never rewritten (the directory may be append-only itself).
        with open(target, "a", encoding="utf-8") as out:
            out.write(text)
            out.flush()
        return HeadWrite(str(target))

    def documents(self) -> list[HeadDocument]:
        if not self.path.is_dir():
            return []
        return [HeadDocument(path.name, path.read_text(encoding="utf-8"))
                for path in sorted(self.path.glob("chain-heads-*.jsonl"))]


_KEY_TIME = re.compile(r"(?P<time>\d{8}T\d{6}\.\d{6})Z-(?P<seq>\d+)-[0-9a-f]+\.jsonl")


@head_stores.register
class S3HeadStore(HeadStore):
    """S3-compatible object storage: one new, never overwritten (optionally locked) object per export."""

    identifier = "s3"

    class Options(StrictOptions):
        bucket: str = pydantic.Field(min_length=3, max_length=63)
        prefix: str = ""
        endpoint: str = ""  # empty: AWS's own endpoint for the region
        region: str = ""
        addressing: Literal["auto", "path", "virtual"] = "auto"
        read_back: int = pydantic.Field(default=5, ge=1, le=100)
        conditional: bool = True  # If-None-Match: * on every write (turn off only if the provider refuses it)
        retention_days: int = pydantic.Field(default=0, ge=0, le=36500)
        lock_mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE"

    def __init__(self, **options) -> None:
        super().__init__(**options)
        prefix = options["prefix"].strip("/")
        self.base = f"{prefix}/chain-heads/" if prefix else "chain-heads/"
        self._client = None
        self._lock_enabled: bool | None = None
        self._guard = threading.Lock()

    def describe(self) -> str:
        where = f"s3://{self.options['bucket']}/{self.base}"
        return f"{where} at {self.options['endpoint']}" if self.options["endpoint"] else where

    @property
    def client(self):
        """The boto3 client (created once; boto3 clients are safe to share between threads)."""
        with self._guard:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(
                    connect_timeout=5, read_timeout=20, retries={"max_attempts": 3, "mode": "standard"},
                    s3={"addressing_style": self.options["addressing"]},
                    # S3-compatible providers differ in the newer default checksums; Content-MD5 is universal.
                    request_checksum_calculation="when_required", response_checksum_validation="when_required",
                )
                self._client = boto3.session.Session().client(
                    "s3", endpoint_url=self.options["endpoint"] or None,
                    region_name=self.options["region"] or None, config=config,
                )
            return self._client

    def _failed(self, exc: Exception, action: str) -> HeadStoreUnavailable:
        from botocore.exceptions import ClientError

        if isinstance(exc, ClientError):
            cause = exc.response.get("Error", {}).get("Code") or type(exc).__name__
        else:
            cause = type(exc).__name__
        return HeadStoreUnavailable(f"{action} {self.describe()} failed: {cause}")

    def _call(self, action: str, method: str, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._failed(exc, action) from exc

    def lock_enabled(self) -> bool:
        """Whether the bucket has Object Lock enabled (asked once per store)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._lock_enabled is None:
            try:
                answer = self.client.get_object_lock_configuration(Bucket=self.options["bucket"])
                enabled = answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "")
                if code not in {"ObjectLockConfigurationNotFoundError", "NotImplemented", "AccessDenied"}:
                    raise self._failed(exc, "reading the Object Lock configuration of") from exc
                enabled = False
            except BotoCoreError as exc:
                raise self._failed(exc, "reading the Object Lock configuration of") from exc
            if not enabled:
                logger.warning("chain heads bucket %s has no Object Lock: exports are not retention-locked",
                               self.options["bucket"])
            self._lock_enabled = enabled
        return self._lock_enabled

    def key_for(self, now: dt.datetime, sequence: int) -> str:
        stamp = now.astimezone(dt.UTC)
        return (f"{self.base}{stamp:%Y/%m}/{stamp:%Y%m%dT%H%M%S.%f}Z-{max(sequence, 0):012d}-"
                f"{secrets.token_hex(4)}.jsonl")

    def put_new(self, key: str, body: bytes, *, now: dt.datetime) -> HeadWrite:
        """Write ``body`` under ``key`` only if no object has that key (and lock it when possible)."""
        extra: dict = {"ContentMD5": base64.b64encode(hashlib.md5(body).digest()).decode()}  # noqa: S324 - integrity header S3 requires
        if self.options["conditional"]:
            extra["IfNoneMatch"] = "*"
        retain_until = None
        if self.options["retention_days"] and self.lock_enabled():
            retain_until = now.astimezone(dt.UTC) + dt.timedelta(days=self.options["retention_days"])
            extra.update(ObjectLockMode=self.options["lock_mode"], ObjectLockRetainUntilDate=retain_until)
        self._call("writing to", "put_object", Bucket=self.options["bucket"], Key=key, Body=body,
                   ContentType="application/x-ndjson", **extra)
        return HeadWrite(f"s3://{self.options['bucket']}/{key}", retain_until)

    def append(self, text: str, *, now: dt.datetime, sequence: int) -> HeadWrite:
        return self.put_new(self.key_for(now, sequence), text.encode("utf-8"), now=now)

    def _list(self, prefix: str, *, folders: bool) -> list[str]:
        found: list[str] = []
        token = None
        while True:
            kwargs = {"Bucket": self.options["bucket"], "Prefix": prefix}
            if folders:
                kwargs["Delimiter"] = "/"
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("listing", "list_objects_v2", **kwargs)
            if folders:
                found += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
            else:
                found += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return found
            token = page.get("NextContinuationToken")

    def newest_keys(self) -> list[str]:
        """The keys of the newest ``read_back`` exports, oldest first (month folders, newest first)."""
        wanted = self.options["read_back"]
        keys: list[str] = []
        for year in sorted(self._list(self.base, folders=True), reverse=True):
            for month in sorted(self._list(year, folders=True), reverse=True):
                exports = sorted(k for k in self._list(month, folders=False)
                                 if _KEY_TIME.fullmatch(k.rsplit("/", 1)[-1]))
                keys = exports[-(wanted - len(keys)):] + keys
                if len(keys) >= wanted:
                    return keys
        return keys

    def documents(self) -> list[HeadDocument]:
        documents = []
        for key in self.newest_keys():
            body = self._call("reading", "get_object", Bucket=self.options["bucket"], Key=key)["Body"]
            try:
                text = body.read().decode("utf-8", errors="replace")
            except Exception as exc:  # noqa: BLE001 - a connection cut while reading the body
                raise HeadStoreUnavailable(f"reading {self.describe()} failed: {type(exc).__name__}") from exc
            stamp = dt.datetime.strptime(_KEY_TIME.fullmatch(key.rsplit("/", 1)[-1])["time"],
                                         "%Y%m%dT%H%M%S.%f").replace(tzinfo=dt.UTC)
            documents.append(HeadDocument(key.removeprefix(self.base), text, stamp))
        return documents


# --- the configured store ------------------------------------------------------------------------

_stores: dict[tuple, HeadStore] = {}
_stores_guard = threading.Lock()


def head_store_options(url: str) -> tuple[str, dict]:
    """``(store name, raw options)`` for a ``MAMORU_CHAIN_HEADS_URL`` (empty: the directory setting)."""
    directory = getattr(settings, "MAMORU_CHAIN_HEADS_DIR", "") or str(Path(settings.VAR_DIR) / "chain-heads")
    if not url:
        return "directory", {"path": directory}
    parts = urlsplit(url)
    if parts.scheme == "file":
        return "directory", {"path": unquote(parts.path) or directory}
    if parts.scheme == "s3":
        raw: dict = dict(parse_qsl(parts.query, keep_blank_values=True))
        raw.update(bucket=parts.netloc, prefix=unquote(parts.path).strip("/"))
        raw["retention_days"] = int(getattr(settings, "MAMORU_CHAIN_HEADS_RETENTION_DAYS", 0) or 0)
        raw["lock_mode"] = getattr(settings, "MAMORU_CHAIN_HEADS_LOCK_MODE", "") or "COMPLIANCE"
        return "s3", raw
    return parts.scheme or url, {}


def head_store() -> HeadStore:
    """The store ``MAMORU_CHAIN_HEADS_URL`` configures (one instance per configuration)."""
    url = (getattr(settings, "MAMORU_CHAIN_HEADS_URL", "") or "").strip()
    name, raw = head_store_options(url)
    try:
        cls = head_stores.get(name)
        options = head_stores.options(name, raw)
    except (UnknownName, OptionsInvalid) as exc:
        raise HeadStoreMisconfigured(f"MAMORU_CHAIN_HEADS_URL: {exc}") from None
    cache_key = (name, tuple(sorted(options.items())))
    with _stores_guard:
        store = _stores.get(cache_key)
        if store is None:
            store = _stores[cache_key] = cls(**options)
    return store


@checks.register(checks.Tags.security)
def check_head_store(app_configs, **kwargs):
    """audit.E001: ``MAMORU_CHAIN_HEADS_URL`` must name a store and options it takes (no I/O here)."""
    try:
        head_store()
    except HeadStoreMisconfigured as exc:
        return [checks.Error(str(exc), id="audit.E001",
                             hint="file:///path or s3://bucket/prefix?endpoint=…&region=… (docs/operations.md)")]
    return []

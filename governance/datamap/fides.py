"""Read Fides datasets and SaaS configurations into a Mamoru data map document.

Fides (fideslang) describes a system's data as a *dataset* (collections → fields, nested
``fields``, ``data_categories``, ``fides_meta``) and a SaaS API as a *SaaS config* (connector
params, client auth, endpoints with read/update/delete requests, pagination, rate limits) paired
with a dataset of the same ``fides_key``. :func:`fides_read` turns files of both kinds into the
data map format of docs/datamap.md — so the result is validated, loaded and audited exactly like a
hand-written map — and lists every element that has no home in Mamoru with its path
(file → dataset → collection → field → key). See docs/datamap.md "Importing from Fides".
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from governance.datamap.spec import KEY_RE
from governance.datamap.taxonomy import (
    category_is_known,
    category_is_personal,
    category_is_sensitive,
)

ANGLE = re.compile(r"<([A-Za-z_][A-Za-z0-9_]*)>")
#: SQL-style store types a plain dataset may be imported as (``--store-type``).
DATASET_STORE_TYPES = ("sql", "redis", "mamoru")
_SECRET_NAMES = re.compile(r"(secret|password|token|api_?key|private|credential)", re.I)
_ARRAY = re.compile(r"\[\]$")


@cache
def fides_vocabulary() -> dict:
    """The mapping tables (governance/datamap/fides_taxonomy.yaml)."""
    return yaml.safe_load((Path(__file__).with_name("fides_taxonomy.yaml")).read_text(encoding="utf-8"))


def category_from_fides(code: str) -> str | None:
    """The Mamoru category for a fideslang one; None when it has no counterpart."""
    if category_is_known(code):
        return code
    table = fides_vocabulary()["categories"]
    parts = code.split(".")
    for i in range(len(parts), 1, -1):
        key = ".".join(parts[:i])
        if key in table:
            target = table[key]
            if target is None:
                return None
            candidate = ".".join([target, *parts[i:]])
            return candidate if category_is_known(candidate) else target
    return None


@dataclass
class Element:
    """One Fides element that was not mapped (or mapped with a caveat), with where it is."""

    file: str
    reason: str
    dataset: str = ""
    collection: str = ""
    field: str = ""
    key: str = ""

    @property
    def path(self) -> str:
        return " → ".join(p for p in (self.file, self.dataset, self.collection, self.field, self.key) if p)

    def as_dict(self) -> dict:
        return {**asdict(self), "path": self.path}


@dataclass
class FidesImport:
    """The data map document built from Fides files, and what could not be carried over."""

    stores: dict[str, dict] = field(default_factory=dict)
    unmapped: list[Element] = field(default_factory=list)
    notes: list[Element] = field(default_factory=list)
    special: list[str] = field(default_factory=list)  # store.collection.field holding special categories
    files: list[str] = field(default_factory=list)

    def document(self) -> dict:
        return {"version": 1, "stores": self.stores}

    def yaml(self) -> str:
        return yaml.safe_dump(self.document(), sort_keys=False, allow_unicode=True, width=100)

    def report(self) -> dict:
        return {
            "files": self.files,
            "stores": {k: sorted(s["collections"]) for k, s in self.stores.items()},
            "special_categories": sorted(self.special),
            "unmapped": [e.as_dict() for e in self.unmapped],
            "notes": [e.as_dict() for e in self.notes],
        }


class FidesFileError(Exception):
    """A file that is not YAML, or not a Fides dataset / SaaS config."""


def fides_files(paths: list[str | Path]) -> list[Path]:
    """The YAML files named, directories searched recursively (sorted)."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in {".yml", ".yaml"} and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise FidesFileError(f"{path}: no such file or directory")
    return found


def fides_read(
    paths: list[str | Path], *, store_type: str = "sql", params: dict[str, str] | None = None,
    environ: dict[str, str] | None = None, secrets_from_env: bool = False,
    allow_internal_hosts: bool = False, workspaces: list[str] | None = None,
) -> FidesImport:
    """Read Fides files (see the module docstring) into a :class:`FidesImport`.

    ``params``: values of SaaS ``connector_params`` (non-secret ones: domain, list id, page size);
    secret ones become ``${STORE_PARAM}`` environment references, or — ``secrets_from_env`` —
    their value read from that variable now and kept encrypted in the store's ``secrets``.
    """
    result = FidesImport()
    datasets: list[tuple[str, dict]] = []
    saas: list[tuple[str, dict]] = []
    for path in fides_files(paths):
        name = str(path)
        result.files.append(name)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise FidesFileError(f"{name}: not valid YAML: {exc}") from exc
        if not isinstance(data, dict) or not ({"dataset", "saas_config"} & set(data)):
            raise FidesFileError(f"{name}: not a Fides file (no 'dataset' list or 'saas_config')")
        for key in sorted(set(data) - {"dataset", "saas_config"}):
            result.unmapped.append(Element(name, "not a dataset or SaaS config: not imported", key=str(key)))
        for raw in data.get("dataset") or []:
            datasets.append((name, raw))
        if data.get("saas_config") is not None:
            saas.append((name, data["saas_config"]))
    builder = _Builder(result, params=params or {}, environ=environ, secrets_from_env=secrets_from_env,
                       allow_internal_hosts=allow_internal_hosts, workspaces=workspaces or [])
    saas_keys = {str(cfg.get("fides_key")): (name, cfg) for name, cfg in saas if isinstance(cfg, dict)}
    for name, raw in datasets:
        builder.dataset(name, raw, saas=saas_keys.get(str(raw.get("fides_key"))) if isinstance(raw, dict)
                        else None, store_type=store_type)
    paired = {str(raw.get("fides_key")) for _, raw in datasets if isinstance(raw, dict)}
    for key, (name, _cfg) in saas_keys.items():
        if key not in paired:
            result.unmapped.append(Element(name, "SaaS config without a dataset of the same fides_key: "
                                                 "its endpoints have no fields to map", dataset=key))
    builder.finish()
    return result


class _Builder:
    def __init__(self, result: FidesImport, *, params: dict, environ, secrets_from_env: bool,
                 allow_internal_hosts: bool, workspaces: list[str]):
        self.result = result
        self.params = params
        self.environ = environ
        self.secrets_from_env = secrets_from_env
        self.allow_internal_hosts = allow_internal_hosts
        self.workspaces = workspaces
        self.keys: dict[str, str] = {}  # fides_key -> store key
        self.pending_refs: list[tuple[Element, str, str, str, str]] = []  # (where, store, coll, field, target)
        self.pending_order: list[tuple[Element, str, str, str, list[str]]] = []

    # --- helpers -------------------------------------------------------------------------------

    def lost(self, where: Element, reason: str, **path) -> None:
        self.result.unmapped.append(Element(**{**asdict(where), **path, "reason": reason}))

    def note(self, where: Element, reason: str, **path) -> None:
        self.result.notes.append(Element(**{**asdict(where), **path, "reason": reason}))

    def store_key(self, fides_key: str) -> str:
        if fides_key not in self.keys:
            key = re.sub(r"[^A-Za-z0-9_\-]", "_", fides_key)
            if not key[:1].isalpha():
                key = "f_" + key
            self.keys[fides_key] = key[:63]
        return self.keys[fides_key]

    # --- datasets ------------------------------------------------------------------------------

    def dataset(self, file: str, raw: Any, *, saas: tuple[str, dict] | None, store_type: str) -> None:
        if not isinstance(raw, dict) or not raw.get("fides_key"):
            self.lost(Element(file, ""), "a dataset needs a fides_key: not imported", key="dataset")
            return
        fides_key = str(raw["fides_key"])
        here = Element(file, "", dataset=fides_key)
        key = self.store_key(fides_key)
        store: dict[str, Any] = {"type": "http" if saas else store_type,
                                 "name": str(raw.get("name") or fides_key)}
        if raw.get("description"):
            store["description"] = str(raw["description"])
        if self.workspaces:
            store["workspaces"] = list(self.workspaces)
        for unsupported in ("data_uses", "data_subjects", "data_purposes", "meta", "retention",
                            "data_qualifier", "joint_controller", "third_country_transfers"):
            if raw.get(unsupported):
                self.lost(here, "dataset-level metadata has no place in the data map", key=unsupported)
        default_categories = list(raw.get("data_categories") or [])
        meta = raw.get("fides_meta") or raw.get("fidesops_meta") or {}
        dataset_after = []
        options: dict[str, Any] = {}
        for mkey, value in meta.items():
            if mkey == "after":
                dataset_after = [str(v) for v in value or []]
            elif mkey == "namespace" and isinstance(value, dict) and store["type"] == "sql":
                if value.get("schema"):
                    options["schema"] = str(value["schema"])
                for other in sorted(set(value) - {"schema"}):
                    self.lost(here, "namespace key other than schema (the connection URL names the "
                                    "database)", key=f"fides_meta.namespace.{other}")
            else:
                self.lost(here, "dataset fides_meta key not supported", key=f"fides_meta.{mkey}")
        if not saas:
            store["connection"] = {"url": f"${{{key.upper().replace('-', '_')}_DATABASE_URL}}"}
        collections: dict[str, dict] = {}
        for craw in raw.get("collections") or []:
            cname = str(craw.get("name") or "") if isinstance(craw, dict) else ""
            if not cname:
                self.lost(here, "a collection needs a name: not imported", key="collections")
                continue
            coll = self.collection(here, key, craw, default_categories, options)
            if coll is not None:
                collections[cname] = coll
                if dataset_after:
                    targets = [f"{self.store_key(d)}.*" for d in dataset_after]
                    self.pending_order.append((Element(file, "", fides_key, cname), key, cname, "after",
                                               targets))
        if saas:
            from governance.datamap.fides_saas import saas_apply

            saas_apply(self, store, collections, key, saas[0], saas[1])
        store["collections"] = collections
        if not collections:
            self.lost(here, "no collection could be imported: store not created")
            return
        self.result.stores[key] = store

    def collection(self, here: Element, store_key: str, raw: dict, default_categories: list,
                   options: dict) -> dict | None:
        cname = str(raw["name"])
        where = Element(here.file, "", here.dataset, cname)
        meta = raw.get("fides_meta") or raw.get("fidesops_meta") or {}
        if meta.get("skip_processing"):
            self.lost(where, "skip_processing: Fides leaves this collection out of requests; not imported",
                      key="fides_meta.skip_processing")
            return None
        if not KEY_RE.match(cname):
            self.lost(where, "collection names are letters, digits, '_' or '-': not imported")
            return None
        coll: dict[str, Any] = {}
        if raw.get("description"):
            coll["description"] = str(raw["description"])
        if options:
            coll["options"] = dict(options)
        categories = list(raw.get("data_categories") or []) or default_categories
        for unsupported in ("data_uses", "data_subjects", "data_purposes", "retention", "data_qualifier"):
            if raw.get(unsupported):
                self.lost(where, "collection-level metadata has no place in the data map", key=unsupported)
        delete_rows = False
        for mkey, value in meta.items():
            if mkey in {"after", "erase_after"}:
                targets = [str(v) for v in (value or [])]
                self.pending_order.append((where, store_key, cname, mkey, targets))
            elif mkey == "masking_strategy_override":
                if (value or {}).get("strategy") == "delete":
                    delete_rows = True
                else:
                    self.lost(where, "collection masking override other than delete", key=f"fides_meta.{mkey}")
            elif mkey == "skip_processing":
                continue
            else:
                self.lost(where, "collection fides_meta key not supported", key=f"fides_meta.{mkey}")
        fields: dict[str, dict] = {}
        for fraw in raw.get("fields") or []:
            self.field(where, store_key, cname, fraw, categories, fields, delete_rows=delete_rows)
        if not fields:
            self.lost(where, "no fields: collection not imported")
            return None
        coll["fields"] = fields
        return coll

    def field(self, where: Element, store_key: str, cname: str, raw: Any, inherited: list,
              fields: dict, *, delete_rows: bool) -> None:
        if not isinstance(raw, dict) or not raw.get("name"):
            self.lost(where, "a field needs a name: not imported", key="fields")
            return
        fname = str(raw["name"])
        here = Element(where.file, "", where.dataset, where.collection, fname)
        meta = raw.get("fides_meta") or raw.get("fidesops_meta") or {}
        out: dict[str, Any] = {}
        if raw.get("description"):
            out["description"] = str(raw["description"])
        for unsupported in ("data_uses", "data_subjects", "data_purposes", "retention", "data_qualifier"):
            if raw.get(unsupported):
                self.lost(here, "field-level metadata has no place in the data map", key=unsupported)
        # Nested fields: Mamoru reads and erases the top-level value (a JSON column, a document
        # attribute) as one field; the nested paths and their categories are kept in its description.
        nested = list(_nested_fields(raw))
        categories = list(raw.get("data_categories") or [])
        for path, sub in nested:
            categories += [c for c in sub.get("data_categories") or [] if c not in categories]
            smeta = sub.get("fides_meta") or sub.get("fidesops_meta") or {}
            for skey in ("identity", "references", "primary_key"):
                if smeta.get(skey):
                    self.lost(here, f"{skey} on a nested field: Mamoru searches and keys top-level "
                                    "fields only", field=f"{fname}.{path}", key=f"fides_meta.{skey}")
            for skey in sorted(set(smeta) - {"identity", "references", "primary_key", "data_type", "length",
                                             "return_all_elements", "read_only"}):
                self.lost(here, "nested field fides_meta key not supported", field=f"{fname}.{path}",
                          key=f"fides_meta.{skey}")
        if nested:
            listing = ", ".join(f"{fname}.{p} ({', '.join(s.get('data_categories') or []) or '-'})"
                                for p, s in nested)
            out["description"] = (out.get("description", "") + " " if out.get("description") else "") + \
                f"Nested fields (imported from Fides; erased as one value): {listing}"
            self.note(here, f"{len(nested)} nested field(s) folded into the top-level field")
        categories = categories or list(inherited)
        mapped: list[str] = []
        for code in categories:
            target = category_from_fides(str(code))
            if target is None:
                self.lost(here, f"data category {code!r} has no Mamoru counterpart", key="data_categories")
            elif target not in mapped:
                mapped.append(target)
        if mapped:
            chosen = sorted(mapped, key=lambda c: (not category_is_sensitive(c), not category_is_personal(c),
                                                   mapped.index(c)))[0]
            out["category"] = chosen
            if len(mapped) > 1:
                self.note(here, f"several categories ({', '.join(mapped)}): the field keeps {chosen}; the "
                                "others are in its description")
                out["description"] = (out.get("description", "") + " " if out.get("description") else "") + \
                    f"Also: {', '.join(c for c in mapped if c != chosen)}."
            if any(category_is_sensitive(c) for c in mapped):
                self.result.special.append(f"{self.store_key(where.dataset)}.{cname}.{fname}")
        data_type = str(meta.get("data_type") or "")
        vocabulary = fides_vocabulary()
        for mkey, value in meta.items():
            if mkey == "primary_key":
                if value:
                    out["primary_key"] = True
            elif mkey == "identity":
                kind = vocabulary["identities"].get(str(value))
                if kind is None:
                    self.lost(here, f"identity {value!r} is not one Mamoru resolves "
                                    "(email, phone, customer_id, browser_id)", key="fides_meta.identity")
                elif _ARRAY.search(data_type):
                    self.lost(here, "identity on an array field: Mamoru compares whole values",
                              key="fides_meta.identity")
                else:
                    out["identity"] = kind
                    if kind == "customer_id":
                        out["namespace"] = self.store_key(where.dataset)
            elif mkey == "references":
                for ref in value or []:
                    self.reference(here, store_key, cname, fname, ref)
            elif mkey == "masking_strategy_override":
                strategy = vocabulary["masking"].get(str((value or {}).get("strategy")))
                config = dict((value or {}).get("configuration") or {})
                if strategy is None:
                    self.lost(here, f"masking strategy {(value or {}).get('strategy')!r} has no Mamoru "
                                    "counterpart", key="fides_meta.masking_strategy_override")
                    continue
                out["strategy"] = strategy
                if strategy == "random_rewrite" and config.get("length"):
                    out.setdefault("strategy_options", {})["length"] = int(config.pop("length"))
                for ckey in sorted(config):
                    self.lost(here, f"masking option {ckey!r} has no Mamoru counterpart",
                              key=f"fides_meta.masking_strategy_override.configuration.{ckey}")
            elif mkey == "length":
                # Strategies fit their output to the column; for hash/random text it is an option.
                out["_length"] = int(value)
            elif mkey == "data_type":
                continue  # SQL stores are introspected when the map loads; arrays/objects noted above
            elif mkey == "return_all_elements":
                if value:
                    self.note(here, "return_all_elements: Mamoru always returns the whole value",
                              key="fides_meta.return_all_elements")
            elif mkey == "read_only":
                if value:
                    out["_read_only"] = True
            else:
                self.lost(here, "field fides_meta key not supported", key=f"fides_meta.{mkey}")
        length = out.pop("_length", None)
        if out.pop("_read_only", False) and category_is_personal(out.get("category", "")) and \
                not out.get("primary_key"):
            out["strategy"] = "retain"
            out["legal_basis"] = "read-only in the source system (imported from Fides: read_only)"
            self.note(here, "read_only: kept unchanged at erasure (strategy retain)", key="fides_meta.read_only")
        if delete_rows and category_is_personal(out.get("category", "")) and not out.get("primary_key") \
                and not out.get("strategy"):
            out["strategy"] = "delete_row"
        if length and out.get("strategy") in {"hash", "hmac", "random_rewrite"}:
            options = out.setdefault("strategy_options", {})
            options.setdefault("length", min(length, 64) if out["strategy"] != "random_rewrite" else length)
        if fname in fields:
            self.lost(here, "field listed twice: the second one is not imported")
            return
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_\-]*", fname):
            self.note(here, "field name is not a plain identifier: check the store spells it the same way")
        fields[fname] = out

    def reference(self, here: Element, store_key: str, cname: str, fname: str, ref: Any) -> None:
        if not isinstance(ref, dict) or not ref.get("dataset") or not ref.get("field"):
            self.lost(here, "a reference needs dataset and field", key="fides_meta.references")
            return
        target = f"{ref['dataset']}.{ref['field']}"
        direction = ref.get("direction")
        if "." not in str(ref["field"]) or str(ref["field"]).count(".") > 1:
            self.lost(here, f"reference {target!r}: nested fields cannot be referenced",
                      key="fides_meta.references")
            return
        if direction == "to":
            # The other field holds this one's values: the reference is written on the other side.
            other_coll, other_field = str(ref["field"]).split(".")
            self.pending_refs.append((here, self.store_key(str(ref["dataset"])), other_coll, other_field,
                                      f"{store_key}.{cname}.{fname}"))
        else:
            if direction not in (None, "from"):
                self.lost(here, f"reference direction {direction!r} unknown", key="fides_meta.references")
                return
            if direction is None:
                self.note(here, f"reference {target!r} without direction: read as 'from' (this field "
                                "holds the other's values)", key="fides_meta.references")
            coll, fld = str(ref["field"]).split(".")
            self.pending_refs.append((here, store_key, cname, fname, f"{self.store_key(str(ref['dataset']))}"
                                                                       f".{coll}.{fld}"))

    # --- cross-dataset links, resolved once every file is read ----------------------------------

    def finish(self) -> None:
        stores = self.result.stores
        for here, skey, coll, fld, target in self.pending_refs:
            tstore, tcoll, tfield = target.split(".")
            holder = stores.get(skey, {}).get("collections", {}).get(coll, {}).get("fields", {}).get(fld)
            exists = tfield in stores.get(tstore, {}).get("collections", {}).get(tcoll, {}).get("fields", {})
            if holder is None or not exists:
                missing = target if holder is not None else f"{skey}.{coll}.{fld}"
                self.lost(here, f"reference to {missing}, which is not among the imported fields",
                          key="fides_meta.references")
                continue
            refs = holder.setdefault("references", [])
            if target not in refs:
                refs.append(target)
        for here, skey, coll, kind, targets in self.pending_order:
            collection = stores.get(skey, {}).get("collections", {}).get(coll)
            if collection is None:
                continue
            resolved = []
            for target in targets:
                if target.endswith(".*"):
                    tstore = target[:-2]
                    if tstore in stores:
                        resolved += [f"{tstore}.{c}" for c in stores[tstore]["collections"]]
                    else:
                        self.lost(here, f"{kind}: dataset {tstore} is not imported", key=f"fides_meta.{kind}")
                    continue
                parts = target.split(".")
                address = f"{self.store_key(parts[0])}.{parts[-1]}" if len(parts) == 2 else ""
                tstore, _, tcoll = address.partition(".")
                if address and tcoll in stores.get(tstore, {}).get("collections", {}):
                    resolved.append(address)
                else:
                    self.lost(here, f"{kind}: {target} is not an imported collection", key=f"fides_meta.{kind}")
            for address in resolved:
                if address != f"{skey}.{coll}" and address not in collection.setdefault(kind, []):
                    collection[kind].append(address)
            if not collection.get(kind):
                collection.pop(kind, None)


def _nested_fields(raw: dict, prefix: str = ""):
    for sub in raw.get("fields") or []:
        if isinstance(sub, dict) and sub.get("name"):
            path = f"{prefix}{sub['name']}"
            yield path, sub
            yield from _nested_fields(sub, prefix=f"{path}.")


def is_secret_param(name: str, spec: dict | None) -> bool:
    """A connector param that holds a credential: marked ``sensitive`` or named like one."""
    return bool((spec or {}).get("sensitive")) or bool(_SECRET_NAMES.search(name))


def angle_to_braces(text: str, names: dict[str, str]) -> str:
    """``<name>`` → ``{mapped}`` for the names given (others are left as written)."""
    return ANGLE.sub(lambda m: "{" + names[m.group(1)] + "}" if m.group(1) in names else m.group(0), text)


def datamap_import_fides(
    *, paths: list[str | Path], dry_run: bool = False, actor=None, offline: bool = False,
    strict: bool = False, **read_options,
) -> tuple[FidesImport, list]:
    """Import Fides files into the data map: (what was read, the warnings of the load).

    The document built by :func:`fides_read` is validated and loaded like any data map
    (``datamap_load_report``: every problem at once, the stores it defines replaced in one
    transaction, each change in the audit chain). ``dry_run`` validates the same way and writes
    nothing. Raises :class:`~governance.datamap.spec.DataMapInvalid` when the result is not valid.
    """
    from governance.datamap.schema import datamap_schema_notes
    from governance.datamap.services import datamap_load_report
    from governance.datamap.spec import DataMapInvalid, Problem, datamap_read

    result = fides_read(paths, **read_options)
    filename = "import_fides:" + ",".join(result.files)
    if not result.stores:
        raise DataMapInvalid(filename[:500], [Problem("(document)", "nothing could be imported")])
    text = result.yaml()
    if dry_run:
        specs, problems = datamap_read(text, filename=filename)
        warnings = []
        if not offline and not problems:
            for item in datamap_schema_notes(specs, strict=strict):
                entry = Problem(".".join(map(str, item.path)), item.message, None, item.severity)
                (problems if item.severity == "error" else warnings).append(entry)
        if problems:
            raise DataMapInvalid(filename[:500], problems)
        return result, warnings
    load = datamap_load_report(text=text, filename=filename[:500], actor=actor, offline=offline, strict=strict)
    return result, load.warnings

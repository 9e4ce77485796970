"""Scan text and structured records for personal data.

The fast path for records (see docs/pii.md, "How a record is scanned"):

1. numbers and booleans short-circuit (unless the field name says phone, card, ...);
2. the field name is evidence: it selects and boosts recognizers and can name a value outright;
3. short values get pattern recognizers only, and only those whose cheap trigger fires;
4. free text (and name-like values in unknown fields) get the full NLP pass, batched through
   ``nlp.pipe``;
5. repeated values are analysed once (cache keyed by a hash, never by the value).

A ``Finding`` holds entity type, field path, score, recognizer and offsets — never the value.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from django.utils.translation import gettext_lazy as _
from presidio_analyzer import RecognizerResult
from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig

from governance.api.errors import DomainError
from governance.pii.engine import Engine, engine_get, score_threshold
from governance.pii.fields import FREE_TEXT, field_hint
from governance.pii.recognizers.base import digit_count, normalize

FIELD_EVIDENCE = "FieldNameEvidence"
FIELD_BOOST = 0.4
NER_RECOGNIZER = "SpacyRecognizer"
# Entities that may hide in a number column: a phone stored as an integer, a card as bigint.
NUMERIC_HINTS = frozenset(
    {"PHONE_NUMBER", "CREDIT_CARD", "JP_MY_NUMBER", "JP_CORPORATE_NUMBER", "JP_POSTAL_CODE", "US_SSN"}
)
_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_NAME_LIKE_EN = re.compile(r"^[A-Z][a-z'\-]+(?:\s+[A-Z][A-Za-z'\-\.]+){1,3}$")
_HAS_LETTER = re.compile(r"[^\W\d_]")
# Placeholders that fill name and address columns without being anyone's name or address.
_PLACEHOLDERS = frozenset(
    {"n/a", "na", "none", "null", "nil", "unknown", "tbd", "test", "なし", "不明", "未定"}
)
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_CAPITALISED = re.compile(r"^[\"'(]?[A-Z][a-z]")


def english_ner_wanted(text: str) -> bool:
    """Could English NER find a name or place here? Only when a capitalised word stands inside a
    sentence, or two stand together ("Alice Brown wrote"); lower-case-only text is skipped."""
    for sentence in _SENTENCE_SPLIT.split(text):
        words = sentence.split()
        flags = [bool(_CAPITALISED.match(word)) for word in words]
        if any(flags[1:]):
            return True
    return False


class ScanError(DomainError):
    code = "scan_invalid"
    title = _("The scan request is not valid.")


class Finding(NamedTuple):
    """One piece of personal data found: where and what, never the value itself."""

    entity_type: str
    field_path: str
    score: float
    recognizer: str
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        data = self._asdict()
        data["score"] = round(self.score, 3)
        return data


# (entity, start, end, score, recognizer) — what the cache keeps per analysed value.
Hit = tuple[str, int, int, float, str]


@dataclass
class _Leaf:
    record: int
    path: str
    key: str | None
    value: str
    hint: str | None
    language: str
    route: str  # "pattern" or "nlp"
    cache_key: tuple


def _resolve_overlaps(hits: list[Hit], hint: str | None = None) -> list[Hit]:
    """Keep the strongest of overlapping hits; what the field name says wins, and exact
    patterns beat NER guesses at equal score."""

    def rank(hit: Hit) -> tuple[float, int]:
        bonus = (1.0 if hit[0] == hint else 0.0) + (0.0 if hit[4] == NER_RECOGNIZER else 0.2)
        return (hit[3] + bonus, hit[2] - hit[1])

    ranked = sorted(hits, key=rank, reverse=True)
    kept: list[Hit] = []
    for hit in ranked:
        if all(hit[2] <= other[1] or hit[1] >= other[2] for other in kept):
            kept.append(hit)
    return sorted(kept, key=lambda h: (h[1], h[2]))


def _to_hits(results: Iterable[RecognizerResult]) -> list[Hit]:
    hits = []
    for result in results:
        meta = result.recognition_metadata or {}
        name = meta.get(RecognizerResult.RECOGNIZER_NAME_KEY) or "unknown"
        hits.append((result.entity_type, result.start, result.end, float(result.score), name))
    return hits


class Scanner:
    """Long-lived scanner around the shared engine. Thread-safe; one per process is enough."""

    def __init__(self, engine: Engine | None = None, *, threshold: float | None = None,
                 cache_size: int = 100_000):
        self.engine = engine or engine_get()
        self.threshold = score_threshold() if threshold is None else threshold
        self.cache_size = cache_size
        self._cache: dict[tuple, tuple[Hit, ...]] = {}
        self._cache_lock = threading.Lock()
        self._anonymizer = AnonymizerEngine()
        self._pattern_specs = [s for s in self.engine.specs if not s.needs_nlp and not s.expensive]
        self._expensive_specs = [s for s in self.engine.specs if not s.needs_nlp and s.expensive]
        self.stats = {"values": 0, "cache_hits": 0, "nlp": 0, "pattern": 0, "skipped": 0}

    # --- language -------------------------------------------------------------------------
    def language_for(self, text: str, language: str) -> str:
        if language != "auto":
            if language not in self.engine.languages:
                raise ScanError(
                    f"Unsupported language {language!r}; use one of: auto, "
                    + ", ".join(self.engine.languages), code="unsupported_language",
                )
            return language
        if "ja" in self.engine.languages and _JAPANESE.search(text):
            return "ja"
        return "en" if "en" in self.engine.languages else self.engine.languages[0]

    # --- analysis primitives ----------------------------------------------------------------
    def _pattern_hits(self, text: str, language: str, hint: str | None) -> list[Hit]:
        hits: list[Hit] = []
        for spec in self._pattern_specs:
            if not spec.trigger(text):
                continue
            recognizer = self.engine.instances.get((language, spec.identifier))
            if recognizer is not None:
                hits.extend(_to_hits(recognizer.analyze(text, list(spec.entities), None)))
        return hits + self._expensive_hits(text, language, hint, hits, None)

    def _expensive_hits(self, text: str, language: str, hint: str | None, hits: list[Hit],
                        artifacts) -> list[Hit]:
        found: list[Hit] = []
        for spec in self._expensive_specs:
            if not spec.trigger(text) or not (hint in spec.entities or spec.wanted(text)):
                continue
            if artifacts is None and any(
                hit[0] in spec.entities and hit[3] >= self.threshold for hit in hits
            ):
                continue  # a cheap recognizer already found it in this short value
            recognizer = self.engine.instances.get((language, spec.identifier))
            if recognizer is None:
                continue
            results = recognizer.analyze(text, list(spec.entities), artifacts)
            if artifacts is not None and results:
                results = self.engine.analyzer.context_aware_enhancer.enhance_using_context(
                    text=text, raw_results=results, nlp_artifacts=artifacts,
                    recognizers=[recognizer],
                )
            found.extend(_to_hits(results))
        return found

    def _nlp_hits(self, texts: list[str], language: str) -> list[list[Hit]]:
        if language not in self.engine.nlp_languages:
            return [self._pattern_hits(text, language, None) for text in texts]
        ner = self.engine.instances.get((language, "spacy_ner"))
        enhancer = self.engine.analyzer.context_aware_enhancer
        out = []
        batches = self.engine.nlp_engine.process_batch(texts, language=language, batch_size=128)
        for text, artifacts in batches:
            # What AnalyzerEngine.analyze does, minus the recognizers whose trigger says the
            # text cannot hold their entity (most free text has no '@' and few digits).
            results = []
            used = []
            for spec in self._pattern_specs:
                if spec.trigger(text):
                    recognizer = self.engine.instances.get((language, spec.identifier))
                    if recognizer is not None:
                        results.extend(recognizer.analyze(text, list(spec.entities), artifacts))
                        used.append(recognizer)
            if ner is not None:
                results.extend(ner.analyze(text, list(ner.supported_entities), artifacts))
                used.append(ner)
            if results:
                results = enhancer.enhance_using_context(
                    text=text, raw_results=results, nlp_artifacts=artifacts, recognizers=used
                )
            hits = _to_hits(results)
            out.append(hits + self._expensive_hits(text, language, FREE_TEXT, hits, artifacts))
        return out

    def _finish(self, hits: list[Hit], value: str, hint: str | None) -> tuple[Hit, ...]:
        """Apply field-name evidence, resolve overlaps and apply the threshold."""
        if hint and hint != FREE_TEXT:
            hits = [
                (e, s, t, min(1.0, score + FIELD_BOOST) if e == hint else score, r)
                for e, s, t, score, r in hits
            ]
            if hint in ("PERSON", "LOCATION") and not any(h[0] == hint and h[3] >= self.threshold for h in hits):
                evidence = self._field_evidence(value, hint)
                if evidence:
                    hits.append(evidence)
        hits = [h for h in hits if h[3] >= self.threshold]
        return tuple(_resolve_overlaps(hits, hint))

    @staticmethod
    def _field_evidence(value: str, hint: str) -> Hit | None:
        stripped = value.strip()
        if not stripped or not _HAS_LETTER.search(stripped) or "@" in stripped:
            return None
        if (len(stripped) < 2 and stripped.isascii()) or stripped.lower() in _PLACEHOLDERS:
            return None
        start = value.index(stripped[0])
        end = start + len(stripped)
        if hint == "PERSON":
            if digit_count(stripped) or len(stripped) > 80 or len(stripped.split()) > 6:
                return None
            return ("PERSON", start, end, 0.75, FIELD_EVIDENCE)
        if len(stripped) > 200:
            return None
        return ("LOCATION", start, end, 0.7, FIELD_EVIDENCE)

    # --- caching --------------------------------------------------------------------------
    @staticmethod
    def _key(route: str, language: str, hint: str | None, value: str) -> tuple:
        digest = hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return (route, language, hint, digest)

    def _cache_get(self, key: tuple) -> tuple[Hit, ...] | None:
        return self._cache.get(key)

    def _cache_put(self, key: tuple, hits: tuple[Hit, ...]) -> None:
        with self._cache_lock:
            if len(self._cache) >= self.cache_size:
                self._cache.clear()  # bounded; cheaper than LRU bookkeeping on the hot path
            self._cache[key] = hits

    def cache_clear(self) -> None:
        with self._cache_lock:
            self._cache.clear()

    # --- routing --------------------------------------------------------------------------
    def _route(self, value: str, hint: str | None, language: str) -> str:
        if hint == FREE_TEXT:
            return "nlp"
        if hint is not None:
            return "pattern"
        if language == "ja":
            # Japanese has no spaces: long text or a short all-kanji/kana value (a name?) gets NER.
            if len(value) >= 12 or (2 <= len(value) <= 12 and not digit_count(value)):
                return "nlp"
            return "pattern"
        if len(value) >= 30 and " " in value:
            return "nlp"
        if len(value) <= 40 and _NAME_LIKE_EN.match(value.strip()):
            return "nlp"
        return "pattern"

    def _leaves(self, record: Any, path: str, key: str | None) -> Iterator[tuple[str, str | None, Any]]:
        if isinstance(record, Mapping):
            for child_key, child in record.items():
                child_path = f"{path}.{child_key}" if path else str(child_key)
                yield from self._leaves(child, child_path, str(child_key))
        elif isinstance(record, list | tuple):
            for index, child in enumerate(record):
                yield from self._leaves(child, f"{path}[{index}]", key)
        else:
            yield path, key, record

    # --- public API -----------------------------------------------------------------------
    def scan_records(
        self, records: Sequence[Mapping[str, Any]], *, language: str = "auto"
    ) -> list[list[Finding]]:
        """Return the findings of each record (field paths like ``address.city``, ``items[0].note``)."""
        leaves: list[_Leaf] = []
        for index, record in enumerate(records):
            for path, key, value in self._leaves(record, "", None):
                leaf = self._leaf(index, path, key, value, language)
                if leaf is not None:
                    leaves.append(leaf)
        return self._run(leaves, len(records))

    def scan_texts(self, texts: Sequence[str], *, language: str = "auto") -> list[list[Finding]]:
        """Return the findings of each text; every text gets the full NLP pass."""
        leaves = []
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                continue
            normalized = normalize(text)
            lang = self.language_for(normalized, language)
            leaves.append(
                _Leaf(index, "", None, normalized, FREE_TEXT, lang, "nlp",
                      self._key("nlp", lang, FREE_TEXT, normalized))
            )
        return self._run(leaves, len(texts))

    def scan_text(self, text: str, *, language: str = "auto") -> list[Finding]:
        return self.scan_texts([text], language=language)[0]

    def _leaf(self, index: int, path: str, key: str | None, value: Any, language: str) -> _Leaf | None:
        self.stats["values"] += 1
        hint = field_hint(key)
        if value is None or isinstance(value, bool) or isinstance(value, float):
            self.stats["skipped"] += 1
            return None
        if isinstance(value, int):
            if hint not in NUMERIC_HINTS:
                self.stats["skipped"] += 1
                return None
            value = str(value)
        if not isinstance(value, str):
            self.stats["skipped"] += 1
            return None
        if not value.strip():
            self.stats["skipped"] += 1
            return None
        normalized = normalize(value)
        lang = self.language_for(normalized, language)
        route = self._route(normalized, hint, lang)
        return _Leaf(index, path, key, normalized, hint, lang, route,
                     self._key(route, lang, hint, normalized))

    def _run(self, leaves: list[_Leaf], count: int) -> list[list[Finding]]:
        results: dict[int, tuple[Hit, ...]] = {}
        pending_nlp: dict[str, dict[tuple, tuple[str, str | None]]] = {}
        for position, leaf in enumerate(leaves):
            cached = self._cache_get(leaf.cache_key)
            if cached is not None:
                self.stats["cache_hits"] += 1
                results[position] = cached
                continue
            if leaf.route == "pattern" or (
                leaf.language == "en" and not english_ner_wanted(leaf.value)
            ):
                self.stats["pattern"] += 1
                hits = self._finish(self._pattern_hits(leaf.value, leaf.language, leaf.hint),
                                    leaf.value, leaf.hint)
                self._cache_put(leaf.cache_key, hits)
                results[position] = hits
            else:
                pending_nlp.setdefault(leaf.language, {})[leaf.cache_key] = (leaf.value, leaf.hint)
        for lang, by_key in pending_nlp.items():
            keys = list(by_key)
            texts = [by_key[k][0] for k in keys]
            self.stats["nlp"] += len(texts)
            for cache_key, text, hits in zip(keys, texts, self._nlp_hits(texts, lang), strict=True):
                self._cache_put(cache_key, self._finish(hits, text, by_key[cache_key][1]))
        out: list[list[Finding]] = [[] for _ in range(count)]
        for position, leaf in enumerate(leaves):
            hits = results.get(position)
            if hits is None:
                hits = self._cache_get(leaf.cache_key) or ()
            out[leaf.record].extend(
                Finding(entity, leaf.path, score, recognizer, start, end)
                for entity, start, end, score, recognizer in hits
            )
        return out

    # --- redaction ------------------------------------------------------------------------
    def redact_text(self, text: str, findings: Sequence[Finding]) -> str:
        """Return ``text`` with every finding replaced by ``<ENTITY_TYPE>``."""
        if not findings:
            return text
        results = [RecognizerResult(f.entity_type, f.start, f.end, f.score) for f in findings]
        redacted = self._anonymizer.anonymize(
            text=text, analyzer_results=results,
            operators={"DEFAULT": OperatorConfig("replace", {})},
        )
        return redacted.text

    def redact_record(self, record: Any, findings: Sequence[Finding]) -> Any:
        """Return a copy of ``record`` with found values replaced (structure kept)."""
        by_path: dict[str, list[Finding]] = {}
        for finding in findings:
            by_path.setdefault(finding.field_path, []).append(finding)
        return self._redact(record, "", by_path)

    def _redact(self, node: Any, path: str, by_path: dict[str, list[Finding]]) -> Any:
        if isinstance(node, Mapping):
            return {
                k: self._redact(v, f"{path}.{k}" if path else str(k), by_path) for k, v in node.items()
            }
        if isinstance(node, list | tuple):
            return [self._redact(v, f"{path}[{i}]", by_path) for i, v in enumerate(node)]
        found = by_path.get(path)
        if not found:
            return node
        if isinstance(node, str):
            return self.redact_text(node, found)
        return f"<{found[0].entity_type}>"


_scanner: Scanner | None = None
_scanner_lock = threading.Lock()


def scanner_get() -> Scanner:
    """Return the process's scanner (loads the models on first use)."""
    global _scanner
    if _scanner is None:
        with _scanner_lock:
            if _scanner is None:
                _scanner = Scanner()
    return _scanner


def scanner_reset() -> None:
    global _scanner
    with _scanner_lock:
        _scanner = None

"""The fast masker for free text staff type (reasons, notes): the pattern recognizers only.

Registered into the audit kernel (:func:`audit.freetext.freetext_masker_register`) from
``PiiConfig.ready()``. It runs every registered recognizer that needs no language model (e-mail,
phone numbers, cards, My Number, postal codes, SSN, IP addresses, …) on the text, without loading
spaCy: well under a millisecond for a reason, so an admin action or API call never waits for the
full scanner. E-mail addresses and phone numbers are found first by :func:`governance.textpii.pii_spans`
on the folded text (NFKC, zero-width and bidi controls removed): internationalised local parts
(``stanisław.wójcik@wp.pl``), quoted local parts, IDN domains (``taro@例え.jp``) and full-width
digits, always the whole address; they win over a recognizer's overlapping (partial) finding. Names without any pattern (a bare "Sato Hanako") need the NLP scanner and are not
masked here; the full text is encrypted either way only when something was masked.
"""

from __future__ import annotations

import re
import threading

from governance.pii.engine import score_threshold
from governance.pii.recognizers import BaseRecognizerSpec, recognizers_selected
from governance.pii.recognizers.base import normalize
from governance.textpii import pii_spans

_JAPANESE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff]")
_lock = threading.Lock()
_built: dict[str, list[tuple[BaseRecognizerSpec, object]]] = {}


def _recognizers(language: str) -> list[tuple[BaseRecognizerSpec, object]]:
    if language not in _built:
        with _lock:
            if language not in _built:
                from django.conf import settings

                specs = recognizers_selected(getattr(settings, "MAMORU_PII_RECOGNIZERS", None))
                _built[language] = [(spec, spec.create(language)) for spec in specs if not spec.needs_nlp]
    return _built[language]


def freetext_mask_patterns(text: str) -> str:
    """``text`` with every pattern finding at or above the score threshold replaced by ``<TYPE>``."""
    if not text or not text.strip():
        return text
    normalized = normalize(text)
    language = "ja" if _JAPANESE.search(normalized) else "en"
    threshold = score_threshold()
    # offsets of both are in ``text``: normalize() keeps the length
    hits: list[tuple[int, int, float, str]] = [(start, end, 2.0, entity) for start, end, entity in pii_spans(text)]
    for spec, recognizer in _recognizers(language):
        if not spec.trigger(normalized):
            continue
        for result in recognizer.analyze(normalized, list(spec.entities), None):
            if result.score >= threshold:
                hits.append((result.start, result.end, result.score, result.entity_type))
    if not hits:
        return text
    kept: list[tuple[int, int, float, str]] = []
    for hit in sorted(hits, key=lambda h: (h[2], h[1] - h[0]), reverse=True):
        if all(hit[1] <= other[0] or hit[0] >= other[1] for other in kept):
            kept.append(hit)
    out, last = [], 0
    for start, end, _score, entity in sorted(kept):
        out.append(text[last:start])
        out.append(f"<{entity}>")
        last = end
    out.append(text[last:])
    return "".join(out)

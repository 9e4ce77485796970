"""Shared pieces for Mamoru's pattern recognizers: text normalisation and context boosting."""

from __future__ import annotations

import re
from functools import lru_cache

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult

# One character in, one character out, so that offsets found in the normalised text are valid in
# the original: full-width ASCII (ＡＢＣ０１２＠－) and the dash look-alikes used in Japanese text.
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}
_DASHES = {ord(ch): "-" for ch in "‐‑‒–—―−﹣"}
_SPACES = {0x3000: " "}
NORMALIZE_TABLE = {**_FULLWIDTH, **_DASHES, **_SPACES}


def normalize(text: str) -> str:
    """Return ``text`` with full-width ASCII and dash variants folded, same length."""
    return text.translate(NORMALIZE_TABLE)


DIGIT_RE = re.compile(r"\d")


@lru_cache(maxsize=8)  # triggers ask about the same value one after the other
def digit_count(value: str) -> int:
    return len(DIGIT_RE.findall(value))


class ContextPatternRecognizer(PatternRecognizer):
    """A pattern recognizer with a validity check and substring context words.

    Presidio's context enhancer needs NLP tokens and lemmas; Japanese has no spaces and the
    pattern-only path has no tokens, so context words are looked up as substrings in a window
    before (and a shorter one after) the match. ``check`` drops invalid matches (check digits,
    Luhn) without inflating the score of valid ones: a valid check digit alone is weak evidence.
    """

    CONTEXT_WORDS: tuple[str, ...] = ()
    CONTEXT_BEFORE = 24
    CONTEXT_AFTER = 8
    CONTEXT_BOOST = 0.4

    def __init__(self, *, entity: str, patterns: list[Pattern], language: str, name: str):
        super().__init__(
            supported_entity=entity, patterns=patterns, supported_language=language, name=name,
            context=[],
        )
        self.context_words = tuple(word.lower() for word in self.CONTEXT_WORDS)
        self._compiled: list[tuple[Pattern, re.Pattern]] | None = None

    def check(self, matched: str) -> bool:
        """Return False to drop a match (wrong check digit, impossible prefix...)."""
        return True

    def adjust(self, result: RecognizerResult, text: str) -> RecognizerResult:
        """Change a kept result's score or span (hook for subclasses)."""
        return result

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        # A lean replacement of PatternRecognizer.analyze: that one times and logs every
        # pattern, which costs more than the regexes on short structured values.
        if self._compiled is None:
            self._compiled = [
                (pattern, re.compile(pattern.regex, re.IGNORECASE | re.MULTILINE | re.DOTALL))
                for pattern in self.patterns
            ]
        kept = []
        lowered = None
        metadata = {
            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        }
        for pattern, compiled in self._compiled:
            for match in compiled.finditer(text):
                start, end = match.span()
                if start == end or not self.check(text[start:end]):
                    continue
                result = RecognizerResult(
                    self.supported_entities[0], start, end, pattern.score,
                    recognition_metadata=dict(metadata),
                )
                result = self.adjust(result, text)
                if self.context_words:
                    lowered = lowered if lowered is not None else text.lower()
                    before = lowered[max(0, result.start - self.CONTEXT_BEFORE) : result.start]
                    after = lowered[result.end : result.end + self.CONTEXT_AFTER]
                    if any(word in before or word in after for word in self.context_words):
                        result.score = min(1.0, result.score + self.CONTEXT_BOOST)
                if result.score > 0:
                    kept.append(result)
        return EntityRecognizer.remove_duplicates(kept) if len(kept) > 1 else kept

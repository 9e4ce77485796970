"""Language-independent recognizers: e-mail, payment cards, phones, SSN, IP, and spaCy NER.

Each fixes a pitfall of Presidio's default (see docs/pii.md): e-mail followed by Japanese text,
missing card brands, and bare 10-digit numbers scoring as phones.
"""

from __future__ import annotations

import re

import tldextract
from presidio_analyzer import Pattern, RecognizerResult
from presidio_analyzer.predefined_recognizers import (
    IpRecognizer,
    PhoneRecognizer,
    SpacyRecognizer,
    UsSsnRecognizer,
)

from governance.pii.recognizers import BaseRecognizerSpec, register
from governance.pii.recognizers.base import ContextPatternRecognizer, digit_count

# The bundled public-suffix snapshot: no suffix-list URL means no network access, ever.
OFFLINE_TLD_EXTRACTOR = tldextract.TLDExtract(
    suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True
)


def tldextract_offline() -> None:
    """Point ``tldextract.extract`` (used by Presidio's own e-mail check) at the offline snapshot."""
    tldextract.tldextract.TLD_EXTRACTOR = OFFLINE_TLD_EXTRACTOR


class AsciiEmailRecognizer(ContextPatternRecognizer):
    """E-mail addresses; ASCII-bounded so that ``taro@example.jpです`` ends at ``.jp``."""

    PATTERN = (
        r"(?<![A-Za-z0-9._%+\-])[A-Za-z0-9](?:[A-Za-z0-9._%+\-]{0,62}[A-Za-z0-9_%+\-])?"
        r"@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9\-])"
    )
    CONTEXT_WORDS = ("email", "e-mail", "mail", "メール", "連絡先")
    CONTEXT_BOOST = 0.1

    def __init__(self, language: str):
        super().__init__(
            entity="EMAIL_ADDRESS", patterns=[Pattern("email", self.PATTERN, 0.9)],
            language=language, name="EmailRecognizer",
        )

    def check(self, matched: str) -> bool:
        domain = matched.rsplit("@", 1)[1]
        return OFFLINE_TLD_EXTRACTOR(domain).suffix != ""


@register
class EmailSpec(BaseRecognizerSpec):
    identifier = "email"
    entities = ("EMAIL_ADDRESS",)

    def trigger(self, value: str) -> bool:
        return "@" in value

    def create(self, language: str):
        return AsciiEmailRecognizer(language)


def luhn_valid(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        number = int(char)
        if index % 2:
            number *= 2
            if number > 9:
                number -= 9
        total += number
    return total % 10 == 0


def card_brand(digits: str) -> str | None:
    """Return the card brand for a digit string by IIN range and length, or None."""
    length = len(digits)
    two, three, four, six = int(digits[:2]), int(digits[:3]), int(digits[:4]), int(digits[:6])
    if digits[0] == "4" and length in (13, 16, 19):
        return "visa"
    if (51 <= two <= 55 or 2221 <= four <= 2720) and length == 16:
        return "mastercard"
    if two in (34, 37) and length == 15:
        return "amex"
    if 3500 <= four <= 3599 and 16 <= length <= 19:
        return "jcb"  # 3528-3589 officially; test generators use all of 35xx
    if four in (2131, 1800) and length == 15:
        return "jcb"
    if (four == 6011 or two == 65 or 644 <= three <= 649 or 622126 <= six <= 622925) and 16 <= length <= 19:
        return "discover"
    if two == 62 and 16 <= length <= 19:
        return "unionpay"
    if (300 <= three <= 305 or two in (36, 38, 39) or three == 309) and 14 <= length <= 19:
        return "diners"
    if (two == 50 or 56 <= two <= 69 or four == 604) and 12 <= length <= 19:
        return "maestro"
    return None


class BrandCardRecognizer(ContextPatternRecognizer):
    """Payment cards of every major brand (incl. Mastercard 2-series, JCB 2131/1800, 19-digit
    Visa, 12-digit Maestro), Luhn-checked."""

    PATTERN = r"(?<![\d\-])\d(?:[ \-]?\d){11,18}(?![\d\-])"
    CONTEXT_WORDS = (
        "card", "credit", "visa", "mastercard", "amex", "jcb", "diners", "maestro", "discover",
        "カード", "クレジット",
    )
    CONTEXT_BOOST = 0.2

    def __init__(self, language: str):
        super().__init__(
            entity="CREDIT_CARD", patterns=[Pattern("card", self.PATTERN, 0.8)],
            language=language, name="CreditCardRecognizer",
        )

    def check(self, matched: str) -> bool:
        digits = re.sub(r"\D", "", matched)
        return card_brand(digits) is not None and luhn_valid(digits)

    def adjust(self, result: RecognizerResult, text: str) -> RecognizerResult:
        digits = re.sub(r"\D", "", text[result.start : result.end])
        if len(digits) < 14 and card_brand(digits) == "maestro":
            # Short Maestro numbers share their shape with My Numbers and account numbers.
            result.score = 0.45
        return result


@register
class CreditCardSpec(BaseRecognizerSpec):
    identifier = "credit_card"
    entities = ("CREDIT_CARD",)

    def trigger(self, value: str) -> bool:
        return digit_count(value) >= 12

    def create(self, language: str):
        return BrandCardRecognizer(language)


class FormattedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer, but a bare run of digits (an order number?) scores low.

    A formatted number (``+1 212-555-0100``, ``(212) 555-0100``) keeps Presidio's score; a
    digits-only match needs context (phone, tel, 電話 or the field name) to pass the threshold.
    """

    BARE_DIGITS_SCORE = 0.15
    CONTEXT = ["phone", "telephone", "tel", "cell", "mobile", "call", "fax", "reach", "contact",
               "電話", "携帯"]

    def __init__(self, language: str):
        super().__init__(
            supported_language=language, context=self.CONTEXT, name="PhoneRecognizer",
            # CA shares the US plan and JP has its own recognizer: fewer passes of the matcher.
            supported_regions=("US", "GB", "DE", "FR", "AU", "IN"),
        )

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        results: list[RecognizerResult] = super().analyze(text, entities, nlp_artifacts)
        kept = []
        for result in results:
            before = text[result.start - 1] if result.start else " "
            after = text[result.end] if result.end < len(text) else " "
            # Part of a timestamp, decimal, version or identifier ("10:02:02.309279"): not a phone.
            if before.isalnum() or before in ":./_" or after.isalnum() or after in ".:_":
                continue
            if text[result.start : result.end].isdigit():
                result.score = self.BARE_DIGITS_SCORE
            kept.append(result)
        return kept


class NanpPhoneRecognizer(ContextPatternRecognizer):
    """North-American numbers as people write them, with extensions (``(212) 555-0100 x12``).

    python-phonenumbers rejects numbers in unassigned area codes; a written, separated number
    is still personal data. Separators are required: a bare run of ten digits is not matched.
    """

    PATTERN = (
        r"(?<![\w+\-.])(?:\+1[\-. ]?|001[\-. ]|1[\-. ])?(?:\(\d{3}\) ?|\d{3}[\-. ])\d{3}[\-. ]\d{4}"
        r"(?:\s?(?:x|ext\.?|#)\s?\d{1,5})?(?![\w\-]|\.\d)"
    )
    CONTEXT_WORDS = ("phone", "tel", "call", "mobile", "cell", "fax", "reach", "contact", "電話")
    CONTEXT_BOOST = 0.3

    def __init__(self, language: str):
        super().__init__(
            entity="PHONE_NUMBER", patterns=[Pattern("nanp_phone", self.PATTERN, 0.5)],
            language=language, name="NanpPhoneRecognizer",
        )


@register
class NanpPhoneSpec(BaseRecognizerSpec):
    identifier = "nanp_phone"
    entities = ("PHONE_NUMBER",)

    def trigger(self, value: str) -> bool:
        return digit_count(value) >= 10

    def create(self, language: str):
        return NanpPhoneRecognizer(language)


@register
class PhoneSpec(BaseRecognizerSpec):
    """python-phonenumbers over several regions: exact but slow (milliseconds per value)."""

    identifier = "phone"
    entities = ("PHONE_NUMBER",)
    expensive = True

    def wanted(self, value: str) -> bool:
        # An international number, or a phone context word; formatted NANP and Japanese numbers
        # are found by the cheap regex recognizers anyway.
        lowered = value.lower()
        return "+" in value or any(word in lowered for word in FormattedPhoneRecognizer.CONTEXT)

    def trigger(self, value: str) -> bool:
        return digit_count(value) >= 7

    def create(self, language: str):
        return FormattedPhoneRecognizer(language)


@register
class UsSsnSpec(BaseRecognizerSpec):
    identifier = "us_ssn"
    entities = ("US_SSN",)

    def trigger(self, value: str) -> bool:
        return digit_count(value) >= 9

    def create(self, language: str):
        return UsSsnRecognizer(supported_language=language, context=["ssn", "social security"])


@register
class IpAddressSpec(BaseRecognizerSpec):
    identifier = "ip_address"
    entities = ("IP_ADDRESS",)

    def trigger(self, value: str) -> bool:
        return ("." in value or ":" in value) and digit_count(value) >= 4

    def create(self, language: str):
        return IpRecognizer(supported_language=language)


@register
class SpacyNerSpec(BaseRecognizerSpec):
    """Names and places from the language's spaCy pipeline (GiNZA for Japanese)."""

    identifier = "spacy_ner"
    entities = ("PERSON", "LOCATION")
    needs_nlp = True

    def trigger(self, value: str) -> bool:
        return True

    def create(self, language: str):
        return SpacyRecognizer(
            supported_language=language,
            supported_entities=["PERSON", "LOCATION", "PHONE_NUMBER", "EMAIL_ADDRESS"],
        )

"""Japanese recognizers: My Number, corporate number, phones, postal codes and addresses.

Text reaches them normalised (full-width digits and dashes folded, see ``base.normalize``), so
``０９０－１２３４－５６７８`` is matched like ``090-1234-5678``.
"""

from __future__ import annotations

import re

from presidio_analyzer import Pattern

from governance.pii.recognizers import BaseRecognizerSpec, register
from governance.pii.recognizers.base import ContextPatternRecognizer, digit_count

PREFECTURES = (
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県",
    "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県",
    "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府",
    "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県",
    "鹿児島県", "沖縄県",
)
PREFECTURE_RE = re.compile("|".join(PREFECTURES))


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def my_number_valid(number: str) -> bool:
    """Check a 12-digit individual number (個人番号) by its check digit (総務省令 第5条)."""
    if len(number) != 12 or not number.isdigit():
        return False
    body = [int(ch) for ch in number[:11]]
    total = 0
    for n in range(1, 12):  # P_n is the n-th digit counted from the right of the 11-digit body
        p = body[11 - n]
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    remainder = total % 11
    check = 0 if remainder <= 1 else 11 - remainder
    return check == int(number[11])


def corporate_number_valid(number: str) -> bool:
    """Check a 13-digit corporate number (法人番号): the first digit is the check digit."""
    if len(number) != 13 or not number.isdigit():
        return False
    base = number[1:]
    total = 0
    for n in range(1, 13):
        p = int(base[12 - n])
        total += p * (1 if n % 2 else 2)
    return 9 - (total % 9) == int(number[0])


class MyNumberRecognizer(ContextPatternRecognizer):
    CONTEXT_WORDS = ("マイナンバー", "個人番号", "my number", "mynumber", "individual number")
    CONTEXT_BOOST = 0.5

    def __init__(self, language: str):
        super().__init__(
            entity="JP_MY_NUMBER",
            patterns=[
                Pattern("my_number_grouped", r"(?<![\d\-])\d{4}[ \-]\d{4}[ \-]\d{4}(?![\d\-])", 0.45),
                Pattern("my_number", r"(?<![\d\-])\d{12}(?![\d\-])", 0.3),
            ],
            language=language, name="JpMyNumberRecognizer",
        )

    def check(self, matched: str) -> bool:
        return my_number_valid(_digits(matched))


@register
class MyNumberSpec(BaseRecognizerSpec):
    identifier = "jp_my_number"
    entities = ("JP_MY_NUMBER",)

    def trigger(self, value: str) -> bool:
        return digit_count(value) >= 12

    def create(self, language: str):
        return MyNumberRecognizer(language)


class CorporateNumberRecognizer(ContextPatternRecognizer):
    CONTEXT_WORDS = ("法人番号", "corporate number", "法人")
    CONTEXT_BOOST = 0.5

    def __init__(self, language: str):
        super().__init__(
            entity="JP_CORPORATE_NUMBER",
            patterns=[Pattern("corporate_number", r"(?<![\d\-])\d{13}(?![\d\-])", 0.3)],
            language=language, name="JpCorporateNumberRecognizer",
        )

    def check(self, matched: str) -> bool:
        return corporate_number_valid(matched)


@register
class CorporateNumberSpec(BaseRecognizerSpec):
    identifier = "jp_corporate_number"
    entities = ("JP_CORPORATE_NUMBER",)

    def trigger(self, value: str) -> bool:
        return digit_count(value) >= 13

    def create(self, language: str):
        return CorporateNumberRecognizer(language)


_SEP = r"[\-ー ]"


class JpPhoneRecognizer(ContextPatternRecognizer):
    """Mobile (070/080/090), IP (050), toll-free (0120/0800) and landline numbers, +81 too.

    Hyphenated forms score as phones; a bare 10-digit run (an order number as often as a
    landline) stays under the threshold unless a context word or the field name says phone.
    """

    CONTEXT_WORDS = ("電話", "tel", "携帯", "phone", "連絡先", "fax", "ファックス", "問い合わせ")
    CONTEXT_BOOST = 0.4

    def __init__(self, language: str):
        lead = r"(?<![\d\-+])"
        tail = r"(?![\d\-])"
        super().__init__(
            entity="PHONE_NUMBER",
            patterns=[
                Pattern("jp_mobile", lead + rf"0[5789]0{_SEP}?\d{{4}}{_SEP}?\d{{4}}" + tail, 0.6),
                Pattern("jp_toll_free", lead + rf"0120{_SEP}?\d{{2,3}}{_SEP}?\d{{3,4}}" + tail, 0.6),
                Pattern("jp_toll_free_0800", lead + rf"0800{_SEP}?\d{{3}}{_SEP}?\d{{4}}" + tail, 0.6),
                Pattern(
                    "jp_landline",
                    lead + rf"0\d{{1,4}}(?:{_SEP}|\)|）)\d{{1,4}}{_SEP}\d{{4}}" + tail, 0.55,
                ),
                Pattern("jp_landline_bare", lead + r"0[1-9]\d{8}" + tail, 0.2),
                Pattern(
                    "jp_international",
                    r"\+81[ \-]?\(?0?\)?[1-9]\d{0,3}[ \-]?\d{1,4}[ \-]?\d{4}" + tail, 0.65,
                ),
            ],
            language=language, name="JpPhoneRecognizer",
        )

    def check(self, matched: str) -> bool:
        digits = _digits(matched)
        if matched.startswith("+81"):
            return 11 <= len(digits) <= 12
        if digits.startswith(("070", "080", "090", "050", "0800")):
            return len(digits) == 11
        if digits.startswith("0120"):
            return len(digits) == 10
        return len(digits) == 10


@register
class JpPhoneSpec(BaseRecognizerSpec):
    identifier = "jp_phone"
    entities = ("PHONE_NUMBER",)

    def trigger(self, value: str) -> bool:
        return digit_count(value) >= 10

    def create(self, language: str):
        return JpPhoneRecognizer(language)


class JpPostalCodeRecognizer(ContextPatternRecognizer):
    CONTEXT_WORDS = ("郵便番号", "〒", "postal", "zip", "postcode", "郵便")
    CONTEXT_BOOST = 0.45

    def __init__(self, language: str):
        super().__init__(
            entity="JP_POSTAL_CODE",
            patterns=[
                Pattern("jp_postal_mark", r"〒 ?\d{3}-?\d{4}(?![\d\-])", 0.85),
                Pattern("jp_postal", r"(?<![\d\-〒 ])\d{3}-\d{4}(?![\d\-])", 0.35),
            ],
            language=language, name="JpPostalCodeRecognizer",
        )


@register
class JpPostalCodeSpec(BaseRecognizerSpec):
    identifier = "jp_postal_code"
    entities = ("JP_POSTAL_CODE",)

    def trigger(self, value: str) -> bool:
        return "〒" in value or (digit_count(value) >= 7 and "-" in value)

    def create(self, language: str):
        return JpPostalCodeRecognizer(language)


# A prefecture, then at least one municipality (市区町村郡), then the rest of the street address:
# kanji, katakana, digits, dashes and the few kana that occur inside place names.
_ADDRESS_BODY = r"[一-龥々〆ヵヶケァ-ヴー0-9\-がのノ之丁目番地号条西東南北]"
ADDRESS_RE = (
    rf"(?:{'|'.join(PREFECTURES)})"
    rf"(?:[一-龥々ヶケァ-ヴー]{{1,8}}?[市区町村郡]){{1,3}}"
    rf"{_ADDRESS_BODY}*"
    r"(?:[ ][ァ-ヴーA-Za-z一-龥]+[0-9]+(?:号室|F)?)?"
)


class JpAddressRecognizer(ContextPatternRecognizer):
    CONTEXT_WORDS = ("住所", "所在地", "address", "お届け先", "送付先")
    CONTEXT_BOOST = 0.2

    def __init__(self, language: str):
        super().__init__(
            entity="LOCATION", patterns=[Pattern("jp_address", ADDRESS_RE, 0.65)],
            language=language, name="JpAddressRecognizer",
        )


@register
class JpAddressSpec(BaseRecognizerSpec):
    identifier = "jp_address"
    entities = ("LOCATION",)

    def trigger(self, value: str) -> bool:
        return PREFECTURE_RE.search(value) is not None

    def create(self, language: str):
        return JpAddressRecognizer(language)

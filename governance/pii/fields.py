"""Field names as evidence: ``email``, ``tel``, ``電話番号``, ``住所``, ``氏名`` say what a value is."""

from __future__ import annotations

import re
from functools import lru_cache

FREE_TEXT = "FREE_TEXT"

# Checked in order: the first rule that matches wins ("ip_address" is an IP, not an address).
_JA_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("EMAIL_ADDRESS", ("メール",)),
    ("JP_MY_NUMBER", ("マイナンバー", "個人番号")),
    ("JP_CORPORATE_NUMBER", ("法人番号",)),
    ("CREDIT_CARD", ("カード番号", "クレジットカード")),
    ("JP_POSTAL_CODE", ("郵便番号", "〒")),
    ("PHONE_NUMBER", ("電話", "携帯", "ＴＥＬ", "ＦＡＸ", "連絡先番号")),
    ("LOCATION", ("住所", "所在地", "番地", "都道府県", "市区町村", "お届け先")),
    ("PERSON", ("氏名", "名前", "フリガナ", "ふりがな", "お名前", "担当者名")),
    (FREE_TEXT, ("備考", "メモ", "コメント", "内容", "本文", "問い合わせ", "自由記述", "ご意見")),
)
_TOKEN_RULES: tuple[tuple[str, frozenset[str]], ...] = (
    ("IP_ADDRESS", frozenset({"ip", "ipaddress", "ipv4", "ipv6"})),
    ("EMAIL_ADDRESS", frozenset({"email", "mail", "emailaddress", "e-mail"})),
    ("JP_MY_NUMBER", frozenset({"mynumber"})),
    ("JP_CORPORATE_NUMBER", frozenset({"corporatenumber", "houjinbangou"})),
    ("CREDIT_CARD", frozenset({"card", "cardnumber", "cc", "ccnumber", "pan", "creditcard"})),
    ("US_SSN", frozenset({"ssn", "socialsecurity", "socialsecuritynumber"})),
    ("JP_POSTAL_CODE", frozenset({"zip", "zipcode", "postal", "postcode", "postalcode"})),
    ("PHONE_NUMBER", frozenset({"phone", "tel", "telephone", "mobile", "cell", "cellphone", "fax", "msisdn"})),
    ("LOCATION", frozenset({"address", "addr", "street", "city", "town", "prefecture", "county"})),
    ("PERSON", frozenset({"firstname", "lastname", "fullname", "surname", "givenname", "familyname", "kana"})),
    (FREE_TEXT, frozenset({
        "note", "notes", "comment", "comments", "memo", "description", "message", "body", "text",
        "remarks", "feedback", "bio", "summary", "details", "content",
    })),
)
_NAME_QUALIFIERS = frozenset({
    "first", "last", "full", "given", "family", "middle", "customer", "contact", "person", "sur",
    "kana", "billing", "shipping", "recipient", "legal", "real", "display",
})
_PAIRS = {("e", "mail"): "EMAIL_ADDRESS", ("my", "number"): "JP_MY_NUMBER",
          ("social", "security"): "US_SSN", ("credit", "card"): "CREDIT_CARD",
          ("ip", "address"): "IP_ADDRESS", ("corporate", "number"): "JP_CORPORATE_NUMBER"}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[^0-9A-Za-z]+")


def _tokens(name: str) -> list[str]:
    parts = _SPLIT.split(_CAMEL.sub(" ", name))
    return [re.sub(r"\d+$", "", part.lower()) for part in parts if part]


@lru_cache(maxsize=4096)
def field_hint(name: str | None) -> str | None:
    """Return the entity a field name points to, ``FREE_TEXT``, or None."""
    if not name:
        return None
    for hint, needles in _JA_RULES:
        if any(needle in name for needle in needles):
            return hint
    tokens = [t for t in _tokens(name) if t]
    if not tokens:
        return None
    for pair, hint in _PAIRS.items():
        for first, second in zip(tokens, tokens[1:], strict=False):
            if (first, second) == pair:
                return hint
    joined = "".join(tokens)
    for hint, words in _TOKEN_RULES:
        if joined in words or any(token in words for token in tokens):
            return hint
    if tokens[-1] == "name" and (len(tokens) == 1 or tokens[-2] in _NAME_QUALIFIERS):
        return "PERSON"
    if tokens[-1] == "name" and len(tokens) >= 2 and tokens[0] in _NAME_QUALIFIERS:
        return "PERSON"
    return None

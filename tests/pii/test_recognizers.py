"""Each custom recognizer: valid and invalid check digits, full-width digits, context words."""

from __future__ import annotations

import pytest

from governance.pii.recognizers import UnknownRecognizer, recognizer_get, recognizer_names
from governance.pii.recognizers.generic import card_brand, luhn_valid
from governance.pii.recognizers.japan import corporate_number_valid, my_number_valid

THRESHOLD = 0.4


def found(results, threshold=THRESHOLD):
    return [(entity, text) for entity, text, score in results if score >= threshold]


# --- My Number (個人番号) -------------------------------------------------------------------

def test_my_number_check_digit():
    assert my_number_valid("123456789018")
    assert not my_number_valid("123456789012")
    assert not my_number_valid("12345678901")


def test_my_number_with_context_is_found(analyze):
    assert found(analyze("jp_my_number", "マイナンバー：123456789018")) == [
        ("JP_MY_NUMBER", "123456789018")
    ]


def test_my_number_wrong_check_digit_is_dropped(analyze):
    assert analyze("jp_my_number", "マイナンバー：123456789012") == []


def test_my_number_full_width_and_grouped(analyze):
    assert found(analyze("jp_my_number", "個人番号は１２３４－５６７８－９０１８です")) == [
        ("JP_MY_NUMBER", "１２３４－５６７８－９０１８")
    ]


def test_my_number_without_context_stays_below_threshold(analyze):
    # A valid check digit alone is weak evidence: one random 12-digit number in ten passes it.
    results = analyze("jp_my_number", "注文 123456789018 を発送しました")
    assert results and found(results) == []


# --- corporate number (法人番号) ------------------------------------------------------------

def test_corporate_number_check_digit(analyze):
    assert corporate_number_valid("1180301018771")  # 法人番号 of Toyota Motor Corporation
    assert not corporate_number_valid("2180301018771")
    assert found(analyze("jp_corporate_number", "法人番号 1180301018771")) == [
        ("JP_CORPORATE_NUMBER", "1180301018771")
    ]
    assert analyze("jp_corporate_number", "法人番号 2180301018771") == []


# --- Japanese phones --------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, number",
    [
        ("携帯は090-1234-5678です", "090-1234-5678"),
        ("電話 03-1234-5678", "03-1234-5678"),
        ("フリーダイヤル0120-123-456まで", "0120-123-456"),
        ("０８０－１２３４－５６７８に連絡", "０８０－１２３４－５６７８"),
        ("call +81 90-1234-5678", "+81 90-1234-5678"),
        ("連絡先 09012345678", "09012345678"),
        ("電話番号 0312345678", "0312345678"),
    ],
)
def test_jp_phone_found(analyze, text, number):
    assert ("PHONE_NUMBER", number) in found(analyze("jp_phone", text))


def test_bare_ten_digits_without_context_is_not_a_phone(analyze, pii_scanner):
    assert found(analyze("jp_phone", "注文番号 1234567890")) == []
    assert found(analyze("jp_phone", "受付 0312345678 を確認")) == []
    assert pii_scanner.scan_text("Order 1234567890 has shipped.") == []


def test_jp_phone_wrong_length_rejected(analyze):
    assert analyze("jp_phone", "電話 090-1234-567") == []


# --- postal codes and addresses --------------------------------------------------------------

def test_postal_code_with_mark_and_context(analyze):
    assert found(analyze("jp_postal_code", "〒160-0023 東京都")) == [("JP_POSTAL_CODE", "〒160-0023")]
    assert found(analyze("jp_postal_code", "郵便番号：１６０－００２３")) == [
        ("JP_POSTAL_CODE", "１６０－００２３")
    ]
    assert found(analyze("jp_postal_code", "品番 160-0023")) == []


def test_prefecture_address(analyze):
    results = found(analyze("jp_address", "東京都新宿区西新宿2-8-1に住んでいます"))
    assert results == [("LOCATION", "東京都新宿区西新宿2-8-1")]
    assert found(analyze("jp_address", "東京都は晴れ")) == []


# --- e-mail, cards ---------------------------------------------------------------------------

def test_email_followed_by_japanese(analyze):
    assert found(analyze("email", "メールはtaro@example.jpです。")) == [
        ("EMAIL_ADDRESS", "taro@example.jp")
    ]
    assert analyze("email", "user@invalid.notatld") == []


@pytest.mark.parametrize(
    "number, brand",
    [
        ("2221000000000009", "mastercard"),
        ("5555555555554444", "mastercard"),
        ("213100000000001", "jcb"),
        ("180000000000002", "jcb"),
        ("3530111333300000", "jcb"),
        ("4000000000000000006", "visa"),
        ("501800000009", "maestro"),
        ("378282246310005", "amex"),
    ],
)
def test_card_brands(analyze, number, brand):
    assert luhn_valid(number)
    assert card_brand(number) == brand
    assert found(analyze("credit_card", f"card {number}", "en")) == [("CREDIT_CARD", number)]


def test_card_luhn_failure_dropped(analyze):
    assert analyze("credit_card", "card 4111 1111 1111 1112", "en") == []
    assert found(analyze("credit_card", "カード 4111-1111-1111-1111", "ja")) == [
        ("CREDIT_CARD", "4111-1111-1111-1111")
    ]


def test_registry_unknown_name_lists_known():
    with pytest.raises(UnknownRecognizer) as excinfo:
        recognizer_get("nope")
    assert "jp_my_number" in str(excinfo.value)
    assert {"email", "jp_phone", "jp_address", "spacy_ner"} <= set(recognizer_names())


def test_japanese_person_through_ginza(pii_scanner):
    text = "山田太郎さんから問い合わせがありました。"
    entities = {(f.entity_type, text[f.start : f.end]) for f in pii_scanner.scan_text(text)}
    assert ("PERSON", "山田太郎") in entities

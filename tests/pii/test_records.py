"""Structured-record scanning: field names as evidence, short-circuits, cache, redaction."""

from __future__ import annotations

from governance.pii.fields import FREE_TEXT, field_hint


def by_path(findings):
    return {(f.field_path, f.entity_type) for f in findings}


def test_field_name_hints():
    assert field_hint("email") == "EMAIL_ADDRESS"
    assert field_hint("contactEmail") == "EMAIL_ADDRESS"
    assert field_hint("tel") == "PHONE_NUMBER"
    assert field_hint("電話番号") == "PHONE_NUMBER"
    assert field_hint("住所") == "LOCATION"
    assert field_hint("氏名") == "PERSON"
    assert field_hint("first_name") == "PERSON"
    assert field_hint("ip_address") == "IP_ADDRESS"
    assert field_hint("notes") == FREE_TEXT
    assert field_hint("product_name") is None
    assert field_hint("username") is None


def test_record_findings_use_field_names(pii_scanner):
    record = {
        "id": 42,
        "active": True,
        "email": "hanako@example.jp",
        "電話番号": "0312345678",  # bare 10 digits: a phone only because the field says so
        "order_no": "0312345678",  # the same digits elsewhere are not a phone
        "氏名": "佐藤 花子",
        "住所": "大阪府大阪市北区梅田1-1-1",
        "postal_code": "530-0001",
        "notes": "Card 4111 1111 1111 1111 was declined",
        "address": {"city": "Springfield"},
        "items": [{"sku": "A-1", "memo": "gift for 田中太郎さん"}],
    }
    findings = pii_scanner.scan_records([record])[0]
    paths = by_path(findings)
    assert ("email", "EMAIL_ADDRESS") in paths
    assert ("電話番号", "PHONE_NUMBER") in paths
    assert not any(path == "order_no" for path, _ in paths)
    assert ("氏名", "PERSON") in paths
    assert ("住所", "LOCATION") in paths
    assert ("postal_code", "JP_POSTAL_CODE") in paths
    assert ("notes", "CREDIT_CARD") in paths
    assert ("address.city", "LOCATION") in paths
    assert ("items[0].memo", "PERSON") in paths
    assert not any(path in ("id", "active") for path, _ in paths)


def test_findings_hold_offsets_not_values(pii_scanner):
    record = {"notes": "write to a.b@example.com please"}
    finding = pii_scanner.scan_records([record])[0][0]
    assert record["notes"][finding.start : finding.end] == "a.b@example.com"
    assert "a.b@example.com" not in repr(finding.as_dict())
    assert set(finding.as_dict()) == {"entity_type", "field_path", "score", "recognizer", "start", "end"}


def test_numbers_short_circuit_unless_field_says_otherwise(pii_scanner):
    findings = pii_scanner.scan_records([{"quantity": 4111111111111111, "card_number": 4111111111111111}])[0]
    assert by_path(findings) == {("card_number", "CREDIT_CARD")}


def test_repeated_values_are_analysed_once(pii_scanner):
    pii_scanner.cache_clear()
    records = [{"email": "same@example.com", "notes": "Ask Mary Jones about the parcel today"}] * 50
    before = dict(pii_scanner.stats)
    results = pii_scanner.scan_records(records)
    assert all(by_path(r) == by_path(results[0]) for r in results)
    assert pii_scanner.stats["pattern"] - before["pattern"] == 1
    assert pii_scanner.stats["nlp"] - before["nlp"] == 1
    # and across batches: nothing is analysed again
    pii_scanner.scan_records(records[:1])
    assert pii_scanner.stats["pattern"] - before["pattern"] == 1
    assert pii_scanner.stats["nlp"] - before["nlp"] == 1


def test_redacted_copy_keeps_structure(pii_scanner):
    record = {"email": "x@example.org", "n": 3, "notes": "メールはx@example.orgです", "tags": ["a"]}
    findings = pii_scanner.scan_records([record])[0]
    redacted = pii_scanner.redact_record(record, findings)
    assert redacted == {
        "email": "<EMAIL_ADDRESS>", "n": 3, "notes": "メールは<EMAIL_ADDRESS>です", "tags": ["a"]
    }
    assert record["email"] == "x@example.org"  # the original is untouched


def test_placeholders_in_name_fields_are_not_people(pii_scanner):
    findings = pii_scanner.scan_records([{"full_name": "N/A", "city": "unknown", "氏名": "林"}])[0]
    assert by_path(findings) == {("氏名", "PERSON")}

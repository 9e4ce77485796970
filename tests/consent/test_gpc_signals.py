"""Global Privacy Control precedence and TCF/GPP strings on events."""

from __future__ import annotations

import pytest

from consent.iab import MAX_GPP_SECTION_ID, BitReader, InvalidSignalString, gpp_decode, tcf_decode
from consent.models import ConsentEvent

EVENTS = "/api/v1/consent/events"
TCF_EXAMPLE = "COw4XqLOw4XqLAAAAAENAXCAAP-gAAAfwIAAACngAI8AEFABgACAA4A.IAPPwAA"
GPP_TCF = "DBABMA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
GPP_TCF_USP = "DBACNYA~CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA~1YNN"
# IAB GPP v1 "Consent String Specification" (Core/Consent String Specification.md, "GPP String
# Examples" 1-3, as fixed on 3 Nov 2023): the header is six bits per character, no byte alignment.
TCF_EU_SECTION = "CPXxRfAPXxRfAAfKABENB-CgAAAAAAAAAAYgAAAAAAAA"
SPEC_GPP_TCF = "DBABM~" + TCF_EU_SECTION
SPEC_GPP_TCF_USP = "DBACNY~" + TCF_EU_SECTION + "~1YNN"
SPEC_GPP_TCFCA_USP = "DBABjw~" + TCF_EU_SECTION + "~1YNN"
# The header that made the decoder build a 27-million-id list (memory DoS).
GPP_HUGE_RANGE = "DBAD4AAAAA-AAAAAPgAAAADA~1YNN"
BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def states(client, browser_id):
    body = client.get("/api/v1/consent/state", {"browser_id": browser_id}).json()
    return {p["purpose"]: p for p in body["purposes"]}


@pytest.mark.django_db
def test_gpc_opts_out_of_sale_and_sharing(browser):
    """CCPA §7025: Sec-GPC: 1 is an opt-out of sale and sharing for that browser."""
    response = browser.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
                            format="json", HTTP_SEC_GPC="1")
    assert response.status_code == 201
    assert sorted(e["purpose"] for e in response.json()["gpc_events"]) == ["data_sale", "personalised_ads"]
    now = states(browser, "browser-0001")
    assert now["data_sale"]["state"] == "refused" and now["data_sale"]["method"] == "gpc"
    assert now["analytics"]["state"] == "given"
    # The same signal again records nothing new.
    again = browser.post(EVENTS, {"browser_id": "browser-0001", "purpose": "analytics", "state": "given"},
                         format="json", HTTP_SEC_GPC="1")
    assert again.json()["gpc_events"] == []


@pytest.mark.django_db
def test_gpc_value_must_be_exactly_one(browser):
    for value in ("0", "true", " 1", "1 "):
        response = browser.post(EVENTS, {"browser_id": "browser-0002", "purpose": "analytics", "state": "given"},
                                format="json", HTTP_SEC_GPC=value)
        assert response.json()["gpc_events"] == [], value


@pytest.mark.django_db
def test_explicit_opt_in_after_gpc_wins(browser):
    """An explicit opt-in made after the GPC signal was seen is kept while GPC stays on."""
    browser.post(EVENTS, {"browser_id": "browser-0003", "purpose": "analytics", "state": "given"},
                 format="json", HTTP_SEC_GPC="1")
    opt_in = browser.post(EVENTS, {"browser_id": "browser-0003", "purpose": "data_sale", "state": "given",
                                   "method": "form"}, format="json", HTTP_SEC_GPC="1")
    assert opt_in.json()["gpc_events"] == []
    browser.post(EVENTS, {"browser_id": "browser-0003", "purpose": "analytics", "state": "given"},
                 format="json", HTTP_SEC_GPC="1")
    now = states(browser, "browser-0003")
    assert now["data_sale"]["state"] == "given" and now["data_sale"]["method"] == "form"
    assert now["personalised_ads"]["state"] == "refused"


@pytest.mark.django_db
def test_opt_in_before_gpc_is_overridden_by_gpc(browser):
    browser.post(EVENTS, {"browser_id": "browser-0004", "purpose": "data_sale", "state": "given"}, format="json")
    browser.get("/api/v1/consent/state", {"browser_id": "browser-0004"}, HTTP_SEC_GPC="1")
    now = states(browser, "browser-0004")
    assert now["data_sale"]["state"] == "refused" and now["data_sale"]["method"] == "gpc"


def test_tcf_decode_known_vector():
    """IAB TCF v2 example string: purposes 1-9 and 11 consented, vendors 2-5, vendor list 23."""
    summary = tcf_decode(TCF_EXAMPLE)
    assert summary["version"] == 2 and summary["policy_version"] == 2
    assert summary["consent_language"] == "EN" and summary["vendor_list_version"] == 23
    assert summary["purposes_consent"] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    assert summary["vendor_consents"] == [2, 3, 4, 5]
    assert summary["created"].startswith("2020-03-26")


def test_gpp_decode_known_vectors():
    """Headers as the IAB reference library iabgpp-es encodes them (zero-padded to 24 bits):
    DBABMA = [2]; DBACNYA = [2, 6]; DBABLA = [7] (its GppModel test string DBABLA~BVQqAAAAAgA.QA)."""
    one = gpp_decode(GPP_TCF)
    assert one["section_ids"] == [2] and one["sections"]["tcfeuv2"]["cmp_id"] == 31
    assert one["sections"]["tcfeuv2"]["publisher_country"] == "DE"
    two = gpp_decode(GPP_TCF_USP)
    assert two["section_ids"] == [2, 6]
    assert two["sections"]["uspv1"] == {"version": 1, "notice": "Y", "opt_out_sale": "N", "lspa_covered": "N"}
    assert gpp_decode("DBABLA~BVQqAAAAAgA.QA")["section_ids"] == [7]


@pytest.mark.parametrize("value", ["", "xx", "BOEFEAyOEFEAyAHABDENAI4AAAB9vABAASA", "CPXx", "C" + "A" * 10])
def test_tcf_malformed(value):
    with pytest.raises(InvalidSignalString):
        tcf_decode(value)


@pytest.mark.parametrize("value", ["DBABMA", "DBABMA~", "CBABMA~x", "DBABMA~1YNN", "DBACNYA~" + "x" * 8])
def test_gpp_malformed(value):
    with pytest.raises(InvalidSignalString):
        gpp_decode(value)


@pytest.mark.django_db
def test_strings_are_stored_with_summary_and_malformed_is_400(server):
    ok = server.post(EVENTS, {"browser_id": "browser-0005", "purpose": "personalised_ads", "state": "given",
                              "tcf_string": TCF_EXAMPLE, "gpp_string": GPP_TCF_USP}, format="json")
    assert ok.status_code == 201
    event = ConsentEvent.objects.get()
    assert event.tcf_string == TCF_EXAMPLE and event.signals["tcf"]["vendor_consents"] == [2, 3, 4, 5]
    assert event.signals["gpp"]["section_ids"] == [2, 6]
    bad = server.post(EVENTS, {"browser_id": "browser-0005", "purpose": "personalised_ads", "state": "given",
                               "tcf_string": "CPXx"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_tcf_string"
    bad = server.post(EVENTS, {"browser_id": "browser-0005", "purpose": "personalised_ads", "state": "given",
                               "gpp_string": "DBABMA~"}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_gpp_string"


def six_bit(bits: str) -> str:
    """Bits to GPP base64url: six bits a character, zero-padded on the right (GPP v1 spec)."""
    bits += "0" * (-len(bits) % 6)
    return "".join(BASE64URL[int(bits[i : i + 6], 2)] for i in range(0, len(bits), 6))


def fib(n: int) -> str:
    """Fibonacci code of n >= 1 (bit i stands for 1, 2, 3, 5, 8, ...; ended by an extra 1)."""
    numbers = [1, 2]
    while numbers[-1] <= n:
        numbers.append(numbers[-1] + numbers[-2])
    bits = ["0"] * len(numbers)
    for i in range(len(numbers) - 1, -1, -1):
        if numbers[i] <= n:
            bits[i], n = "1", n - numbers[i]
    return "".join(bits).rstrip("0") + "1"


def header_ids(header: str) -> list[int]:
    reader = BitReader(header)
    assert reader.int(6) == 3 and reader.int(6) == 1  # Type 3 "GPP header", Version 1
    return reader.fibonacci_range()


def test_gpp_header_is_six_bits_per_character():
    """Spec: "the GPP header DBABM decodes to the 30 bit sequence 000011000001000000000001001100
    but cannot be decoded with the standard base64 algorithm"."""
    assert BitReader("DBABM").bits == "000011000001000000000001001100"
    assert BitReader("DBACNY").bits == "000011" "000001" "000000" "000010" "001101" "011000"
    assert len(BitReader("DBABjw").bits) == 36
    assert fib(1) == "11" and fib(2) == "011" and fib(4) == "1011" and fib(7) == "01011"  # spec table


@pytest.mark.parametrize(("header", "ids"), [
    ("DBABM", [2]),  # spec header example 1: EU TCF v2
    ("DBACNY", [2, 6]),  # spec header example 2: EU TCF v2 + US Privacy
    ("DBABjw", [5, 6]),  # spec header example 3: Canadian TCF + US Privacy, one group 5..6
    ("DBABMA", [2]),  # iabgpp-es HeaderV1 test: encode([2])
    ("DBACNYA", [2, 6]),  # iabgpp-es HeaderV1 test: encode([2, 6])
    ("DBABLA", [7]),  # iabgpp-es / iabgpp-java GppModel test: usnat; bits 0 01011 = offset 7
    ("DBABTA", [6]),  # iabgpp-es / iabgpp-java GppModel test "DBABTA~1YYN"; bits 0 10011 = 6
    ("DBABzw", [6, 7]),  # bits 1 10011 11: group from 6, length 1 (by hand from the spec layout)
])
def test_gpp_header_spec_vectors(header, ids):
    assert header_ids(header) == ids


def test_fibonacci_range_spec_data_type_examples():
    """Range (Fibonacci) data type, spec example: 2 items; single 3; group +2 (5) length 3 (8)."""
    assert BitReader(six_bit("000000000010" "0" "0011" "1" "011" "0011")).fibonacci_range() == [3, 5, 6, 7, 8]
    # iabgpp-es FibonacciIntegerRangeEncoder tests.
    assert BitReader(six_bit("00000000000110111011")).fibonacci_range() == [2, 3, 4, 5, 6]
    assert BitReader(six_bit("000000000010001110011011")).fibonacci_range() == [2, 5, 6, 7]
    assert BitReader(six_bit("00000000001000111001101011")).fibonacci_range() == [2, *range(5, 13)]


def test_gpp_spec_example_strings_decode():
    """The spec's three full GPP string examples are accepted and summarised."""
    one = gpp_decode(SPEC_GPP_TCF)
    assert one["version"] == 1 and one["section_ids"] == [2]
    assert one["sections"]["tcfeuv2"]["cmp_id"] == 31 and one["sections"]["tcfeuv2"]["publisher_country"] == "DE"
    two = gpp_decode(SPEC_GPP_TCF_USP)
    assert two["section_ids"] == [2, 6] and two["sections"]["tcfeuv2"]["cmp_id"] == 31
    assert two["sections"]["uspv1"] == {"version": 1, "notice": "Y", "opt_out_sale": "N", "lspa_covered": "N"}
    three = gpp_decode(SPEC_GPP_TCFCA_USP)
    assert three["section_ids"] == [5, 6]
    assert three["sections"]["tcfcav1"] == {"decoded": False} and three["sections"]["uspv1"]["notice"] == "Y"
    # The same sections with the reference library's padded headers decode identically.
    assert gpp_decode(GPP_TCF_USP) == two and gpp_decode(GPP_TCF) == one


@pytest.mark.django_db
def test_spec_example_gpp_strings_accepted_by_the_api(browser):
    for index, (value, ids) in enumerate([(SPEC_GPP_TCF_USP, [2, 6]), (SPEC_GPP_TCF, [2])]):
        response = browser.post(EVENTS, {"browser_id": f"browser-00{10 + index}", "purpose": "personalised_ads",
                                          "state": "given", "gpp_string": value}, format="json")
        assert response.status_code == 201, response.json()
        event = ConsentEvent.objects.get(gpp_string=value)
        assert event.signals["gpp"]["section_ids"] == ids
        assert event.signals["gpp"]["sections"]["tcfeuv2"]["cmp_id"] == 31


def test_gpp_huge_section_range_rejected_by_bound():
    """The 24-character header asks for ids 1..~27 million: refused on the id bound, nothing built."""
    with pytest.raises(InvalidSignalString) as caught:
        gpp_decode(GPP_HUGE_RANGE)
    assert caught.value.code == "invalid_gpp_string"
    assert f"maximum of {MAX_GPP_SECTION_ID}" in caught.value.detail


def header(range_bits: str) -> str:
    return six_bit("000011" "000001" + range_bits)


def test_gpp_section_id_bound_is_exact():
    top = MAX_GPP_SECTION_ID
    assert header_ids(header("000000000001" "1" + fib(1) + fib(top - 1))) == list(range(1, top + 1))
    assert header_ids(header("000000000001" "0" + fib(top))) == [top]
    for too_far in (
        "000000000001" "1" + fib(1) + fib(top),  # a group ending at top + 1
        "000000000001" "0" + fib(top + 1),  # a single id top + 1
        "000000000010" "0" + fib(top) + "0" + fib(1),  # the next id past the top
        "000000000001" "1" + fib(1) + fib(10**9),  # a group of a billion ids
    ):
        with pytest.raises(ValueError, match=f"maximum of {top}"):
            header_ids(header(too_far))
    with pytest.raises(ValueError, match="more than"):  # 4095 entries announced
        header_ids(header("111111111111" + "0" + fib(1)))


def test_fibonacci_integer_length_is_bounded():
    reader = BitReader("A" * 200 + "D")  # 1,200 zero bits, then 000011
    with pytest.raises(ValueError, match="longer than"):
        reader.fibonacci()
    assert reader.pos <= 32


@pytest.mark.django_db
def test_gpp_huge_section_range_is_400(browser):
    response = browser.post(EVENTS, {"browser_id": "browser-0012", "purpose": "personalised_ads", "state": "given",
                                     "gpp_string": GPP_HUGE_RANGE}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_gpp_string"
    assert not ConsentEvent.objects.exists()


def tcf_core_with_vendor_ranges(ranges: list[tuple[int, int]]) -> str:
    """A TCF v2 core segment whose consented vendors are range-encoded."""
    def b(value: int, width: int) -> str:
        return f"{value:0{width}b}"
    bits = (b(2, 6) + b(15853056000, 36) * 2 + b(31, 12) + b(1, 12) + b(1, 6) + b(4, 6) + b(13, 6) + b(23, 12)
            + b(2, 6) + "00" + "0" * 12 + "1" * 24 + "0" * 24 + "0" + b(3, 6) + b(4, 6))
    bits += b(65535, 16) + "1" + b(len(ranges), 12)
    bits += "".join("1" + b(start, 16) + b(end, 16) for start, end in ranges)
    bits += b(0, 16) + "0" + b(0, 12)  # no legitimate-interest vendors, no publisher restrictions
    return six_bit(bits + "0" * (-len(bits) % 24))


def test_tcf_vendor_ranges_are_counted_not_expanded():
    """Overlapping ranges of up to 65,535 ids each are merged; only the first 2,000 ids are listed."""
    summary = tcf_decode(tcf_core_with_vendor_ranges([(1, 65535)] * 600 + [(70, 80)]))
    assert summary["vendor_consents_count"] == 65535
    assert summary["vendor_consents"] == list(range(1, 2001))
    small = tcf_decode(tcf_core_with_vendor_ranges([(10, 12), (3, 4), (11, 20), (40, 40)]))
    assert small["vendor_consents"] == [3, 4, *range(10, 21), 40] and small["vendor_consents_count"] == 14

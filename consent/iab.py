"""Validate and summarise IAB TCF v2.x TC strings and GPP strings.

TCF core segments are decoded by the maintained ``iab-tcf`` package (only the core: the other
TCF segments are just checked to be base64url here). GPP (header, Fibonacci section-id ranges,
US Privacy v1, US National v1 and US California v1 core segments) is decoded here from the IAB
GPP specification: six bits per base64url character, no padding or byte alignment, and every
count or range taken from the string is bounded before anything is built from it. Mamoru never creates these strings; it records what a
registered CMP produced.
"""

from __future__ import annotations

import iab_tcf
from django.utils.translation import gettext_lazy as _

from governance.api.errors import DomainError

GPP_SECTIONS = {
    1: "tcfeuv1", 2: "tcfeuv2", 3: "gppheader", 5: "tcfcav1", 6: "uspv1", 7: "usnat", 8: "usca",
    9: "usva", 10: "usco", 11: "usut", 12: "usct",
}
# Section ids the IAB has defined are small (all below 30); a header naming more sections, or an id
# above this, is rejected before any list of ids is built from it.
MAX_GPP_SECTION_ID = 64
# Longest Fibonacci code accepted (value bits, terminator excluded): values up to 46,367.
MAX_FIBONACCI_BITS = 22
# Bits up to and including the vendor-consent and legitimate-interest headers and the
# publisher-restriction count (TCF v2.2 core segment).
TCF_CORE_MIN_BITS = 213 + 17 + 17 + 12
TCF_SUMMARY_VENDORS = 2000
ERR_TCF = "Not a valid TCF v2 TC string."
ERR_GPP = "Not a valid GPP string."

_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_SIX_BITS = {char: f"{index:06b}" for index, char in enumerate(_BASE64URL)}
# F(2), F(3), … : bit i of a Fibonacci code stands for _FIBONACCI[i].
_FIBONACCI = [1, 2]
while len(_FIBONACCI) < MAX_FIBONACCI_BITS:
    _FIBONACCI.append(_FIBONACCI[-1] + _FIBONACCI[-2])


class InvalidSignalString(DomainError):
    code = "invalid_signal_string"
    title = _("A TCF or GPP string is malformed.")


class _FibonacciTooLong(ValueError):
    pass


class BitReader:
    """Read big-endian bit fields from a base64url segment.

    GPP and TCF segments use the base64url alphabet without padding or byte alignment: each
    character is exactly six bits (GPP v1 specification, "Creating a GPP String"), so ``DBABM``
    is 30 bits even though it is not valid standard base64.
    """

    def __init__(self, segment: str):
        if not segment:
            raise ValueError("empty segment")
        try:
            self.bits = "".join(_SIX_BITS[char] for char in segment)
        except KeyError:
            raise ValueError("not base64url") from None
        self.pos = 0

    def int(self, width: int) -> int:
        if self.pos + width > len(self.bits):
            raise ValueError("segment too short")
        value = int(self.bits[self.pos : self.pos + width] or "0", 2)
        self.pos += width
        return value

    def bool(self) -> bool:
        return bool(self.int(1))

    def to_bytes(self) -> bytes:
        """All bits, zero-padded on the right to whole bytes."""
        padded = self.bits + "0" * (-len(self.bits) % 8)
        return int(padded, 2).to_bytes(len(padded) // 8, "big")

    def fibonacci(self, max_bits: int = MAX_FIBONACCI_BITS) -> int:
        """A Fibonacci-coded integer: bit i stands for F(i+2) (1, 2, 3, 5, …), ended by '11'.

        At most ``max_bits`` value bits are read before the terminating '1'.
        """
        max_bits = min(max_bits, MAX_FIBONACCI_BITS)
        value, previous = 0, "0"
        for index in range(max_bits + 1):
            if self.pos >= len(self.bits):
                raise ValueError("unterminated Fibonacci integer")
            bit = self.bits[self.pos]
            self.pos += 1
            if bit == "1" and previous == "1":
                return value
            if index == max_bits:
                break
            if bit == "1":
                value += _FIBONACCI[index]
            previous = bit
        raise _FibonacciTooLong(f"Fibonacci integer longer than {max_bits} bits")

    def fibonacci_range(self, max_id: int = MAX_GPP_SECTION_ID) -> list[int]:
        """A Range(Fibonacci): int(12) entry count, then per entry a group flag, the offset from
        the last id seen and, for a group, its length. Ids above ``max_id`` are rejected before
        any list is built, so the result never holds more than ``max_id`` ids."""
        count = self.int(12)
        if count > max_id:
            raise ValueError(f"{count} range entries, more than the {max_id} ids allowed")
        # The widest Fibonacci code whose value can still be <= max_id; a longer one is larger.
        width = sum(1 for f in _FIBONACCI if f <= max_id)

        def offset() -> int:
            try:
                return self.fibonacci(width)
            except _FibonacciTooLong:
                raise ValueError(f"an id is above the maximum of {max_id}") from None

        spans: list[tuple[int, int]] = []
        last = 0
        for _entry in range(count):
            is_group = self.bool()
            start = last + offset()
            end = start + offset() if is_group else start
            if end > max_id:
                raise ValueError(f"id {end} is above the maximum of {max_id}")
            spans.append((start, end))
            last = end
        # Offsets are >= 1, so ids strictly increase and there are at most max_id of them.
        return [i for start, end in spans for i in range(start, end + 1)]


def _bits_set(bitfield) -> list[int]:
    return sorted(int(k) for k, v in dict(bitfield).items() if v)


def _merge_spans(entries) -> list[tuple[int, int]]:
    """Union of inclusive (start, end) ranges, sorted, without expanding them."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted((int(s), int(e)) for s, e in entries if int(s) <= int(e)):
        if merged and start <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _first_ids(spans: list[tuple[int, int]], limit: int) -> list[int]:
    ids: list[int] = []
    for start, end in spans:
        ids.extend(range(start, min(end, start + limit - len(ids) - 1) + 1))
        if len(ids) >= limit:
            break
    return ids


def tcf_decode(tc_string: str) -> dict:
    """Return a summary of a TCF v2 TC string or raise :class:`InvalidSignalString`."""
    if not isinstance(tc_string, str) or not tc_string.strip() or len(tc_string) > 20000:
        raise InvalidSignalString(ERR_TCF, code="invalid_tcf_string")
    core, *others = tc_string.strip().split(".")
    if not core.startswith("C"):  # version 2 puts 000010 in the first six bits: "C"
        raise InvalidSignalString(f"{ERR_TCF} Only version 2 strings are accepted.", code="invalid_tcf_string")
    try:
        core_reader = BitReader(core)
        if len(core_reader.bits) < TCF_CORE_MIN_BITS:
            raise ValueError("core segment too short")
        # Disclosed-vendor, allowed-vendor and publisher-TC segments are not summarised: only check
        # they are base64url. They are not handed to iab-tcf, whose vendor-range expansion copies a
        # dict per range (quadratic in attacker-chosen ranges of up to 65,535 ids each).
        for segment in others:
            BitReader(segment)
        consent = iab_tcf.ConsentV2(core_reader.to_bytes())
        reader = getattr(consent, "_reader", None)
        # The decoder reads past the end as zeros; a read beyond the data means a truncated string.
        if reader is not None and reader._pointer > len(core_reader.bits):
            raise ValueError("core segment truncated")
        if getattr(consent, "is_consent_range_encoding", False):
            spans = _merge_spans(consent.consented_vendors_range)
            vendors = _first_ids(spans, TCF_SUMMARY_VENDORS)
            vendor_count = sum(end - start + 1 for start, end in spans)
        else:
            vendors = _bits_set(getattr(consent, "consented_vendors", {}) or {})
            vendor_count = len(vendors)
        summary = {
            "version": consent.version,
            "created": consent.created.isoformat(),
            "last_updated": consent.last_updated.isoformat(),
            "cmp_id": consent.cmp_id,
            "cmp_version": consent.cmp_version,
            "consent_language": _text(consent.consent_language),
            "vendor_list_version": consent.vendor_list_version,
            "policy_version": consent.tcf_policy_version,
            "publisher_country": _text(consent.publisher_cc),
            "purposes_consent": _bits_set(consent.purposes_consent),
            "purposes_legitimate_interest": _bits_set(consent.purposes_legitimate_interests),
            "special_features_optin": _bits_set(consent.special_features_optin),
            "vendor_consents": vendors[:TCF_SUMMARY_VENDORS],
            "vendor_consents_count": vendor_count,
        }
    except InvalidSignalString:
        raise
    except Exception as exc:  # the decoder raises assorted errors on truncated or garbled input
        raise InvalidSignalString(f"{ERR_TCF} ({type(exc).__name__})", code="invalid_tcf_string") from None
    if summary["version"] != 2:
        raise InvalidSignalString(f"{ERR_TCF} Only version 2 strings are accepted.", code="invalid_tcf_string")
    return summary


def _text(value: bytes | str) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _two_bit_fields(reader: BitReader, names: list[str]) -> dict[str, int]:
    return {name: reader.int(2) for name in names}


def _usnat(segment: str) -> dict:
    reader = BitReader(segment)
    out: dict = {"version": reader.int(6)}
    out.update(_two_bit_fields(reader, [
        "sharing_notice", "sale_opt_out_notice", "sharing_opt_out_notice",
        "targeted_advertising_opt_out_notice", "sensitive_data_processing_opt_out_notice",
        "sensitive_data_limit_use_notice", "sale_opt_out", "sharing_opt_out",
        "targeted_advertising_opt_out",
    ]))
    out["sensitive_data_processing"] = [reader.int(2) for _ in range(12)]
    out["known_child_sensitive_data_consents"] = [reader.int(2) for _ in range(2)]
    out.update(_two_bit_fields(reader, [
        "personal_data_consents", "mspa_covered_transaction", "mspa_opt_out_option_mode",
        "mspa_service_provider_mode",
    ]))
    return out


def _usca(segment: str) -> dict:
    reader = BitReader(segment)
    out: dict = {"version": reader.int(6)}
    out.update(_two_bit_fields(reader, [
        "sale_opt_out_notice", "sharing_opt_out_notice", "sensitive_data_limit_use_notice",
        "sale_opt_out", "sharing_opt_out",
    ]))
    out["sensitive_data_processing"] = [reader.int(2) for _ in range(9)]
    out["known_child_sensitive_data_consents"] = [reader.int(2) for _ in range(2)]
    out.update(_two_bit_fields(reader, [
        "personal_data_consents", "mspa_covered_transaction", "mspa_opt_out_option_mode",
        "mspa_service_provider_mode",
    ]))
    return out


def _uspv1(text: str) -> dict:
    if len(text) != 4 or text[0] != "1" or any(c not in "YN-" for c in text[1:]):
        raise ValueError("US Privacy string must look like 1YNN")
    return {"version": 1, "notice": text[1], "opt_out_sale": text[2], "lspa_covered": text[3]}


def gpp_decode(gpp_string: str) -> dict:
    """Return a summary of a GPP string (header + known sections) or raise InvalidSignalString."""
    if not isinstance(gpp_string, str) or not gpp_string.strip() or len(gpp_string) > 20000:
        raise InvalidSignalString(ERR_GPP, code="invalid_gpp_string")
    parts = gpp_string.strip().split("~")
    try:
        header = BitReader(parts[0])
        if header.int(6) != 3:
            raise ValueError("header type is not 3")
        version = header.int(6)
        section_ids = header.fibonacci_range()
    except ValueError as exc:
        raise InvalidSignalString(f"{ERR_GPP} Header: {exc}.", code="invalid_gpp_string") from None
    if len(section_ids) != len(parts) - 1:
        raise InvalidSignalString(
            f"{ERR_GPP} The header lists {len(section_ids)} sections but {len(parts) - 1} follow.",
            code="invalid_gpp_string",
        )
    sections: dict[str, dict] = {}
    for section_id, text in zip(section_ids, parts[1:], strict=True):
        name = GPP_SECTIONS.get(section_id, f"section_{section_id}")
        try:
            if section_id == 2:
                sections[name] = tcf_decode(text)
            elif section_id == 6:
                sections[name] = _uspv1(text)
            elif section_id == 7:
                sections[name] = _usnat(text.split(".")[0])
            elif section_id == 8:
                sections[name] = _usca(text.split(".")[0])
            else:
                BitReader(text.split(".")[0])  # at least well-formed base64url
                sections[name] = {"decoded": False}
        except (ValueError, InvalidSignalString) as exc:
            raise InvalidSignalString(
                f"{ERR_GPP} Section {section_id} ({name}): {getattr(exc, 'detail', exc)}",
                code="invalid_gpp_string",
            ) from None
    return {"version": version, "section_ids": section_ids, "sections": sections}

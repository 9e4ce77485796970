"""Validate and summarise IAB TCF v2.x TC strings and GPP strings.

TCF core segments are decoded by the maintained ``iab-tcf`` package. GPP (header, Fibonacci
section-id ranges, US Privacy v1, US National v1 and US California v1 core segments) is decoded
here from the IAB GPP specification. Mamoru never creates these strings; it records what a
registered CMP produced.
"""

from __future__ import annotations

import base64
import binascii

import iab_tcf

from governance.api.errors import DomainError

GPP_SECTIONS = {
    1: "tcfeuv1", 2: "tcfeuv2", 3: "gppheader", 5: "tcfcav1", 6: "uspv1", 7: "usnat", 8: "usca",
    9: "usva", 10: "usco", 11: "usut", 12: "usct",
}
# Bits up to and including the vendor-consent and legitimate-interest headers and the
# publisher-restriction count (TCF v2.2 core segment).
TCF_CORE_MIN_BITS = 213 + 17 + 17 + 12
ERR_TCF = "Not a valid TCF v2 TC string."
ERR_GPP = "Not a valid GPP string."


class InvalidSignalString(DomainError):
    code = "invalid_signal_string"
    title = "A TCF or GPP string is malformed."


class BitReader:
    """Read big-endian bit fields from a base64url segment."""

    def __init__(self, segment: str):
        try:
            raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not base64url") from exc
        if not raw:
            raise ValueError("empty segment")
        self.bits = "".join(f"{byte:08b}" for byte in raw)
        self.pos = 0

    def int(self, width: int) -> int:
        if self.pos + width > len(self.bits):
            raise ValueError("segment too short")
        value = int(self.bits[self.pos : self.pos + width], 2)
        self.pos += width
        return value

    def bool(self) -> bool:
        return bool(self.int(1))

    def fibonacci(self) -> int:
        """A Fibonacci-coded integer: bit i stands for F(i+2) (1, 2, 3, 5, …), ended by '11'."""
        fib = [1, 2]
        value, previous, index = 0, "0", 0
        while True:
            if self.pos >= len(self.bits):
                raise ValueError("unterminated Fibonacci integer")
            bit = self.bits[self.pos]
            self.pos += 1
            if bit == "1" and previous == "1":
                return value
            while index >= len(fib):
                fib.append(fib[-1] + fib[-2])
            if bit == "1":
                value += fib[index]
            previous, index = bit, index + 1

    def fibonacci_range(self) -> list[int]:
        count = self.int(12)
        ids: list[int] = []
        last = 0
        for _ in range(count):
            if self.bool():
                start = last + self.fibonacci()
                end = start + self.fibonacci()
                ids.extend(range(start, end + 1))
                last = end
            else:
                last = last + self.fibonacci()
                ids.append(last)
        return ids


def _bits_set(bitfield) -> list[int]:
    return sorted(int(k) for k, v in dict(bitfield).items() if v)


def tcf_decode(tc_string: str) -> dict:
    """Return a summary of a TCF v2 TC string or raise :class:`InvalidSignalString`."""
    if not isinstance(tc_string, str) or not tc_string.strip() or len(tc_string) > 20000:
        raise InvalidSignalString(ERR_TCF, code="invalid_tcf_string")
    core = tc_string.strip().split(".")[0]
    if not core.startswith("C"):  # version 2 puts 000010 in the first six bits: "C"
        raise InvalidSignalString(f"{ERR_TCF} Only version 2 strings are accepted.", code="invalid_tcf_string")
    try:
        if len(BitReader(core).bits) < TCF_CORE_MIN_BITS:
            raise ValueError("core segment too short")
        consent = iab_tcf.decode_v2(tc_string.strip())
        reader = getattr(consent, "_reader", None)
        # The decoder reads past the end as zeros; a read beyond the data means a truncated string.
        if reader is not None and reader._pointer > len(reader._consent):
            raise ValueError("core segment truncated")
        vendors = _bits_set(getattr(consent, "consented_vendors", {}) or {})
        if getattr(consent, "is_consent_range_encoding", False):
            vendors = sorted(
                {v for entry in consent.consented_vendors_range for v in _range_ids(entry)}
            )
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
            "vendor_consents": vendors[:2000],
            "vendor_consents_count": len(vendors),
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


def _range_ids(entry) -> range | list[int]:
    start, end = entry if isinstance(entry, tuple) else (entry, entry)
    return range(int(start), int(end) + 1)


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

"""Masking for display: personal data is masked by default everywhere."""

from __future__ import annotations

MASK = "•"


def mask_value(value: str | None, *, kind: str = "") -> str | None:
    if value is None:
        return None
    value = str(value)
    if not value:
        return ""
    if kind == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}{MASK * 3}@{domain[:1]}{MASK * 3}"
    if kind == "phone":
        return MASK * max(len(value) - 2, 3) + value[-2:]
    if len(value) <= 2:
        return MASK * len(value)
    return value[:1] + MASK * min(len(value) - 1, 8)

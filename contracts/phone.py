"""Mainland China mobile numbers (11 digits starting 13-19)."""

from __future__ import annotations

import re

from contracts.errors import InvalidPhone

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_SEPARATORS = re.compile(r"[\s\-()]")


def parse_mobile(value: str) -> str:
    """Return the 11-digit number; accepts spaces, dashes and a +86 / 0086 / 86 prefix."""
    if not isinstance(value, str):
        raise InvalidPhone(f"phone number must be text, got {type(value).__name__}")
    number = _SEPARATORS.sub("", value)
    for prefix in ("+86", "0086", "86"):
        if number.startswith(prefix) and len(number) == 11 + len(prefix):
            number = number[len(prefix) :]
            break
    if not number.isascii() or not _MOBILE.match(number):
        raise InvalidPhone(f"mobile number must be 11 digits starting with 13-19, got {value!r}")
    return number


def mask_mobile(number: str) -> str:
    """Shown form: ``138****5678``."""
    return number[:3] + "****" + number[7:]

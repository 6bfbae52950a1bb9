"""Resident ID numbers (居民身份证号码, GB 11643-1999).

18 characters: a 6-digit region code, the birth date ``YYYYMMDD``, a 3-digit sequence (odd for
men, even for women) and a check character from ISO 7064 MOD 11-2 (``0``-``9`` or ``X``).
Only the shape of the region code is checked (a known province prefix, six digits); the full
region table changes every year and a code valid at birth stays valid on the card.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from contracts.errors import InvalidIdNumber

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
PROVINCE_PREFIXES = frozenset(
    {
        "11",
        "12",
        "13",
        "14",
        "15",
        "21",
        "22",
        "23",
        "31",
        "32",
        "33",
        "34",
        "35",
        "36",
        "37",
        "41",
        "42",
        "43",
        "44",
        "45",
        "46",
        "50",
        "51",
        "52",
        "53",
        "54",
        "61",
        "62",
        "63",
        "64",
        "65",
        "71",
        "81",
        "82",
    }
)
"""First two digits of the provincial-level divisions (GB/T 2260)."""
EARLIEST_BIRTH = dt.date(1880, 1, 1)


def check_character(first17: str) -> str:
    """The GB 11643 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK[total % 11]


@dataclass(frozen=True, slots=True)
class ResidentId:
    """A validated 18-character resident ID number."""

    number: str

    @property
    def region(self) -> str:
        return self.number[:6]

    @property
    def birth_date(self) -> dt.date:
        n = self.number
        return dt.date(int(n[6:10]), int(n[10:12]), int(n[12:14]))

    @property
    def sex(self) -> str:
        """``"M"`` or ``"F"`` from the parity of the sequence digits."""
        return "M" if int(self.number[16]) % 2 else "F"

    def masked(self) -> str:
        """Shown form: first 6 and last 4 kept, e.g. ``510104********123X``."""
        return self.number[:6] + "*" * 8 + self.number[14:]

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"ResidentId({self.masked()!r})"


def parse_resident_id(value: str, today: dt.date | None = None) -> ResidentId:
    """Validate ``value`` and return it as a ``ResidentId``.

    Spaces are ignored and a trailing ``x`` is read as ``X``. Raises ``InvalidIdNumber`` whose
    ``code`` is one of ``length``, ``characters``, ``region``, ``birth_date``,
    ``birth_in_future``, ``check_digit``.
    """
    if not isinstance(value, str):
        raise InvalidIdNumber("characters", f"ID number must be text, got {type(value).__name__}")
    number = value.replace(" ", "").upper()
    if len(number) == 15 and number.isdigit():
        raise InvalidIdNumber(
            "length", "15-digit ID numbers were replaced in 2013; enter the 18-digit number"
        )
    if len(number) != 18:
        raise InvalidIdNumber("length", f"ID number must have 18 characters, got {len(number)}")
    if not (number[:17].isascii() and number[:17].isdigit()) or number[17] not in "0123456789X":
        raise InvalidIdNumber("characters", "ID number must be 17 digits followed by a digit or X")
    if number[:2] not in PROVINCE_PREFIXES:
        raise InvalidIdNumber(
            "region", f"ID number region code {number[:6]!r} starts with no known province"
        )
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber(
            "birth_date", f"ID number birth date {number[6:14]!r} is not a real date"
        ) from None
    if born < EARLIEST_BIRTH:
        raise InvalidIdNumber("birth_date", f"ID number birth date {number[6:14]!r} is too early")
    if born > (today or dt.date.today()):
        raise InvalidIdNumber(
            "birth_in_future", f"ID number birth date {number[6:14]!r} is in the future"
        )
    expected = check_character(number[:17])
    if number[17] != expected:
        raise InvalidIdNumber(
            "check_digit",
            f"ID number check digit is {number[17]!r} but the first 17 digits give {expected!r}",
        )
    return ResidentId(number)

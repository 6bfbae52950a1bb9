"""Administrative division codes and jurisdiction.

Accepted forms, all normalised to the shortest unambiguous code:

| tier     | short       | GB/T 2260 (6) | statistical (12)  |
|----------|-------------|---------------|-------------------|
| province | ``51``      | ``510000``    | ``510000000000``  |
| city     | ``5101``    | ``510100``    | ``510100000000``  |
| county   | ``510104``  | ``510104``    | ``510104000000``  |
| township | ``510104001``| —            | ``510104001000``  |

Jurisdiction is a code prefix: an official of county ``510104`` covers every township whose
code starts with ``510104``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from contracts.errors import InvalidDivisionCode
from contracts.ids import PROVINCE_PREFIXES


class Tier(IntEnum):
    """Division tiers, from the top. The value is the code length."""

    PROVINCE = 2
    CITY = 4
    COUNTY = 6
    TOWNSHIP = 9

    @property
    def label_zh(self) -> str:
        return {2: "省级", 4: "市级", 6: "县级", 9: "乡镇级"}[self.value]


@dataclass(frozen=True, slots=True, order=True)
class DivisionCode:
    """A normalised division code (2, 4, 6 or 9 digits)."""

    code: str

    def __post_init__(self) -> None:
        if len(self.code) not in (2, 4, 6, 9) or not self.code.isdigit():
            raise InvalidDivisionCode(
                f"division code must normalise to 2/4/6/9 digits: {self.code!r}"
            )

    @property
    def tier(self) -> Tier:
        return Tier(len(self.code))

    @property
    def parent(self) -> DivisionCode | None:
        """The division one tier up, or ``None`` for a province."""
        lengths = [t.value for t in Tier]
        i = lengths.index(len(self.code))
        return DivisionCode(self.code[: lengths[i - 1]]) if i else None

    def at(self, tier: Tier) -> DivisionCode:
        """This division's ancestor (or itself) at ``tier``."""
        if tier.value > len(self.code):
            raise InvalidDivisionCode(f"{self.code!r} is above the {tier.name.lower()} tier")
        return DivisionCode(self.code[: tier.value])

    def within(self, jurisdiction: DivisionCode | str) -> bool:
        """True when this division lies inside (or is) ``jurisdiction``."""
        j = jurisdiction if isinstance(jurisdiction, DivisionCode) else parse_division(jurisdiction)
        return self.code.startswith(j.code)

    def __str__(self) -> str:
        return self.code


def code_range(prefix: str) -> tuple[str, str]:
    """The bounds ``[low, high)`` of every code starting with ``prefix``: ``col >= low AND
    col < high`` finds a jurisdiction's rows through an index, which ``LIKE 'prefix%'`` cannot."""
    return prefix, prefix + "\uffff"


def parse_division(value: str) -> DivisionCode:
    """Parse any accepted form (see the module table) into a ``DivisionCode``."""
    if not isinstance(value, str):
        raise InvalidDivisionCode(f"division code must be text, got {type(value).__name__}")
    raw = value.strip()
    if not raw.isascii() or not raw.isdigit():
        raise InvalidDivisionCode(f"division code must be digits only: {value!r}")
    if len(raw) == 12:
        if raw[9:] != "000":
            raise InvalidDivisionCode(f"village-level codes are below the township tier: {value!r}")
        raw = raw[:9]
    if len(raw) == 9 and raw[6:] == "000":
        raw = raw[:6]
    if len(raw) == 6:
        if raw[2:] == "0000":
            raw = raw[:2]
        elif raw[4:] == "00":
            raw = raw[:4]
    if len(raw) not in (2, 4, 6, 9):
        raise InvalidDivisionCode(
            f"division code must have 2, 4, 6, 9 or 12 digits, got {len(raw)}: {value!r}"
        )
    if raw[:2] not in PROVINCE_PREFIXES:
        raise InvalidDivisionCode(f"division code {value!r} starts with no known province")
    if any(raw[i : i + 2] == "00" for i in (2, 4) if i < min(len(raw), 6)):
        raise InvalidDivisionCode(f"division code {value!r} has an empty (00) level")
    return DivisionCode(raw)


def parse_tier(value: str, tier: Tier) -> DivisionCode:
    """Parse ``value`` and require it to be exactly at ``tier``."""
    code = parse_division(value)
    if code.tier is not tier:
        raise InvalidDivisionCode(
            f"expected a {tier.name.lower()} code, got a {code.tier.name.lower()} code: {value!r}"
        )
    return code

"""Resident ID numbers (GB 11643-1999)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from contracts.errors import ContractError, InvalidIdNumber
from contracts.ids import ResidentId, check_character, parse_resident_id

TODAY = dt.date(2025, 6, 1)


def valid(region: str = "510104", born: str = "19900101", sequence: str = "123") -> str:
    """An 18-character number with the correct check character."""
    first17 = region + born + sequence
    return first17 + check_character(first17)


GOOD = valid()  # 510104199001011230
WRONG_CHECK = GOOD[:17] + ("1" if GOOD[17] != "1" else "2")
LEAP = valid("440305", "20000229", "468")
EARLIEST = valid("820000", "18800101", "001")
BORN_TODAY = valid("650102", "20250601", "010")


@pytest.mark.parametrize(
    ("first17", "expected"),
    [
        ("11010519491231002", "X"),  # the standard's worked example
        ("51010419900101123", "0"),
        ("00000000000000000", "1"),
    ],
)
def test_check_character(first17: str, expected: str) -> None:
    assert check_character(first17) == expected


@pytest.mark.parametrize(
    ("value", "number", "born", "sex"),
    [
        (GOOD, GOOD, dt.date(1990, 1, 1), "M"),
        ("11010519491231002X", "11010519491231002X", dt.date(1949, 12, 31), "F"),
        ("11010519491231002x", "11010519491231002X", dt.date(1949, 12, 31), "F"),
        ("110105 19491231 002x", "11010519491231002X", dt.date(1949, 12, 31), "F"),
        (f" {GOOD[:6]} {GOOD[6:14]} {GOOD[14:]} ", GOOD, dt.date(1990, 1, 1), "M"),
        (LEAP, LEAP, dt.date(2000, 2, 29), "F"),
        (EARLIEST, EARLIEST, dt.date(1880, 1, 1), "M"),
        (BORN_TODAY, BORN_TODAY, TODAY, "F"),
    ],
    ids=["plain", "ends-X", "lowercase-x", "spaces", "padded", "leap-day", "earliest", "today"],
)
def test_valid_numbers(value: str, number: str, born: dt.date, sex: str) -> None:
    parsed = parse_resident_id(value, today=TODAY)
    assert parsed == ResidentId(number)
    assert parsed.region == number[:6]
    assert parsed.birth_date == born
    assert parsed.sex == sex


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (GOOD[:17], "length"),
        (GOOD + "1", "length"),
        ("110105491231002", "length"),  # 15-digit number from before 2013
        ("", "length"),
        (GOOD[:8] + "A" + GOOD[9:], "characters"),
        (GOOD[:16] + "X" + GOOD[17], "characters"),
        (GOOD[:17] + "Y", "characters"),
        ("５" + GOOD[1:], "characters"),  # full-width digit
        (12345, "characters"),
        (valid(region="000000"), "region"),
        (valid(region="990101"), "region"),
        (valid(born="19900230"), "birth_date"),
        (valid(born="19901301"), "birth_date"),
        (valid(born="19900100"), "birth_date"),
        (valid(born="18500101"), "birth_date"),
        (valid(born="18791231"), "birth_date"),
        (valid(born="20250602"), "birth_in_future"),
        (valid(born="20300101"), "birth_in_future"),
        (WRONG_CHECK, "check_digit"),
        (GOOD[:17] + "X", "check_digit"),
        ("11010519491231002" + "0", "check_digit"),
    ],
    ids=[
        "17-chars",
        "19-chars",
        "15-digit-old",
        "empty",
        "letter-inside",
        "X-inside",
        "bad-last-char",
        "full-width",
        "not-text",
        "region-00",
        "region-99",
        "feb-30",
        "month-13",
        "day-00",
        "born-1850",
        "before-1880",
        "born-tomorrow",
        "born-2030",
        "wrong-check",
        "X-instead-of-digit",
        "digit-instead-of-X",
    ],
)
def test_invalid_numbers(value: Any, code: str) -> None:
    with pytest.raises(InvalidIdNumber) as caught:
        parse_resident_id(value, today=TODAY)
    assert caught.value.code == code
    assert isinstance(caught.value, ContractError)


def test_birth_in_future_defaults_to_the_real_today() -> None:
    tomorrow = (dt.date.today() + dt.timedelta(days=1)).strftime("%Y%m%d")
    with pytest.raises(InvalidIdNumber) as caught:
        parse_resident_id(valid(born=tomorrow))
    assert caught.value.code == "birth_in_future"


@pytest.mark.parametrize("number", [GOOD, "11010519491231002X", LEAP])
def test_shown_forms_keep_only_the_first_6_and_last_4(number: str) -> None:
    parsed = parse_resident_id(number, today=TODAY)
    masked = parsed.masked()
    assert masked == number[:6] + "********" + number[-4:]
    assert str(parsed) == masked
    assert repr(parsed) == f"ResidentId({masked!r})"
    for shown in (str(parsed), repr(parsed), f"{parsed}", f"{[parsed]}"):
        assert number not in shown
        assert number[6:14] not in shown  # the birth date stays hidden


@pytest.mark.parametrize("digit", "0123456789")
def test_sex_follows_the_parity_of_the_sequence(digit: str) -> None:
    parsed = parse_resident_id(valid(sequence="12" + digit), today=TODAY)
    assert parsed.sex == ("M" if int(digit) % 2 else "F")

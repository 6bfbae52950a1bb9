"""Mainland mobile numbers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts.errors import InvalidPhone
from contracts.phone import mask_mobile, parse_mobile


@pytest.mark.parametrize(
    "value",
    [
        "13800138000",
        "+86 138 0013 8000",
        "+8613800138000",
        "0086-13800138000",
        "8613800138000",
        "138-0013-8000",
        "(138) 0013 8000",
        " 13800138000\n",
    ],
)
def test_valid_mobiles_normalise(value: str) -> None:
    assert parse_mobile(value) == "13800138000"


@pytest.mark.parametrize(
    "value",
    [
        "12345678901",  # second digit 2
        "10000000000",
        "1380013800",  # 10 digits
        "138001380001",  # 12 digits
        "2380013800x",
        "1380013800x",
        "１３８００１３８０００",  # full-width digits
        "+1 13800138000",
        "+86 12345678901",
        "86 86 13800138000",
        "138.0013.8000",
        "",
        13800138000,
        None,
    ],
)
def test_invalid_mobiles(value: Any) -> None:
    with pytest.raises(InvalidPhone):
        parse_mobile(value)


mobiles = st.from_regex(r"1[3-9][0-9]{9}", fullmatch=True)


@given(mobiles)
def test_every_mobile_round_trips_with_a_country_prefix(number: str) -> None:
    assert parse_mobile(number) == number
    assert parse_mobile(f"+86 {number[:3]} {number[3:7]} {number[7:]}") == number


@given(mobiles)
def test_mask_keeps_the_first_3_and_last_4(number: str) -> None:
    masked = mask_mobile(number)
    assert masked == number[:3] + "****" + number[7:]
    assert len(masked) == 11


def test_mask_example() -> None:
    assert mask_mobile("13812345678") == "138****5678"

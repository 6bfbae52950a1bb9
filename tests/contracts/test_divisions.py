"""Division codes: the accepted forms, tiers and jurisdiction by prefix."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.divisions import DivisionCode, Tier, parse_division, parse_tier
from contracts.errors import InvalidDivisionCode

TOWNSHIP = DivisionCode("510104021")
COUNTY = DivisionCode("510104")
CITY = DivisionCode("5101")
PROVINCE = DivisionCode("51")


@pytest.mark.parametrize(
    ("value", "code", "tier"),
    [
        ("51", "51", Tier.PROVINCE),
        ("510000", "51", Tier.PROVINCE),
        ("510000000000", "51", Tier.PROVINCE),
        ("5101", "5101", Tier.CITY),
        ("510100", "5101", Tier.CITY),
        ("510100000000", "5101", Tier.CITY),
        ("510104", "510104", Tier.COUNTY),
        ("510104000000", "510104", Tier.COUNTY),
        ("510104001", "510104001", Tier.TOWNSHIP),
        ("510104001000", "510104001", Tier.TOWNSHIP),
        (" 510104021\n", "510104021", Tier.TOWNSHIP),
    ],
)
def test_every_accepted_form_normalises(value: str, code: str, tier: Tier) -> None:
    parsed = parse_division(value)
    assert parsed == DivisionCode(code)
    assert str(parsed) == code
    assert parsed.tier is tier


@pytest.mark.parametrize(
    "value",
    [
        "",
        "5",
        "510",
        "51010",
        "5101040",
        "51010400",
        "5101040010",
        "51010400100",
        "5101040010000",
        "51a104",
        "5101O4",
        "-51",
        "51.0",
        "５１",  # full-width digits
        "510104001001",  # a village
        "510104001100",
        "00",
        "990000",
        "7000",
        "5100",
        "510004",
        "510100001",
        "510004001000",
        None,
        510104,
    ],
)
def test_invalid_codes(value: Any) -> None:
    with pytest.raises(InvalidDivisionCode):
        parse_division(value)


@pytest.mark.parametrize("code", ["", "5", "510", "5101041", "51a1", "5101040010"])
def test_division_code_checks_its_shape(code: str) -> None:
    with pytest.raises(InvalidDivisionCode):
        DivisionCode(code)


def test_parents_walk_up_to_the_province() -> None:
    assert TOWNSHIP.parent == COUNTY
    assert COUNTY.parent == CITY
    assert CITY.parent == PROVINCE
    assert PROVINCE.parent is None


@pytest.mark.parametrize(
    ("code", "tier", "expected"),
    [
        (TOWNSHIP, Tier.TOWNSHIP, TOWNSHIP),
        (TOWNSHIP, Tier.COUNTY, COUNTY),
        (TOWNSHIP, Tier.CITY, CITY),
        (TOWNSHIP, Tier.PROVINCE, PROVINCE),
        (COUNTY, Tier.CITY, CITY),
        (CITY, Tier.CITY, CITY),
    ],
)
def test_at_gives_the_ancestor(code: DivisionCode, tier: Tier, expected: DivisionCode) -> None:
    assert code.at(tier) == expected


@pytest.mark.parametrize(
    ("code", "tier"), [(COUNTY, Tier.TOWNSHIP), (CITY, Tier.COUNTY), (PROVINCE, Tier.CITY)]
)
def test_at_refuses_a_lower_tier(code: DivisionCode, tier: Tier) -> None:
    with pytest.raises(InvalidDivisionCode):
        code.at(tier)


@pytest.mark.parametrize(
    ("code", "jurisdiction", "inside"),
    [
        (TOWNSHIP, TOWNSHIP, True),
        (TOWNSHIP, COUNTY, True),
        (TOWNSHIP, CITY, True),
        (TOWNSHIP, PROVINCE, True),
        (TOWNSHIP, "510104", True),
        (TOWNSHIP, "510100", True),
        (TOWNSHIP, "510000000000", True),
        (COUNTY, CITY, True),
        (TOWNSHIP, DivisionCode("510105"), False),
        (TOWNSHIP, "510105", False),
        (TOWNSHIP, "5102", False),
        (TOWNSHIP, "52", False),
        (TOWNSHIP, DivisionCode("510104022"), False),
        (COUNTY, TOWNSHIP, False),
        (CITY, COUNTY, False),
        (PROVINCE, CITY, False),
    ],
)
def test_within(code: DivisionCode, jurisdiction: DivisionCode | str, inside: bool) -> None:
    assert code.within(jurisdiction) is inside


def test_within_rejects_an_invalid_jurisdiction() -> None:
    with pytest.raises(InvalidDivisionCode):
        TOWNSHIP.within("5101x")


@pytest.mark.parametrize(
    ("value", "tier", "code"),
    [
        ("510104021000", Tier.TOWNSHIP, "510104021"),
        ("510104", Tier.COUNTY, "510104"),
        ("510100", Tier.CITY, "5101"),
        ("510000", Tier.PROVINCE, "51"),
    ],
)
def test_parse_tier_accepts_its_tier(value: str, tier: Tier, code: str) -> None:
    assert parse_tier(value, tier) == DivisionCode(code)


@pytest.mark.parametrize(
    ("value", "tier"),
    [
        ("510104", Tier.TOWNSHIP),
        ("510104000000", Tier.TOWNSHIP),
        ("510104021", Tier.COUNTY),
        ("510100", Tier.COUNTY),
        ("51", Tier.CITY),
    ],
)
def test_parse_tier_rejects_another_tier(value: str, tier: Tier) -> None:
    with pytest.raises(InvalidDivisionCode, match=f"expected a {tier.name.lower()} code"):
        parse_tier(value, tier)


def test_tier_labels() -> None:
    assert [t.label_zh for t in Tier] == ["省级", "市级", "县级", "乡镇级"]
    assert [t.value for t in Tier] == [2, 4, 6, 9]

"""Place names from the shipped division table."""

from __future__ import annotations

import pytest

from contracts.divisions import DivisionCode
from contracts.places import Place, load_places, place_name, shipped_places, townships_of


@pytest.mark.parametrize(
    ("code", "lang", "name"),
    [
        ("510104", "zh", "锦江区"),
        ("510104", "en", "Jinjiang District"),
        (DivisionCode("510104"), "zh", "锦江区"),
        ("51", "zh", "四川省"),
        ("5101", "en", "Chengdu"),
        ("510104021", "zh", "盐市口街道"),
        ("510104", "fr", "锦江区"),  # any language but en falls back to Chinese
    ],
)
def test_place_name(code: str | DivisionCode, lang: str, name: str) -> None:
    assert place_name(code, lang) == name


@pytest.mark.parametrize("code", ["510199", "510104999", "52", DivisionCode("5102")])
def test_an_unknown_code_names_itself(code: str | DivisionCode) -> None:
    assert place_name(code) == str(code)
    assert place_name(code, "en") == str(code)


def test_townships_of_a_city_are_9_digit_and_sorted() -> None:
    towns = townships_of("5101")
    codes = [t.code.code for t in towns]
    assert codes[:13] == [f"510104{n:03d}" for n in range(20, 33)]
    assert len(codes) == 43
    assert all(len(c) == 9 and c.startswith("5101") for c in codes)
    assert codes == sorted(codes)
    assert towns[1] == Place(DivisionCode("510104021"), "盐市口街道", "Yanshikou Subdistrict")


@pytest.mark.parametrize(
    ("prefix", "count"), [("51", 43), ("510104", 13), ("510105", 6), ("510113", 0)]
)
def test_townships_of_other_prefixes(prefix: str, count: int) -> None:
    assert len(townships_of(prefix)) == count


def test_the_shipped_table_is_keyed_by_normalised_code() -> None:
    places = shipped_places()
    assert all(key == place.code.code for key, place in places.items())
    assert all(place.name_zh and place.name_en for place in places.values())


def test_load_places_normalises_codes_and_trims_names() -> None:
    places = load_places("code,name_zh,name_en\n510100, 成都市 , Chengdu \n510104021000,x,y\n")
    assert places == {
        "5101": Place(DivisionCode("5101"), "成都市", "Chengdu"),
        "510104021": Place(DivisionCode("510104021"), "x", "y"),
    }

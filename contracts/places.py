"""Names of divisions, from the versioned table shipped in ``contracts/data/divisions.csv``
(statistical division codes of Chengdu, Sichuan, 2016 edition). Unknown codes name themselves.
"""

from __future__ import annotations

import csv
import functools
import io
from dataclasses import dataclass
from importlib import resources

from contracts.divisions import DivisionCode, parse_division

TABLE_VERSION = "sc-chengdu-2016"


@dataclass(frozen=True, slots=True)
class Place:
    code: DivisionCode
    name_zh: str
    name_en: str

    def name(self, lang: str = "zh") -> str:
        return self.name_en if lang == "en" else self.name_zh


def load_places(text: str) -> dict[str, Place]:
    """Parse a ``code,name_zh,name_en`` CSV into places keyed by normalised code."""
    places: dict[str, Place] = {}
    for row in csv.DictReader(io.StringIO(text)):
        code = parse_division(row["code"])
        places[code.code] = Place(code, row["name_zh"].strip(), row["name_en"].strip())
    return places


@functools.cache
def shipped_places() -> dict[str, Place]:
    text = resources.files("contracts").joinpath("data/divisions.csv").read_text("utf-8")
    return load_places(text)


def place_name(code: str | DivisionCode, lang: str = "zh") -> str:
    """The name of ``code`` in ``lang`` (``zh`` or ``en``), or the code itself when unknown."""
    key = str(code)
    place = shipped_places().get(key)
    return place.name(lang) if place else key


def townships_of(prefix: str) -> list[Place]:
    """Known townships inside ``prefix``, in code order."""
    return [p for k, p in sorted(shipped_places().items()) if len(k) == 9 and k.startswith(prefix)]

"""Traffic lights on deadlines: green in time, yellow when few days are left, red when overdue."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from enum import StrEnum

from hub.workflow.calendar import DayKind, remaining


class Light(StrEnum):
    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"

    @property
    def label_zh(self) -> str:
        return _LIGHT_ZH[self]


_LIGHT_ZH = {Light.GREEN: "正常", Light.YELLOW: "临期", Light.RED: "超期"}
_SEVERITY = {Light.GREEN: 0, Light.YELLOW: 1, Light.RED: 2}


def light(today: dt.date, due: dt.date, kind: DayKind, yellow_days: int) -> Light:
    """RED after the due date; YELLOW with ``yellow_days`` or fewer days left; else GREEN."""
    if today > due:
        return Light.RED
    if remaining(today, due, kind) <= yellow_days:
        return Light.YELLOW
    return Light.GREEN


def worst(lights: Iterable[Light]) -> Light | None:
    """A case's light: the worst of its open deadlines' lights; ``None`` when it has none."""
    return max(lights, key=_SEVERITY.__getitem__, default=None)

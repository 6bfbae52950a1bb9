"""A plausible workflow history for generated cases, so the demo's console has something to
show: most cases routed by the petition office to a responsible unit, accepted, handled and
replied to within (or sometimes past) their deadlines, many rated by the petitioner and some
archived; the rest wait in their state and turn yellow or red.

Every step goes through the engine (:func:`hub.workflow.engine.apply_step`, ratings through
:func:`hub.workflow.query.rate`) at a time in the case's past, so the hash chain, deadlines and
statistics are exactly what officials would have produced; nothing is written around them.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlite_utils import Database

from contracts.access import Role
from hub.org import UnitRow, UserRow
from hub.workflow.engine import Actor, Rules, Step, apply_step
from hub.workflow.query import Rating, rate
from hub.workflow.states import Action


@dataclass(frozen=True, slots=True)
class Staff:
    """Who acts on a township's cases: its petition office and the units' handlers."""

    office: Actor
    handlers: tuple[tuple[str, Actor], ...]
    """(unit id, the unit's handler) for units covering the township."""


def staff_for(township: str, units: Sequence[UnitRow], users: Sequence[UserRow]) -> Staff | None:
    """The nearest petition office covering ``township`` and every unit (with a handler)
    covering it; ``None`` when either is missing."""
    offices = [
        u for u in users if u.role is Role.PETITION_OFFICE and township.startswith(u.jurisdiction)
    ]
    covering = {u.id for u in units if township.startswith(u.jurisdiction)}
    handlers = tuple(
        (u.unit_id, Actor(u.username, Role.UNIT, u.jurisdiction, u.unit_id))
        for u in users
        if u.role is Role.UNIT and u.unit_id in covering
    )
    if not offices or not handlers:
        return None
    office = max(offices, key=lambda u: len(u.jurisdiction))
    return Staff(
        Actor(office.username, Role.PETITION_OFFICE, office.jurisdiction, office.unit_id),
        handlers,
    )


RATINGS = (Rating.SATISFIED, Rating.BASICALLY_SATISFIED, Rating.DISSATISFIED)
RATING_WEIGHTS = (70, 20, 10)


def walk(
    db: Database,
    rules: Rules,
    units: Sequence[UnitRow],
    users: Sequence[UserRow],
    now: dt.datetime,
    *,
    seed: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> Counter[str]:
    """Take plausible steps on every case still ``registered`` with a track (adopted by the
    scan), each at a time between its registration and ``now``; returns how many steps of
    each action were taken. Cases of townships without an office or unit are left alone."""
    rng = random.Random(seed)
    rows = db.execute(
        "SELECT case_no, township, registered_at FROM cases "
        "WHERE state = 'registered' AND track IS NOT NULL ORDER BY case_no"
    ).fetchall()
    staff: dict[str, Staff | None] = {}
    taken: Counter[str] = Counter()
    elements = {name: f"{name}（演示）" for name in rules.reply_elements}
    for n, (case_no, township, registered_at) in enumerate(rows, 1):
        if township not in staff:
            staff[township] = staff_for(township, units, users)
        who = staff[township]
        if who is not None and rng.random() > 0.1:
            _one_case(
                db,
                rules,
                rng,
                case_no,
                who,
                dt.datetime.fromisoformat(registered_at),
                now,
                elements,
                taken,
            )
        if progress is not None:
            progress(n, len(rows))
    return taken


def _one_case(
    db: Database,
    rules: Rules,
    rng: random.Random,
    case_no: str,
    who: Staff,
    at: dt.datetime,
    now: dt.datetime,
    elements: dict[str, str],
    taken: Counter[str],
) -> None:
    unit_id, handler = rng.choice(who.handlers)
    plan: list[tuple[float, Actor, Step]] = [
        (
            rng.uniform(0.2, 12),
            who.office,
            Step(action=Action.ROUTE, unit_id=unit_id, assignee=handler.username, note="转办"),
        ),
        (rng.uniform(0.2, 9), handler, Step(action=Action.ACCEPT, note="予以受理")),
        (rng.uniform(0.0, 2), handler, Step(action=Action.START, note="开始办理")),
    ]
    if rng.random() < 0.1:
        plan.append(
            (
                rng.uniform(20, 50),
                who.office,
                Step(action=Action.EXTEND, days=rng.randint(10, 30), note="情况复杂，申请延期"),
            )
        )
    plan.append(
        (
            rng.uniform(5, 70),
            handler,
            Step(action=Action.REPLY, elements=elements, note="已书面答复"),
        )
    )
    for days, actor, step in plan:
        at += dt.timedelta(days=days)
        if at >= now:
            return
        apply_step(db, rules, case_no, actor, step, at)
        taken[step.action.value] += 1
    at += dt.timedelta(days=rng.uniform(1, 10))
    if at >= now or rng.random() > 0.8:
        return
    office, unit = rng.choices(RATINGS, RATING_WEIGHTS, k=2)
    rate(db, rules, case_no, office, unit, "", "demo", at)
    taken[Action.EVALUATE.value] += 1
    at += dt.timedelta(days=rng.uniform(1, 5))
    if at < now and rng.random() < 0.5:
        apply_step(db, rules, case_no, who.office, Step(action=Action.ARCHIVE, note="归档"), at)
        taken[Action.ARCHIVE.value] += 1

"""At registration on the box: the petitioner's earlier cases on this box.

The box keeps ID numbers in clear in its own ``cases`` table (it is where they are typed in),
so the clerk can see at once "此人近期已登记 N 件" and tell the petitioner about them; the
hub's fuller duplicate search (all boxes, similar content) comes later, at the hub.
"""

from __future__ import annotations

import datetime as dt

from sqlite_utils import Database

DAYS = 180
"""How far back an earlier registration counts as recent."""


def earlier_cases(
    db: Database,
    id_number: str,
    *,
    days: int = DAYS,
    now: dt.datetime | None = None,
    exclude: str | None = None,
) -> list[str]:
    """Case numbers registered on this box with ``id_number`` in the last ``days`` days,
    newest first; ``exclude``: a case number left out (the one just registered)."""
    now = now or dt.datetime.now(dt.UTC)
    since = (now - dt.timedelta(days=days)).astimezone(dt.UTC).isoformat()
    rows = db.execute(
        "SELECT case_no FROM cases WHERE id_number = ? AND registered_at >= ? "
        "AND case_no != ? ORDER BY registered_at DESC, case_no DESC",
        [id_number.strip().upper(), since, exclude or ""],
    )
    return [str(case_no) for (case_no,) in rows]


def notice(case_nos: list[str]) -> dict[str, str] | None:
    """What the clerk's screen says about them (``None`` when there are none)."""
    if not case_nos:
        return None
    n = len(case_nos)
    return {
        "zh": f"此人近期已登记 {n} 件：{'、'.join(case_nos)}",
        "en": f"This person registered {n} case{'s' if n > 1 else ''} recently: "
        + ", ".join(case_nos),
    }

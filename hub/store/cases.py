"""Reads over the projected ``cases`` table that several workflow modules share."""

from __future__ import annotations

from sqlite_utils import Database

from contracts.divisions import code_range


def townships_with_cases(db: Database, prefix: str, limit: int | None = None) -> list[str]:
    """The distinct townships (in code order) of cases inside ``prefix``, at most ``limit``:
    one index probe each (a loose index scan) rather than a pass over every case."""
    low, high = code_range(prefix)
    rows = db.execute(
        """WITH RECURSIVE t(x) AS (
             SELECT (SELECT min(township) FROM cases WHERE township >= :lo AND township < :hi)
             UNION ALL
             SELECT (SELECT min(township) FROM cases WHERE township > t.x AND township < :hi)
             FROM t WHERE t.x IS NOT NULL)
           SELECT x FROM t WHERE x IS NOT NULL LIMIT :limit""",
        {"lo": low, "hi": high, "limit": -1 if limit is None else limit},
    ).fetchall()
    return [r[0] for r in rows]

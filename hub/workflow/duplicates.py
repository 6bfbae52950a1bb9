"""Likely duplicates (重复件) of a case, and the links that record them.

A candidate is another open case registered within ``days`` of the case (before or after),
not already linked to it (a merge, for instance). It is suggested when it comes from the same
petitioner (the same ``id_hmac``: the keyed hash of the ID number, so no plaintext is needed)
or its content reads alike; a shared concerned unit raises the score but alone suggests
nothing (every case about the same 街道办 would be a "duplicate").

The search stays bounded however large the hub grows: the same petitioner's cases come through
the ``id_hmac`` index, and text is compared only with the cases nearest in time in each
township of the case's county (``cases(township, registered_at)`` index), about
``COUNTY_CAP`` in all. With 200,000 cases a suggestion takes some 40 ms.

Chinese text has no spaces, so similarity is character-level (``fuzz.ratio``, and
``fuzz.partial_ratio`` for a text contained in a longer one) on text with punctuation,
spaces and width differences removed.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import unicodedata
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from rapidfuzz import fuzz, process
from sqlite_utils import Database

from hub.store.cases import townships_with_cases
from hub.workflow.states import CLOSED
from runtime.sqlite import transaction

DAYS = 180
"""Default window: candidates registered this many days before or after the case."""
THRESHOLD = 0.6
"""Text similarity (0..1) from which content counts as ``similar_text``."""
COUNTY_CAP = 2000
"""At most about this many cases of the county, nearest in time, are compared: split evenly
over its townships and the two sides of the registration time."""
PER_TOWNSHIP_MIN = 20
"""...but at least this many per township and side."""
MAX_TOWNSHIPS = 64
"""At most this many townships of the county are searched."""
PETITIONER_CAP = 500
"""At most this many cases of the same petitioner in the window are compared."""
TEXT_CHARS = 500
"""Only the first characters of a content are compared (a long complaint's gist is early)."""
PARTIAL_MIN = 8
"""Containment (partial ratio) counts only when the shorter text has this many characters."""

WEIGHTS = {"same_petitioner": 0.5, "same_unit": 0.15}
TEXT_WEIGHT = 0.35
"""Score = sum of the weights of the reasons found + ``TEXT_WEIGHT`` x text similarity."""

REASONS: dict[str, tuple[str, str]] = {
    "same_petitioner": ("同一信访人", "same petitioner"),
    "same_unit": ("同一被反映单位", "same concerned unit"),
    "similar_text": ("诉求内容相似", "similar content"),
}
"""Reason code → (Chinese label, English label)."""

DUPLICATE = "duplicate"
"""``case_links.kind`` of a recorded suggestion; other kinds (``merged``...) exclude a pair."""

_CLOSED = tuple(sorted(s.value for s in CLOSED))
_OPEN_SQL = f"state NOT IN ({', '.join('?' * len(_CLOSED))})"
_NOT_WORD = re.compile(r"[\W_]+")


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    label_zh: str
    label_en: str

    @classmethod
    def of(cls, code: str) -> Reason:
        zh, en = REASONS[code]
        return cls(code, zh, en)


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Another case that is likely the same matter."""

    case_no: str
    score: float
    """0..1; higher is more likely."""
    reasons: tuple[str, ...]
    """Codes of ``REASONS``, in that order."""
    township: str
    registered_at: str
    state: str
    category: str | None = None
    text_similarity: float = 0.0

    def labelled(self) -> list[Reason]:
        return [Reason.of(code) for code in self.reasons]


@functools.lru_cache(maxsize=4096)
def normalise(text: str | None) -> str:
    """``text`` for comparison: NFKC (full-width to half-width), lower case, only letters and
    digits (no punctuation, spaces or symbols), at most ``TEXT_CHARS`` characters."""
    if not text:
        return ""
    folded = unicodedata.normalize("NFKC", text[: 2 * TEXT_CHARS]).lower()
    return _NOT_WORD.sub("", folded)[:TEXT_CHARS]


def text_similarity(a: str, b: str) -> float:
    """Character-level similarity (0..1) of two normalised texts."""
    return similarities(a, [b])[0]


def _window(registered_at: str, days: int) -> tuple[str, str]:
    at = dt.datetime.fromisoformat(registered_at)
    span = dt.timedelta(days=days)
    return (at - span).isoformat(timespec="milliseconds"), (at + span).isoformat(
        timespec="milliseconds"
    )


class Candidate(NamedTuple):
    """What the search reads of a case."""

    case_no: str
    township: str
    registered_at: str
    state: str
    id_hmac: str | None
    concerned_unit: str | None
    content: str | None
    category: str | None


COLUMNS = ", ".join(Candidate._fields)


AFTER = "registered_at >= ? AND registered_at <= ?", "registered_at"
BEFORE = "registered_at < ? AND registered_at >= ?", "registered_at DESC"


def _near_in_time(
    db: Database, township: str, at: str, low: str, high: str, cap: int
) -> Iterator[Candidate]:
    """Open cases of ``township`` in ``[low, high]``, the ``cap`` nearest to ``at`` each side."""
    for (where, order), bound in ((AFTER, high), (BEFORE, low)):
        rows = db.execute(
            f"SELECT {COLUMNS} FROM cases WHERE township = ? AND {where} AND {_OPEN_SQL} "
            f"ORDER BY {order} LIMIT ?",
            [township, at, bound, *_CLOSED, cap],
        )
        yield from map(Candidate._make, rows)


def load(db: Database, case_no: str) -> Candidate | None:
    row = db.execute(f"SELECT {COLUMNS} FROM cases WHERE case_no = ?", [case_no]).fetchone()
    return None if row is None else Candidate._make(row)


def candidates(db: Database, case: Candidate, *, days: int = DAYS) -> list[Candidate]:
    """The bounded set of open cases compared with ``case``: the same petitioner's in the
    window, and the nearest in time in each township of its county."""
    low, high = _window(case.registered_at, days)
    found: dict[str, Candidate] = {}
    if case.id_hmac:
        rows = db.execute(
            f"SELECT {COLUMNS} FROM cases WHERE id_hmac = ? AND registered_at >= ? "
            f"AND registered_at <= ? AND {_OPEN_SQL} LIMIT ?",
            [case.id_hmac, low, high, *_CLOSED, PETITIONER_CAP],
        )
        found.update((row[0], Candidate._make(row)) for row in rows)
    townships = townships_with_cases(db, case.township[:6], MAX_TOWNSHIPS)
    per_side = max(PER_TOWNSHIP_MIN, COUNTY_CAP // (2 * max(1, len(townships))))
    for township in townships:
        for row in _near_in_time(db, township, case.registered_at, low, high, per_side):
            found.setdefault(row.case_no, row)
    found.pop(case.case_no, None)
    for (other,) in db.execute(
        "SELECT other FROM case_links WHERE case_no = ? AND kind != ?", [case.case_no, DUPLICATE]
    ):
        found.pop(other, None)
    return list(found.values())


def similarities(text: str, others: Sequence[str]) -> list[float]:
    """Character-level similarity (0..1) of normalised ``text`` with each of ``others``, in
    one batch: the plain ratio, or 0.95 x the best partial match when both texts have at
    least ``PARTIAL_MIN`` characters (one repeated inside a longer one)."""
    if not text or not others:
        return [0.0] * len(others)
    ratio = process.cdist([text], others, scorer=fuzz.ratio)[0]
    partial = process.cdist([text], others, scorer=fuzz.partial_ratio)[0]
    out = []
    for other, r, p in zip(others, ratio, partial, strict=True):
        if not other:
            out.append(0.0)
            continue
        score = max(float(r), 0.95 * float(p)) if min(len(text), len(other)) >= PARTIAL_MIN else r
        out.append(round(float(score) / 100, 3))
    return out


def _suggestion(
    case: Candidate, other: Candidate, similarity: float, threshold: float
) -> Suggestion | None:
    """``other`` as a suggestion for ``case``, or ``None`` when nothing points to a duplicate."""
    same_person = bool(case.id_hmac) and case.id_hmac == other.id_hmac
    if not (same_person or similarity >= threshold):
        return None
    unit = normalise(case.concerned_unit)
    reasons = tuple(
        code
        for code, hit in (
            ("same_petitioner", same_person),
            ("same_unit", bool(unit) and unit == normalise(other.concerned_unit)),
            ("similar_text", similarity >= threshold),
        )
        if hit
    )
    score = sum(WEIGHTS.get(code, 0.0) for code in reasons) + TEXT_WEIGHT * similarity
    return Suggestion(
        case_no=other.case_no,
        score=round(min(1.0, score), 3),
        reasons=reasons,
        township=other.township,
        registered_at=other.registered_at,
        state=other.state,
        category=other.category,
        text_similarity=similarity,
    )


def _distance(a: str, b: str) -> float:
    return abs((dt.datetime.fromisoformat(a) - dt.datetime.fromisoformat(b)).total_seconds())


def suggest(
    db: Database,
    case_no: str,
    *,
    limit: int = 10,
    days: int = DAYS,
    threshold: float = THRESHOLD,
    within: str = "",
    hidden_categories: Collection[str] = (),
) -> list[Suggestion]:
    """Likely duplicates of ``case_no``, best first (score, then nearest in time).

    ``within``: only candidates whose township starts with this prefix (the caller's
    jurisdiction); ``hidden_categories``: categories the caller may not see. An unknown case
    has no suggestions.
    """
    case = load(db, case_no)
    if case is None:
        return []
    others = [
        c
        for c in candidates(db, case, days=days)
        if c.township.startswith(within) and c.category not in hidden_categories
    ]
    texts = similarities(normalise(case.content), [normalise(c.content) for c in others])
    found = [
        s
        for other, similarity in zip(others, texts, strict=True)
        if (s := _suggestion(case, other, similarity, threshold)) is not None
    ]
    found.sort(key=lambda s: (-s.score, _distance(s.registered_at, case.registered_at), s.case_no))
    return found[:limit]


def record(db: Database, case_no: str, suggestions: Sequence[Suggestion], now: dt.datetime) -> int:
    """Store ``suggestions`` as ``duplicate`` links both ways (existing links are kept);
    returns how many link rows were new."""
    ts = now.isoformat(timespec="milliseconds")
    added = 0
    with transaction(db):
        for s in suggestions:
            reasons = orjson.dumps(list(s.reasons)).decode()
            for a, b in ((case_no, s.case_no), (s.case_no, case_no)):
                cursor = db.execute(
                    "INSERT OR IGNORE INTO case_links (case_no, other, kind, score, reasons, "
                    "created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    [a, b, DUPLICATE, s.score, reasons, ts],
                )
                added += cursor.rowcount
    return added


def suggest_new(
    db: Database, case_nos: Iterable[str], now: dt.datetime, *, days: int = DAYS, limit: int = 10
) -> int:
    """Find and record the likely duplicates of newly adopted cases (the deadline scanner's
    hook); returns how many link rows were new."""
    added = 0
    for case_no in case_nos:
        added += record(db, case_no, suggest(db, case_no, days=days, limit=limit), now)
    return added


def recorded(db: Database, case_no: str) -> list[dict[str, Any]]:
    """The ``duplicate`` links recorded for ``case_no``, best first."""
    rows = db.query(
        "SELECT other, score, reasons, created_at FROM case_links "
        "WHERE case_no = ? AND kind = ? ORDER BY score DESC, other",
        [case_no, DUPLICATE],
    )
    return [{**r, "reasons": orjson.loads(r["reasons"])} for r in rows]

"""Case workflow at city scale: list and statistics queries and the deadline scan over a hub
holding many cases, each beside the same query run raw on SQLite.

Builds a hub database with N generated cases (``hub.workflow.seed``) over every township of the
shipped division table, registered over the last 12 months, and gives them the workflow history
they would have by now: routed to units, accepted, handled, replied, rated, archived (some late,
some stuck), with their deadline rows, reply transitions and ratings. Then:

(a) ``GET /api/v1/cases`` with filters (county + category + state + a month of registrations;
    half the mixes also ``light=red``) as a county and as a city official, against a real hub
    process: p50/p95 latency. Target p95 <= 100 ms. Raw: the same count and page SELECT on
    SQLite, no HTTP (its totals must equal the API's).
(b) ``GET /api/v1/stats?from=&to=`` for one month as a city official: p50/p95. Target p95
    <= 500 ms. Raw: ``hub.workflow.stats.stats`` called in-process on the same database.
(c) The full deadline scan (``hub.workflow.scanner.scan``: adopt, refresh every light, write
    due reminders, supervise the overdue): the first one (which writes the backlog of
    reminders) and the steady one (median). Target <= 2 s.

    python bench/workflow.py            # 200,000 cases; 200 requests per list mix, 30 stats
    python bench/workflow.py --quick    # 20,000 cases; 50 per list mix, 20 stats; under 60 s

Prints progress on stderr, a table, then one JSON line of the figures. The reply transitions
are bench rows (their hashes do not form a chain); nothing here is used by a running hub.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import math
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).parents[1]))

from sqlite_utils import Database

from contracts.cases import Category
from contracts.divisions import code_range
from contracts.places import place_name, shipped_places
from hub.api.cases import LIST_COLUMNS
from hub.app import pii_key
from hub.config import HubConfig
from hub.org import UnitRow, apply_org, load_units, load_users
from hub.pii import PiiVault
from hub.store.migrations import migrations
from hub.workflow.engine import Rules, china_today
from hub.workflow.policy import load_policies
from hub.workflow.scanner import ScanResult, scan
from hub.workflow.seed import generate, insert_cases
from runtime.config import load_config
from runtime.sqlite import open_database, transaction
from tests.support.broker import Mosquitto
from tests.support.procs import Hub

PASSWORD = "bench-password"
COUNTY_OFFICIAL, CITY_OFFICIAL = "jj_official", "cd_official"  # 510104 and 5101, shipped
LIST_STATES = ("registered", "routed", "accepted", "handling", "replied")
RATINGS = (("satisfied", 70), ("basically_satisfied", 20), ("dissatisfied", 10))
EVENTUAL = (
    ("registered", 3),
    ("not_accepted", 3),
    ("routed", 3),
    ("accepted", 3),
    ("handling", 8),
    ("replied", 10),
    ("evaluated", 13),
    ("archived", 57),
)
"""How far a case gets when time allows (%): young cases stop earlier, since each step takes
days; old cases stuck early carry overdue deadlines (red lights, reminders, 督办)."""
ROUTE = ["registered", "routed", "accepted", "handling", "replied", "evaluated", "archived"]


def stderr(message: str, end: str = "\n") -> None:
    print(message, end=end, file=sys.stderr, flush=True)


def progress(rows: Iterator[tuple[object, ...]], total: int) -> Iterator[tuple[object, ...]]:
    start = time.monotonic()
    for n, row in enumerate(rows, 1):
        if n % 10_000 == 0 or n == total:
            stderr(f"\r  cases generated: {n:,}/{total:,} ({time.monotonic() - start:.0f} s)", "")
        yield row
    stderr("")


def iso(at: dt.datetime) -> str:
    return at.isoformat(timespec="milliseconds")


def pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


@dataclass
class History:
    """Rows that give generated cases their workflow state."""

    cases: list[tuple[Any, ...]] = field(default_factory=list)
    deadlines: list[tuple[Any, ...]] = field(default_factory=list)
    transitions: list[tuple[Any, ...]] = field(default_factory=list)
    ratings: list[tuple[Any, ...]] = field(default_factory=list)


STEP_DAYS = {
    "routed": (1, 12, 16, 40),
    "accepted": (1, 12, 16, 40),
    "handling": (0, 1, 0, 1),
    "replied": (10, 55, 61, 90),
    "evaluated": (1, 10, 11, 20),
    "archived": (1, 15, 16, 30),
}
"""Days each step takes: usually (low, high), one time in ten (late low, late high); the
deadlines are route 15, accept 15 and handle 60 days."""


def step_days(rng: random.Random, low: int, high: int, late_low: int, late_high: int) -> float:
    """Days a step takes: mostly within [low, high], one in ten late."""
    if rng.random() < 0.1:
        low, high = late_low, late_high
    return low + (high - low + 1) * rng.random()


def history(
    rows: list[tuple[str, str, str]], units: dict[str, list[str]], now: dt.datetime, seed: int
) -> History:
    """Walk each case (case_no, township, registered_at) towards its eventual state, one step
    at a time, stopping at ``now``."""
    rng = random.Random(seed)
    out = History()

    def deadline(case_no: str, kind: str, start: dt.datetime, days: int) -> list[Any]:
        day = china_today(start)
        due = day + dt.timedelta(days=days)
        return [case_no, kind, day.isoformat(), due.isoformat(), "open", None]

    def close(row: list[Any], at: dt.datetime, stopped: bool = False) -> None:
        met = china_today(at).isoformat() <= row[3]
        row[4], row[5] = ("stopped" if stopped else "met" if met else "missed"), iso(at)

    for case_no, township, registered_at in rows:
        at = dt.datetime.fromisoformat(registered_at)
        eventual = pick(rng, EVENTUAL)
        state, unit = "registered", None
        route = deadline(case_no, "route", at, 15)
        lines = [route]
        replies: list[tuple[Any, ...]] = []
        ratings: list[tuple[Any, ...]] = []
        if eventual == "not_accepted":
            done = at + dt.timedelta(days=step_days(rng, 1, 12, 16, 30))
            if done < now:
                close(route, done, stopped=True)
                state, at = "not_accepted", done
        else:
            target = ROUTE.index(eventual)
            current = lines[-1]
            for nxt in ROUTE[1 : target + 1]:
                days = step_days(rng, *STEP_DAYS[nxt])
                done = at + dt.timedelta(days=days)
                if done >= now:
                    break
                if nxt == "routed":
                    close(current, done)
                    unit = rng.choice(units[township])
                    current = deadline(case_no, "accept", done, 15)
                    lines.append(current)
                elif nxt == "accepted":
                    close(current, done)
                    current = deadline(case_no, "handle", done, 60)
                    lines.append(current)
                elif nxt == "replied":
                    close(current, done)
                    replies.append(
                        (case_no, "reply", state, "replied", "bench", "unit", "", "{}", iso(done))
                    )
                elif nxt == "evaluated":
                    rating = (pick(rng, RATINGS), pick(rng, RATINGS))
                    ratings.append((case_no, *rating, iso(done)))
                state, at = nxt, done
        out.cases.append((state, iso(at), unit, case_no))
        # each row carries its case's township and unit, as the hub's triggers would set them
        out.deadlines += [(*line, township, unit) for line in lines]
        out.transitions += [(*row, township, unit) for row in replies]
        out.ratings += [(*row, township, unit) for row in ratings]
    return out


def write_history(db: Database, h: History) -> None:
    with transaction(db):
        db.conn.executemany(
            "UPDATE cases SET state = ?, state_at = ?, unit_id = ?, track = 'regulation' "
            "WHERE case_no = ?",
            h.cases,
        )
        db.conn.executemany(
            "INSERT INTO deadlines (case_no, kind, started_on, due, day_kind, yellow_days, "
            "reminders, estimated, state, ended_at, township, unit_id) "
            "VALUES (?, ?, ?, ?, 'calendar', 3, '[15, 3]', 0, ?, ?, ?, ?)",
            h.deadlines,
        )
        db.conn.executemany(
            "INSERT INTO transitions (case_no, action, from_state, to_state, actor, role, note, "
            "detail, ts, township, unit_id, prev_hash, hash) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '', 'bench-' || ?1)",
            h.transitions,
        )
        db.conn.executemany(
            "INSERT INTO ratings (case_no, office, unit, rated_at, township, unit_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            h.ratings,
        )


def bench_units(townships: list[str]) -> tuple[list[UnitRow], dict[str, list[str]]]:
    """The shipped units, plus a bench housing bureau for each county that has none; and the
    units a case of each township may be routed to (its county's and its own)."""
    units = load_units()
    counties = sorted({t[:6] for t in townships})
    served = {u.jurisdiction for u in units}
    for county in counties:
        if county not in served:
            units.append(
                UnitRow(
                    id=f"{county}-zjj",
                    name_zh=f"{place_name(county)}住房和城乡建设局",
                    name_en=f"{place_name(county, 'en')} Bureau of Housing (bench)",
                    jurisdiction=county,
                )
            )
    handlers = [u for u in units if not u.id.endswith("-xfj")]
    by_township = {
        t: [u.id for u in handlers if u.jurisdiction in (t[:6], t)] or [f"{t[:6]}-zjj"]
        for t in townships
    }
    return units, by_township


ScanTime = tuple[float, ScanResult] | None


@dataclass(frozen=True)
class Scans:
    first_s: float
    first_reminders: int
    steady_s: list[float]
    lights: dict[str, int]
    unanalyzed_s: float | None
    """The first scan on the database as the hub leaves it (no ``ANALYZE``); ``None`` when it
    was interrupted at the limit, after which the scans ran with ``ANALYZE`` statistics."""
    limit_s: float
    analyzed: bool


def timed_scan(db: Database, rules: Rules, now: dt.datetime, limit: float) -> ScanTime:
    """Seconds one full scan took and what it did; ``None`` if it was interrupted (rolled
    back) after ``limit`` seconds."""
    timer = threading.Timer(limit, db.conn.interrupt)
    timer.start()
    t = time.perf_counter()
    try:
        result = scan(db, rules, now)
    except sqlite3.OperationalError as exc:
        if "interrupt" not in str(exc):
            raise
        return None
    finally:
        timer.cancel()
    return time.perf_counter() - t, result


def build(config: HubConfig, count: int, now: dt.datetime, limit: float) -> Scans:
    """Write the hub's database: org, cases, their history; run the scans."""
    townships = sorted(k for k in shipped_places() if len(k) == 9)
    vault = PiiVault(pii_key(config))  # creates the hub's key, as the hub's first start would
    db = open_database(config.database, migrations, synchronous="NORMAL")
    units, by_township = bench_units(townships)
    apply_org(db, units, load_users(), lambda _: PASSWORD)
    stderr(f"building {count:,} cases over {len(townships)} townships in {config.database}")
    start = now - dt.timedelta(days=365)
    t0 = time.monotonic()
    rows = generate(vault, townships, count, start=start, days=365, seed=7)
    insert_cases(db, progress(rows, count))
    t1 = time.monotonic()
    cases = db.execute("SELECT case_no, township, registered_at FROM cases").fetchall()
    h = history(cases, by_township, now, seed=7)
    write_history(db, h)
    stderr(
        f"  workflow history: {len(h.deadlines):,} deadlines, {len(h.transitions):,} replies, "
        f"{len(h.ratings):,} ratings ({time.monotonic() - t1:.1f} s; cases "
        f"{t1 - t0:.1f} s)"
    )
    states = dict(db.execute("SELECT state, count(*) FROM cases GROUP BY 1").fetchall())
    stderr(f"  states: {states}")
    rules = Rules(
        load_policies(config.workflow.policies_file), tuple(config.workflow.reply_elements)
    )
    stderr("  first deadline scan")
    first = unanalyzed = timed_scan(db, rules, now, limit)
    if first is None:
        stderr(f"  the first scan passed {limit:.0f} s and was interrupted; ANALYZE, scan again")
        db.execute("ANALYZE")
        first = timed_scan(db, rules, now, 3600)
        assert first is not None
    steady = []
    for _ in range(3):
        again = timed_scan(db, rules, now, 3600)
        assert again is not None
        steady.append(again[0])
    lights = dict(db.execute("SELECT coalesce(light, '-'), count(*) FROM cases GROUP BY 1"))
    stderr(f"  lights: {lights}; first scan {first[0]:.2f} s, {first[1].reminders:,} reminders")
    db.close()
    return Scans(
        first[0],
        first[1].reminders,
        steady,
        lights,
        unanalyzed[0] if unanalyzed else None,
        limit,
        unanalyzed is None,
    )


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p * len(ordered)) - 1)]


def months(today: dt.date, n: int = 11) -> list[tuple[dt.date, dt.date]]:
    """The ``n`` full months before this one: (first day, first day of the next)."""
    out, first = [], today.replace(day=1)
    for _ in range(n):
        prev = (first - dt.timedelta(days=1)).replace(day=1)
        out.append((prev, first))
        first = prev
    return out


class Client:
    """One keep-alive HTTP connection to the hub, as a bearer-token holder."""

    def __init__(self, port: int, username: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        status, body = self.call(
            "POST", "/api/v1/login", {"username": username, "password": PASSWORD}
        )
        assert status == 200, body
        self.token = body["token"]

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        if getattr(self, "token", None):
            headers["Authorization"] = f"Bearer {self.token}"
        self.conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = self.conn.getresponse()
        return resp.status, json.loads(resp.read() or b"null")

    def timed(self, path: str) -> tuple[float, Any]:
        t = time.perf_counter()
        status, body = self.call("GET", path)
        elapsed = time.perf_counter() - t
        assert status == 200, (path, status, body)
        return elapsed, body


@dataclass
class Mix:
    name: str
    key: str
    jurisdiction: str
    filters: list[dict[str, str]]
    api: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)


def list_mixes(n: int, today: dt.date, townships: list[str], rng: random.Random) -> list[Mix]:
    counties = sorted({t[:6] for t in townships})
    spans = months(today)
    categories = [c.value for c in Category]

    def filters(county_pool: list[str], light: bool) -> list[dict[str, str]]:
        out = []
        for _ in range(n):
            first, nxt = rng.choice(spans)
            f = {
                "county": rng.choice(county_pool),
                "category": rng.choice(categories),
                "state": rng.choice(LIST_STATES),
                "date_from": first.isoformat(),
                "date_to": nxt.isoformat(),
            }
            if light:
                f["light"] = "red"
            out.append(f)
        return out

    return [
        Mix("county official, filters", "county", "510104", filters(["510104"], False)),
        Mix(
            "county official, filters + light=red",
            "county_red",
            "510104",
            filters(["510104"], True),
        ),
        Mix("city official, filters", "city", "5101", filters(counties, False)),
        Mix("city official, filters + light=red", "city_red", "5101", filters(counties, True)),
    ]


def raw_list(conn: sqlite3.Connection, jur: str, f: dict[str, str]) -> tuple[float, int]:
    """The list route's SQL (``hub/api/cases.py``: count, then the first page of 50)."""
    where = ["township >= ? AND township < ?"] * 2
    args: list[Any] = [*code_range(jur), *code_range(f["county"])]
    where += ["registered_at >= ?", "registered_at < ?", "category = ?", "state = ?"]
    args += [f["date_from"], f["date_to"], f["category"], f["state"]]
    if "light" in f:
        where.append("light = ?")
        args.append(f["light"])
    sql = " AND ".join(where)
    t = time.perf_counter()
    total = conn.execute(f"SELECT count(*) FROM cases WHERE {sql}", args).fetchone()[0]
    conn.execute(
        f"SELECT {LIST_COLUMNS} FROM cases WHERE {sql} "
        "ORDER BY registered_at DESC, case_no LIMIT 50 OFFSET 0",
        args,
    ).fetchall()
    return time.perf_counter() - t, int(total)


def wait_for_startup_scan(database: Path) -> None:
    """The hub scans once as it starts, in one write transaction: wait until it is done."""
    time.sleep(0.5)
    conn = sqlite3.connect(database, timeout=120)
    conn.execute("BEGIN IMMEDIATE")
    conn.rollback()
    conn.close()


def measure(
    hub: Hub, mixes: list[Mix], stats_n: int, today: dt.date, rng: random.Random
) -> dict[str, Any]:
    database = hub.dir / "state" / "hub.db"
    county, city = Client(hub.port, COUNTY_OFFICIAL), Client(hub.port, CITY_OFFICIAL)
    wait_for_startup_scan(database)
    raw = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    for client in (county, city):  # warm up: first requests, page cache
        for _ in range(5):
            client.timed("/api/v1/cases?" + urlencode(mixes[0].filters[0]))
    for mix in mixes:
        client = county if mix.jurisdiction == "510104" else city
        for f in mix.filters:
            elapsed, body = client.timed("/api/v1/cases?" + urlencode(f))
            raw_elapsed, raw_total = raw_list(raw, mix.jurisdiction, f)
            assert body["total"] == raw_total, (f, body["total"], raw_total)
            mix.api.append(elapsed)
            mix.raw.append(raw_elapsed)
        stderr(f"  {mix.name}: p95 {pct(mix.api, 0.95) * 1e3:.1f} ms over {len(mix.api)}")
    count_s = []
    for _ in range(5):
        t = time.perf_counter()
        raw.execute("SELECT count(*) FROM cases").fetchone()
        count_s.append(time.perf_counter() - t)
    out: dict[str, Any] = {"mixes": mixes, "raw_count_ms": statistics.median(count_s) * 1e3}
    status, _ = city.call("GET", "/api/v1/stats?" + urlencode({"from": today.isoformat()}))
    if status == 404:
        out["stats"] = None
    else:
        from hub.workflow.stats import stats  # present once the stats route is

        spans = [(a, b - dt.timedelta(days=1)) for a, b in months(today)]
        api_s, raw_s = [], []
        db = Database(raw)
        for _ in range(stats_n):
            first, last = rng.choice(spans)
            q = urlencode({"from": first.isoformat(), "to": last.isoformat()})
            elapsed, _ = city.timed(f"/api/v1/stats?{q}")
            api_s.append(elapsed)
            t = time.perf_counter()
            stats(db, "5101", first, last, today=today).as_dict()
            raw_s.append(time.perf_counter() - t)
        indexed = raw.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'deadlines_ended'"
        ).fetchone()[0]
        out["stats"] = (api_s, raw_s, bool(indexed))
        stderr(f"  stats: p95 {pct(api_s, 0.95) * 1e3:.1f} ms over {len(api_s)}")
    raw.close()
    return out


def report(figures: dict[str, Any], rows: list[tuple[str, str, str, str, str, str]]) -> None:
    print()
    print(f"{'measure':<60}{'p50':>9}{'p95':>9}{'raw p50':>9}{'raw p95':>9}{'target':>9}")
    for name, a50, a95, r50, r95, target in rows:
        print(f"{name:<60}{a50:>9}{a95:>9}{r50:>9}{r95:>9}{target:>9}")
    print(json.dumps(figures))


def ms(value: float) -> str:
    return f"{value * 1e3:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller run, under 60 s")
    parser.add_argument("--cases", type=int, help="how many cases (default 200,000; quick 20,000)")
    args = parser.parse_args()
    count = args.cases or (20_000 if args.quick else 200_000)
    per_mix, stats_n = (50, 20) if args.quick else (200, 30)
    now = dt.datetime.now(dt.UTC)
    today = china_today(now)
    rng = random.Random(11)
    work = Path(tempfile.mkdtemp(prefix="xfv-bench-workflow-"))
    broker = Mosquitto(work / "broker").start()
    try:
        hub = Hub(work / "hub", broker, extra={"workflow": {"scan_interval": 3600}})
        config = load_config(hub.write_config(), HubConfig)
        scans = build(config, count, now, limit=10 if args.quick else 60)
        townships = sorted(k for k in shipped_places() if len(k) == 9)
        mixes = list_mixes(per_mix, today, townships, rng)
        stderr("starting the hub")
        try:
            hub.start(timeout=120)  # it scans every case first; slow on a busy machine
            result = measure(hub, mixes, stats_n, today, rng)
        finally:
            hub.stop()
    finally:
        broker.stop()
    report(*summarise(result, scans, {"cases": count, "requests_per_list_mix": per_mix}))


def summarise(
    result: dict[str, Any], scans: Scans, figures: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[str, str, str, str, str, str]]]:
    """The figures (JSON) and the table's rows."""
    rows = []
    for mix in result["mixes"]:
        key = mix.key
        a50, a95, r50, r95 = (
            statistics.median(mix.api),
            pct(mix.api, 0.95),
            statistics.median(mix.raw),
            pct(mix.raw, 0.95),
        )
        name = f"(a) cases list: {mix.name}, ms"
        rows.append((name, ms(a50), ms(a95), ms(r50), ms(r95), "<= 100"))
        figures[f"list_{key}_p50_ms"] = round(a50 * 1e3, 1)
        figures[f"list_{key}_p95_ms"] = round(a95 * 1e3, 1)
        figures[f"list_{key}_raw_p95_ms"] = round(r95 * 1e3, 1)
    figures["list_p95_target_ms"] = 100
    figures["raw_count_all_ms"] = round(result["raw_count_ms"], 2)
    count_ms = f"{result['raw_count_ms']:.2f}"
    rows.append(("    raw SELECT count(*) FROM cases, ms", "", "", count_ms, "", ""))
    if result["stats"] is None:
        rows.append(("(b) stats, one month, city official", "pending", "", "", "", "<= 500"))
        figures["stats_p95_ms"] = None
    else:
        api_s, raw_s, indexed = result["stats"]
        label = "(b) stats, one month, city official, ms"
        rows.append(
            (
                label,
                ms(statistics.median(api_s)),
                ms(pct(api_s, 0.95)),
                ms(statistics.median(raw_s)),
                ms(pct(raw_s, 0.95)),
                "<= 500",
            )
        )
        note = f"    ({len(api_s)} requests; stats indexes present: {indexed})"
        rows.append((note, "", "", "", "", ""))
        figures |= {
            "stats_requests": len(api_s),
            "stats_p50_ms": round(statistics.median(api_s) * 1e3, 1),
            "stats_p95_ms": round(pct(api_s, 0.95) * 1e3, 1),
            "stats_raw_p95_ms": round(pct(raw_s, 0.95) * 1e3, 1),
            "stats_indexes": indexed,
        }
    figures["stats_p95_target_ms"] = 500
    steady = statistics.median(scans.steady_s)
    if scans.analyzed:
        rows.append(
            (
                f"(c) deadline scan, first, without ANALYZE: over {scans.limit_s:.0f} s, s",
                "stopped",
                "",
                "",
                "",
                "<= 2",
            )
        )
    figures["scan_unanalyzed_s"] = (
        round(scans.unanalyzed_s, 2) if scans.unanalyzed_s is not None else None
    )
    figures["analyzed"] = scans.analyzed
    after = ", after ANALYZE" if scans.analyzed else ""
    first = f"(c) deadline scan, first{after} (writes {scans.first_reminders:,} reminders), s"
    rows.append((first, f"{scans.first_s:.2f}", "", "", "", "<= 2"))
    rows.append(("    deadline scan, steady (median of 3), s", f"{steady:.2f}", "", "", "", "<= 2"))
    figures |= {
        "scan_first_s": round(scans.first_s, 2),
        "scan_first_reminders": scans.first_reminders,
        "scan_steady_s": round(steady, 2),
        "scan_target_s": 2,
        "lights": scans.lights,
    }
    return figures, rows


if __name__ == "__main__":
    main()

"""Generated cases, written straight into a hub database: for the workflow benchmark, for
tests that start from many cases, and for a demo with something to look at.

The rows are what the ingest projection writes for a registration (ID numbers sealed with the
hub's PII vault), with spread registration times; nothing here is used by the running hub.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
from collections.abc import Iterator, Sequence

from sqlite_utils import Database

from contracts.cases import Category
from contracts.ids import check_character
from hub.pii import PiiVault
from hub.store.projection import CASE_COLUMNS, query_code_hash
from runtime.sqlite import transaction

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
SUBJECTS = (
    "反映小区物业乱收费问题",
    "要求解决拖欠农民工工资",
    "举报村干部侵占集体资金",
    "对征地补偿标准有异议",
    "建议增设公交线路站点",
    "反映噪音扰民长期未解决",
    "申请落实退役军人待遇",
    "要求查处违法建筑",
)


def id_number(rng: random.Random, township: str) -> str:
    """A valid resident ID number born in ``township``'s county."""
    born = dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 50))
    body = f"{township[:6]}{born:%Y%m%d}{rng.randrange(0, 1000):03d}"
    return body + check_character(body)


def generate(
    vault: PiiVault,
    townships: Sequence[str],
    count: int,
    *,
    start: dt.datetime,
    days: int,
    seed: int = 1,
    node_of: str = "box-{township}-1",
) -> Iterator[tuple[object, ...]]:
    """``count`` case rows (in ``CASE_COLUMNS`` order) registered over ``days`` days from
    ``start``, spread over ``townships``."""
    rng = random.Random(seed)
    people = [id_number(rng, rng.choice(townships)) for _ in range(max(1, count // 3))]
    categories = [c.value for c in Category]
    for n in range(count):
        township = townships[n % len(townships)]
        at = start + dt.timedelta(seconds=rng.randrange(0, days * 86400))
        number = rng.choice(people)
        case_no = f"{township}-G{seed}-{n:07d}"
        code = f"{rng.randrange(0, 10**8):08d}"
        enc, hmac, masked = vault.seal_id(number)
        yield (
            case_no,
            node_of.format(township=township),
            township,
            at.isoformat(timespec="milliseconds"),
            rng.choice(SURNAMES) + rng.choice("伟芳娜敏静丽强磊军洋"),
            enc,
            hmac,
            masked,
            f"13{rng.randrange(0, 10**9):09d}",
            f"{township} 某村 {rng.randrange(1, 99)} 组",
            rng.choice(categories),
            rng.choice(("某街道办事处", "某区住建局", "某村委会", "某区人社局")),
            rng.choice(SUBJECTS) + f"（{hashlib.sha256(case_no.encode()).hexdigest()[:6]}）",
            query_code_hash(case_no, code),
            "registered",
            0,
            0,
            1,
            n + 1,
            at.isoformat(timespec="milliseconds"),
        )


def insert_cases(db: Database, rows: Iterator[tuple[object, ...]], batch: int = 5000) -> int:
    """Insert generated rows in transactions of ``batch``; returns how many."""
    sql = f"INSERT INTO cases ({CASE_COLUMNS}) VALUES ({', '.join('?' * 20)})"
    total, chunk = 0, []
    for row in rows:
        chunk.append(row)
        if len(chunk) == batch:
            with transaction(db):
                db.conn.executemany(sql, chunk)
            total, chunk = total + len(chunk), []
    if chunk:
        with transaction(db):
            db.conn.executemany(sql, chunk)
        total += len(chunk)
    return total

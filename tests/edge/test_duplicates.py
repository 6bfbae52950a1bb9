"""The petitioner's earlier cases at registration on the box, from the box's real database."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from contracts.cases import CaseForm, Category
from contracts.ids import check_character
from edge.kiosk.duplicates import earlier_cases, notice
from edge.store.db import EdgeStore

TOWNSHIP = "510104021"


def resident_id(n: int) -> str:
    body = f"{TOWNSHIP[:6]}19800101{n:03d}"
    return body + check_character(body)


ZHANG = next(number for n in range(1000) if (number := resident_id(n)).endswith("X"))
LI, WANG = resident_id(998), resident_id(999)


def form(person: str, content: str = "要求查处违法建筑") -> CaseForm:
    return CaseForm(
        name="张伟",
        id_number=person,
        phone="13800000000",
        address="某村 3 组",
        category=Category.CLAIM,
        concerned_unit="锦江区住建局",
        content=content,
    )


async def test_earlier_cases_of_the_same_id_number(tmp_path: Path) -> None:
    async with EdgeStore(tmp_path / "edge.db", "box-1") as store:
        old = (await store.register_case(form(ZHANG), TOWNSHIP, 1)).case_no
        first = (await store.register_case(form(ZHANG), TOWNSHIP, 1)).case_no
        await store.register_case(form(LI), TOWNSHIP, 1)
        second = (await store.register_case(form(ZHANG, "又来反映"), TOWNSHIP, 1)).case_no
        long_ago = (dt.datetime.now(dt.UTC) - dt.timedelta(days=200)).isoformat()
        await store.run(
            lambda db: db.execute(
                "UPDATE cases SET registered_at = ? WHERE case_no = ?", [long_ago, old]
            )
        )

        recent = await store.run(lambda db: earlier_cases(db, ZHANG))
        assert recent == [second, first]
        just_registered = await store.run(lambda db: earlier_cases(db, ZHANG, exclude=second))
        assert just_registered == [first]
        # A lower-case check letter is the same number.
        assert await store.run(lambda db: earlier_cases(db, ZHANG.lower())) == recent
        assert await store.run(lambda db: earlier_cases(db, ZHANG, days=365)) == [
            second,
            first,
            old,
        ]
        assert len(await store.run(lambda db: earlier_cases(db, LI))) == 1
        assert await store.run(lambda db: earlier_cases(db, WANG)) == []

    message = notice(just_registered)
    assert message is not None and message["zh"] == f"此人近期已登记 1 件：{first}"
    assert notice([]) is None

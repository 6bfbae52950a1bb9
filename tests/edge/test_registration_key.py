"""A registration sent twice with one ``Idempotency-Key`` is one case: in the box's database,
and through the kiosk API of a real box process."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from edge.errors import KeyReused
from edge.store.db import EdgeStore
from tests.edge.test_duplicates import LI, TOWNSHIP, ZHANG, form
from tests.integration.test_kiosk import offline_box
from tests.support.broker import Mosquitto
from tests.support.procs import XfvProcess


async def counts(store: EdgeStore) -> tuple[int, int]:
    return await store.run(
        lambda db: (
            db.execute("SELECT count(*) FROM cases").fetchone()[0],
            db.execute("SELECT count(*) FROM outbox").fetchone()[0],
        )
    )


async def test_the_same_key_gives_back_the_first_receipt(tmp_path: Path) -> None:
    async with EdgeStore(tmp_path / "edge.db", "box-1") as store:
        first = await store.register_case(form(ZHANG), TOWNSHIP, 1, key="k-1")
        again = await store.register_case(form(ZHANG), TOWNSHIP, 1, key="k-1")
        assert not first.replayed and again.replayed
        assert (again.case_no, again.query_code, again.registered_at, again.seq) == (
            first.case_no,
            first.query_code,
            first.registered_at,
            first.seq,
        )
        assert await counts(store) == (1, 1)

        with pytest.raises(KeyReused, match=first.case_no):
            await store.register_case(form(LI), TOWNSHIP, 1, key="k-1")
        assert await counts(store) == (1, 1)  # nothing written

        other = await store.register_case(form(ZHANG), TOWNSHIP, 1, key="k-2")
        unkeyed = [await store.register_case(form(ZHANG), TOWNSHIP, 1) for _ in range(2)]
        numbers = [first.case_no, other.case_no, *(r.case_no for r in unkeyed)]
        assert len(set(numbers)) == 4
        assert [int(n.rsplit("-", 1)[1]) for n in numbers] == [1, 2, 3, 4]  # no number skipped
        assert await counts(store) == (4, 4)

    async with EdgeStore(tmp_path / "edge.db", "box-1") as store:  # survives a restart
        assert (await store.register_case(form(ZHANG), TOWNSHIP, 1, key="k-1")).replayed


def post(base: str, body: dict[str, Any], key: str | None) -> tuple[int, dict[str, Any], str]:
    request = urllib.request.Request(
        base + "/api/v1/cases", json.dumps(body).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    if key is not None:
        request.add_header("Idempotency-Key", key)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            replayed = response.headers.get("Idempotent-Replayed", "")
            return response.status, json.loads(response.read()), replayed
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read()), ""


def test_the_kiosk_api_registers_a_retried_submit_once(
    tmp_path: Path, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    base = offline_box(tmp_path / "box", "box-key", mosquitto, processes)
    body = form(ZHANG).model_dump(mode="json")

    status, first, replayed = post(base, body, "3f1c9a52-0d4e-4c1b-9a57-6b1f0e2d7c88")
    assert (status, replayed) == (201, "")
    status, again, replayed = post(base, body, "3f1c9a52-0d4e-4c1b-9a57-6b1f0e2d7c88")
    assert (status, replayed) == (201, "true")
    assert (again["case_no"], again["query_code"], again["seq"]) == (
        first["case_no"],
        first["query_code"],
        first["seq"],
    )

    changed = {**body, "content": "另一件事"}
    status, refused, _ = post(base, changed, "3f1c9a52-0d4e-4c1b-9a57-6b1f0e2d7c88")
    assert status == 409 and refused["code"] == "key_reused", refused
    assert first["case_no"] in refused["error"]

    for bad in ("", "x" * 129, "has space"):
        status, answer, _ = post(base, body, bad)
        assert status == 400 and answer["code"] == "bad_key", (bad, answer)

    status, second, _ = post(base, changed, None)
    assert status == 201 and second["seq"] == first["seq"] + 1  # one event per case, no more

"""Cases from the box's kiosk API to the hub: once, in order, verified, with PII protected."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts import topics
from contracts.commands import Command
from contracts.wire import decode
from tests.integration.test_presence import online_with
from tests.support.broker import Mosquitto
from tests.support.events import FORM, RawClient, case_event, chain_of, id_number
from tests.support.procs import (
    XFV,
    Hub,
    XfvProcess,
    http_json,
    hub_cases,
    start_edge,
    start_edge_on_port,
    stream,
    wait_until,
)


@pytest.fixture
def fast_hub(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Hub]:
    """A hub whose reorder timeout is 0.5 s instead of 2 s, so gap tests run quickly."""
    h = Hub(tmp_path / "hub", mosquitto, extra={"sync": {"reorder_timeout": 0.5}}).start()
    yield h
    h.stop()


def xfv(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([XFV, *args], capture_output=True, text=True, check=False)


def test_registered_cases_reach_the_hub_once_in_order(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    box, kiosk = start_edge_on_port(tmp_path / "a", "box-a", "510104021", mosquitto)
    processes.append(box)
    wait_until("box-a online", lambda: online_with(hub, token, "box-a"))

    receipts = []
    for i in range(30):
        status, body = http_json(kiosk + "/api/v1/cases", body={**FORM, "id_number": id_number(i)})
        assert status == 201, body
        assert len(body["query_code"]) == 6
        receipts.append(body)
    wait_until("30 cases at the hub", lambda: hub_cases(hub, token)["total"] == 30)
    listing = hub_cases(hub, token)
    assert {c["case_no"] for c in listing["cases"]} == {r["case_no"] for r in receipts}
    assert stream(hub, token, "box-a") == {
        **stream(hub, token, "box-a"),  # type: ignore[dict-item]
        "head_seq": 30,
        "chain_ok": True,
        "held": 0,
    }
    sync_at_hub = (hub.edge(token, "box-a") or {})["sync"]
    assert sync_at_hub["acked_through"] == 30 and sync_at_hub["chain_ok"]
    assert sync_at_hub["held"] == 0
    status, sync = http_json(kiosk + "/api/v1/sync")
    assert status == 200 and sync["outbox_head"] == 30
    wait_until(
        "box sees ack 30", lambda: http_json(kiosk + "/api/v1/sync")[1]["acked_through"] == 30
    )

    # The full ID number is never in a listing or the hub's log; reading it is audited.
    text = json.dumps(listing, ensure_ascii=False)
    assert id_number(0) not in text and id_number(0)[:6] + "********" in text
    first = receipts[0]["case_no"]
    status, case = http_json(f"{hub.base}/api/v1/cases/{first}", token)
    assert (
        status == 200 and "id_number" not in case and case["id_masked"].endswith(id_number(0)[-4:])
    )
    assert [t["kind"] for t in case["timeline"]] == ["registered"]
    status, case = http_json(f"{hub.base}/api/v1/cases/{first}?reveal=id_number", token)
    assert status == 200 and case["id_number"] == id_number(0)
    assert all(id_number(i) not in hub.process.log() for i in range(30))  # type: ignore[union-attr]
    db_bytes = (hub.dir / "state" / "hub.db").read_bytes()
    assert id_number(3).encode() not in db_bytes, "an ID number is stored in clear"

    status_out = xfv("edge", "status", "--config", str(tmp_path / "a" / "edge.toml"))
    assert "outbox     head 30, acked through 30, 0 waiting" in status_out.stdout
    assert "connected to 127.0.0.1" in status_out.stdout
    verified = xfv("hub", "verify-chain", "--config", str(hub.config_path))
    assert verified.returncode == 0 and "box-a: ok, 30 events" in verified.stdout
    with sqlite3.connect(hub.dir / "state" / "hub.db") as db:  # tamper: move seq 5 onto 4
        (fifth,) = db.execute(
            "SELECT payload_enc FROM events WHERE node='box-a' AND seq=5"
        ).fetchone()
        db.execute("UPDATE events SET payload_enc=? WHERE node='box-a' AND seq=4", [fifth])
    verified = xfv("hub", "verify-chain", "--config", str(hub.config_path), "--node", "box-a")
    assert verified.returncode == 1 and "box-a: BROKEN" in verified.stdout


def test_invalid_fields_get_their_errors(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    processes.append(start_edge(tmp_path / "b", "box-b", "510104021", mosquitto))
    edge = wait_until("box-b online", lambda: online_with(hub, token, "box-b"))
    kiosk = f"http://127.0.0.1:{edge['kiosk_port']}"
    bad_id = id_number(1)[:-1] + ("0" if id_number(1)[-1] != "0" else "1")
    status, body = http_json(
        kiosk + "/api/v1/cases", body={**FORM, "id_number": bad_id, "phone": "12345", "name": ""}
    )
    assert status == 422
    assert body["errors"]["id_number"]["code"] == "check_digit"
    assert body["errors"]["phone"]["code"] == "invalid_phone"
    assert body["errors"]["name"]["code"] == "required"
    status, body = http_json(kiosk + "/api/v1/cases", body=["not", "an", "object"])
    assert status == 400 and "JSON object" in body["error"]
    for token in (None, "forged"):  # reading stored cases needs the clerk, even on loopback
        status, body = http_json(kiosk + "/api/v1/cases", token=token)
        assert status == 401 and "clerk" in body["error"]


def test_a_repeated_event_is_a_no_op_and_a_bad_hash_holds_the_stream(
    fast_hub: Hub, mosquitto: Mosquitto
) -> None:
    hub, token = fast_hub, fast_hub.login()
    events = chain_of("box-c", 4)
    raw = RawClient("box-c", mosquitto)
    try:
        for e in events[:2]:
            raw.publish(topics.edge_events("box-c"), e)
        raw.publish(topics.edge_events("box-c"), events[0])  # an old event, again
        wait_until("head 2", lambda: (stream(hub, token, "box-c") or {}).get("head_seq") == 2)
        tampered = events[2].model_copy(update={"body": {**events[2].body, "township": "x"}})
        raw.publish(topics.edge_events("box-c"), tampered)
        raw.publish(topics.edge_events("box-c"), events[3])
        s = wait_until(
            "box-c flagged with seq 4 held",
            lambda: (
                (st := stream(hub, token, "box-c"))
                and not st["chain_ok"]
                and st["held"] == 1
                and st
            ),
        )
        assert s["head_seq"] == 2 and s["break_seq"] == 3 and s["held"] == 1
        assert "does not match the event" in s["break_reason"]
        assert hub_cases(hub, token)["total"] == 2
        _, q = http_json(hub.base + "/api/v1/quarantine", token)
        assert any("chain break at seq 3" in r["reason"] for r in q["quarantine"])
        _, health = http_json(hub.base + "/api/v1/health")
        assert health["status"] == "ok"
    finally:
        raw.close()


def test_a_gap_is_held_then_resync_is_requested(fast_hub: Hub, mosquitto: Mosquitto) -> None:
    hub, token = fast_hub, fast_hub.login()
    events = chain_of("box-d", 3)
    raw = RawClient("box-d", mosquitto)
    try:
        raw.subscribe(topics.edge_cmd("box-d"))
        raw.publish(topics.edge_events("box-d"), events[0])
        raw.publish(topics.edge_events("box-d"), events[2])  # seq 2 lost on the way
        s = wait_until(
            "seq 3 held", lambda: (st := stream(hub, token, "box-d")) and st["held"] == 1 and st
        )
        assert s["head_seq"] == 1
        topic, payload = wait_until("a resync command", lambda: raw.received and raw.received[0])
        command = decode(Command, payload)
        assert topic == topics.edge_cmd("box-d")
        assert command.kind == "resync" and command.args == {"from": 2}
        raw.publish(topics.edge_events("box-d"), events[1])
        wait_until("head 3", lambda: (stream(hub, token, "box-d") or {}).get("head_seq") == 3)
        assert stream(hub, token, "box-d")["held"] == 0  # type: ignore[index]
        assert hub_cases(hub, token)["total"] == 3
    finally:
        raw.close()


def test_events_for_another_box_are_refused_by_the_broker(
    fast_hub: Hub, mosquitto: Mosquitto
) -> None:
    """The ACL: box-e cannot publish on box-f's events topic (Mosquitto drops it)."""
    hub, token = fast_hub, fast_hub.login()
    raw = RawClient("box-e", mosquitto)
    try:
        raw.publish(topics.edge_events("box-f"), case_event("box-f", 1, "0" * 64))
        raw.publish(topics.edge_events("box-e"), case_event("box-e", 1, "0" * 64))
        wait_until("box-e's own event", lambda: stream(hub, token, "box-e"))
        assert stream(hub, token, "box-f") is None
    finally:
        raw.close()


def test_photos_upload_after_registration_and_complete_the_case(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    token = hub.login()
    processes.append(start_edge(tmp_path / "p", "box-g", "510104021", mosquitto))
    edge = wait_until("box-g online", lambda: online_with(hub, token, "box-g"))
    kiosk = f"http://127.0.0.1:{edge['kiosk_port']}"
    photos = []
    for _ in range(2):
        status, photo = http_json(kiosk + "/api/v1/photos", body={}, method="POST")
        assert status == 201, photo
        photos.append(photo["sha256"])
    status, receipt = http_json(
        kiosk + "/api/v1/cases", body={**FORM, "id_number": id_number(7), "photos": photos}
    )
    assert status == 201, receipt

    def complete() -> dict | None:
        status, case = http_json(f"{hub.base}/api/v1/cases/{receipt['case_no']}", token)
        return case if status == 200 and case["complete"] else None

    case = wait_until("the case complete at the hub", complete, timeout=30)
    assert case["photos_total"] == case["photos_verified"] == 2
    assert {p["sha256"] for p in case["photos"]} == set(photos)
    assert [t["kind"] for t in case["timeline"]] == ["registered", "photos_verified"]
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{hub.base}/api/v1/blobs/{photos[0]}", headers={"Authorization": f"Bearer {token}"}
        ),
        timeout=5,
    ) as resp:
        assert hashlib.sha256(resp.read()).hexdigest() == photos[0]
        assert resp.headers["Content-Type"] == "image/jpeg"
    status, _ = http_json(f"{hub.base}/api/v1/blobs/{photos[0]}/status")
    assert status == 401

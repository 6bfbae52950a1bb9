"""Wire models and ``decode``: schemas, limits, status births and deaths."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from contracts.chain import GENESIS, hash_matches
from contracts.commands import Ack, Command
from contracts.errors import MalformedMessage
from contracts.events import EventEnvelope
from contracts.presence import Birth, Death, HubState, decode_status
from contracts.telemetry import Telemetry
from contracts.wire import MAX_PAYLOAD_BYTES, as_payload, decode, decode_record

TS = dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC)
BIRTH = Birth(node="box-1", township="510104021", version="1.2.3", bd_seq=7, ts=TS, kiosk_port=8080)
DEATH = Death(node="box-1", bd_seq=7)
MODELS = [
    BIRTH,
    DEATH,
    HubState(state="online", hub="hub-1", ts=TS),
    Ack(node="box-1", acked_through=42),
    Command(node="box-1", kind="config", args={"音量": 3, "nested": [1.5, None]}, ts=TS),
    Telemetry(
        node="box-1",
        ts=TS,
        uptime_s=10.5,
        process_uptime_s=3.0,
        load1=0.1,
        load5=0.2,
        load15=0.3,
        mem_total=4 << 30,
        mem_available=1 << 30,
        disk_total=64 << 30,
        disk_free=32 << 30,
        cpu_temp_c=51.2,
    ),
    EventEnvelope.create(
        node="box-1", seq=1, type="case.registered", ts=TS, body={"名": "张三"}, prev_hash=GENESIS
    ),
]


def ack_json(**fields: Any) -> str:
    return json.dumps({"node": "box-1", "acked_through": 1, **fields})


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_every_model_round_trips(model: BaseModel) -> None:
    payload = model.to_payload()  # type: ignore[attr-defined]
    assert as_payload(model) == payload
    assert decode(type(model), payload) == model
    assert decode(type(model), payload.decode("utf-8")) == model
    assert decode(type(model), bytearray(payload)) == model


@pytest.mark.parametrize("model", MODELS, ids=lambda m: type(m).__name__)
def test_models_are_frozen(model: BaseModel) -> None:
    with pytest.raises(ValidationError):
        model.v = 2  # type: ignore[attr-defined]


def test_as_payload_keeps_chinese() -> None:
    assert as_payload({"名": "锦江区"}) == '{"名": "锦江区"}'.encode()


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"", "Invalid JSON"),
        (b"{", "Invalid JSON"),
        (b"not json", "Invalid JSON"),
        (b"\xff\xfe", "Invalid JSON"),
        (ack_json()[:-1], "Invalid JSON"),
        (b"[]", "should be an object"),
        (b"null", "should be an object"),
        (json.dumps({"node": "box-1"}), "acked_through"),
        (ack_json(acked_through=-1), "acked_through"),
        (ack_json(acked_through="many"), "acked_through"),
        (ack_json(v=2), "v"),
        (ack_json(node="Box"), "node"),
        (ack_json(node="box\n"), "node"),
        (ack_json(extra=1), "extra"),
        (ack_json(hash=GENESIS), "hash"),
    ],
    ids=[
        "empty",
        "open-brace",
        "text",
        "not-utf8",
        "truncated",
        "array",
        "null",
        "missing-field",
        "negative",
        "wrong-type",
        "wrong-version",
        "bad-node",
        "node-with-newline",
        "extra-field",
        "extra-hash-field",
    ],
)
def test_decode_refuses_malformed_payloads(payload: bytes | str, why: str) -> None:
    with pytest.raises(MalformedMessage, match=f"^Ack: .*{why}"):
        decode(Ack, payload)
    # the one-parse decoder used for box events says the same
    with pytest.raises(MalformedMessage, match=f"^Ack: .*{why}"):
        decode_record(Ack, payload.encode() if isinstance(payload, str) else payload)


def test_decode_record_returns_the_model_and_the_json_it_came_from() -> None:
    ack, record = decode_record(Ack, ack_json(acked_through=7).encode())
    assert ack.acked_through == 7
    assert record == json.loads(ack_json(acked_through=7))


def test_decode_record_keeps_integers_beyond_64_bits_for_hashing() -> None:
    sent = EventEnvelope.create(
        node="box-1", seq=1, type="note", ts=TS, body={"n": 2**70}, prev_hash=GENESIS
    )
    event, record = decode_record(EventEnvelope, sent.to_payload())
    assert record["body"]["n"] == 2**70
    assert event == sent
    assert hash_matches(record, sent.hash)


def padded(size: int) -> bytes:
    """A valid ``Ack`` payload padded with JSON whitespace to exactly ``size`` bytes."""
    body = ack_json().encode()
    return body + b" " * (size - len(body))


def test_decode_takes_a_payload_of_exactly_the_limit() -> None:
    assert decode(Ack, padded(MAX_PAYLOAD_BYTES)).acked_through == 1


@pytest.mark.parametrize(
    "payload",
    [
        padded(MAX_PAYLOAD_BYTES + 1),
        padded(MAX_PAYLOAD_BYTES + 1).decode(),
        bytearray(padded(4 * MAX_PAYLOAD_BYTES)),
        # 100 000 characters, but 300 000 bytes once UTF-8 encoded for the wire
        Command(node="box-1", kind="config", args={"note": "汉" * 100_000}).to_payload().decode(),
    ],
    ids=["bytes", "str", "bytearray", "str-of-multibyte-chars"],
)
def test_decode_refuses_payloads_over_the_limit(payload: bytes | bytearray | str) -> None:
    with pytest.raises(MalformedMessage, match="exceeds"):
        decode(Command, payload)


# --- status: Birth / Death --------------------------------------------------------------------


@pytest.mark.parametrize("status", [BIRTH, DEATH], ids=["birth", "death"])
def test_decode_status_tells_birth_from_death(status: Birth | Death) -> None:
    for payload in (status.to_payload(), status.to_payload().decode()):
        decoded = decode_status(payload)
        assert type(decoded) is type(status)
        assert decoded == status


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"{",
        b"null",
        json.dumps({"state": "sleeping", "node": "box-1", "bd_seq": 1}).encode(),
        json.dumps({"node": "box-1", "bd_seq": 1}).encode(),
        json.dumps({"state": "offline", "node": "box-1", "bd_seq": 1, "x": 1}).encode(),
        json.dumps({"state": "online", "node": "box-1", "bd_seq": 1}).encode(),
        # not JSON on its own: it only parses once wrapped as {"status": ...}
        b'{"state":"offline","node":"box-1","bd_seq":1},"status":'
        b'{"state":"offline","node":"box-1","bd_seq":2}',
    ],
    ids=[
        "empty",
        "open-brace",
        "null",
        "unknown-state",
        "no-state",
        "extra-field",
        "birth-missing-fields",
        "two-objects",
    ],
)
def test_decode_status_refuses_malformed_payloads(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode_status(payload)


def birth_json(township: Any) -> str:
    return json.dumps({"node": "box-1", "township": township, "version": "1", "bd_seq": 0})


@pytest.mark.parametrize(
    ("township", "code"),
    [("510104021", "510104021"), ("510104021000", "510104021"), (" 510104021 ", "510104021")],
)
def test_birth_normalises_its_township(township: str, code: str) -> None:
    assert decode(Birth, birth_json(township)).township == code
    assert Birth(node="box-1", township=township, version="1", bd_seq=0).township == code


@pytest.mark.parametrize(
    "township",
    [
        "51",
        "5101",
        "510100",
        "510104",
        "510104000",
        "510104000000",
        "510104021001",
        "abc",
        510104021,
    ],
)
def test_birth_refuses_a_code_that_is_not_a_township(township: Any) -> None:
    with pytest.raises(MalformedMessage, match="township"):
        decode(Birth, birth_json(township))
    with pytest.raises(ValidationError):
        Birth(node="box-1", township=township, version="1", bd_seq=0)


@pytest.mark.parametrize(
    "fields",
    [{"bd_seq": -1}, {"kiosk_port": 0}, {"kiosk_port": 65536}, {"version": "v" * 65}],
    ids=["negative-bd-seq", "port-0", "port-65536", "long-version"],
)
def test_birth_refuses_out_of_range_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        decode(Birth, json.dumps({**json.loads(birth_json("510104021")), **fields}))

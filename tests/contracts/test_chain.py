"""Canonical JSON, the hash chain and the event envelope that carries it."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from contracts.chain import (
    GENESIS,
    ChainBreak,
    ChainError,
    canonical_json,
    load_json,
    record_hash,
    seal,
    verify_chain,
)
from contracts.events import EventEnvelope
from contracts.wire import decode

chinese = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=8)
strings = chinese | st.text(max_size=8)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | strings
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(strings, inner, max_size=4),
    max_leaves=16,
)
chain_keys = strings.filter(lambda k: k not in {"seq", "prev_hash", "hash"})
small_values = scalars | st.lists(scalars, max_size=3)


def bodies(min_size: int = 1) -> st.SearchStrategy[list[dict[str, Any]]]:
    """Record bodies for a chain of ``min_size`` to 6 records."""
    return st.lists(
        st.dictionaries(chain_keys, small_values, max_size=3), min_size=min_size, max_size=6
    )


def reorder(value: Any, rnd: Any) -> Any:
    """The same JSON value with every object's keys in a random insertion order."""
    if isinstance(value, dict):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: reorder(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [reorder(v, rnd) for v in value]
    return value


def build_chain(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chain, prev = [], GENESIS
    for seq, body in enumerate(records, 1):
        sealed = seal({**body, "seq": seq}, prev)
        chain.append(sealed)
        prev = sealed["hash"]
    return chain


# --- canonical JSON ---------------------------------------------------------------------------


def test_canonical_json_is_sorted_compact_utf8() -> None:
    value = {"z": [1.5, None, True], "a": {"名": "锦江区"}, "m": 10}
    assert canonical_json(value) == '{"a":{"名":"锦江区"},"m":10,"z":[1.5,null,true]}'.encode()


@given(json_values, st.randoms(use_true_random=False))
def test_canonical_json_ignores_key_order(value: Any, rnd: Any) -> None:
    assert canonical_json(reorder(value, rnd)) == canonical_json(value)


@given(json_values)
def test_canonical_json_survives_a_json_round_trip(value: Any) -> None:
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded
    assert canonical_json(json.loads(encoded.decode("utf-8"))) == encoded


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_keep_their_shortest_repr(value: float) -> None:
    assert canonical_json(value) == repr(value).encode()


@pytest.mark.parametrize(
    "value",
    [
        math.nan,
        math.inf,
        -math.inf,
        {"x": [1, math.nan]},
        [{"y": math.inf}],
        b"bytes",
        {1, 2},
        object(),
        "\ud800",  # a lone surrogate is not encodable as UTF-8
    ],
    ids=["nan", "inf", "-inf", "nested-nan", "nested-inf", "bytes", "set", "object", "surrogate"],
)
def test_non_json_values_raise_chain_error(value: Any) -> None:
    with pytest.raises(ChainError):
        canonical_json(value)


# --- seal and record_hash ---------------------------------------------------------------------


def test_seal_links_hashes_and_leaves_its_input_alone() -> None:
    record = {"seq": 1, "body": {"名": "x"}, "hash": "stale"}
    sealed = seal(record, GENESIS)
    assert record == {"seq": 1, "body": {"名": "x"}, "hash": "stale"}
    assert sealed["prev_hash"] == GENESIS
    assert sealed["hash"] == record_hash(sealed) == record_hash({**sealed, "hash": "ignored"})
    assert len(sealed["hash"]) == 64


@pytest.mark.parametrize("prev", ["", "0" * 63, "A" * 64, "g" * 64, "0" * 65, None, 0])
def test_seal_rejects_a_malformed_prev_hash(prev: Any) -> None:
    with pytest.raises(ChainError, match="prev_hash"):
        seal({"seq": 1}, prev)


def test_record_hash_needs_prev_hash() -> None:
    with pytest.raises(ChainError, match="prev_hash"):
        record_hash({"seq": 1})


def test_record_hash_covers_prev_hash() -> None:
    assert record_hash({"prev_hash": GENESIS}) != record_hash({"prev_hash": "1" * 64})


# --- verify_chain -----------------------------------------------------------------------------


@given(bodies())
def test_a_sealed_chain_verifies(records: list[dict[str, Any]]) -> None:
    chain = build_chain(records)
    assert verify_chain(chain) is None
    assert chain[0]["prev_hash"] == GENESIS
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(chain))


def assert_break(found: ChainBreak | None, index: int, seq: int | None, reason: str) -> None:
    assert found is not None, "verify_chain missed the break"
    assert (found.index, found.seq) == (index, seq)
    assert found.reason.startswith(reason), found.reason


@given(bodies(), st.data())
def test_a_chain_verifies_from_any_midpoint(records: list[dict[str, Any]], data: Any) -> None:
    chain = build_chain(records)
    start = data.draw(st.integers(1, len(chain)))
    assert verify_chain(chain[start:], prev_hash=chain[start - 1]["hash"]) is None
    if start < len(chain):
        assert_break(verify_chain(chain[start:]), 0, start + 1, "prev_hash")


@given(bodies(), st.data())
def test_changing_any_field_breaks_the_chain_there(
    records: list[dict[str, Any]], data: Any
) -> None:
    chain = build_chain(records)
    i = data.draw(st.integers(0, len(chain) - 1), label="index")
    key = data.draw(st.sampled_from(sorted(chain[i])), label="field")
    chain[i] = {**chain[i], key: ["tampered", chain[i][key]]}
    reason = "prev_hash" if key == "prev_hash" else "hash"
    assert_break(verify_chain(chain), i, None if key == "seq" else i + 1, reason)


@given(bodies(), st.data())
def test_adding_or_removing_a_field_breaks_the_chain_there(
    records: list[dict[str, Any]], data: Any
) -> None:
    chain = build_chain(records)
    i = data.draw(st.integers(0, len(chain) - 1), label="index")
    removable = sorted(k for k in chain[i] if k not in {"seq", "prev_hash", "hash"})
    if removable and data.draw(st.booleans(), label="remove"):
        key = data.draw(st.sampled_from(removable), label="field")
        chain[i] = {k: v for k, v in chain[i].items() if k != key}
    else:
        key = data.draw(chain_keys.filter(lambda k: k not in chain[i]), label="new field")
        chain[i] = {**chain[i], key: data.draw(small_values, label="value")}
    assert_break(verify_chain(chain), i, i + 1, "hash")


@given(bodies(min_size=2), st.data())
def test_deleting_a_record_breaks_the_chain_at_its_place(
    records: list[dict[str, Any]], data: Any
) -> None:
    chain = build_chain(records)
    i = data.draw(st.integers(0, len(chain) - 2), label="index")
    del chain[i]
    assert_break(verify_chain(chain), i, i + 2, "prev_hash")


@given(bodies(min_size=2), st.data())
def test_swapping_two_records_breaks_the_chain_at_the_first(
    records: list[dict[str, Any]], data: Any
) -> None:
    chain = build_chain(records)
    i = data.draw(st.integers(0, len(chain) - 2), label="first")
    j = data.draw(st.integers(i + 1, len(chain) - 1), label="second")
    chain[i], chain[j] = chain[j], chain[i]
    assert_break(verify_chain(chain), i, j + 1, "prev_hash")


@given(bodies(), st.data())
def test_altering_a_hash_breaks_the_chain_there(records: list[dict[str, Any]], data: Any) -> None:
    chain = build_chain(records)
    i = data.draw(st.integers(0, len(chain) - 1), label="index")
    forged = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64), label="hash")
    assume(forged != chain[i]["hash"])
    chain[i] = {**chain[i], "hash": forged}
    assert_break(verify_chain(chain), i, i + 1, "hash")


@given(bodies(min_size=2), st.data())
def test_resealing_an_edited_record_breaks_the_chain_at_the_next(
    records: list[dict[str, Any]], data: Any
) -> None:
    chain = build_chain(records)
    i = data.draw(st.integers(0, len(chain) - 2), label="index")
    chain[i] = seal({**chain[i], "edited": True}, chain[i]["prev_hash"])
    assert verify_chain(chain[: i + 1]) is None
    assert_break(verify_chain(chain), i + 1, i + 2, "prev_hash")


def test_a_chain_must_start_at_the_given_prev_hash() -> None:
    chain = build_chain([{"a": 1}])
    assert_break(verify_chain(chain, prev_hash="1" * 64), 0, 1, "prev_hash")
    assert verify_chain([]) is None


# --- EventEnvelope ----------------------------------------------------------------------------

timestamps = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=8))]),
)
event_bodies = st.dictionaries(strings, json_values, max_size=3)


def envelope_chain(items: list[tuple[dt.datetime, dict[str, Any]]]) -> list[EventEnvelope]:
    events, prev = [], GENESIS
    for seq, (ts, body) in enumerate(items, 1):
        event = EventEnvelope.create(
            node="box-1", seq=seq, type="case.registered", ts=ts, body=body, prev_hash=prev
        )
        events.append(event)
        prev = event.hash
    return events


@given(st.lists(st.tuples(timestamps, event_bodies), min_size=1, max_size=5))
def test_created_events_chain_and_survive_the_wire(
    items: list[tuple[dt.datetime, dict[str, Any]]],
) -> None:
    events = envelope_chain(items)
    assert all(e.hash_ok() for e in events)
    assert [e.prev_hash for e in events] == [GENESIS, *(e.hash for e in events[:-1])]
    assert verify_chain(e.chain_record() for e in events) is None
    received = [decode(EventEnvelope, e.to_payload()) for e in events]
    assert received == events
    assert all(e.hash_ok() for e in received)
    assert verify_chain(e.chain_record() for e in received) is None


@pytest.mark.parametrize(
    "change",
    [
        {"body": {"名": "篡改"}},
        {"seq": 2},
        {"type": "case.closed"},
        {"node": "box-2"},
        {"ts": dt.datetime(2024, 1, 1, 0, 0, 1, tzinfo=dt.UTC)},
        {"prev_hash": "1" * 64},
        {"hash": "2" * 64},
    ],
    ids=lambda change: next(iter(change)),
)
def test_editing_a_created_event_fails_hash_ok(change: dict[str, Any]) -> None:
    (event,) = envelope_chain([(dt.datetime(2024, 1, 1, tzinfo=dt.UTC), {"名": "张三"})])
    assert event.hash_ok()
    assert not event.model_copy(update=change).hash_ok()


@pytest.mark.parametrize("prev", ["", "A" * 64, "0" * 63])
def test_event_create_rejects_a_malformed_prev_hash(prev: str) -> None:
    with pytest.raises(ValueError, match="prev_hash"):
        EventEnvelope.create(
            node="box-1",
            seq=1,
            type="t",
            ts=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
            body={},
            prev_hash=prev,
        )


@pytest.mark.parametrize(
    "text",
    [
        '{"n": 12345678901234567890123}',
        '{"n": -12345678901234567890123, "m": [1.5, 2]}',
        '{"id": "510104198001040037", "n": 18446744073709551615}',
        '{"s": "\\u00e9", "f": 0.1}',
    ],
)
def test_load_json_reads_every_value_exactly(text: str) -> None:
    # repr tells an exact integer from the float orjson alone would make of it
    assert repr(load_json(text.encode())) == repr(json.loads(text))

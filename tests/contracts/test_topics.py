"""MQTT topics: builders, parsers and the id rules."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from contracts import topics
from contracts.errors import InvalidNodeId, InvalidTopic
from contracts.topics import EdgeChannel, EdgeTopic

BUILDERS: list[tuple[Callable[[str], str], str]] = [
    (topics.edge_status, "xfv/v1/edge/{}/status"),
    (topics.edge_events, "xfv/v1/edge/{}/events"),
    (topics.edge_ack, "xfv/v1/edge/{}/ack"),
    (topics.edge_cmd, "xfv/v1/edge/{}/cmd"),
    (topics.edge_telemetry, "xfv/v1/edge/{}/telemetry"),
    (topics.hub_state, "xfv/v1/hub/{}/state"),
]
BUILDER_IDS = [b.__name__ for b, _ in BUILDERS]

BAD_IDS = [
    pytest.param("Box", id="upper"),
    pytest.param("a/b", id="slash"),
    pytest.param("+", id="plus"),
    pytest.param("#", id="hash"),
    pytest.param("", id="empty"),
    pytest.param("x" * 64, id="64-chars"),
    pytest.param("-box", id="leading-dash"),
    pytest.param("_box", id="leading-underscore"),
    pytest.param("box 1", id="space"),
    pytest.param("box.1", id="dot"),
    pytest.param("bøx", id="non-ascii"),
    pytest.param("box\n", id="trailing-newline"),  # re's "$" also matches before a final "\n"
]

node_ids = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)


@pytest.mark.parametrize(("build", "template"), BUILDERS, ids=BUILDER_IDS)
@pytest.mark.parametrize("node", ["box-1", "chengdu_hub", "0", "a" * 63])
def test_builders_follow_the_design_table(
    build: Callable[[str], str], template: str, node: str
) -> None:
    assert build(node) == template.format(node)


@pytest.mark.parametrize(("build", "template"), BUILDERS, ids=BUILDER_IDS)
def test_builders_refuse_a_bad_id(build: Callable[[str], str], template: str) -> None:
    with pytest.raises(InvalidNodeId, match="'Box'"):
        build("Box")


@pytest.mark.parametrize("bad", BAD_IDS)
def test_check_id_refuses(bad: str) -> None:
    with pytest.raises(InvalidNodeId):
        topics.check_id(bad)


@pytest.mark.parametrize("bad", BAD_IDS)
def test_parse_edge_topic_refuses_a_bad_node(bad: str) -> None:
    with pytest.raises((InvalidNodeId, InvalidTopic)):
        topics.parse_edge_topic(f"xfv/v1/edge/{bad}/status")


def test_subscription_filters() -> None:
    assert [topics.all_edges(c) for c in EdgeChannel] == [
        f"xfv/v1/edge/+/{c}" for c in ("status", "events", "ack", "cmd", "telemetry")
    ]
    assert topics.ALL_HUB_STATES == "xfv/v1/hub/+/state"


@given(node_ids, st.sampled_from(EdgeChannel))
def test_parse_edge_topic_round_trips(node: str, channel: EdgeChannel) -> None:
    assert topics.check_id(node) == node
    assert topics.parse_edge_topic(topics.edge_topic(node, channel)) == EdgeTopic(node, channel)


@given(node_ids)
def test_parse_hub_topic_round_trips(hub: str) -> None:
    assert topics.parse_hub_topic(topics.hub_state(hub)) == hub


@pytest.mark.parametrize(
    "topic",
    [
        "xfv/v2/edge/box-1/status",
        "xfv/v1/hub/box-1/status",
        "abc/v1/edge/box-1/status",
        "/xfv/v1/edge/box-1/status",
        "xfv/v1/edge/box-1/status/",
        "xfv/v1/edge/box-1/status/extra",
        "xfv/v1/edge/box-1",
        "xfv/v1/edge/box-1/state",
        "xfv/v1/edge/box-1/STATUS",
        "xfv/v1/edge/box-1/",
        "xfv/v1/edge/box-1/#",
        "",
    ],
)
def test_parse_edge_topic_refuses_other_topics(topic: str) -> None:
    with pytest.raises(InvalidTopic):
        topics.parse_edge_topic(topic)


@pytest.mark.parametrize(
    "topic",
    [
        "xfv/v1/hub/hub-1/status",
        "xfv/v1/edge/hub-1/state",
        "xfv/v2/hub/hub-1/state",
        "xfv/v1/hub/hub-1/state/x",
        "xfv/v1/hub/hub-1",
    ],
)
def test_parse_hub_topic_refuses_other_topics(topic: str) -> None:
    with pytest.raises(InvalidTopic):
        topics.parse_hub_topic(topic)


def test_parse_hub_topic_refuses_a_bad_hub_id() -> None:
    with pytest.raises(InvalidNodeId, match="hub id"):
        topics.parse_hub_topic("xfv/v1/hub/Hub/state")

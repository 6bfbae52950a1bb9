"""Building and publishing box events by hand, as a raw MQTT client would."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from contracts.cases import CASE_REGISTERED, CaseRegistered, validate_case_form
from contracts.chain import GENESIS
from contracts.events import EventEnvelope
from contracts.ids import check_character
from tests.support.broker import BOX_USERS, Mosquitto, password_of

FORM = {
    "name": "张三",
    "phone": "13800138000",
    "address": "锦江区盐市口街道 1 号",
    "category": "claim",
    "concerned_unit": "区住建局",
    "content": "房屋漏水，多次反映未解决。",
}


def id_number(n: int) -> str:
    first = f"510104198001{(n % 28) + 1:02d}{n % 1000:03d}"
    return first + check_character(first)


def box_no(node: str) -> int:
    """A stable two-digit box number per node, distinct for the broker's box users, so
    simulated boxes never share case numbers."""
    if node in BOX_USERS:
        return 10 + BOX_USERS.index(node)
    return int(hashlib.sha256(node.encode()).hexdigest(), 16) % 90 + 10


def case_event(node: str, seq: int, prev: str, township: str = "510104021") -> EventEnvelope:
    form = validate_case_form({**FORM, "id_number": id_number(seq)})
    assert not isinstance(form, dict), form
    body = CaseRegistered(
        case_no=f"{township}-{box_no(node):02d}-261121-{seq:04d}",
        township=township,
        registered_at=dt.datetime.now(dt.UTC),
        form=form,
        query_code="123456",
    )
    return EventEnvelope.create(
        node=node,
        seq=seq,
        type=CASE_REGISTERED,
        ts=dt.datetime.now(dt.UTC),
        body=body.model_dump(mode="json"),
        prev_hash=prev,
    )


def chain_of(node: str, n: int) -> list[EventEnvelope]:
    events, prev = [], GENESIS
    for seq in range(1, n + 1):
        events.append(case_event(node, seq, prev))
        prev = events[-1].hash
    return events


class RawClient:
    """A paho client with a box's credentials, publishing QoS 1 and collecting what it hears."""

    def __init__(self, user: str, broker: Mosquitto) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{user}-raw")
        self.client.username_pw_set(user, password_of(user))
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def subscribe(self, topic: str) -> None:
        self.client.subscribe(topic, qos=1)

    def publish(self, topic: str, payload: bytes | Any) -> None:
        if isinstance(payload, EventEnvelope):
            payload = payload.to_payload()
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(5)
        assert info.is_published()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

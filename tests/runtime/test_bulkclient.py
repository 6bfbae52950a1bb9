"""``BulkClient``: buffered reads and batched PUBACKs, against a real Mosquitto."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from runtime.bulkclient import CHUNK, BufferedSocket, BulkClient, internals_problems
from tests.support.broker import HUB_USER, Mosquitto, password_of

TOPIC = "xfv/v1/bench/bulk"


def test_paho_internals_are_as_bulkclient_expects() -> None:
    assert internals_problems() == []


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def test_buffered_socket_serves_small_reads_from_one_large_read(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    wrapped = BufferedSocket(b)
    data = bytes(range(256)) * 40  # 10,240 bytes
    a.sendall(data)
    time.sleep(0.05)
    first = wrapped.recv(1)
    assert first == data[:1]
    assert wrapped.buffered() == len(data) - 1  # all of it came in with the first read
    assert wrapped.pending() == len(data) - 1
    parts = [first]
    while wrapped.buffered():
        parts.append(wrapped.recv(700))
    assert b"".join(parts) == data
    b.setblocking(False)
    with pytest.raises(BlockingIOError):  # nothing buffered, nothing to read: as a socket
        wrapped.recv(1)
    assert wrapped.fileno() == b.fileno()


def test_buffered_socket_passes_large_reads_straight_through(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    wrapped = BufferedSocket(b)
    a.sendall(b"x" * 100)
    time.sleep(0.05)
    assert wrapped.recv(CHUNK) == b"x" * 100
    assert wrapped.buffered() == 0
    a.close()
    assert wrapped.recv(1) == b""  # the peer closed: paho sees a lost connection


class Subscriber:
    """A persistent-session QoS 1 subscriber that acks nothing by itself."""

    def __init__(self, broker: Mosquitto, client_id: str, *, bulk: bool = False) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self.bulk: list[tuple[int, str, bytes]] = []
        self.subscribed = threading.Event()
        self.client = BulkClient(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
        )
        self.client.username_pw_set(HUB_USER, password_of(HUB_USER))
        self.client.manual_ack_set(True)
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = lambda _c, _u, m: self.messages.append(m)
        if bulk:
            self.client.on_bulk_message = lambda *message: self.bulk.append(message)
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        self.client.subscribe(TOPIC, qos=1)
        assert self.subscribed.wait(5)

    def wait_for(self, count: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(self.messages) >= count, f"got {len(self.messages)} of {count}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: Mosquitto, payloads: list[bytes]) -> None:
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}")
    pub.username_pw_set(HUB_USER, password_of(HUB_USER))
    pub.max_inflight_messages_set(1000)
    pub.connect(broker.host, broker.port, 30)
    pub.loop_start()
    infos = [pub.publish(TOPIC, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(10)
    pub.disconnect()
    pub.loop_stop()


def test_a_burst_arrives_whole_and_in_order_and_batched_acks_reach_the_broker(
    mosquitto: Mosquitto,
) -> None:
    payloads = [f"{i:06d}".encode() * 100 for i in range(3000)]  # 600 bytes each
    sub = Subscriber(mosquitto, "bulk-acked")
    acked, acks = 0, 0
    publisher = threading.Thread(target=publish, args=(mosquitto, payloads))
    publisher.start()
    deadline = time.monotonic() + 30
    while acked < len(payloads) and time.monotonic() < deadline:  # ack as the hub does
        time.sleep(0.01)
        upto = len(sub.messages)
        if upto > acked:
            sub.client.ack_many(m.mid for m in sub.messages[acked:upto])
            acked, acks = upto, acks + 1
    publisher.join(10)
    assert [m.payload for m in sub.messages] == payloads
    assert {(m.topic, m.qos, m.retain, m.dup) for m in sub.messages} == {(TOPIC, 1, False, False)}
    assert len({m.mid for m in sub.messages[:1000]}) == 1000  # the broker's window, each its own
    assert acks < len(payloads) / 5  # batched: the broker's window of 1000 needed them
    time.sleep(0.5)
    sub.close()
    again = Subscriber(mosquitto, "bulk-acked")  # the same persistent session
    time.sleep(1.0)
    again.close()
    assert again.messages == [], f"{len(again.messages)} acked messages were redelivered"


def test_what_was_not_acked_is_redelivered(mosquitto: Mosquitto) -> None:
    payloads = [f"m{i}".encode() for i in range(200)]
    sub = Subscriber(mosquitto, "bulk-half")
    publish(mosquitto, payloads)
    sub.wait_for(len(payloads))
    sub.client.ack_many(m.mid for m in sub.messages[:120])
    time.sleep(0.5)
    sub.close()
    again = Subscriber(mosquitto, "bulk-half")
    again.wait_for(80)
    time.sleep(0.3)
    again.close()
    assert sorted(m.payload for m in again.messages) == sorted(payloads[120:])


def test_on_bulk_message_takes_mid_topic_and_payload_in_place_of_on_message(
    mosquitto: Mosquitto,
) -> None:
    payloads = [f"b{i:04d}".encode() * 50 for i in range(500)]
    sub = Subscriber(mosquitto, "bulk-tuples", bulk=True)
    publish(mosquitto, payloads)
    deadline = time.monotonic() + 20
    while len(sub.bulk) < len(payloads) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [payload for _, _, payload in sub.bulk] == payloads
    assert {(topic, type(payload)) for _, topic, payload in sub.bulk} == {(TOPIC, bytes)}
    assert len({mid for mid, _, _ in sub.bulk}) == len(payloads)
    assert sub.messages == []  # on_message saw none of them
    sub.client.ack_many(mid for mid, _, _ in sub.bulk[:300])
    time.sleep(0.5)
    sub.close()
    again = Subscriber(mosquitto, "bulk-tuples")  # the same session: the unacked come back
    again.wait_for(200)
    time.sleep(0.3)
    again.close()
    assert sorted(m.payload for m in again.messages) == sorted(payloads[300:])


class Counting(BulkClient):
    """Counts the messages the in-place parser took (the rest went through paho's reader)."""

    fast = 0

    def _take_publishes(self, sock: BufferedSocket, most: int) -> int:
        taken = super()._take_publishes(sock, most)
        self.fast += taken
        return taken


def test_the_in_place_parser_takes_every_size_split_anywhere_and_leaves_qos_0_to_paho(
    mosquitto: Mosquitto,
) -> None:
    # remaining lengths of one to four bytes, packets larger than a read (CHUNK), and QoS 0
    # messages in between, which the parser must leave to paho's reader
    sizes = [0, 1, 100, 121, 122, 16_375, 16_376, CHUNK + 1000, 2_097_200, 600, 600, 600]
    qos1 = [bytes([i % 251]) * size for i, size in enumerate(sizes * 20)]
    qos0 = [f"zero-{i}".encode() for i in range(len(qos1))]
    received: list[tuple[int, str, bytes]] = []
    unacked: list[paho.MQTTMessage] = []
    client = Counting(CallbackAPIVersion.VERSION2, client_id="bulk-sizes", clean_session=False)
    client.username_pw_set(HUB_USER, password_of(HUB_USER))
    client.manual_ack_set(True)
    client.on_bulk_message = lambda *message: received.append(message)
    client.on_message = lambda _c, _u, m: unacked.append(m)
    subscribed = threading.Event()
    client.on_subscribe = lambda *_a: subscribed.set()
    client.connect(mosquitto.host, mosquitto.port, 30)
    client.loop_start()
    client.subscribe(TOPIC, qos=1)
    assert subscribed.wait(5)
    pub = paho.Client(CallbackAPIVersion.VERSION2, client_id="pub-sizes")
    pub.username_pw_set(HUB_USER, password_of(HUB_USER))
    pub.max_inflight_messages_set(1000)
    pub.connect(mosquitto.host, mosquitto.port, 30)
    pub.loop_start()
    infos = []
    for one, zero in zip(qos1, qos0, strict=True):
        infos.append(pub.publish(TOPIC, one, qos=1))
        infos.append(pub.publish(TOPIC, zero, qos=0))
    for info in infos:
        info.wait_for_publish(30)
    deadline, acked = time.monotonic() + 30, 0
    while acked + len(unacked) < len(qos1) + len(qos0) and time.monotonic() < deadline:
        upto = len(received)
        client.ack_many(mid for mid, _, _ in received[acked:upto])  # the broker's window
        acked = upto
        time.sleep(0.05)
    pub.disconnect()
    pub.loop_stop()
    client.disconnect()
    client.loop_stop()
    assert [payload for _, _, payload in received] == qos1
    assert {topic for _, topic, _ in received} == {TOPIC}
    assert [m.payload for m in unacked] == qos0
    assert {m.qos for m in unacked} == {0}
    assert client.fast > len(qos1) // 2, f"the parser took {client.fast} of {len(qos1)}"

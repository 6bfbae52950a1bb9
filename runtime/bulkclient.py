"""A paho client for taking in thousands of QoS 1 messages a second, with fewer system calls.

Stock paho reads each MQTT packet with at least three ``recv`` calls (the command byte, each
byte of the remaining length, then the rest), and its network thread goes back to ``select``
after every packet; a manual PUBACK costs a wake-up write on paho's socket pair and a ``send``
of four bytes. At the hub's ingest rates those calls were a good part of the main process's
CPU. ``BulkClient`` changes how they are read and acknowledged, and nothing of the protocol:

- the socket is wrapped in ``BufferedSocket``, which reads what the kernel has (up to
  ``CHUNK`` bytes) in one call and serves paho's small reads from that buffer;
- ``loop_read`` goes on reading while the buffer holds more (paho's loop would otherwise wait
  in ``select`` for a socket that has nothing new while whole packets sit in the buffer; the
  buffer's ``pending()`` also tells paho's loop not to wait, as it does for TLS);
- ``ack_many(mids)`` queues the PUBACKs of a batch as one write;
- a QoS 1 message taken with manual acks is built without its ``MQTTMessageInfo`` (a
  ``threading.Condition`` each, for waiting on a publish: nothing waits on a received
  message), a fifth of the network thread's time per message;
- with ``on_bulk_message`` set, such a message is not built at all: the callback takes its
  ``(mid, topic, payload)``, skipping the ``MQTTMessage``, paho's two callback locks and its
  match of the topic against per-topic callbacks (a tenth of the hub's main process);
- and then ``loop_read`` parses the whole QoS 1 PUBLISH packets waiting in the buffer in
  place (``_take_publishes``), leaving every other packet, and any packet not yet whole, to
  paho's reader: the hub's main process went from 54-80 to 22-28 us per event.

These use paho internals (``_create_socket``, ``_packet_queue``, ``_sock``,
``_handle_publish``, ``_packet.decode_publish``, ``MQTTMessage``'s slots, and the reader's
``_in_packet``, ``_protocol``, ``_manual_ack`` and ``_last_bytes_received``); paho is pinned
below 3 and :func:`internals_problems` (run by ``tests/runtime/test_bulkclient.py``) fails
loudly if those change.
"""

from __future__ import annotations

import inspect
import socket
import struct
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

CHUNK = 256 * 1024
"""Bytes asked of the kernel per read."""
MAX_PACKETS_PER_READ = 2000
"""Packets ``loop_read`` takes from the buffer before letting paho's loop write (acks,
pings) again."""
_PUBACK = struct.Struct("!BBH")
_QOS_BITS = 0x06
_RECEIVED = paho.MQTTMessageInfo(0)
"""The ``info`` of every message ``BulkClient`` receives (only published messages need one)."""
MESSAGE_SLOTS = {
    "_topic", "dup", "info", "mid", "payload", "properties", "qos", "retain", "state", "timestamp"
}  # fmt: skip


class BufferedSocket:
    """A socket whose ``recv`` is served from a buffer filled by large reads; everything else
    is the wrapped socket's (``select`` uses ``fileno``)."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._pos = 0

    def recv(self, size: int) -> bytes:
        if self._pos >= len(self._buffer):
            data = self._sock.recv(max(size, CHUNK))  # BlockingIOError etc. go to paho
            if len(data) <= size:
                return bytes(data)
            self._buffer, self._pos = data, 0
        end = self._pos + size
        out = self._buffer[self._pos : end]
        self._pos = min(end, len(self._buffer))
        if self._pos >= len(self._buffer):
            self._buffer, self._pos = b"", 0
        return out

    def buffered(self) -> int:
        return len(self._buffer) - self._pos

    def consume(self, upto: int) -> None:
        """Mark the buffer read up to ``upto`` (what ``BulkClient`` parsed in place)."""
        if upto >= len(self._buffer):
            self._buffer, self._pos = b"", 0
        else:
            self._pos = upto

    def pending(self) -> int:
        """Bytes readable without waiting (paho's loop skips ``select``'s wait when > 0)."""
        inner = getattr(self._sock, "pending", None)
        return self.buffered() + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class BulkClient(paho.Client):
    """``paho.Client`` with buffered reads and batched PUBACKs (see the module docstring)."""

    on_bulk_message: Callable[[int, str, bytes], None] | None = None
    """Takes each QoS 1 message received with manual acks as ``(mid, topic, payload)``,
    instead of ``on_message``."""

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        return BufferedSocket(sock) if isinstance(sock, socket.socket) else sock

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        budget = MAX_PACKETS_PER_READ
        while budget > 0 and rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            sock = self._sock
            if not isinstance(sock, BufferedSocket) or not sock.buffered():
                break
            taken = self._take_publishes(sock, budget) if self._in_packet["command"] == 0 else 0
            if taken:
                budget -= taken
                continue
            rc = super().loop_read(1)  # anything else, or a packet not yet whole: paho's way
            budget -= 1
        return rc

    def _take_publishes(self, sock: BufferedSocket, most: int) -> int:
        """Hand ``on_bulk_message`` each whole QoS 1 PUBLISH at the head of the buffer, up to
        ``most``, parsed in place; stop at any other packet, at one not yet whole, or at one
        that is malformed (paho then reads it its own way). Returns how many were taken.

        Paho's reader spends about four times as long per packet: a ``recv`` call per field,
        a dict of state, a ``struct`` format built per packet. Only MQTT 3.1.1 PUBLISH
        packets (no properties) take this path.
        """
        bulk = self.on_bulk_message
        if bulk is None or not self._manual_ack or self._protocol == paho.MQTTv5:
            return 0
        data, pos, end, taken = sock._buffer, sock._pos, len(sock._buffer), 0
        while taken < most and pos < end:
            if data[pos] & 0xF6 != 0x32:  # not a PUBLISH at QoS 1 (dup and retain: any)
                break
            length, shift, at = 0, 0, pos + 1
            while at < end and shift <= 21:
                byte = data[at]
                length |= (byte & 0x7F) << shift
                at += 1
                if byte < 0x80:
                    break
                shift += 7
            else:
                break  # the length is not whole yet (or longer than MQTT allows: paho says so)
            stop = at + length
            if stop > end or length < 5:
                break
            size = (data[at] << 8) | data[at + 1]
            body = at + 4 + size  # topic length, topic, packet id
            if size == 0 or body > stop:
                break
            topic = data[at + 2 : at + 2 + size].decode("utf-8", "replace")
            bulk((data[body - 2] << 8) | data[body - 1], topic, data[body:stop])
            pos, taken = stop, taken + 1
        if taken:
            sock.consume(pos)
            with self._msgtime_mutex:
                self._last_bytes_received = paho.time_func()
        return taken

    def _handle_publish(self) -> MQTTErrorCode:
        command = self._in_packet["command"]
        if (command & _QOS_BITS) >> 1 != 1 or not self._manual_ack:
            return super()._handle_publish()  # QoS 0 and 2, automatic acks: as paho does
        result = _packet.decode_publish(command, self._in_packet["packet"], self._protocol)
        bulk = self.on_bulk_message
        if bulk is not None:
            bulk(result.mid, result.topic.decode("utf-8", "replace"), bytes(result.payload))
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        message = paho.MQTTMessage.__new__(paho.MQTTMessage)
        message.timestamp = paho.time_func()
        message.state = paho.mqtt_ms_invalid
        message.dup, message.mid, message._topic = result.dup, result.mid, result.topic
        message.payload, message.qos, message.retain = result.payload, 1, result.retain
        message.info, message.properties = _RECEIVED, result.properties
        self._handle_on_message(message)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def ack_many(self, mids: Iterable[int]) -> MQTTErrorCode:
        """PUBACK each of ``mids`` (QoS 1 messages taken with manual acks), in one write."""
        packet = b"".join(_PUBACK.pack(paho.PUBACK, 2, mid) for mid in mids)
        if not packet:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return self._packet_queue(paho.PUBACK, packet, 0, 1)


def internals_problems() -> list[str]:
    """What of paho's internals ``BulkClient`` relies on is missing or changed (empty: all
    there)."""
    problems = []
    client = paho.Client
    for name, params in {
        "_create_socket": ["self"],
        "_packet_queue": ["self", "command", "packet", "mid", "qos", "info"],
        "_packet_read": ["self"],
        "loop_read": ["self", "max_packets"],
        "_sock_recv": ["self", "bufsize"],
        "_handle_publish": ["self"],
        "_handle_on_message": ["self", "message"],
    }.items():
        method = getattr(client, name, None)
        if method is None:
            problems.append(f"paho.mqtt.client.Client.{name} is gone")
            continue
        got = list(inspect.signature(method).parameters)
        if got != params:
            problems.append(f"paho.mqtt.client.Client.{name}{tuple(got)}: expected {params}")
    source = inspect.getsource(client._loop)
    if "self._sock.pending()" not in source:
        problems.append("paho's _loop no longer asks the socket for pending() bytes")
    if "self._sock.recv(" not in inspect.getsource(client._sock_recv):
        problems.append("paho's _sock_recv no longer reads with self._sock.recv")
    decode = getattr(_packet, "decode_publish", None)
    if decode is None or list(inspect.signature(decode).parameters) != [
        "header",
        "packet",
        "protocol",
    ]:
        problems.append("paho.mqtt._packet.decode_publish(header, packet, protocol) changed")
    if set(paho.MQTTMessage.__slots__) != MESSAGE_SLOTS:
        problems.append(f"paho's MQTTMessage slots are {paho.MQTTMessage.__slots__}")
    if "decode_publish" not in inspect.getsource(client._handle_publish):
        problems.append("paho's _handle_publish no longer decodes with _packet.decode_publish")
    if paho.PUBACK != 0x40:
        problems.append(f"paho.mqtt.client.PUBACK is {paho.PUBACK:#x}, not 0x40")
    reader = inspect.getsource(client._packet_read)
    for state in ('self._in_packet["command"]', "self._last_bytes_received", "_msgtime_mutex"):
        if state not in reader.replace("'", '"'):
            problems.append(f"paho's _packet_read no longer keeps {state}")
    fresh = paho.Client(CallbackAPIVersion.VERSION2)
    for attribute in ("_in_packet", "_manual_ack", "_protocol", "_msgtime_mutex"):
        if not hasattr(fresh, attribute):
            problems.append(f"paho's Client has no {attribute}")
    return problems

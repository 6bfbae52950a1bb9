"""The signaling protocol of live reception: every WebSocket frame, and the session events
the signaling server hands to the hub's case timeline.

One JSON object per WebSocket text message, discriminated by ``type``; ``parse_frame`` is the
only way in and raises ``FrameError`` (with a ``code`` a client can act on) naming what was
wrong. All frames of both directions are in the one union, so a client parses what the
server sends with the same function.

Who sends what (``SENDERS`` is the table the server enforces):

==================  =====================  ===============================================
frame               sender                 meaning
==================  =====================  ===============================================
hello               anyone                 first frame: the SIGNALING token (or put the
                                           token in the URL: ``/ws?token=...``)
welcome             server                 who you are; ``resumed`` when this socket took
                                           over a dropped one of the same subject within
                                           the grace period
request_reception   box                    ask for a reception for one of the box's cases
cancel              box                    withdraw a waiting request
queued              server → box           the request waits at ``position`` (1 = next)
queue               server → officials     full snapshot of the requests the official may
                                           take, sent on connect and on every change
accept              official               take a waiting request: a session starts;
                                           ``video_codecs`` lists what the official's
                                           browser decodes (H264, VP8; none: both)
session_started     server                 to the box and official (``role`` box/official),
                                           to a monitor that asked to ``watch`` (role
                                           monitor), and to the relay (role relay);
                                           ``video_codec`` is what the box publishes
offer/answer/ice    participant ↔ relay    media negotiation, routed by the server (below)
watch               monitor                watch a live session unseen
leave               monitor / participant  a monitor stops watching; a participant leaving
                                           ends the session
end                 participant, relay     end the session with a reason
session_ended       server                 to everyone in it, hidden monitors and relay too
peer_left           server → relay         a subscriber (a monitor) is gone: close its
                                           downstream connections
event               server → relay         one session event (``LiveEvent``) with its
                                           outbox ``seq``, for the hub's timeline and
                                           audit log (see "Event delivery")
event_ack           relay                  every event up to ``seq`` is stored at the hub
media_failed        relay → participant    an offer could not be answered (code, message)
live                server → monitors      full snapshot of the live sessions in the
                                           monitor's jurisdiction, on connect and on change
error               server                 a frame was refused; the socket stays open
                                           unless the token was bad
==================  =====================  ===============================================

Media routing. Every participant connects only to the hub relay (an SFU). The relay is one
WebSocket client of this server, with a SIGNALING token of role ``admin`` and subject
``RELAY_SUBJECT`` (see ``is_relay``; ``mint_relay_token`` makes one). A participant sends
``offer {session_id, direction, sdp}`` (``direction`` publish = its upstream, subscribe = a
downstream of the session's other publishers, or of ``source`` only); the server checks the
sender is in the session (a monitor: watching it, and subscribe only), stamps ``peer`` with
the sender's subject and passes the frame to the relay, which calls its ``publish`` or
``subscribe(session, peer, offer_sdp)`` and sends back ``answer {session_id, direction, peer,
sdp}``; the server passes it (and any ``ice`` of the relay naming ``peer``) to that
participant's current socket. ``ice`` from a participant reaches the relay the same way.
``peer`` is ignored when a participant sends it and required when the relay does.

A subscribe ``offer`` without ``source`` gets the other participant of the session (for the
box: the official; for the official: the box; for a monitor: the box); a monitor sends one
subscribe offer per participant it wants to see, each with its ``source``. The relay's
``answer`` carries the ``source`` it chose, so a client tells its downstreams apart. The relay
holds a subscribe offer until ``source`` publishes (a few seconds), so both participants may
send their offers in any order; if it cannot answer, it sends ``media_failed``. The relay
gathers all its ICE candidates before answering (no trickle); it ignores trickled ``ice``
from participants, who therefore send complete offers as well.

Video codec. The relay forwards without transcoding, so the box must publish a codec the
official decodes. The official's ``accept`` says which of ``VIDEO_CODECS`` its browser decodes
(``video_codecs``; left out: both; the console drops names it does not know before sending,
and the server refuses an empty list or an unknown name with an ``error`` frame).
``choose_video_codec`` picks H264 when offered, else VP8; the session keeps the choice, and
every ``session_started`` of it (box, official, relay, monitors, a resumed socket) carries it
as ``video_codec``. The box encodes that codec for its upstream; the official's own upstream
may be either (the box decodes both).

Event delivery. Session events are the case timeline and the monitor-view audit: none may be
lost or doubled. The server writes each event, when it happens, to its outbox (a SQLite file,
``SignalingConfig.events_db``) under the next sequence number, and sends it to the relay as
``event {seq, event}``, in ``seq`` order. The relay answers ``event_ack {seq}`` once every
event up to ``seq`` is committed at the hub (cumulative: one ack may cover many events); the
server then deletes them from the outbox. On every relay connection, and after a restart of
the server, everything not acknowledged is sent again, oldest first, at most
``EVENT_WINDOW`` unacknowledged on the wire at a time. An event can therefore arrive twice
(sent, stored, but the ack was lost with the socket): the hub writes each one idempotently
(``hub.store.live.event_key``). An ``event_ack`` for a ``seq`` the server has not sent on that
socket is refused with an ``error`` frame (code ``invalid_ack``); a malformed one
(``invalid_field``) likewise; the socket stays.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from contracts.access import Audience, Claims, Role, mint_token
from contracts.cases import CASE_NO_RE, Category
from contracts.errors import MalformedMessage

MAX_FRAME_BYTES = 64 * 1024
"""Largest frame (UTF-8 bytes) a party may send; larger ones get an ``error`` frame."""

RELAY_SUBJECT = "relay"
"""Subject of the hub relay's signaling token (role ``admin``); the hub never mints a user's
live token for this name (``hub/api/live.py``)."""

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
"""The server is shutting down."""
CLOSE_INVALID_TOKEN = 4401
"""The token is missing, expired, badly signed or of another audience (the reason follows)."""
CLOSE_SUBJECT_IN_USE = 4403
"""The token's subject holds a socket, session or request in another role."""
CLOSE_HELLO_TIMEOUT = 4408
"""No ``hello`` came in time."""
CLOSE_REPLACED = 4409
"""A newer socket of the same subject took over (it resumes this one's session)."""
CLOSE_TOO_SLOW = 4429
"""The client did not read its frames; reconnect."""

QUEUE_ROLES = frozenset({Role.OFFICIAL, Role.PETITION_OFFICE})
"""Who sees the waiting queue of their jurisdiction and may accept from it."""

WATCH_ROLES = frozenset({Role.MONITOR})
"""Who sees the wall of live sessions of their jurisdiction and may watch them unseen."""

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="a server-made id")]
Subject = Annotated[str, Field(min_length=1, max_length=64, description="a token's subject")]
Sdp = Annotated[str, Field(min_length=1, max_length=MAX_FRAME_BYTES, description="SDP text")]
Reason = Annotated[str, Field(min_length=1, max_length=200, description="why, in a few words")]
Direction = Literal["publish", "subscribe"]
Part = Literal["box", "official", "monitor", "relay"]
"""The part a party plays in a session."""
VideoCodec = Literal["H264", "VP8"]
"""A video codec as the frames name it (the RTP encoding name)."""
VIDEO_CODECS: tuple[VideoCodec, ...] = ("H264", "VP8")
"""The video codecs a box can publish, most preferred first."""


def choose_video_codec(decodable: list[VideoCodec] | None) -> VideoCodec:
    """The codec the box publishes for an official who decodes ``decodable`` (``None``: all
    of ``VIDEO_CODECS``): the most preferred one the official decodes. Raises ``ValueError``
    when there is none."""
    if decodable is None:
        return VIDEO_CODECS[0]
    chosen = next((c for c in VIDEO_CODECS if c in decodable), None)
    if chosen is None:
        raise ValueError(
            f"video_codecs {list(decodable)!r} names none of {list(VIDEO_CODECS)!r} "
            "(leave it out when the browser decodes both)"
        )
    return chosen


class FrameError(MalformedMessage):
    """A frame cannot be parsed: ``code`` says how (``bad_json``, ``too_large``, ``not_object``,
    ``unknown_type``, ``invalid_field``), ``frame_type`` names the frame when known."""

    def __init__(self, code: str, message: str, frame_type: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.frame_type = frame_type


class _Frame(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = Field(default=1, description="protocol version")

    def dump(self) -> str:
        """The frame as the JSON text of one WebSocket message."""
        return self.model_dump_json()


class Identity(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: Subject
    role: Role
    jur: str


class Peer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: Subject
    role: Role
    part: Part


class QueueEntry(BaseModel):
    """One waiting request as an official sees it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_id: Id
    node: Subject
    township: str
    township_name: str
    case_no: str
    summary: str
    category: Category
    waiting_since: dt.datetime


class LiveSession(BaseModel):
    """One live session as a monitor's wall shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: Id
    case_no: str
    node: Subject
    township: str
    township_name: str
    official: Subject
    started_at: dt.datetime


class IceCandidate(BaseModel):
    """A browser's ``RTCIceCandidate.toJSON()``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    candidate: str = Field(max_length=1024)
    sdpMid: str | None = None  # the browser's names
    sdpMLineIndex: int | None = Field(default=None, ge=0)
    usernameFragment: str | None = None


# -- frames ------------------------------------------------------------------------------


class Hello(_Frame):
    """First frame of a connection without ``?token=``: the SIGNALING token."""

    type: Literal["hello"] = "hello"
    token: str = Field(min_length=1, max_length=4096)


class Welcome(_Frame):
    """The server accepted the token; ``resumed``: a dropped socket of the same subject was
    taken over within the grace period (its session and queue place are kept)."""

    type: Literal["welcome"] = "welcome"
    you: Identity
    resumed: bool = False
    session_id: Id | None = Field(default=None, description="the session resumed, if any")


class RequestReception(_Frame):
    """Box: a petitioner at the box asks for a reception about one of this box's cases."""

    type: Literal["request_reception"] = "request_reception"
    case_no: str = Field(pattern=CASE_NO_RE.pattern)
    summary: str = Field(min_length=1, max_length=500)
    category: Category


class Cancel(_Frame):
    """Box: withdraw a waiting request (the petitioner left)."""

    type: Literal["cancel"] = "cancel"
    request_id: Id


class Queued(_Frame):
    """To the box: its request waits; ``position`` 1 is next (among the requests of the
    box's county, in arrival order)."""

    type: Literal["queued"] = "queued"
    request_id: Id
    position: int = Field(ge=1)


class Queue(_Frame):
    """To an official: every waiting request in their jurisdiction, oldest first."""

    type: Literal["queue"] = "queue"
    entries: list[QueueEntry]


class Accept(_Frame):
    """Official: take a waiting request. ``video_codecs``: what the official's browser decodes
    (``None``: both); the box publishes ``choose_video_codec(video_codecs)``."""

    type: Literal["accept"] = "accept"
    request_id: Id
    video_codecs: list[VideoCodec] | None = Field(
        default=None,
        max_length=8,
        description="video codecs the official decodes (none: all of VIDEO_CODECS)",
    )

    @field_validator("video_codecs")
    @classmethod
    def _decodes_one(cls, value: list[VideoCodec] | None) -> list[VideoCodec] | None:
        if value is not None:
            choose_video_codec(value)  # raises, naming the problem, for an empty list
        return value


class SessionStarted(_Frame):
    """To each party of a session: ``role`` is the recipient's part; ``peers`` are the
    visible participants (never a monitor)."""

    type: Literal["session_started"] = "session_started"
    session_id: Id
    request_id: Id
    case_no: str
    township: str
    role: Part
    peers: list[Peer]
    started_at: dt.datetime
    video_codec: VideoCodec = Field(
        default="H264", description="the codec the box publishes (what the official decodes)"
    )


class Offer(_Frame):
    """An SDP offer; see the module docstring for routing."""

    type: Literal["offer"] = "offer"
    session_id: Id
    direction: Direction
    sdp: Sdp
    source: Subject | None = Field(
        default=None, description="subscribe to this publisher only (default: all others)"
    )
    peer: Subject | None = Field(default=None, description="the participant (set by server)")


class Answer(_Frame):
    """The relay's SDP answer to a participant's offer."""

    type: Literal["answer"] = "answer"
    session_id: Id
    direction: Direction
    sdp: Sdp
    peer: Subject | None = None
    source: Subject | None = Field(
        default=None, description="for a subscribe: the publisher this downstream carries"
    )


class Ice(_Frame):
    """A trickled ICE candidate (``candidate`` null: end of candidates)."""

    type: Literal["ice"] = "ice"
    session_id: Id
    direction: Direction
    candidate: IceCandidate | None = None
    peer: Subject | None = None
    source: Subject | None = Field(
        default=None, description="for a subscribe: which downstream (as in its offer)"
    )


class Watch(_Frame):
    """Monitor: watch a live session; its participants are told nothing."""

    type: Literal["watch"] = "watch"
    session_id: Id


class Leave(_Frame):
    """A monitor stops watching; a participant leaving ends the session."""

    type: Literal["leave"] = "leave"
    session_id: Id


class End(_Frame):
    """A participant (or the relay) ends the session."""

    type: Literal["end"] = "end"
    session_id: Id
    reason: Reason = "completed"


class SessionEnded(_Frame):
    """To everyone in the session: it is over. ``by`` is who ended it (none: the server,
    e.g. ``reason`` "peer_lost" when a participant did not return within the grace)."""

    type: Literal["session_ended"] = "session_ended"
    session_id: Id
    reason: Reason
    by: Subject | None = None
    duration_s: float = Field(ge=0)


class PeerLeft(_Frame):
    """To the relay: ``peer`` (a monitor) stopped watching; close its downstreams."""

    type: Literal["peer_left"] = "peer_left"
    session_id: Id
    peer: Subject


class Live(_Frame):
    """To a monitor: every live session in their jurisdiction."""

    type: Literal["live"] = "live"
    sessions: list[LiveSession]


class Error(_Frame):
    """A frame was refused, or the connection is about to be closed; ``code`` is stable."""

    type: Literal["error"] = "error"
    code: str
    message: str
    frame_type: str | None = None


# -- session events, for the hub's case timeline ---------------------------------------------


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    at: dt.datetime
    case_no: str
    node: Subject
    township: str


class Requested(_Event):
    """A box asked for a reception."""

    kind: Literal["requested"] = "requested"
    request_id: Id
    category: Category


class Cancelled(_Event):
    """A waiting request left the queue without a session (withdrawn, box lost, shutdown)."""

    kind: Literal["cancelled"] = "cancelled"
    request_id: Id
    reason: Reason
    waited_s: float = Field(ge=0)


class Accepted(_Event):
    """An official took the request after ``waited_s``."""

    kind: Literal["accepted"] = "accepted"
    request_id: Id
    official: Subject
    waited_s: float = Field(ge=0)


class Started(_Event):
    """The session began (right after ``accepted``)."""

    kind: Literal["started"] = "started"
    request_id: Id
    session_id: Id
    official: Subject


class Ended(_Event):
    """The session ended; ``by`` is who ended it (none: the server)."""

    kind: Literal["ended"] = "ended"
    session_id: Id
    official: Subject
    reason: Reason
    by: Subject | None
    started_at: dt.datetime
    duration_s: float = Field(ge=0)


class MonitorView(_Event):
    """A monitor watched the session unseen from ``from_at`` to ``at`` (audit)."""

    kind: Literal["monitor_view"] = "monitor_view"
    session_id: Id
    monitor: Subject
    monitor_jur: str
    from_at: dt.datetime
    duration_s: float = Field(ge=0)


LiveEvent = Annotated[
    Requested | Cancelled | Accepted | Started | Ended | MonitorView,
    Field(discriminator="kind"),
]
LIVE_EVENT: TypeAdapter[LiveEvent] = TypeAdapter(LiveEvent)
"""Validates a live event (e.g. when the hub receives one as JSON)."""


EVENT_WINDOW = 128
"""Events the server sends the relay beyond the last ``event_ack`` before it waits for one."""

Seq = Annotated[
    int,
    Field(strict=True, ge=1, le=2**63 - 1, description="an event's number in the outbox"),
]


class EventFrame(_Frame):
    """To the relay (the hub): one session event, for the case timeline and the audit log,
    with its outbox number ``seq`` (increasing in the order the events happened). The server
    keeps it until the relay acknowledges it with ``event_ack`` and sends it again on the
    next relay connection until then ("Event delivery" in the module docstring)."""

    type: Literal["event"] = "event"
    seq: Seq
    event: LiveEvent


class EventAck(_Frame):
    """Relay: every event up to and including ``seq`` is committed at the hub (cumulative);
    sent only after the hub's write transaction of the event ``seq`` has committed."""

    type: Literal["event_ack"] = "event_ack"
    seq: Seq


class MediaFailed(_Frame):
    """From the relay to a participant: its ``offer`` could not be answered (``code``:
    ``not_publishing`` when ``source`` sends nothing within the relay's wait,
    ``bad_offer``, ``codec_mismatch``, ``relay_error``). Send a new offer to retry."""

    type: Literal["media_failed"] = "media_failed"
    session_id: Id
    direction: Direction
    source: Subject | None = None
    peer: Subject | None = None
    code: str = Field(min_length=1, max_length=64)
    message: str = Field(max_length=1000)


Frame = Annotated[
    Hello
    | Welcome
    | RequestReception
    | Cancel
    | Queued
    | Queue
    | Accept
    | SessionStarted
    | Offer
    | Answer
    | Ice
    | Watch
    | Leave
    | End
    | SessionEnded
    | PeerLeft
    | Live
    | Error
    | EventFrame
    | EventAck
    | MediaFailed,
    Field(discriminator="type"),
]
_FRAME: TypeAdapter[Frame] = TypeAdapter(Frame)
FRAME_TYPES: frozenset[str] = frozenset(
    str(cls.model_fields["type"].default) for cls in _Frame.__subclasses__()
)

SERVER = "server"
RELAY = "relay"
SENDERS: dict[str, frozenset[str]] = {
    "hello": frozenset({"any"}),
    "request_reception": frozenset({Role.BOX}),
    "cancel": frozenset({Role.BOX}),
    "accept": QUEUE_ROLES,
    "offer": frozenset({Role.BOX, *QUEUE_ROLES, *WATCH_ROLES, RELAY}),
    "answer": frozenset({RELAY}),
    "media_failed": frozenset({RELAY}),
    "ice": frozenset({Role.BOX, *QUEUE_ROLES, *WATCH_ROLES, RELAY}),
    "watch": WATCH_ROLES,
    "leave": frozenset({Role.BOX, *QUEUE_ROLES, *WATCH_ROLES}),
    "end": frozenset({Role.BOX, *QUEUE_ROLES, RELAY}),
    "event_ack": frozenset({RELAY}),
}
"""Who may send each client frame (roles, or ``RELAY``); every other type is the server's."""


def parse_frame(text: str | bytes) -> Frame:
    """One frame from a WebSocket message; raises ``FrameError`` naming the problem."""
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if size > MAX_FRAME_BYTES:
        raise FrameError("too_large", f"frame of {size} bytes exceeds {MAX_FRAME_BYTES} bytes")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise FrameError("bad_json", f"frame is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise FrameError("not_object", f"frame must be a JSON object, got {type(raw).__name__}")
    kind = raw.get("type")
    if not isinstance(kind, str):
        raise FrameError("unknown_type", f"frame has no string 'type' field (got {kind!r})")
    if kind not in FRAME_TYPES:
        raise FrameError("unknown_type", f"unknown frame type {kind!r}", kind[:64])
    try:
        return _FRAME.validate_python(raw)
    except ValidationError as exc:
        raise FrameError("invalid_field", f"{kind}: {_problems(exc)}", kind) from None


def _problems(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"][1:]) or "frame"  # [0] is the type tag
        msg = "missing field" if err["type"] == "missing" else err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def is_relay(claims: Claims) -> bool:
    """Whether a SIGNALING token's holder is the hub relay (the session's media endpoint)."""
    return claims.role is Role.ADMIN and claims.sub == RELAY_SUBJECT


def mint_relay_token(key: bytes, jurisdiction: str, ttl: dt.timedelta) -> str:
    """The hub relay's SIGNALING token (the hub, which holds ``key``, makes it)."""
    return mint_token(
        key,
        sub=RELAY_SUBJECT,
        role=Role.ADMIN,
        jurisdiction=jurisdiction,
        audience=Audience.SIGNALING,
        ttl=ttl,
    )


def event_json(event: LiveEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")

"""``contracts.signaling``: every frame parses back from what it dumps; bad frames say why."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from contracts import signaling as sig
from contracts.access import Audience, Role, verify_token
from contracts.cases import Category

NOW = dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.UTC)
PEERS = [sig.Peer(sub="box-1", role=Role.BOX, part="box")]

EXAMPLES: list[sig.Frame] = [
    sig.Hello(token="t"),
    sig.Welcome(you=sig.Identity(sub="a", role=Role.OFFICIAL, jur="510104"), resumed=True),
    sig.RequestReception(
        case_no="510104021-01-261121-0007", summary="噪音扰民", category=Category.CLAIM
    ),
    sig.Cancel(request_id="r-1"),
    sig.Queued(request_id="r-1", position=2),
    sig.Queue(
        entries=[
            sig.QueueEntry(
                request_id="r-1",
                node="box-1",
                township="510104021",
                township_name="盐市口街道",
                case_no="510104021-01-261121-0007",
                summary="噪音扰民",
                category=Category.CLAIM,
                waiting_since=NOW,
            )
        ]
    ),
    sig.Accept(request_id="r-1"),
    sig.Accept(request_id="r-1", video_codecs=["VP8"]),
    sig.SessionStarted(
        session_id="s-1",
        request_id="r-1",
        case_no="510104021-01-261121-0007",
        township="510104021",
        role="box",
        peers=PEERS,
        started_at=NOW,
        video_codec="VP8",
    ),
    sig.Offer(session_id="s-1", direction="publish", sdp="v=0\r\n"),
    sig.Answer(session_id="s-1", direction="publish", sdp="v=0\r\n", peer="box-1"),
    sig.Ice(
        session_id="s-1",
        direction="subscribe",
        candidate=sig.IceCandidate(candidate="candidate:1 1 udp 1 127.0.0.1 5000 typ host"),
    ),
    sig.Ice(session_id="s-1", direction="subscribe"),
    sig.Watch(session_id="s-1"),
    sig.Leave(session_id="s-1"),
    sig.End(session_id="s-1", reason="completed"),
    sig.SessionEnded(session_id="s-1", reason="peer_lost", duration_s=3.5),
    sig.PeerLeft(session_id="s-1", peer="mon"),
    sig.Live(sessions=[]),
    sig.Error(code="forbidden", message="no", frame_type="accept"),
    sig.Answer(session_id="s-1", direction="subscribe", sdp="v=0\r\n", peer="mon", source="box-1"),
    sig.EventFrame(
        seq=41,
        event=sig.Ended(
            at=NOW,
            case_no="510104021-01-261121-0007",
            node="box-1",
            township="510104021",
            session_id="s-1",
            official="zhang",
            reason="completed",
            by="zhang",
            started_at=NOW - dt.timedelta(seconds=90),
            duration_s=90.0,
        ),
    ),
    sig.EventAck(seq=41),
    sig.MediaFailed(
        session_id="s-1",
        direction="subscribe",
        source="zhang",
        peer="box-1",
        code="not_publishing",
        message="s-1/zhang publishes nothing to subscribe to",
    ),
]


def test_examples_cover_every_frame_type() -> None:
    assert {f.type for f in EXAMPLES} == sig.FRAME_TYPES


@pytest.mark.parametrize("frame", EXAMPLES, ids=lambda f: f.type)
def test_every_frame_round_trips(frame: sig.Frame) -> None:
    assert sig.parse_frame(frame.dump()) == frame


def test_a_client_frame_needs_only_its_fields() -> None:
    frame = sig.parse_frame('{"type": "accept", "request_id": "r-7"}')
    assert frame == sig.Accept(request_id="r-7")
    assert isinstance(frame, sig.Accept) and frame.video_codecs is None  # None: decodes both
    vp8 = next(f for f in EXAMPLES if isinstance(f, sig.SessionStarted))
    started = sig.parse_frame(vp8.model_dump_json(exclude={"video_codec"}))  # an older server
    assert isinstance(started, sig.SessionStarted) and started.video_codec == "H264"


@pytest.mark.parametrize(
    ("text", "code", "frame_type", "says"),
    [
        ("{not json", "bad_json", None, "not valid JSON"),
        ("[1, 2]", "not_object", None, "JSON object, got list"),
        ('{"request_id": "r-1"}', "unknown_type", None, "no string 'type'"),
        ('{"type": "dance"}', "unknown_type", "dance", "unknown frame type 'dance'"),
        ('{"type": "accept"}', "invalid_field", "accept", "request_id: missing field"),
        ('{"type": "accept", "request_id": "../x"}', "invalid_field", "accept", "request_id"),
        (
            '{"type": "accept", "request_id": "r-1", "extra": 1}',
            "invalid_field",
            "accept",
            "extra: unknown field",
        ),
        (
            '{"type": "request_reception", "case_no": "7", "summary": "x", "category": "claim"}',
            "invalid_field",
            "request_reception",
            "case_no",
        ),
        (
            '{"type": "accept", "request_id": "r-1", "video_codecs": []}',
            "invalid_field",
            "accept",
            "video_codecs: Value error, video_codecs [] names none of ['H264', 'VP8']",
        ),
        (
            '{"type": "accept", "request_id": "r-1", "video_codecs": ["H265"]}',
            "invalid_field",
            "accept",
            "video_codecs.0: Input should be 'H264' or 'VP8'",
        ),
        ('{"type": "event_ack", "seq": "3"}', "invalid_field", "event_ack", "seq: Input should"),
        ('{"type": "event_ack", "seq": 0}', "invalid_field", "event_ack", "greater than or equal"),
        ('{"type": "event", "event": {}}', "invalid_field", "event", "seq: missing field"),
        (
            '{"type": "offer", "session_id": "s-1", "sdp": "v=0"}',
            "invalid_field",
            "offer",
            "direction",
        ),
    ],
)
def test_bad_frames_name_their_problem(
    text: str, code: str, frame_type: str | None, says: str
) -> None:
    with pytest.raises(sig.FrameError) as caught:
        sig.parse_frame(text)
    assert caught.value.code == code
    assert caught.value.frame_type == frame_type
    assert says in str(caught.value)


def test_a_frame_over_64_kib_is_refused_before_parsing() -> None:
    text = json.dumps({"type": "hello", "token": "x" * sig.MAX_FRAME_BYTES})
    with pytest.raises(sig.FrameError) as caught:
        sig.parse_frame(text)
    assert caught.value.code == "too_large"
    assert f"exceeds {sig.MAX_FRAME_BYTES} bytes" in str(caught.value)
    assert sig.parse_frame(json.dumps({"type": "hello", "token": "x" * 4000})).type == "hello"


def test_every_client_frame_has_senders_and_server_frames_have_none() -> None:
    server_only = {"welcome", "queued", "queue", "session_started", "session_ended"}
    server_only |= {"peer_left", "live", "error", "event"}
    assert set(sig.SENDERS) == sig.FRAME_TYPES - server_only


def test_relay_token_is_recognised() -> None:
    key = b"k" * 32
    claims = verify_token(
        key, sig.mint_relay_token(key, "5101", dt.timedelta(hours=1)), Audience.SIGNALING
    )
    assert sig.is_relay(claims)
    assert claims.role is Role.ADMIN

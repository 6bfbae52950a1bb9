"""Live sessions: one box and one official, plus monitors watching unseen.

In memory only. A participant is a subject (token ``sub``), not a socket: a new socket of the
same subject takes over (see ``signaling.rooms``).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from dataclasses import dataclass, field

from contracts.access import Role
from contracts.places import place_name
from contracts.signaling import LiveSession, Part, Peer, VideoCodec


@dataclass
class Participant:
    sub: str
    role: Role
    part: Part

    def peer(self) -> Peer:
        return Peer(sub=self.sub, role=self.role, part=self.part)


@dataclass
class View:
    """A monitor's unseen view of a session, from ``since`` until it leaves."""

    sub: str
    jur: str
    since: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    since_mono: float = field(default_factory=time.monotonic)


@dataclass
class Session:
    request_id: str
    case_no: str
    node: str
    township: str
    box: Participant
    official: Participant
    video_codec: VideoCodec = "H264"
    """What the box publishes: a codec the official decodes (the relay never transcodes)."""
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    started_mono: float = field(default_factory=time.monotonic)
    session_id: str = field(default_factory=lambda: f"s-{uuid.uuid4().hex}")
    views: dict[str, View] = field(default_factory=dict)
    """Monitors watching, by subject: never shown to the participants."""

    @property
    def participants(self) -> tuple[Participant, Participant]:
        return (self.box, self.official)

    def participant(self, sub: str) -> Participant | None:
        return next((p for p in self.participants if p.sub == sub), None)

    def peers(self) -> list[Peer]:
        return [p.peer() for p in self.participants]

    def duration_s(self) -> float:
        return max(0.0, time.monotonic() - self.started_mono)

    def live(self) -> LiveSession:
        return LiveSession(
            session_id=self.session_id,
            case_no=self.case_no,
            node=self.node,
            township=self.township,
            township_name=place_name(self.township),
            official=self.official.sub,
            started_at=self.started_at,
        )


class Sessions:
    """Live sessions by id, and which session each participant is in."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def all(self) -> list[Session]:
        return list(self._by_id.values())

    def add(self, session: Session) -> Session:
        self._by_id[session.session_id] = session
        return session

    def get(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def remove(self, session_id: str) -> Session | None:
        return self._by_id.pop(session_id, None)

    def of(self, sub: str) -> Session | None:
        """The session ``sub`` takes part in (not one it merely watches)."""
        return next((s for s in self._by_id.values() if s.participant(sub)), None)

    def watched_by(self, sub: str) -> list[Session]:
        return [s for s in self._by_id.values() if sub in s.views]

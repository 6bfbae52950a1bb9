"""Session recordings as they travel from the box to the hub: the ``case.recording_added``
event and the layout of a recording file.

A box records each live session into MPEG-TS files (``edge.media.recorder``: crash-safe, H.264
video and AAC audio, a new file every ``segment_seconds``). Each finished (or recovered) file
becomes one ``case.recording_added`` event in the box's hash chain, so the file's SHA-256 is
sealed into the chain before it leaves the box; the file itself follows through the resumable
blob upload (``contracts.blobs``), addressed by that same SHA-256. The hub counts a case
complete only once every photo and every recording of it has verified.

A recording file holds two sides of the session, each a video and an audio stream:
``box`` (the township box's camera and microphone) and ``official`` (the official's picture
and sound as the box received them). ``RECORDER_LAYOUT`` is the order in which the recorder
adds its streams, so stream ``i`` of a file is ``RECORDER_LAYOUT[i]``; ``streams`` in the event
says what each stream actually holds, since a side may have sent nothing (an official with the
camera off).

Pure: names, models and rules; no I/O.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.blobs import Sha256
from contracts.cases import CASE_NO_RE
from contracts.signaling import Id

RECORDING_ADDED = "case.recording_added"
RECORDING_MIME: Literal["video/mp2t"] = "video/mp2t"
"""The media type of a recording blob (MPEG transport stream)."""

Side = Literal["box", "official"]
SIDES: tuple[Side, ...] = ("box", "official")
Kind = Literal["video", "audio"]

RECORDER_LAYOUT: tuple[tuple[Side, Kind], ...] = (
    ("box", "video"),
    ("box", "audio"),
    ("official", "video"),
    ("official", "audio"),
)
"""(side, kind) of each stream of a recording file, by stream index."""

SIDE_LABELS = {
    "box": ("信访人（乡镇）", "petitioner (township box)"),
    "official": ("接访领导", "official"),
}
"""(Chinese, English) names of each side for the console."""


class RecordedStream(BaseModel):
    """One stream of a recording file, as measured on the box."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    index: int = Field(ge=0, lt=len(RECORDER_LAYOUT), description="stream index in the file")
    side: Side
    kind: Kind
    codec: str = Field(min_length=1, max_length=32, description="FFmpeg codec name, e.g. h264")
    packets: int = Field(ge=0, description="media packets the stream holds")
    duration_s: float = Field(ge=0, description="from its first packet to the end of its last")

    @model_validator(mode="after")
    def _layout(self) -> RecordedStream:
        expected = RECORDER_LAYOUT[self.index]
        if (self.side, self.kind) != expected:
            raise ValueError(
                f"stream {self.index} must be {expected[0]} {expected[1]}, "
                f"got {self.side} {self.kind}"
            )
        return self


class RecordingAdded(BaseModel):
    """Body of a ``case.recording_added`` event: one recording file of a session of a case."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_no: str = Field(pattern=CASE_NO_RE.pattern)
    session_id: Id
    sha256: Sha256
    size: int = Field(ge=1, description="bytes")
    mime: Literal["video/mp2t"] = RECORDING_MIME
    duration_s: float = Field(ge=0, description="from the first to the end of the last packet")
    started_at: dt.datetime = Field(description="when the file's first media was recorded")
    streams: list[RecordedStream] = Field(max_length=len(RECORDER_LAYOUT))

    @model_validator(mode="after")
    def _distinct(self) -> RecordingAdded:
        indexes = [s.index for s in self.streams]
        if len(set(indexes)) != len(indexes):
            raise ValueError(f"stream indexes repeat: {indexes}")
        if self.started_at.tzinfo is None:
            raise ValueError(f"started_at must carry its time zone, got {self.started_at}")
        return self

    def side_streams(self, side: Side) -> list[RecordedStream]:
        """The streams of ``side`` that hold media, video first."""
        return sorted(
            (s for s in self.streams if s.side == side and s.packets),
            key=lambda s: s.kind != "video",
        )

    def sides(self) -> list[Side]:
        """The sides with media in this file, ``box`` first."""
        return [side for side in SIDES if self.side_streams(side)]

"""Configuration of the media relay."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from runtime.config import Section

VideoCodec = Literal["H264", "VP8"]


class RelayConfig(Section):
    video_codecs: list[VideoCodec] = Field(
        default=["H264", "VP8"],
        min_length=1,
        description="video codecs a publisher may send, most preferred first; a subscriber "
        "that cannot decode the publisher's codec gets a transcoded feed (hub.media.transcode)",
    )
    keyframe_interval: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="seconds; at most one keyframe request (PLI) goes upstream per publisher "
        "in this interval, however many subscribers ask",
    )
    keyframe_retry: float = Field(
        default=1.0,
        gt=0,
        le=10,
        description="seconds; when no keyframe follows a request within this time, it is "
        "sent once more",
    )
    video_queue: int = Field(
        default=15,
        ge=2,
        le=300,
        description="frames queued per subscriber before it is cut back to the next keyframe "
        "(15 = 1 s at 15 fps)",
    )
    audio_queue: int = Field(
        default=25,
        ge=2,
        le=500,
        description="audio packets queued per subscriber before the oldest are dropped "
        "(25 = 0.5 s of 20 ms Opus packets)",
    )

    loopback_only: bool = Field(
        default=False,
        description="offer 127.0.0.1 as the only ICE host candidate (tests and the demo on "
        "one machine; never in production)",
    )

    @model_validator(mode="after")
    def _check(self) -> RelayConfig:
        if len(set(self.video_codecs)) != len(self.video_codecs):
            raise ValueError(f"video_codecs lists a codec twice: {self.video_codecs}")
        return self

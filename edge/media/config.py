"""The ``[media]`` section of ``edge.toml``: camera, microphone, encoder and recording."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from runtime.config import Section

EncoderName = Literal["auto", "h264_v4l2m2m", "libx264", "vp8"]


def check_camera(key: str, value: str) -> str:
    """A camera setting: ``synthetic`` or a V4L2 device path."""
    if value != "synthetic" and not value.startswith("/dev/"):
        raise ValueError(
            f'{key} must be "synthetic" or a V4L2 device path like /dev/video0, got {value!r}'
        )
    return value


class MediaConfig(Section):
    device: str = Field(
        default="synthetic",
        description='camera: "synthetic" (a moving test pattern with a clock) or a V4L2 device '
        "such as /dev/video0",
    )
    width: int = Field(default=640, ge=192, le=1920, description="picture width, pixels (even)")
    height: int = Field(default=480, ge=144, le=1080, description="picture height, pixels (even)")
    fps: int = Field(default=15, ge=1, le=60, description="frames per second")
    bitrate: int = Field(
        default=500_000, ge=10_000, description="video bitrate to start with, bits/s"
    )
    bitrate_min: int = Field(
        default=100_000, ge=10_000, description="lowest video bitrate congestion control may set"
    )
    bitrate_max: int = Field(
        default=1_500_000, ge=10_000, description="highest video bitrate congestion control may set"
    )
    encoder: EncoderName = Field(
        default="auto",
        description='the H.264 encoder: "auto" (hardware h264_v4l2m2m when it works, else '
        'libx264), "h264_v4l2m2m" or "libx264" ("vp8" is read as "auto"); a session '
        "publishes VP8 only when the official's browser lacks H.264",
    )
    keyframe_interval: float = Field(
        default=5.0, ge=0.5, le=60, description="seconds between unrequested keyframes"
    )
    audio_device: str = Field(
        default="synthetic",
        description='microphone: "synthetic" (a tone) or an ALSA device name such as '
        '"default" or "plughw:1,0"',
    )
    audio_bitrate: int = Field(
        default=48_000, ge=16_000, le=256_000, description="recorded audio (AAC) bitrate, bits/s"
    )
    recording_dir: Path = Field(
        default=Path("recordings"),
        description="where session recordings are written; relative to the box's state_dir",
    )
    recording_video_bitrate: int = Field(
        default=300_000,
        ge=10_000,
        description="bitrate for video the recorder must encode itself (the official's "
        "picture, received as decoded frames; the box's camera when it publishes VP8), bits/s",
    )
    segment_seconds: float = Field(
        default=1800.0,
        ge=1.0,
        description="a recording longer than this continues in a new file (each file is "
        "hashed and uploaded on its own)",
    )
    fsync_seconds: float = Field(
        default=1.0,
        ge=0,
        description="seconds between fsyncs of the recording (survives power loss, not only "
        "a crash); 0: never",
    )

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        return check_camera("device", value)

    @field_validator("audio_device")
    @classmethod
    def _audio_device(cls, value: str) -> str:
        if not value.strip():
            raise ValueError('audio_device must be "synthetic" or an ALSA device name, got ""')
        return value

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError(f"must be even for YUV 4:2:0, got {value}")
        return value

    @model_validator(mode="after")
    def _bitrates(self) -> MediaConfig:
        if not self.bitrate_min <= self.bitrate <= self.bitrate_max:
            raise ValueError(
                f"bitrate ({self.bitrate}) must lie between bitrate_min ({self.bitrate_min}) "
                f"and bitrate_max ({self.bitrate_max})"
            )
        return self

    def recordings(self, state_dir: Path) -> Path:
        """The recording directory, resolved against the box's ``state_dir``."""
        return (
            self.recording_dir
            if self.recording_dir.is_absolute()
            else state_dir / self.recording_dir
        )

"""The media section's validation names the key and the value."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from edge.config import EdgeConfig
from edge.media.config import MediaConfig
from runtime.config import validation_problems


def problems(**values: object) -> list[str]:
    with pytest.raises(ValidationError) as info:
        MediaConfig.model_validate(values)
    return validation_problems(info.value)


def test_defaults_are_the_measured_setting() -> None:
    c = MediaConfig()
    assert (c.device, c.width, c.height, c.fps, c.encoder) == ("synthetic", 640, 480, 15, "auto")
    assert c.recordings(Path("/var/lib/xfv")) == Path("/var/lib/xfv/recordings")


def test_bad_values_are_named() -> None:
    assert problems(device="webcam") == [
        "device: device must be \"synthetic\" or a V4L2 device path like /dev/video0, got 'webcam'"
    ]
    assert problems(width=641) == ["width: must be even for YUV 4:2:0, got 641"]
    assert problems(encoder="h265")[0].startswith("encoder: Input should be 'auto'")
    assert problems(bitrate=50_000, bitrate_min=100_000) == [
        "(top level): bitrate (50000) must lie between bitrate_min (100000) "
        "and bitrate_max (1500000)"
    ]
    assert problems(colour="red") == ["colour: unknown key"]


def test_the_call_camera_defaults_to_the_boxs_document_camera() -> None:
    box = {"node_id": "box-1", "township": "510104021", "state_dir": "/var/lib/xfv"}
    assert EdgeConfig(**box, camera="/dev/video2").media.device == "/dev/video2"
    assert EdgeConfig(**box).media.device == "synthetic"
    both = EdgeConfig(**box, camera="/dev/video2", media={"device": "/dev/video4"})
    assert (both.camera, both.media.device) == ("/dev/video2", "/dev/video4")

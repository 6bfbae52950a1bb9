"""The synthetic camera: what the demo and the tests photograph."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.kiosk.camera import CameraError, SyntheticCamera, V4L2Camera, open_camera


def decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "OpenCV could not decode the snapshot"
    return image


def test_snapshots_are_640x480_jpegs_that_change() -> None:
    camera = open_camera("synthetic")
    assert isinstance(camera, SyntheticCamera)
    first, second = camera.snapshot(), camera.snapshot()
    for jpeg in (first, second):
        assert jpeg[:3] == b"\xff\xd8\xff" and jpeg[-2:] == b"\xff\xd9"
        assert decode(jpeg).shape == (480, 640, 3)
    assert first != second
    difference = cv2.absdiff(decode(first), decode(second))
    assert float(difference.mean()) > 1.0, "the pattern did not move between snapshots"
    camera.close()
    camera.close()


def test_the_pattern_is_not_blank() -> None:
    image = decode(SyntheticCamera().snapshot())
    assert float(image.std()) > 40  # colour bars, a ramp and text, not one flat colour


def test_a_missing_device_names_itself() -> None:
    camera = open_camera("/dev/video-does-not-exist")
    assert isinstance(camera, V4L2Camera)
    with pytest.raises(CameraError, match="/dev/video-does-not-exist"):
        camera.snapshot()
    camera.close()


def test_an_unknown_spec_is_refused() -> None:
    with pytest.raises(CameraError, match="webcam"):
        open_camera("webcam")

"""The box's document camera: one JPEG snapshot at a time.

``open_camera("synthetic")`` gives a moving OpenCV test pattern with the time and a frame counter
(the demo and the tests); ``open_camera("/dev/video0")`` a V4L2 camera read through OpenCV.
Every call here blocks (OpenCV, device I/O): callers run ``snapshot`` with ``asyncio.to_thread``.
Both implementations are safe to call from several threads at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from typing import Any, Protocol

import cv2
import numpy as np
import numpy.typing as npt

from edge.errors import EdgeError

log = logging.getLogger(__name__)

WIDTH, HEIGHT = 640, 480
JPEG_QUALITY = 85
BEIJING = dt.timezone(dt.timedelta(hours=8))
_BARS = (  # BGR: white, yellow, cyan, green, magenta, red, blue (SMPTE-like)
    (235, 235, 235),
    (16, 235, 235),
    (235, 235, 16),
    (16, 235, 16),
    (235, 16, 235),
    (16, 16, 235),
    (235, 16, 16),
)


class CameraError(EdgeError):
    """The camera could not be opened or gave no picture."""


class Camera(Protocol):
    def snapshot(self) -> bytes:
        """One fresh picture as JPEG bytes (640x480 unless the device cannot);
        raises ``CameraError``."""
        ...

    def close(self) -> None:
        """Release the device; safe to call twice."""
        ...


def encode_jpeg(frame: npt.NDArray[np.uint8], quality: int = JPEG_QUALITY) -> bytes:
    ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise CameraError(f"OpenCV could not encode a {frame.shape} frame as JPEG")
    return bytes(buffer.tobytes())


class SyntheticCamera:
    """Colour bars that scroll one step per snapshot, a bouncing disc, the time and a counter."""

    def __init__(self, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.width, self.height = width, height
        self.frames = 0
        self._lock = threading.Lock()

    def frame(self) -> npt.NDArray[np.uint8]:
        """The next frame as a BGR array (``height`` x ``width`` x 3)."""
        with self._lock:
            self.frames += 1
            n = self.frames
        w, h = self.width, self.height
        image = np.zeros((h, w, 3), np.uint8)
        bar = -(-w // len(_BARS))
        shift = (n * 8) % w
        for i, colour in enumerate(_BARS):
            image[: h * 2 // 3, i * bar : (i + 1) * bar] = colour
        image[: h * 2 // 3] = np.roll(image[: h * 2 // 3], shift, axis=1)
        ramp = np.linspace(0, 255, w, dtype=np.uint8)
        image[h * 2 // 3 :] = ramp[np.newaxis, :, np.newaxis]
        period = 2 * (w - 80)
        x = 40 + abs((n * 12) % period - (w - 80))
        cv2.circle(image, (x, h * 2 // 3 - 40), 32, (0, 0, 0), -1, cv2.LINE_AA)
        now = dt.datetime.now(BEIJING)
        cv2.rectangle(image, (0, h - 96), (w, h), (0, 0, 0), -1)
        font = cv2.FONT_HERSHEY_SIMPLEX
        clock = now.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        white = (255, 255, 255)
        cv2.putText(image, clock, (16, h - 56), font, 1.0, white, 2, cv2.LINE_AA)
        cv2.putText(
            image, f"XFV TEST  frame {n:06d}", (16, h - 16), font, 1.0, white, 2, cv2.LINE_AA
        )
        return image

    def snapshot(self) -> bytes:
        return encode_jpeg(self.frame())

    def close(self) -> None:
        pass


class V4L2Camera:
    """A V4L2 device read through ``cv2.VideoCapture``; opened on first use, reopened after a
    failed read, so a camera plugged in late (or replugged) starts working without a restart."""

    def __init__(self, device: str, width: int = WIDTH, height: int = HEIGHT) -> None:
        self.device = device
        self.width, self.height = width, height
        self._capture: Any = None
        self._lock = threading.Lock()

    def _open(self) -> Any:
        capture = cv2.VideoCapture(self.device, cv2.CAP_V4L2)
        if not capture.isOpened():
            capture.release()
            raise CameraError(f"cannot open camera {self.device!r}")
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        log.info("camera %s opened", self.device)
        return capture

    def snapshot(self) -> bytes:
        with self._lock:
            if self._capture is None:
                self._capture = self._open()
            ok, frame = self._capture.read()
            if not ok or frame is None:
                self._capture.release()
                self._capture = None
                raise CameraError(f"camera {self.device!r} gave no picture")
        return encode_jpeg(frame)

    def close(self) -> None:
        with self._lock:
            if self._capture is not None:
                self._capture.release()
                self._capture = None


def open_camera(spec: str) -> Camera:
    """``"synthetic"`` or a device path such as ``"/dev/video0"``; the device opens lazily."""
    if spec == "synthetic":
        return SyntheticCamera()
    if spec.startswith("/dev/"):
        return V4L2Camera(spec)
    raise CameraError(
        f'camera must be "synthetic" or a device path like "/dev/video0", got {spec!r}'
    )

"""Errors of the box's media: capture devices, encoders and the recorder."""

from __future__ import annotations

from edge.errors import EdgeError


class MediaError(EdgeError):
    """Base class for the box's media errors."""


class DeviceUnavailable(MediaError):
    """A capture device could not be opened or stopped giving frames."""


class CameraUnavailable(DeviceUnavailable):
    """The camera could not be opened or stopped giving pictures."""


class MicrophoneUnavailable(DeviceUnavailable):
    """The microphone could not be opened or stopped giving sound."""


class EncoderError(MediaError):
    """No usable video encoder, or the encoder failed on a frame."""


class RecordingError(MediaError):
    """A recording could not be written, or a file found on disk does not play."""

"""Errors of the signaling server."""

from __future__ import annotations


class SignalingError(Exception):
    """Base class for the signaling server's errors."""


class Refused(SignalingError):
    """A frame the server will not act on; the sender gets an ``error`` frame with ``code``
    and this message, and its connection stays open."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

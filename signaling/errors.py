"""Errors of the signaling server."""

from __future__ import annotations


class SignalingError(Exception):
    """Base class for the signaling server's errors."""

"""Errors of the box."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class for the box's errors."""


class HubNotFound(EdgeError):
    """No hub answered the zeroconf browse and no broker is configured."""


class KeyReused(EdgeError):
    """A registration's ``Idempotency-Key`` was used before for a different registration."""

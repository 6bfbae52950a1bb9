"""Errors of the hub."""

from __future__ import annotations


class HubError(Exception):
    """Base class for the hub's errors."""


class UserExists(HubError):
    """``add-user`` was asked to create a username that is taken."""


class UnitProblem(HubError):
    """A user's responsible unit is missing (role ``unit``), unknown, or outside the user's
    jurisdiction."""


class UnknownUser(HubError):
    """A username that is not in the hub's user table."""

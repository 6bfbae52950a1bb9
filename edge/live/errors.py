"""Errors of the box's live reception."""

from __future__ import annotations

from edge.errors import EdgeError


class LiveError(EdgeError):
    """Base class of live-reception errors; ``code`` is stable (the kiosk shows it)."""

    code = "live_error"


class LiveUnavailable(LiveError):
    """The box has no signaling connection (no config from the hub yet, or the link is down)."""

    code = "unavailable"


class WrongState(LiveError):
    """The request does not fit the live state (e.g. a second request while waiting)."""

    code = "wrong_state"


class UnknownCase(LiveError):
    """The case to be received is not a case of this box."""

    code = "unknown_case"


class NotConnected(LiveError):
    """A frame was to be sent while the signaling socket is down."""

    code = "unavailable"


class UnsupportedCodec(LiveError):
    """The call cannot publish the session's video codec (e.g. an encoder of another codec)."""

    code = "unsupported_codec"

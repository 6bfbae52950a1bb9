"""Errors of the media relay."""

from __future__ import annotations

from hub.errors import HubError


class RelayError(HubError):
    """Base class for the relay's errors."""


class RelayClosed(RelayError):
    """A call was made to a relay that is not started, or already stopped."""


class BadOffer(RelayError):
    """An SDP offer the relay cannot take (unparsable, no media, more than one track of a
    kind, or nothing sent where a publisher must send)."""


class CodecMismatch(RelayError):
    """The peer offers no codec the relay forwards, or a subscriber can receive neither the
    publisher's codec nor one the relay transcodes it to (:mod:`hub.media.transcode`)."""


class NotPublishing(RelayError):
    """A subscription names a participant that has no upstream in that session."""


class UnknownSubscription(RelayError):
    """An answer arrived for a subscription the relay does not hold (or holds no offer for)."""

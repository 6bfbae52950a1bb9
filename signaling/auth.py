"""Checking the hub's SIGNALING tokens: the key, and the token of a new socket."""

from __future__ import annotations

import logging

from contracts.access import Audience, Claims, verify_token
from contracts.errors import InvalidToken
from runtime.config import read_secret
from signaling.config import SignalingConfig

log = logging.getLogger(__name__)


def token_key(config: SignalingConfig) -> bytes | None:
    """The hub's signing key from ``token_secret_file`` (read as the hub reads it), or
    ``None`` when unset: then every token is refused."""
    if config.token_secret_file is None:
        return None
    return read_secret(config.token_secret_file).encode()


def check_token(key: bytes | None, token: str) -> Claims:
    """The claims of a SIGNALING token; raises ``InvalidToken`` saying why not."""
    if key is None:
        raise InvalidToken("signaling has no token key configured (token_secret_file)")
    return verify_token(key, token, Audience.SIGNALING)

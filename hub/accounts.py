"""Hub users: argon2 password hashes, authentication, login throttling."""

from __future__ import annotations

import time
from collections import defaultdict, deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.store.db import HubStore, User

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("xfv-dummy-password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def authenticate(store: HubStore, username: str, password: str) -> User | None:
    """The user if the password matches and the account is enabled, else ``None``.

    An unknown user costs one hash verification too, so timing does not reveal usernames.
    """
    user = await store.user(username)
    if user is None:
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password) or user.disabled:
        return None
    return user


class LoginThrottle:
    """At most ``limit`` failed logins per (username, client) in ``window`` seconds."""

    def __init__(self, limit: int, window: float = 300.0) -> None:
        self.limit, self.window = limit, window
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)

    def blocked(self, username: str, client: str) -> bool:
        q = self._failures.get((username, client))
        if not q:
            return False
        cutoff = time.monotonic() - self.window
        while q and q[0] < cutoff:
            q.popleft()
        return len(q) >= self.limit

    def failed(self, username: str, client: str) -> None:
        self._failures[(username, client)].append(time.monotonic())

    def succeeded(self, username: str, client: str) -> None:
        self._failures.pop((username, client), None)

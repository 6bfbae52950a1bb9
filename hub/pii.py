"""Personal data at rest: AES-GCM encryption and a keyed hash for lookups.

One 32-byte master key (a file, or a credential) derives two keys with HKDF: one for AES-GCM,
one for HMAC-SHA256. ID numbers are stored as ciphertext with the HMAC beside them, so a
duplicate search never needs the plaintext; event payloads (which carry ID numbers) are stored
encrypted too, bound to their (node, seq) as associated data.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from contracts.ids import ResidentId
from hub.errors import HubError

NONCE = 12
SHA256_BLOCK = 64


class PiiError(HubError):
    """Personal data could not be decrypted (wrong key or tampered ciphertext)."""


def _derive(master: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(master)


class PiiVault:
    def __init__(self, master: bytes) -> None:
        if len(master) < 32:
            raise PiiError(f"PII master key must have at least 32 bytes, got {len(master)}")
        self._aead = AESGCM(_derive(master, b"xfv pii aes-gcm"))
        mac = _derive(master, b"xfv pii hmac").ljust(SHA256_BLOCK, b"\0")
        # HMAC-SHA256 (RFC 2104) from the two padded-key states, copied for each value:
        # hmac.digest() spends ~4 us a call looking up the digest in OpenSSL 3.
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in mac))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in mac))

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:NONCE], blob[NONCE:], aad)
        except InvalidTag:
            raise PiiError(f"cannot decrypt personal data for {aad.decode()!r}") from None

    def lookup_hash(self, value: str) -> str:
        """Keyed hash for equality search (same input → same hash, useless without the key)."""
        inner, outer = self._inner.copy(), self._outer.copy()
        inner.update(value.encode())
        outer.update(inner.digest())
        return outer.hexdigest()

    def seal_id(self, number: str) -> tuple[bytes, str, str]:
        """(ciphertext, lookup hash, masked form) of an ID number."""
        rid = ResidentId(number)
        return self.encrypt(number.encode(), b"id_number"), self.lookup_hash(number), rid.masked()

    def open_id(self, blob: bytes) -> str:
        return self.decrypt(blob, b"id_number").decode()

"""The hub's personal-data vault: AES-GCM bound to its context, and the lookup HMAC."""

from __future__ import annotations

import hmac

import pytest

from hub.pii import PiiError, PiiVault, _derive

MASTER = bytes(range(32))


def test_lookup_hash_is_hmac_sha256_with_the_derived_key() -> None:
    vault = PiiVault(MASTER)
    key = _derive(MASTER, b"xfv pii hmac")
    for value in ["", "510104198001040037", "张三", "x" * 200]:
        assert vault.lookup_hash(value) == hmac.new(key, value.encode(), "sha256").hexdigest()
    assert vault.lookup_hash("a") != PiiVault(bytes(32)).lookup_hash("a")


def test_ciphertext_opens_only_in_its_own_context() -> None:
    vault = PiiVault(MASTER)
    blob = vault.encrypt(b"secret", b"event:box-1:7")
    assert vault.decrypt(blob, b"event:box-1:7") == b"secret"
    assert vault.encrypt(b"secret", b"event:box-1:7") != blob  # a fresh nonce each time
    with pytest.raises(PiiError, match="event:box-1:8"):
        vault.decrypt(blob, b"event:box-1:8")
    with pytest.raises(PiiError):
        PiiVault(bytes(32)).decrypt(blob, b"event:box-1:7")


def test_seal_id_keeps_the_number_only_encrypted() -> None:
    vault = PiiVault(MASTER)
    enc, mac, masked = vault.seal_id("510104198001040037")
    assert b"510104198001040037" not in enc
    assert vault.open_id(enc) == "510104198001040037"
    assert mac == vault.lookup_hash("510104198001040037")
    assert masked == "510104********0037"


def test_a_short_master_key_is_refused() -> None:
    with pytest.raises(PiiError, match="at least 32 bytes, got 16"):
        PiiVault(bytes(16))

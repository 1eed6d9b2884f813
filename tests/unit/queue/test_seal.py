"""Sealing: round trips, and a ciphertext never opens in another row, column or key."""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid

import pytest

from adsync.plugin import Change
from adsync.queue.errors import SealError
from adsync.queue.seal import (
    COL_ACCOUNT,
    COL_PASSWORD,
    PURPOSE_DATA,
    Sealer,
    new_key,
    unwrap_key,
    value_aad,
    wrap_key,
)
from adsync.secret import Secret


def sealer() -> Sealer:
    return Sealer({1: new_key(), 2: new_key()}, 2, new_key())


def test_change_round_trip() -> None:
    s = sealer()
    change = Change(
        event_id=os.urandom(16),
        account="bob",
        password=Secret("S3cr€t-bob"),
        changed_at_ms=1,
        domain="AD",
        object_guid=uuid.uuid4(),
    )
    sealed = s.seal_change(change)
    assert sealed.key_id == 2
    assert b"S3cr" not in sealed.password and b"bob" not in sealed.account
    eid = change.event_id
    assert s.open_account(eid, 2, sealed.account) == "bob"
    assert s.open_password(eid, 2, sealed.password) == change.password
    assert s.open_guid(eid, 2, sealed.guid) == change.object_guid


def test_aad_names_row_column_and_key() -> None:
    eid = bytes(range(16))
    expected = b"adsync/1|change|000102030405060708090a0b0c0d0e0f|password|3"
    assert value_aad(eid, "password", 3) == expected


def test_ciphertext_moved_to_another_row_does_not_open() -> None:
    s = sealer()
    a, b = os.urandom(16), os.urandom(16)
    sealed_a = s.seal(a, COL_PASSWORD, b"pw-of-a")
    with pytest.raises(SealError, match="does not open"):
        s.open(b, COL_PASSWORD, 2, sealed_a)


def test_ciphertext_moved_to_another_column_does_not_open() -> None:
    s = sealer()
    eid = os.urandom(16)
    sealed = s.seal(eid, COL_PASSWORD, b"pw")
    with pytest.raises(SealError):
        s.open(eid, COL_ACCOUNT, 2, sealed)


def test_wrong_or_unknown_key_id_does_not_open() -> None:
    s = sealer()
    eid = os.urandom(16)
    sealed = s.seal(eid, COL_PASSWORD, b"pw")
    with pytest.raises(SealError):
        s.open(eid, COL_PASSWORD, 1, sealed)
    with pytest.raises(SealError, match="unknown"):
        s.open(eid, COL_PASSWORD, 9, sealed)


def test_tampered_ciphertext_does_not_open() -> None:
    s = sealer()
    eid = os.urandom(16)
    sealed = bytearray(s.seal(eid, COL_PASSWORD, b"pw"))
    sealed[-1] ^= 1
    with pytest.raises(SealError):
        s.open(eid, COL_PASSWORD, 2, bytes(sealed))


def test_same_plaintext_seals_differently() -> None:
    s = sealer()
    eid = os.urandom(16)
    assert s.seal(eid, COL_PASSWORD, b"pw") != s.seal(eid, COL_PASSWORD, b"pw")


def test_key_wrapping_binds_id_and_purpose() -> None:
    master, key = new_key(), new_key()
    blob = wrap_key(master, 1, PURPOSE_DATA, key)
    assert unwrap_key(master, 1, PURPOSE_DATA, blob) == key
    with pytest.raises(SealError):
        unwrap_key(master, 2, PURPOSE_DATA, blob)
    with pytest.raises(SealError):
        unwrap_key(master, 1, "account-hmac", blob)
    with pytest.raises(SealError):
        unwrap_key(new_key(), 1, PURPOSE_DATA, blob)


def test_account_hash_is_case_insensitive_and_keyed() -> None:
    s = sealer()
    assert s.account_hash("AD", "Alice") == s.account_hash("ad", "alice")
    assert s.account_hash("AD", "alice") != s.account_hash("AD", "bob")
    assert s.account_hash("AD", "alice") != s.account_hash("OTHER", "alice")
    assert sealer().account_hash("AD", "alice") != s.account_hash("AD", "alice")


def test_sealed_change_columns_have_their_own_nonce_and_do_not_swap() -> None:
    s = sealer()
    change = Change(
        event_id=os.urandom(16),
        account="carol",
        password=Secret("pw-carol"),
        changed_at_ms=1,
        domain="AD",
        object_guid=uuid.uuid4(),
    )
    sealed = s.seal_change(change)
    assert sealed.guid is not None
    nonces = {v[:12] for v in (sealed.account, sealed.password, sealed.guid)}
    assert len(nonces) == 3
    assert s.seal_change(change).password[:12] != sealed.password[:12]
    with pytest.raises(SealError):
        s.open(change.event_id, COL_ACCOUNT, 2, sealed.password)
    with pytest.raises(SealError):
        s.open(change.event_id, COL_PASSWORD, 2, sealed.guid)


def test_account_hash_is_hmac_sha256_of_the_folded_name() -> None:
    """The hash orders rows already in a queue: its definition must not drift."""
    key = new_key()
    s = Sealer({1: new_key()}, 1, key)
    expected = hmac.new(key, b"ad\\alice", hashlib.sha256).digest()[:16]
    assert s.account_hash("AD", "Alice") == expected
    assert s.account_hash("AD", "Alice") == expected  # the keyed state is copied, not used up

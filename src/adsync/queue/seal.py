"""Sealing secret columns with AES-256-GCM (pure: no I/O, no clock).

Every sealed value is ``nonce(12) | ciphertext+tag``. Its additional
authenticated data names the row (event id), the column and the data key, so
a ciphertext copied to another row or column does not open. Data keys are
wrapped by the master key with AAD naming the key id and its purpose.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adsync.plugin import Change
from adsync.queue.errors import SealError
from adsync.secret import Secret

NONCE_BYTES = 12
KEY_BYTES = 32
PURPOSE_DATA = "data"
PURPOSE_ACCOUNT_HMAC = "account-hmac"

COL_ACCOUNT = "account"
COL_PASSWORD = "password"  # noqa: S105 - a column name
COL_GUID = "guid"


def new_key() -> bytes:
    return os.urandom(KEY_BYTES)


def _key_aad(key_id: int, purpose: str) -> bytes:
    return b"adsync/1|key|%d|%s" % (key_id, purpose.encode("ascii"))


def wrap_key(master: bytes, key_id: int, purpose: str, key: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(master).encrypt(nonce, key, _key_aad(key_id, purpose))


def unwrap_key(master: bytes, key_id: int, purpose: str, blob: bytes) -> bytes:
    try:
        key = AESGCM(master).decrypt(
            blob[:NONCE_BYTES], blob[NONCE_BYTES:], _key_aad(key_id, purpose)
        )
    except (InvalidTag, ValueError):
        raise SealError(f"key {key_id} ({purpose}) does not open with this master key") from None
    if len(key) != KEY_BYTES:
        raise SealError(f"key {key_id} ({purpose}) has the wrong length")
    return key


def value_aad(event_id: bytes, column: str, key_id: int) -> bytes:
    """Binds a ciphertext to its row (event id), its column and its data key."""
    return b"adsync/1|change|%s|%s|%d" % (event_id.hex().encode("ascii"), column.encode(), key_id)


@dataclass(slots=True)
class SealedChange:
    """A change as the store writes it: secret columns sealed, scheduling data clear.

    Not frozen: it is built once per change on the ingest path, and a frozen
    dataclass pays an ``object.__setattr__`` per field (3.3 µs against 0.5 µs).
    """

    event_id: bytes
    key_id: int
    account_hash: bytes
    account: bytes
    password: bytes
    guid: bytes | None
    domain: str
    source_host: str | None
    rid: int | None
    changed_at_ms: int
    sequence: int | None


class Sealer:
    """Seals and opens change columns with the queue's data keys.

    New values are sealed with ``active_key_id``; any known key opens old ones,
    so a rotation only has to add a key and make it active.
    """

    def __init__(self, data_keys: Mapping[int, bytes], active_key_id: int, hmac_key: bytes):
        self._aead: dict[int, AESGCM] = {}
        self.active_key_id = 0
        self.set_keys(data_keys, active_key_id)
        # Keyed once: a copy per hash skips the key setup (1.5 µs against 4 µs).
        self._account_mac = hmac.new(hmac_key, digestmod=hashlib.sha256)

    def set_keys(self, data_keys: Mapping[int, bytes], active_key_id: int) -> None:
        """Swap in a new set of data keys (after a rotation); old keys may stay to open rows.

        The dict is replaced, never mutated, so a reader on another thread sees
        either the old or the new set.
        """
        if active_key_id not in data_keys:
            raise ValueError("the active data key must be one of the data keys")
        aead = dict(self._aead)
        for kid in list(aead):
            if kid not in data_keys:
                del aead[kid]
        for kid, key in data_keys.items():
            if kid not in aead:
                aead[kid] = AESGCM(key)
        self._aead = aead
        self.active_key_id = active_key_id

    def account_hash(self, domain: str, account: str) -> bytes:
        """A keyed hash for ordering per account without decrypting (case-insensitive)."""
        msg = f"{domain.casefold()}\\{account.casefold()}".encode()
        mac = self._account_mac.copy()
        mac.update(msg)
        return mac.digest()[:16]

    def seal(
        self, event_id: bytes, column: str, plaintext: bytes, key_id: int | None = None
    ) -> bytes:
        kid = self.active_key_id if key_id is None else key_id
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead[kid].encrypt(nonce, plaintext, value_aad(event_id, column, kid))

    def open(self, event_id: bytes, column: str, key_id: int, sealed: bytes) -> bytes:
        aead = self._aead.get(key_id)
        if aead is None:
            raise SealError(f"data key {key_id} is unknown")
        try:
            return aead.decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], value_aad(event_id, column, key_id)
            )
        except (InvalidTag, ValueError):
            raise SealError(
                f"sealed {column} of event {event_id.hex()} does not open "
                "(tampered, moved from another row, or wrong key)"
            ) from None

    def reseal(
        self, event_id: bytes, column: str, key_id: int, sealed: bytes, new_key_id: int
    ) -> bytes:
        """Open a value sealed under ``key_id`` and seal it again under ``new_key_id``."""
        return self.seal(event_id, column, self.open(event_id, column, key_id, sealed), new_key_id)

    def seal_change(self, change: Change) -> SealedChange:
        eid = change.event_id
        guid = change.object_guid
        kid = self.active_key_id
        aead = self._aead[kid]
        nonces = os.urandom(3 * NONCE_BYTES)  # one call for the three columns

        def seal(i: int, column: str, plaintext: bytes) -> bytes:
            nonce = nonces[i * NONCE_BYTES : (i + 1) * NONCE_BYTES]
            return nonce + aead.encrypt(nonce, plaintext, value_aad(eid, column, kid))

        return SealedChange(
            eid,
            kid,
            self.account_hash(change.domain, change.account),
            seal(0, COL_ACCOUNT, change.account.encode()),
            seal(1, COL_PASSWORD, change.password.reveal_bytes()),
            None if guid is None else seal(2, COL_GUID, guid.bytes),
            change.domain,
            change.source_host,
            change.rid,
            change.changed_at_ms,
            change.sequence,
        )

    def open_account(self, event_id: bytes, key_id: int, sealed: bytes) -> str:
        return self.open(event_id, COL_ACCOUNT, key_id, sealed).decode()

    def open_password(self, event_id: bytes, key_id: int, sealed: bytes) -> Secret:
        return Secret(self.open(event_id, COL_PASSWORD, key_id, sealed).decode())

    def open_guid(self, event_id: bytes, key_id: int, sealed: bytes | None) -> uuid.UUID | None:
        if sealed is None:
            return None
        return uuid.UUID(bytes=self.open(event_id, COL_GUID, key_id, sealed))

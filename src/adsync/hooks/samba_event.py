"""One syncpasswords object → what to do with it (pure: no I/O, no clock).

The key (objectGUID, msDS-KeyVersionNumber) names one password change: enabling
or disabling an account resends the same cleartext with the same key version, so
the CHANGE's event id is derived from that key and repeats collapse at the
daemon (and, with the hook's state, before they are even sent).
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

from adsync.hooks.ldif import LdifError, LdifRecord
from adsync.secret import Secret

EVENT_ID_LABEL = b"adsync/samba-syncpasswords/v1\x00"
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 1970-01-01 in 100 ns units since 1601
CLEARTEXT_ATTRIBUTE = "virtualClearTextUTF8"


@dataclass(frozen=True)
class SambaChange:
    account: str
    password: Secret
    object_guid: uuid.UUID
    rid: int | None
    key_version: int
    pwd_last_set_ms: int | None  # None: 0 in AD ("must change at next logon") or absent
    user_principal_name: str | None

    @property
    def event_id(self) -> bytes:
        return event_id(self.object_guid, self.key_version)


@dataclass(frozen=True)
class Skip:
    """Not a password change to forward; ``reason`` names the account, never a value."""

    reason: str


def event_id(guid: uuid.UUID, key_version: int) -> bytes:
    """First 16 bytes of SHA-256 over a label, the GUID and the key version."""
    digest = hashlib.sha256(EVENT_ID_LABEL + guid.bytes + key_version.to_bytes(8, "big"))
    return digest.digest()[:16]


def parse_guid(raw: bytes) -> uuid.UUID:
    """Text form (``abf599a2-…``) as samba-tool writes it, or AD's 16-byte binary form."""
    if len(raw) == 16:
        return uuid.UUID(bytes_le=raw)
    try:
        return uuid.UUID(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        raise LdifError("objectGUID is neither a GUID string nor 16 bytes") from None


def parse_rid(raw: bytes) -> int:
    """The last sub-authority of ``S-1-5-21-…-RID``, or of a binary SID."""
    if raw.startswith(b"S-"):
        try:
            return int(raw.decode("ascii").rsplit("-", 1)[1])
        except (UnicodeDecodeError, ValueError, IndexError):
            raise LdifError("objectSid is not a SID string") from None
    if len(raw) >= 12 and raw[0] == 1 and len(raw) == 8 + 4 * raw[1] and raw[1] >= 1:
        return int.from_bytes(raw[-4:], "little")
    raise LdifError("objectSid is neither a SID string nor a binary SID")


def filetime_to_unix_ms(filetime: int) -> int | None:
    if filetime <= 0 or filetime >= 0x7FFFFFFFFFFFFFFF:
        return None
    return (filetime - FILETIME_UNIX_EPOCH) // 10_000


def _int(record: LdifRecord, name: str) -> int | None:
    text = record.text(name)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        raise LdifError(f"{name} is not an integer") from None


def interpret(record: LdifRecord) -> SambaChange | Skip:
    """Decide what one object is; raises ``LdifError`` when it cannot be read."""
    account = record.text("sAMAccountName")
    label = account or record.dn
    if (record.text("isDeleted") or "").upper() == "TRUE":
        return Skip(f"{label}: deleted object")
    if account is None:
        raise LdifError("sAMAccountName is missing")
    guid_raw = record.first("objectGUID")
    if guid_raw is None:
        raise LdifError("objectGUID is missing")
    guid = parse_guid(guid_raw)
    cleartext = record.first(CLEARTEXT_ATTRIBUTE)
    if cleartext is None:
        return Skip(f"{account}: no cleartext (set before the gpg key was configured?)")
    key_version = _int(record, "msDS-KeyVersionNumber")
    if key_version is None:
        raise LdifError("msDS-KeyVersionNumber is missing")
    try:
        password = Secret(cleartext.decode("utf-8"))
    except UnicodeDecodeError:
        raise LdifError(f"{CLEARTEXT_ATTRIBUTE} is not UTF-8") from None
    if not password:
        return Skip(f"{account}: empty password")
    sid_raw = record.first("objectSid")
    pwd_last_set = _int(record, "pwdLastSet")
    return SambaChange(
        account=account,
        password=password,
        object_guid=guid,
        rid=parse_rid(sid_raw) if sid_raw is not None else None,
        key_version=key_version,
        pwd_last_set_ms=filetime_to_unix_ms(pwd_last_set) if pwd_last_set else None,
        user_principal_name=record.text("userPrincipalName"),
    )


def is_initial_dump(change: SambaChange, baseline_ms: int) -> bool:
    """Part of the dump of current passwords that follows ``--cache-ldb-initialize``?

    The dump hands out every account's *current* password; a real change made
    after initialisation has ``pwdLastSet`` at or after the baseline (the moment
    the cache was initialised). ``pwdLastSet`` 0 ("must change at next logon") has
    no time: such an object is treated as a change, never silently dropped.
    """
    return change.pwd_last_set_ms is not None and change.pwd_last_set_ms < baseline_ms

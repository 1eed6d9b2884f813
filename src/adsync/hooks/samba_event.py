"""One syncpasswords object → what to do with it (pure: no I/O, no clock).

The key (objectGUID, msDS-KeyVersionNumber) names one password change: enabling
or disabling an account resends the same cleartext with the same key version, so
the CHANGE's event id is derived from that key and repeats collapse at the
daemon (and, with the hook's state, before they are even sent).

Standard library only and no ``uuid``/``hashlib``/``dataclasses`` imports: the
hook starts once per event (``uuid`` alone loads ``platform``).
"""

from __future__ import annotations

from adsync.hooks.ldif import LdifError, LdifRecord

try:  # the C SHA-256 without hashlib's OpenSSL set-up (Python 3.11: _sha256; 3.12+: _sha2)
    from _sha256 import sha256 as _sha256  # type: ignore[import-not-found,unused-ignore]
except ImportError:  # pragma: no cover - depends on the Python version
    try:
        from _sha2 import sha256 as _sha256  # type: ignore[import-not-found,no-redef,unused-ignore]
    except ImportError:
        from hashlib import sha256 as _sha256  # type: ignore[assignment,unused-ignore]

EVENT_ID_LABEL = b"adsync/samba-syncpasswords/v1\x00"
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000  # 1970-01-01 in 100 ns units since 1601
CLEARTEXT_ATTRIBUTE = "virtualClearTextUTF8"
_HEX = frozenset("0123456789abcdef")


class SambaChange:
    """One password change to forward. ``password`` is UTF-8 bytes; ``repr`` never shows it."""

    __slots__ = (
        "account",
        "guid",
        "guid_le",
        "key_version",
        "password",
        "pwd_last_set_ms",
        "rid",
        "user_principal_name",
    )

    def __init__(
        self,
        *,
        account: str,
        password: bytes,
        guid: str,
        rid: int | None,
        key_version: int,
        pwd_last_set_ms: int | None,
        user_principal_name: str | None,
    ) -> None:
        self.account = account
        self.password = password
        self.guid = guid  # canonical lower-case text form
        self.guid_le = guid_bytes_le(guid)  # AD's binary form, as the wire carries it
        self.rid = rid
        self.key_version = key_version
        self.pwd_last_set_ms = pwd_last_set_ms  # None: 0 in AD ("must change") or absent
        self.user_principal_name = user_principal_name

    def __repr__(self) -> str:
        return f"SambaChange({self.account!r}, guid={self.guid}, kvno={self.key_version})"

    @property
    def event_id(self) -> bytes:
        return event_id(self.guid, self.key_version)


class Skip:
    """Not a password change to forward; ``reason`` names the account, never a value."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def guid_bytes_le(guid: str) -> bytes:
    """``uuid.UUID(guid).bytes_le``: Data1..Data3 little-endian, the rest as written."""
    raw = bytes.fromhex(guid.replace("-", ""))
    return raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]


def event_id(guid: str, key_version: int) -> bytes:
    """First 16 bytes of SHA-256 over a label, the GUID (RFC 4122 bytes) and the key version."""
    data = EVENT_ID_LABEL + bytes.fromhex(guid.replace("-", "")) + key_version.to_bytes(8, "big")
    digest: bytes = _sha256(data).digest()
    return digest[:16]


def parse_guid(raw: bytes) -> str:
    """Text form (``abf599a2-…``) as samba-tool writes it, or AD's 16-byte binary form."""
    if len(raw) == 16:
        h = (raw[3::-1] + raw[5:3:-1] + raw[7:5:-1] + raw[8:]).hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    try:
        text = raw.decode("ascii").strip().lower()
    except UnicodeDecodeError:
        raise LdifError("objectGUID is neither a GUID string nor 16 bytes") from None
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1]
    parts = text.split("-")
    if [len(p) for p in parts] != [8, 4, 4, 4, 12] or not _HEX.issuperset("".join(parts)):
        raise LdifError("objectGUID is neither a GUID string nor 16 bytes")
    return text


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
        return Skip(
            f"{account}: no cleartext (is 'password hash gpg key ids' set in smb.conf, "
            "and was this password set after it?)"
        )
    key_version = _int(record, "msDS-KeyVersionNumber")
    if key_version is None:
        raise LdifError("msDS-KeyVersionNumber is missing")
    try:
        cleartext.decode("utf-8")
    except UnicodeDecodeError:
        raise LdifError(f"{CLEARTEXT_ATTRIBUTE} is not UTF-8") from None
    if not cleartext:
        return Skip(f"{account}: empty password")
    sid_raw = record.first("objectSid")
    pwd_last_set = _int(record, "pwdLastSet")
    return SambaChange(
        account=account,
        password=cleartext,
        guid=guid,
        rid=parse_rid(sid_raw) if sid_raw is not None else None,
        key_version=key_version,
        pwd_last_set_ms=filetime_to_unix_ms(pwd_last_set) if pwd_last_set else None,
        user_principal_name=record.text("userPrincipalName"),
    )


def is_initial_dump(change: SambaChange, baseline_ms: int) -> bool:
    """Part of the dump of current passwords that follows ``--cache-ldb-initialize``?

    The dump hands out every account's *current* password; a real change made
    after the baseline (``adsync samba baseline``, taken before initialising) has
    ``pwdLastSet`` at or after it. ``pwdLastSet`` 0 ("must change at next logon")
    has no time: such an object is treated as a change, never silently dropped.
    """
    return change.pwd_last_set_ms is not None and change.pwd_last_set_ms < baseline_ms

from __future__ import annotations

import base64
import hashlib
import uuid

import pytest

from adsync.hooks.ldif import LdifError, parse_one
from adsync.hooks.samba_event import (
    EVENT_ID_LABEL,
    SambaChange,
    Skip,
    event_id,
    filetime_to_unix_ms,
    guid_bytes_le,
    interpret,
    is_initial_dump,
    parse_guid,
    parse_rid,
)

GUID = "abf599a2-49c1-4d58-afa1-7cf29a54d1a7"


def record(**extra: str) -> bytes:
    attrs = {
        "objectGUID": GUID,
        "objectSid": "S-1-5-21-1-2-3-1102",
        "sAMAccountName": "alice",
        "msDS-KeyVersionNumber": "4",
        "pwdLastSet": "133500000000000000",
        "virtualClearTextUTF8:": base64.b64encode("Pässwörd€1".encode()).decode(),
    }
    attrs.update(extra)
    lines = ["dn: CN=alice,CN=Users,DC=adsync,DC=test"]
    lines += [f"{k}: {v}" for k, v in attrs.items() if v != "-"]
    return ("\n".join(lines) + "\n").encode()


def test_change() -> None:
    item = interpret(parse_one(record()))
    assert isinstance(item, SambaChange)
    assert item.account == "alice"
    assert item.guid == GUID and item.guid_le == uuid.UUID(GUID).bytes_le
    assert item.rid == 1102
    assert item.key_version == 4
    assert hashlib.sha256(item.password).digest() == hashlib.sha256("Pässwörd€1".encode()).digest()
    assert item.pwd_last_set_ms == (133500000000000000 - 116444736000000000) // 10_000


def test_event_id_depends_on_guid_and_key_version_only() -> None:
    a = interpret(parse_one(record()))
    b = interpret(parse_one(record(userAccountControl="514")))
    c = interpret(parse_one(record(**{"msDS-KeyVersionNumber": "5"})))
    assert isinstance(a, SambaChange) and isinstance(b, SambaChange)
    assert isinstance(c, SambaChange)
    assert a.event_id == b.event_id != c.event_id
    assert len(a.event_id) == 16
    assert a.event_id == event_id(GUID, 4)
    # the definition is pinned: SHA-256 over the label, the RFC 4122 GUID bytes, the kvno
    expected = hashlib.sha256(EVENT_ID_LABEL + uuid.UUID(GUID).bytes + (4).to_bytes(8, "big"))
    assert a.event_id == expected.digest()[:16]
    assert "Pässwörd" not in repr(a)


def test_deleted_object_is_skipped() -> None:
    item = interpret(parse_one(record(isDeleted="TRUE")))
    assert isinstance(item, Skip) and "deleted" in item.reason


def test_no_cleartext_is_skipped() -> None:
    item = interpret(parse_one(record(**{"virtualClearTextUTF8:": "-"})))
    assert isinstance(item, Skip) and "cleartext" in item.reason


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"objectGUID": "-"}, "objectGUID is missing"),
        ({"objectGUID": "zzz"}, "objectGUID"),
        ({"msDS-KeyVersionNumber": "-"}, "KeyVersionNumber"),
        ({"msDS-KeyVersionNumber": "four"}, "not an integer"),
        ({"sAMAccountName": "-"}, "sAMAccountName"),
        ({"objectSid": "S-1-x"}, "objectSid"),
    ],
)
def test_unreadable(extra: dict[str, str], message: str) -> None:
    with pytest.raises(LdifError, match=message):
        interpret(parse_one(record(**extra)))


def test_binary_forms() -> None:
    guid = uuid.UUID(GUID)
    assert parse_guid(guid.bytes_le) == GUID
    assert parse_guid(f"{{{GUID.upper()}}}".encode()) == GUID
    assert guid_bytes_le(GUID) == guid.bytes_le
    sid = bytes([1, 5, 0, 0, 0, 0, 0, 5]) + b"".join(
        n.to_bytes(4, "little") for n in (21, 1, 2, 3, 1102)
    )
    assert parse_rid(sid) == 1102


def test_initial_dump_by_pwd_last_set() -> None:
    item = interpret(parse_one(record()))
    assert isinstance(item, SambaChange)
    assert item.pwd_last_set_ms is not None
    assert is_initial_dump(item, item.pwd_last_set_ms + 1)
    assert not is_initial_dump(item, item.pwd_last_set_ms)
    must_change = interpret(parse_one(record(pwdLastSet="0")))
    assert isinstance(must_change, SambaChange)
    assert must_change.pwd_last_set_ms is None
    assert not is_initial_dump(must_change, 10**15)


def test_filetime() -> None:
    assert filetime_to_unix_ms(116444736000000000) == 0
    assert filetime_to_unix_ms(0) is None
    assert filetime_to_unix_ms(0x7FFFFFFFFFFFFFFF) is None

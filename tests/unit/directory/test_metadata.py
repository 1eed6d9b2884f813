"""Password versions from replication metadata (Samba's blob, Windows' XML) and pwdLastSet."""

from __future__ import annotations

import struct
import uuid

import pytest

from adsync.directory.metadata import (
    ATTID_UNICODE_PWD,
    SECONDS_1601_TO_1970,
    MetadataError,
    VersionKind,
    from_pwd_last_set,
    parse_repl_attribute_metadata,
    parse_repl_property_metadata,
)

DSA = uuid.UUID("4fd5c182-8beb-449a-a737-cb443682feac")


def blob(entries: list[tuple[int, int, int, uuid.UUID]], version: int = 1) -> bytes:
    out = struct.pack("<IIII", version, 0, len(entries), 0)
    for attid, ver, seconds, dsa in entries:
        out += struct.pack("<IIQ16sQQ", attid, ver, seconds, dsa.bytes_le, 3853, 3853)
    return out


def test_unicode_pwd_entry_of_a_samba_blob() -> None:
    when = 1_796_205_033
    data = blob(
        [(0x00000000, 1, 1, uuid.uuid4()), (ATTID_UNICODE_PWD, 7, when + SECONDS_1601_TO_1970, DSA)]
    )
    version = parse_repl_property_metadata(data)
    assert version is not None
    assert (version.value, version.kind) == (7, VersionKind.META)
    assert version.origin_invocation_id == DSA
    assert version.origin_time == float(when)


def test_blob_without_unicode_pwd_and_broken_blobs() -> None:
    assert parse_repl_property_metadata(blob([(0x3, 1, 1, DSA)])) is None
    with pytest.raises(MetadataError, match="version 2"):
        parse_repl_property_metadata(blob([], version=2))
    with pytest.raises(MetadataError, match="entry count"):
        parse_repl_property_metadata(blob([(ATTID_UNICODE_PWD, 1, 1, DSA)])[:-8])
    with pytest.raises(MetadataError, match="header"):
        parse_repl_property_metadata(b"\x01\x00")


WINDOWS_XML = """<DS_REPL_ATTR_META_DATA>
\t<pszAttributeName>unicodePwd</pszAttributeName>
\t<dwVersion>4</dwVersion>
\t<ftimeLastOriginatingChange>2026-12-02T09:30:00Z</ftimeLastOriginatingChange>
\t<uuidLastOriginatingDsaInvocationID>4fd5c182-8beb-449a-a737-cb443682feac</uuidLastOriginatingDsaInvocationID>
\t<usnOriginatingChange>20486</usnOriginatingChange>
\t<usnLocalChange>20486</usnLocalChange>
\t<pszLastOriginatingDsaDN></pszLastOriginatingDsaDN>
</DS_REPL_ATTR_META_DATA>
\x00"""


def test_windows_xml_fragments() -> None:
    other = WINDOWS_XML.replace("unicodePwd", "pwdLastSet").replace(">4<", ">9<")
    version = parse_repl_attribute_metadata([other, WINDOWS_XML.encode()])
    assert version is not None
    assert (version.value, version.origin_invocation_id) == (4, DSA)
    assert version.origin_time is not None
    assert parse_repl_attribute_metadata([other]) is None
    with pytest.raises(MetadataError):
        parse_repl_attribute_metadata(["<not-closed"])


def test_newer_than() -> None:
    meta = parse_repl_attribute_metadata([WINDOWS_XML])
    assert meta is not None
    assert meta.newer_than(3, VersionKind.META)
    assert not meta.newer_than(4, VersionKind.META)
    assert not meta.newer_than(5, VersionKind.META)
    assert not meta.newer_than(3, VersionKind.PWDLASTSET)  # different kinds never compare
    pls = from_pwd_last_set(134_406_779_544_572_280)
    assert pls.newer_than(134_406_779_544_572_279, VersionKind.PWDLASTSET)
    assert pls.newer_than(134_406_779_544_572_281, VersionKind.PWDLASTSET)  # differs: later
    assert not pls.newer_than(134_406_779_544_572_280, VersionKind.PWDLASTSET)

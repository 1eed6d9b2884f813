"""An account's password version from its replication metadata (pure: bytes in, values out).

The version of ``unicodePwd``'s replication metadata counts originating password
writes on any DC (it replicates with the attribute), so "newer password" needs no
clock comparison between DCs. Two forms are read:

* ``replPropertyMetaData`` (Samba exposes it over LDAP): the NDR
  ``replPropertyMetaDataBlob`` of [MS-DRSR] / Samba's ``drsblobs.idl``: version 1,
  then ``count`` entries of 48 bytes (attid u32, version u32, originating change
  time u64 seconds since 1601, originating invocation id GUID, originating USN u64,
  local USN u64), little-endian.
* ``msDS-ReplAttributeMetaData`` (Windows AD, [MS-ADTS] 3.1.1.4.5.16): one XML
  ``DS_REPL_ATTR_META_DATA`` fragment per attribute.

``pwdLastSet`` is the fallback where neither is readable: then "newer" means "differs".
"""

from __future__ import annotations

import enum
import struct
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

ATTID_UNICODE_PWD = 0x0009005A  # [MS-ADA3] unicodePwd: attributeID 1.2.840.113556.1.4.90
SECONDS_1601_TO_1970 = 11_644_473_600
_HEADER = struct.Struct("<IIII")
_ENTRY = struct.Struct("<IIQ16sQQ")


class MetadataError(ValueError):
    """The metadata could not be read (the message never carries the raw value)."""


class VersionKind(enum.StrEnum):
    META = "meta"  # unicodePwd replication metadata version: compare with >
    PWDLASTSET = "pwdlastset"  # pwdLastSet (100 ns since 1601): compare with !=


@dataclass(frozen=True, slots=True)
class PasswordVersion:
    value: int
    kind: VersionKind
    origin_invocation_id: uuid.UUID | None = None  # the DSA that made the last change
    origin_time: float | None = None  # Unix seconds of that change, as that DSA saw it

    def newer_than(self, captured: int, kind: VersionKind) -> bool:
        """Whether this (current) version is a later password than the captured one."""
        if kind is not self.kind:
            return False  # not comparable (the directory changed how it answers): never guess
        if kind is VersionKind.META:
            return self.value > captured
        return self.value != captured


def parse_repl_property_metadata(blob: bytes) -> PasswordVersion | None:
    """unicodePwd's entry of a ``replPropertyMetaData`` blob; None if it has none."""
    if len(blob) < _HEADER.size:
        raise MetadataError("replPropertyMetaData is shorter than its header")
    version, _, count, _ = _HEADER.unpack_from(blob, 0)
    if version != 1:
        raise MetadataError(f"replPropertyMetaData version {version} is not 1")
    if len(blob) < _HEADER.size + count * _ENTRY.size:
        raise MetadataError("replPropertyMetaData is shorter than its entry count says")
    for i in range(count):
        attid, ver, seconds, guid, _, _ = _ENTRY.unpack_from(blob, _HEADER.size + i * _ENTRY.size)
        if attid == ATTID_UNICODE_PWD:
            return PasswordVersion(
                ver,
                VersionKind.META,
                uuid.UUID(bytes_le=guid),
                float(seconds - SECONDS_1601_TO_1970) if seconds else None,
            )
    return None


def parse_repl_attribute_metadata(values: Iterable[str | bytes]) -> PasswordVersion | None:
    """unicodePwd's fragment among ``msDS-ReplAttributeMetaData`` values; None if absent."""
    for raw in values:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        try:
            node = ET.fromstring(text.replace("\x00", ""))  # noqa: S314 - see the import
        except ET.ParseError:
            raise MetadataError("msDS-ReplAttributeMetaData is not XML") from None
        if (node.findtext("pszAttributeName") or "").strip().casefold() != "unicodepwd":
            continue
        try:
            ver = int((node.findtext("dwVersion") or "").strip())
        except ValueError:
            raise MetadataError("msDS-ReplAttributeMetaData has no dwVersion") from None
        origin = (node.findtext("uuidLastOriginatingDsaInvocationID") or "").strip()
        when = (node.findtext("ftimeLastOriginatingChange") or "").strip()
        return PasswordVersion(
            ver,
            VersionKind.META,
            uuid.UUID(origin) if origin else None,
            datetime.fromisoformat(when.replace("Z", "+00:00")).timestamp() if when else None,
        )
    return None


def from_pwd_last_set(value: int) -> PasswordVersion:
    return PasswordVersion(value, VersionKind.PWDLASTSET)


__all__ = [
    "ATTID_UNICODE_PWD",
    "MetadataError",
    "PasswordVersion",
    "VersionKind",
    "from_pwd_last_set",
    "parse_repl_attribute_metadata",
    "parse_repl_property_metadata",
]

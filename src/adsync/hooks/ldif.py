"""A parser for the one RFC 2849 LDIF record ``samba-tool user syncpasswords`` writes.

Pure: bytes in, attributes out. Continuation lines (starting with one space) are
unfolded before anything else; ``attr:: base64`` values are decoded; ``attr:<``
URL values are refused (syncpasswords never writes them and a hook must not
fetch anything). Values stay bytes: the caller decides what is text. Standard
library ``binascii`` only: the hook starts once per event.
"""

from __future__ import annotations

import binascii


class LdifError(ValueError):
    """Malformed LDIF; the message names the line number, never a value."""


class LdifRecord:
    __slots__ = ("attributes", "dn")

    def __init__(self, dn: str, attributes: dict[str, list[bytes]] | None = None) -> None:
        self.dn = dn
        self.attributes: dict[str, list[bytes]] = attributes or {}

    def __repr__(self) -> str:  # values may be secrets: names only
        return f"LdifRecord({self.dn!r}, attributes={sorted(self.attributes)})"

    def values(self, name: str) -> list[bytes]:
        """All values of ``name`` (case-insensitive, options such as ``;binary`` ignored)."""
        return self.attributes.get(name.lower(), [])

    def first(self, name: str) -> bytes | None:
        found = self.values(name)
        return found[0] if found else None

    def text(self, name: str) -> str | None:
        raw = self.first(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise LdifError(f"attribute {name} is not UTF-8") from None


def unfold(data: bytes) -> list[tuple[int, bytes]]:
    """Logical lines with the number of their first physical line; comments dropped."""
    text = data.replace(b"\r\n", b"\n")
    lines: list[tuple[int, bytes]] = []
    in_comment = False
    for number, line in enumerate(text.split(b"\n"), start=1):
        if line.startswith(b" "):
            if in_comment:
                continue
            if not lines or lines[-1][1] == b"":
                raise LdifError(f"line {number}: continuation line without a line to continue")
            start, previous = lines[-1]
            lines[-1] = (start, previous + line[1:])
            continue
        in_comment = line.startswith(b"#")
        if in_comment:
            continue
        lines.append((number, line))
    return lines


def parse_records(data: bytes) -> list[LdifRecord]:
    records: list[LdifRecord] = []
    current: LdifRecord | None = None
    for number, line in unfold(data):
        if line == b"":
            current = None
            continue
        name, sep, rest = line.partition(b":")
        if not sep or not name:
            raise LdifError(f"line {number}: expected 'attribute: value'")
        try:
            attr = name.decode("ascii").strip()
        except UnicodeDecodeError:
            raise LdifError(f"line {number}: attribute name is not ASCII") from None
        if rest.startswith(b":"):
            try:
                value = binascii.a2b_base64(rest[1:].strip(), strict_mode=True)
            except (binascii.Error, ValueError):
                raise LdifError(f"line {number}: {attr}: invalid base64") from None
        elif rest.startswith(b"<"):
            raise LdifError(f"line {number}: {attr}: URL values are not supported")
        else:
            value = rest[1:] if rest.startswith(b" ") else rest
            value = value.lstrip(b" ")
        key = attr.split(";", 1)[0].lower()
        if current is None:
            if key == "version":
                continue
            if key != "dn":
                raise LdifError(f"line {number}: a record must start with dn:")
            try:
                current = LdifRecord(value.decode("utf-8"))
            except UnicodeDecodeError:
                raise LdifError(f"line {number}: dn is not UTF-8") from None
            records.append(current)
            continue
        current.attributes.setdefault(key, []).append(value)
    return records


def parse_one(data: bytes) -> LdifRecord:
    """The single record a syncpasswords script receives; none or several is an error."""
    records = parse_records(data)
    if len(records) != 1:
        raise LdifError(f"expected one LDIF record, got {len(records)}")
    return records[0]

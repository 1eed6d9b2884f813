from __future__ import annotations

import base64

import pytest

from adsync.hooks.ldif import LdifError, parse_one, parse_records, unfold

PASSWORD = "Pässwörd€1"
SAMPLE = (
    "# a comment that is folded\n"
    "  over two lines\n"
    "dn: CN=alice,CN=Users,DC=adsync,DC=test\n"
    "objectGUID: abf599a2-49c1-4d58-afa1-7cf29a54d1a7\n"
    "objectSid: S-1-5-21-1111111111-2222222222-3333333333-1102\n"
    "sAMAccountName: alice\n"
    "userPrincipalName: alice@adsync.test\n"
    "userAccountControl: 512\n"
    "pwdLastSet: 133500000000000000\n"
    "msDS-KeyVersionNumber: 4\n"
    "virtualClearTextUTF8:: "
    + base64.b64encode(PASSWORD.encode()).decode()[:8]
    + "\n "
    + base64.b64encode(PASSWORD.encode()).decode()[8:]
    + "\n\n"
).encode()


def test_sample_record() -> None:
    record = parse_one(SAMPLE)
    assert record.dn == "CN=alice,CN=Users,DC=adsync,DC=test"
    assert record.text("samaccountname") == "alice"
    assert record.text("msDS-KeyVersionNumber") == "4"
    assert record.first("virtualClearTextUTF8") == PASSWORD.encode()


def test_unfold_joins_continuations_and_drops_comments() -> None:
    lines = unfold(b"dn: cn=a\ndescription: one\n  two\n# c\n  c2\nx: y")
    assert lines == [(1, b"dn: cn=a"), (2, b"description: one two"), (6, b"x: y")]


def test_attribute_options_and_crlf() -> None:
    record = parse_one(b"version: 1\r\ndn: cn=a\r\nuserCertificate;binary:: AAE=\r\n")
    assert record.values("usercertificate") == [b"\x00\x01"]


def test_multiple_values_are_kept_in_order() -> None:
    record = parse_one(b"dn: cn=a\nmail: a@x\nmail: b@x\n")
    assert record.values("mail") == [b"a@x", b"b@x"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "got 0"),
        (b"dn: cn=a\n\ndn: cn=b\n", "got 2"),
        (b"cn: a\n", "must start with dn"),
        (b"dn: cn=a\nbad line\n", "line 2"),
        (b"dn: cn=a\nx:: !!!\n", "invalid base64"),
        (b"dn: cn=a\nx:< file:///etc/shadow\n", "URL values"),
        (b" continued\n", "continuation"),
    ],
)
def test_malformed(data: bytes, message: str) -> None:
    with pytest.raises(LdifError, match=message):
        parse_one(data)


def test_error_never_holds_a_value() -> None:
    with pytest.raises(LdifError) as info:
        parse_one(b"dn: cn=a\nvirtualClearTextUTF8:: c2VjcmV0X3ZhbHVl!\n")
    assert "c2VjcmV0" not in str(info.value) and "secret" not in str(info.value)


def test_several_records() -> None:
    assert [r.dn for r in parse_records(b"dn: a\nx: 1\n\ndn: b\n")] == ["a", "b"]

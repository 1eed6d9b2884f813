"""Property tests: arbitrary bytes only ever raise ProtocolError; valid messages round-trip."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from adsync.ingest.codec import (
    MAX_CHANGED_AT_MS,
    MAX_SEQUENCE,
    AckReply,
    Auth,
    AuthOk,
    Challenge,
    ChangeMsg,
    Check,
    ErrorReply,
    FrameSplitter,
    Hello,
    Limits,
    Message,
    ProtocolError,
    VerdictReply,
    decode,
    encode,
)
from adsync.ingest.wire import AckCode, VerdictCode
from adsync.secret import Secret

LIMITS = Limits()


def _split_and_decode(data: bytes, cuts: list[int]) -> None:
    splitter = FrameSplitter()
    start = 0
    for cut in [*sorted(cuts), len(data)]:
        for payload in splitter.feed(data[start:cut]):
            decode(payload, LIMITS)
        start = max(start, cut)


@settings(max_examples=500)
@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=5))
def test_random_bytes_raise_only_protocol_error(data: bytes, cuts: list[int]) -> None:
    try:
        _split_and_decode(data, cuts)
    except ProtocolError:
        pass


# Random bytes rarely get past the header, so also fuzz field areas behind a valid header.
@settings(max_examples=500)
@given(
    st.sampled_from([0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x20, 0x21, 0x7F]),
    st.lists(
        st.tuples(
            st.sampled_from([0x01, 0x02, 0x03, 0x04, *range(0x10, 0x1B), 0x20, 0x21, 0x7E]),
            st.binary(max_size=40),
            st.booleans(),
        ),
        max_size=12,
    ),
    st.binary(max_size=4),
)
def test_random_fields_raise_only_protocol_error(
    msg_type: int, fields: list[tuple[int, bytes, bool]], tail: bytes
) -> None:
    body = b"".join(
        struct.pack(">BH", tag, len(v) + (7 if lie else 0)) + v for tag, v, lie in fields
    )
    payload = struct.pack(">4sBBHQ", b"ADSY", 1, msg_type, 0, 1) + body + tail
    try:
        decode(payload, LIMITS)
    except ProtocolError:
        pass


text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=40,
)
nonempty = text.filter(bool)
secrets = nonempty.map(Secret)
b16 = st.binary(min_size=16, max_size=16)
b32 = st.binary(min_size=32, max_size=32)
u64 = st.integers(0, 2**64 - 1)

messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(Hello, b32, text),
    st.builds(Challenge, b32, b32),
    st.builds(Auth, b32),
    st.just(AuthOk()),
    st.builds(Check, nonempty, secrets, text, st.booleans(), text, st.none() | text),
    st.builds(VerdictReply, st.sampled_from(VerdictCode), text),
    st.builds(
        ChangeMsg,
        nonempty,
        secrets,
        st.integers(0, MAX_CHANGED_AT_MS),
        b16,
        text,
        st.none() | text,
        st.none() | st.integers(0, 2**32 - 1),
        st.none() | b16,
        st.none() | st.integers(0, MAX_SEQUENCE),
    ),
    st.builds(AckReply, st.sampled_from(AckCode), text),
    st.builds(ErrorReply, text),
)


@settings(max_examples=300)
@given(messages, u64, st.lists(st.integers(0, 400), max_size=4))
def test_valid_messages_round_trip(message: Message, request_id: int, cuts: list[int]) -> None:
    raw = encode(message, request_id) * 2
    splitter = FrameSplitter()
    payloads: list[bytes] = []
    start = 0
    for cut in [*sorted(cuts), len(raw)]:
        payloads += splitter.feed(raw[start:cut])
        start = max(start, cut)
    assert not splitter.in_frame
    assert [decode(p, LIMITS) for p in payloads] == [(request_id, message)] * 2

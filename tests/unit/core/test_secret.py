"""Secret: never printed, compared in constant time, tracked for redaction cheaply."""

from __future__ import annotations

import gc
import pickle

import pytest

from adsync.secret import Secret, live_secret_values, live_secrets_version


def test_never_printed() -> None:
    s = Secret("Pässwörd€1-secret")
    for text in (str(s), repr(s), f"{s}", f"{s!r}", str((s,)), str([s]), str({"p": s})):
        assert "Pässwörd" not in text
    assert s.reveal() == "Pässwörd€1-secret"
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_equality_and_hash_follow_the_value() -> None:
    a, b, c = Secret("same-value"), Secret("same-value"), Secret("other-value")
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2


def test_live_values_follow_lifetimes() -> None:
    before = live_secrets_version()
    s = Secret("short-lived-secret")
    assert "short-lived-secret" in set(live_secret_values())
    assert live_secrets_version() != before
    del s
    gc.collect()
    assert "short-lived-secret" not in set(live_secret_values())


def test_many_secrets_of_one_length_are_cheap_to_track() -> None:
    """Tracking is by identity: 20,000 same-length secrets need no hash comparisons."""
    secrets = [Secret(f"pw-{i:08d}") for i in range(20_000)]
    assert len({v for v in live_secret_values() if v.startswith("pw-")}) == 20_000
    del secrets

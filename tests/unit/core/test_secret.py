"""Secret: never printed, compared in constant time, tracked for redaction cheaply."""

from __future__ import annotations

import gc
import pickle
import threading

import pytest

from adsync.secret import Secret, SecretIndex, _journal, live_secret_values, live_secrets


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
    s = Secret("short-lived-secret")
    assert "short-lived-secret" in set(live_secret_values())
    del s
    gc.collect()
    assert "short-lived-secret" not in set(live_secret_values())


def index_now() -> SecretIndex:
    with live_secrets() as index:
        return index


def test_live_index_follows_births_and_deaths_of_equal_values() -> None:
    """Two Secrets with one value: the value stays redacted until the last one is gone."""
    a, b = Secret("Twin-Password-1"), Secret("Twin-Password-1")
    assert index_now().found_in("x Twin-Password-1 y")
    del a
    assert index_now().found_in("x Twin-Password-1 y")
    del b
    assert not index_now().found_in("x Twin-Password-1 y")


def test_live_index_rebuilds_once_after_the_journal_overflowed() -> None:
    """Nobody logged while more Secrets came and went than the journal keeps: the next
    line rebuilds from the live Secrets, and the journal never grows past its limit."""
    index_now()
    kept = Secret("Kept-Password-9")
    generation = _journal.generation
    churn = [Secret(f"Churn-Pw-{i:06d}") for i in range(_journal.limit + 10)]
    del churn
    assert _journal.generation > generation
    assert len(_journal.events) <= _journal.limit
    index = index_now()
    assert index.found_in(kept.reveal())
    assert not index.found_in("Churn-Pw-000042")


def test_live_index_hears_secrets_born_in_other_threads() -> None:
    index_now()
    held: list[Secret] = []
    threads = [
        threading.Thread(target=lambda n=n: held.append(Secret(f"Thread-Pw-{n:03d}")))
        for n in range(20)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index = index_now()
    assert all(index.found_in(f"Thread-Pw-{n:03d}") for n in range(20))
    held.clear()
    assert not index_now().found_in("Thread-Pw-007")


def test_many_secrets_of_one_length_are_cheap_to_track() -> None:
    """Tracking is by identity: 20,000 same-length secrets need no hash comparisons."""
    secrets = [Secret(f"pw-{i:08d}") for i in range(20_000)]
    assert len({v for v in live_secret_values() if v.startswith("pw-")}) == 20_000
    del secrets

"""The handshake budget: a newcomer always gets a slot, taken from the biggest holder."""

from __future__ import annotations

import pytest

from adsync.ingest.budget import HandshakeBudget


def test_a_peer_at_its_share_displaces_its_own_oldest() -> None:
    budget: HandshakeBudget[str] = HandshakeBudget(total=8, per_peer=2)
    assert budget.admit("mallory", "m1") is None
    assert budget.admit("mallory", "m2") is None
    assert budget.admit("mallory", "m3") == "m1"
    assert budget.admit("alice", "a1") is None
    assert (budget.held_by("mallory"), budget.held_by("alice"), len(budget)) == (2, 1, 3)


def test_a_full_budget_takes_the_slot_from_the_biggest_holder() -> None:
    budget: HandshakeBudget[str] = HandshakeBudget(total=4, per_peer=3)
    for item in ("m1", "m2", "m3"):
        budget.admit("mallory", item)
    budget.admit("eve", "e1")
    assert budget.admit("alice", "a1") == "m1"  # not eve's, not alice's own
    assert budget.admit("bob", "b1") == "m2"
    assert budget.admit("carol", "c1") in {"m3", "e1", "a1", "b1"}
    assert len(budget) == 4


def test_release_is_idempotent_and_a_displaced_item_holds_nothing() -> None:
    budget: HandshakeBudget[str] = HandshakeBudget(total=2, per_peer=1)
    budget.admit("p", "x")
    assert budget.admit("p", "y") == "x"
    assert budget.release("p", "x") is False  # already displaced
    assert budget.release("p", "y") is True
    assert budget.release("p", "y") is False
    assert len(budget) == 0


def test_budgets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HandshakeBudget(total=0, per_peer=1)

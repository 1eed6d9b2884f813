"""The budget of TCP connections still in the handshake: small, and fair per peer.

Before a TCP peer has proved the key it is anyone on the host. Such connections get
their own few slots, apart from authenticated sources and the Unix socket, so no
amount of them can lock a real source out. Within the budget no peer (a uid, where
the kernel tells it; else an address) holds more than ``per_peer``: a newcomer is
always admitted, and the slot it needs is taken from the oldest handshake of the
peer that holds the most — its own oldest when the newcomer's peer is at its share.
So a flood only ever displaces the flooder's own connections, and a peer with no
handshake in progress always gets one.

Pure bookkeeping: the server closes what ``admit`` returns.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

T = TypeVar("T", bound=Hashable)


class HandshakeBudget(Generic[T]):
    """At most ``total`` items, at most ``per_peer`` of them under one key."""

    def __init__(self, total: int, per_peer: int) -> None:
        if total < 1 or per_peer < 1:
            raise ValueError("handshake budgets must be at least 1")
        self.total = total
        self.per_peer = min(per_peer, total)
        self._by_peer: dict[Hashable, dict[T, None]] = {}  # insertion order = age
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def held_by(self, key: Hashable) -> int:
        return len(self._by_peer.get(key, ()))

    def admit(self, key: Hashable, item: T) -> T | None:
        """Hold ``item`` for ``key``; returns the item whose slot it took (close it), if any."""
        victim: T | None = None
        if self.held_by(key) >= self.per_peer:
            victim_key: Hashable = key
        elif self._count >= self.total:
            victim_key = max(self._by_peer, key=lambda k: len(self._by_peer[k]))
        else:
            victim_key = None
        if victim_key is not None:
            victim = next(iter(self._by_peer[victim_key]))
            self.release(victim_key, victim)
        self._by_peer.setdefault(key, {})[item] = None
        self._count += 1
        return victim

    def release(self, key: Hashable, item: T) -> bool:
        """Give ``item``'s slot back (False if it held none: already displaced)."""
        held = self._by_peer.get(key)
        if held is None or item not in held:
            return False
        del held[item]
        if not held:
            del self._by_peer[key]
        self._count -= 1
        return True

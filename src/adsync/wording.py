"""Words in what operators read: the one plural helper of the CLI, the doctor and the demo."""

from __future__ import annotations


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 change``, ``2 changes``, ``0 deliveries``: the count with its noun agreeing."""
    noun = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{count} {noun}"


__all__ = ["plural"]

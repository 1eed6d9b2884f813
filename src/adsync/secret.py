"""A password as a value that never prints itself, and the registry that redacts it.

Every ``Secret`` alive in the process is known to ``live_secret_values()``, so the
log redaction step can scrub a password wherever it ended up (a formatted
exception, an f-string, a dict under an innocent key), not only under keys
named ``password``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import weakref
from collections.abc import Iterator
from pathlib import Path

REDACTED = "***"

# Keyed by identity: hashing a Secret must not be needed to track it.
_live: weakref.WeakValueDictionary[int, Secret] = weakref.WeakValueDictionary()
_created = 0
_HASH_KEY = os.urandom(16)  # per process: equal secrets hash equal, the hash reveals nothing


class Secret:
    """A secret string: ``str()``/``repr()`` show ``***``; ``reveal()`` gives the value."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value
        if value:
            global _created
            _created += 1
            _live[id(self)] = self

    def reveal(self) -> str:
        return self._value

    def reveal_bytes(self) -> bytes:
        return self._value.encode("utf-8")

    def __len__(self) -> int:
        return len(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self.reveal_bytes(), other.reveal_bytes())

    def __hash__(self) -> int:
        digest = hashlib.blake2b(self.reveal_bytes(), key=_HASH_KEY, digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("a Secret is not pickled")


def live_secrets_version() -> tuple[int, int]:
    """Changes whenever a Secret is created or collected: redaction rebuilds only then."""
    return _created, len(_live)


def live_secret_values() -> Iterator[str]:
    """The values of every Secret alive now (for redaction only)."""
    for secret in list(_live.values()):
        yield secret.reveal()


class SecretRefError(ValueError):
    """A ``file:``/``env:`` reference that cannot be resolved (names the reference only)."""


def resolve_secret_ref(ref: str, *, base_dir: Path | None = None) -> Secret:
    """Resolve ``file:PATH`` or ``env:NAME`` to a Secret; anything else is refused.

    A file's single trailing newline is dropped (editors add one).
    """
    kind, sep, target = ref.partition(":")
    if not sep or not target or kind not in ("file", "env"):
        raise SecretRefError(
            "must be a reference 'file:PATH' or 'env:NAME', never an inline secret"
        )
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise SecretRefError(f"environment variable {target} is not set")
        return Secret(value)
    path = Path(target)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SecretRefError(f"cannot read secret file {path}: {exc.strerror}") from None
    if text.endswith("\n"):
        text = text[:-1]
        if text.endswith("\r"):
            text = text[:-1]
    return Secret(text)

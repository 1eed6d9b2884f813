"""A password as a value that never prints itself, and the registry that redacts it.

Every ``Secret`` alive in the process is known to ``live_secret_values()``, so the
log redaction step can scrub a password wherever it ended up (a formatted
exception, an f-string, a dict under an innocent key), not only under keys
named ``password``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import re
import urllib.parse
import weakref
from collections.abc import Iterator
from pathlib import Path

REDACTED = "***"
MAX_REASON = 500

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


def encoded_forms(value: str) -> set[str]:
    """The ways a target or a formatter may echo ``value``: escaped, quoted, encoded.

    The one rule for what counts as a secret in text: ``scrub`` and the log
    redaction (``adsync.observe.logs``) both match these forms.
    """
    raw = value.encode("utf-8")
    forms = {
        value,
        repr(value)[1:-1],
        repr(raw)[2:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        html.escape(value, quote=True),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        raw.hex(),
        raw.hex().upper(),
        value.encode("utf-16-le", "surrogatepass").hex(),
    }
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = b64.decode("ascii")
        forms.update({text, text.rstrip("=")})
    return {form for form in forms if form}


def secret_pattern(*secrets: Secret | str | None) -> re.Pattern[str] | None:
    """One regex for every encoded form of every secret given (longest first, so no part
    of a longer form is left over); None when there is nothing to match."""
    forms: set[str] = set()
    for secret in secrets:
        value = secret.reveal() if isinstance(secret, Secret) else secret
        if value:
            forms |= encoded_forms(value)
    if not forms:
        return None
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def scrub(text: str, *secrets: Secret | str | None, max_len: int | None = MAX_REASON) -> str:
    """``text`` as a printable one-liner with no secret in it, in any of its usual encodings
    (raw, repr, JSON, XML, percent, hex, base64), then cut to ``max_len`` characters.

    The one scrubber for reasons, error details and target answers: redaction comes before
    the cut, so a secret across the cut cannot survive in part.
    """
    pattern = secret_pattern(*secrets)
    text = str(text)
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    text = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if pattern is not None:  # folding whitespace can rebuild a secret that holds a space
        text = pattern.sub(REDACTED, text)
    if max_len is not None and len(text) > max_len:
        text = text[: max_len - 1] + "…"
    return text


class SecretRefError(ValueError):
    """A ``file:``/``env:`` reference that cannot be resolved (names the reference only)."""


class SecretField:
    """Metadata marking a config field as a secret reference: ``Annotated[str, SecretField()]``.

    The config loader finds such fields by inspecting the model (to anchor relative
    ``file:`` paths at the config's directory); the plugin API's ``SecretRef`` carries it.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "SecretField()"


def check_secret_ref(ref: str) -> str:
    """``ref`` if it is a reference ``file:PATH`` or ``env:NAME``, else SecretRefError
    (whose message never repeats the value: it may be an inline password)."""
    kind, sep, target = ref.partition(":")
    if not sep or not target or kind not in ("file", "env"):
        raise SecretRefError("must be 'file:PATH' or 'env:NAME'; inline secrets are not allowed")
    return ref


def resolve_secret_ref(ref: str, *, base_dir: Path | None = None) -> Secret:
    """Resolve ``file:PATH`` or ``env:NAME`` to a Secret; anything else is refused.

    A file's single trailing newline is dropped (editors add one).
    """
    kind, _, target = check_secret_ref(ref).partition(":")
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

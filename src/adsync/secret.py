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
import os
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Set
from contextlib import contextmanager
from json.encoder import encode_basestring, encode_basestring_ascii
from pathlib import Path

REDACTED = "***"
MAX_REASON = 500

_HASH_KEY = os.urandom(16)  # per process: equal secrets hash equal, the hash reveals nothing


class _Journal:
    """Births and deaths of Secrets, in order, for the log redaction to apply one at a time.

    Rebuilding the redaction index from every live Secret at each log line cost time in
    proportion to the Secrets alive (hundreds during an ingest burst, one born and one
    gone per delivery). Appends are single deque operations, safe from any thread and
    from a weakref callback run by the garbage collector in the middle of anything.
    Nobody may read it for a long time (no log line): past ``limit`` entries it is
    emptied and ``generation`` moves on, and the reader rebuilds from ``alive()`` once.
    """

    limit = 4096

    def __init__(self) -> None:
        self.events: deque[tuple[int, str | None]] = deque()  # (id, value) born, (id, None) gone
        self.generation = 0
        # Every Secret alive, by identity: hashing a Secret must not be needed to track
        # it, and a weakref hashes and compares as its Secret does (equal passwords
        # would share one entry of a set, and the second one's death go unheard).
        self._refs: dict[int, _DeathNotice] = {}

    def alive(self) -> dict[int, Secret]:
        """Every Secret alive now, by id."""
        while True:
            try:  # another thread may create a Secret meanwhile: the copy is taken again
                refs = list(self._refs.items())
            except RuntimeError:
                continue
            break
        return {key: secret for key, ref in refs if (secret := ref()) is not None}

    def born(self, secret: Secret) -> None:
        self._refs[id(secret)] = _DeathNotice(secret, self._died)
        self._append((id(secret), secret.reveal()))

    def _died(self, ref: weakref.ReferenceType[Secret]) -> None:
        assert isinstance(ref, _DeathNotice)
        self._refs.pop(ref.key, None)
        self._append((ref.key, None))

    def _append(self, event: tuple[int, str | None]) -> None:
        self.events.append(event)
        if len(self.events) > self.limit:
            self.events.clear()
            self.generation += 1


class _DeathNotice(weakref.ref):  # type: ignore[type-arg]
    __slots__ = ("key",)

    def __init__(self, secret: Secret, callback: Callable[[weakref.ref[Secret]], None]) -> None:
        super().__init__(secret, callback)  # type: ignore[call-arg]
        self.key = id(secret)


_journal = _Journal()


class Secret:
    """A secret string: ``str()``/``repr()`` show ``***``; ``reveal()`` gives the value."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret wraps a str")
        self._value = value
        if value:
            _journal.born(self)

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


class _LiveSecretIndex:
    """A ``SecretIndex`` of every Secret alive, kept current from the journal: each log
    line costs the Secrets born and gone since the last one, not all that are alive.

    The journal's one reader (a second would take events from the first): used only
    through ``live_secrets()``, which holds the lock.
    """

    def __init__(self) -> None:
        self._index = SecretIndex()
        self._values: dict[int, str] = {}  # Secret id -> value, as the index holds them
        self._generation = -1

    def index(self) -> SecretIndex:
        events = _journal.events
        while True:
            if self._generation != _journal.generation:
                self._rebuild()
            try:
                key, value = events.popleft()
            except IndexError:
                if self._generation == _journal.generation:
                    return self._index
                continue
            old = self._values.pop(key, None)
            if old is not None:
                self._index.discard(old)
            if value is not None:
                self._values[key] = value
                self._index.add(value)

    def _rebuild(self) -> None:
        """From every live Secret: the journal overflowed (or this is the first use).

        Events still queued are applied after it; each is keyed by its Secret's id, so
        a birth the rebuild already saw replaces itself and a death of a Secret it never
        saw removes nothing; the queue is drained before the index is returned.
        """
        self._generation = _journal.generation
        self._values = {key: secret.reveal() for key, secret in _journal.alive().items()}
        self._index = SecretIndex()
        for value in self._values.values():
            self._index.add(value)


def live_secret_values() -> Iterator[str]:
    """The values of every Secret alive now (for redaction only)."""
    for secret in _journal.alive().values():
        yield secret.reveal()


# What urllib.parse.quote(safe="") and quote_plus(safe="") make of each byte, looked up
# instead of called: a password's forms are computed once per delivery (2.1 -> 0.9 µs).
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_PERCENT = [chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in range(256)]
_PERCENT_PLUS = [*_PERCENT[:0x20], "+", *_PERCENT[0x21:]]


def encoded_forms(value: str) -> set[str]:
    """The ways a target or a formatter may echo ``value``: escaped, quoted, encoded.

    The one rule for what counts as a secret in text: ``SecretIndex`` finds these forms
    for ``scrub`` and for the log redaction (``adsync.observe.logs``). Every form is at
    least as long as ``value`` (escapes and encodings only add): ``scrub`` relies on it.
    Computed once per password the daemon opens, so written for speed: the JSON forms
    are ``json.dumps``'s own string encoders, and ``quote_plus`` differs from ``quote``
    only where there is a space.
    """
    raw = value.encode("utf-8")
    quoted = "".join([_PERCENT[b] for b in raw])  # urllib.parse.quote(value, safe="")
    hexed = raw.hex()
    forms = {
        value,
        repr(value)[1:-1],
        repr(raw)[2:-1],
        encode_basestring_ascii(value)[1:-1],  # json.dumps(value)
        encode_basestring(value)[1:-1],  # json.dumps(value, ensure_ascii=False)
        html.escape(value, quote=True),
        quoted,
        "".join([_PERCENT_PLUS[b] for b in raw]) if " " in value else quoted,  # quote_plus
        hexed,
        hexed.upper(),
        value.encode("utf-16-le", "surrogatepass").hex(),
    }
    for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
        text = b64.decode("ascii")
        forms.add(text)
        forms.add(text.rstrip("="))
    forms.discard("")
    return forms


_KEY = 4  # SecretIndex looks a form up by its first _KEY characters (a shorter one: whole)
# A form shorter than _KEY (a 1..3-character password, say) is found only as a whole token
# (no letter or digit right before or after it): found anywhere, it would turn every such
# letter of every log line into ***, mangling the log and spelling the secret out.
MIN_SECRET_LENGTH = _KEY  # a configured secret (file:/env:) shorter than this is refused


class SecretIndex:
    """Finds every form (``encoded_forms``) of a set of secret values in text.

    Matches are leftmost, longest form first; a form shorter than 4 characters matches only
    as a whole token (see ``_KEY``). The log step keeps one over every live
    secret and updates it as secrets come and go (one per change received, one per
    delivery): one regex alternation of all forms would be recompiled on each such
    change and try every form at each text position, while this index changes one
    secret at a time and a scan costs about one dict lookup per text position,
    whatever the number of secrets. Being no regex, it also leaves no compiled
    pattern holding passwords in ``re``'s module cache.

    Adding and dropping a value are a few dict operations per form (the daemon does both
    once per delivery); the longest-first order is taken only where a key is found in
    text, which is rare.
    """

    def __init__(self) -> None:
        self._forms_of: dict[str, set[str]] = {}  # value -> its forms
        self._values: dict[str, int] = {}  # value -> how many holders (add/discard)
        # First _KEY characters (a shorter form: all of it) -> {form: how many values have it}
        self._by_key: dict[str, dict[str, int]] = {}
        self._short: dict[int, int] = {}  # length (< _KEY) -> how many short forms have it
        self._short_lengths: tuple[int, ...] = ()  # longest first

    @classmethod
    def of(cls, *secrets: Secret | str | None) -> SecretIndex:
        index = cls()
        index.update({s.reveal() if isinstance(s, Secret) else s for s in secrets if s})
        return index

    def update(self, values: Set[str]) -> None:
        """Make the index hold exactly the forms of ``values``."""
        for value in self._forms_of.keys() - values:
            self._drop(value)
        for value in values - self._forms_of.keys():
            self.add(value)

    def add(self, value: str) -> None:
        """Hold ``value`` once more (counted: equal values held twice need two discards)."""
        held = self._values.get(value, 0)
        self._values[value] = held + 1
        if held:
            return
        forms = encoded_forms(value)
        self._forms_of[value] = forms
        by_key = self._by_key
        for form in forms:
            bucket = by_key.get(form[:_KEY])
            if bucket is None:
                by_key[form[:_KEY]] = {form: 1}
            elif form in bucket:
                bucket[form] += 1
                continue
            else:
                bucket[form] = 1
            if len(form) < _KEY:
                self._count_short(len(form), 1)

    def discard(self, value: str) -> None:
        """Hold ``value`` once less; its forms go when nothing holds it."""
        held = self._values.get(value, 0)
        if held > 1:
            self._values[value] = held - 1
            return
        self._drop(value)

    def _drop(self, value: str) -> None:
        """Forget ``value`` whatever holds it."""
        self._values.pop(value, None)
        by_key = self._by_key
        for form in self._forms_of.pop(value, ()):
            key = form[:_KEY]
            bucket = by_key[key]
            if bucket[form] > 1:
                bucket[form] -= 1
                continue
            del bucket[form]
            if not bucket:
                del by_key[key]
            if len(form) < _KEY:
                self._count_short(len(form), -1)

    def _count_short(self, length: int, step: int) -> None:
        count = self._short.get(length, 0) + step
        if count:
            self._short[length] = count
        else:
            del self._short[length]
        self._short_lengths = tuple(sorted(self._short, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every form of every held secret replaced by ``***``."""
        out: list[str] = []
        end = 0
        for start, stop in self._matches(text):
            out += (text[end:start], REDACTED)
            end = stop
        if not out:
            return text
        out.append(text[end:])
        return "".join(out)

    def found_in(self, text: str) -> bool:
        """True if ``text`` holds a form of a held secret."""
        return next(self._matches(text), None) is not None

    def _matches(self, text: str) -> Iterator[tuple[int, int]]:
        keys = self._by_key
        if not keys:
            return
        shorts = self._short_lengths
        if shorts:
            starts = [
                i
                for i in range(len(text))
                if text[i : i + _KEY] in keys or any(text[i : i + n] in keys for n in shorts)
            ]
        else:
            starts = [i for i in range(len(text) - _KEY + 1) if text[i : i + _KEY] in keys]
        end = 0
        for i in starts:
            if i < end:
                continue  # inside the form just matched
            form = self._longest_at(text, i)
            if form is not None:
                end = i + len(form)
                yield i, end

    def _longest_at(self, text: str, i: int) -> str | None:
        for form in sorted(self._by_key.get(text[i : i + _KEY], ()), key=_longest_first):
            if len(form) >= _KEY and text.startswith(form, i):
                return form
        if i > 0 and text[i - 1].isalnum():
            return None  # a short form only as a whole token
        for n in self._short_lengths:
            piece = text[i : i + n]
            if (
                len(piece) == n
                and piece in self._by_key.get(piece, ())
                and not (i + n < len(text) and text[i + n].isalnum())
            ):
                return piece
        return None


def _longest_first(form: str) -> int:
    return -len(form)


def scrub(text: str, *secrets: Secret | str | None, max_len: int | None = MAX_REASON) -> str:
    """``text`` as a printable one-liner with no secret in it, in any of its usual encodings
    (raw, repr, JSON, XML, percent, hex, base64), then cut to ``max_len`` characters.

    The one scrubber for reasons, error details and target answers: redaction comes before
    the cut, so a secret across the cut cannot survive in part.
    """
    text = str(text)
    # No form is shorter than its value (encoded_forms): a secret longer than the text
    # cannot be in it, and a short reason ("HTTP 204") costs no forms at all.
    fits = [s for s in secrets if s and len(s) <= len(text)]
    index = SecretIndex.of(*fits) if fits else None
    if index is not None:
        text = index.redact(text)
    if not text.isprintable():
        text = "".join(c if c.isprintable() else " " for c in text)
    text = " ".join(text.split())
    if index is not None:
        text = index.redact(text)  # folding whitespace can rebuild a secret with a space
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
    """Resolve ``file:PATH`` or ``env:NAME`` to a Secret; anything else is refused, and so
    is a secret shorter than ``MIN_SECRET_LENGTH`` (no credential is that short, and the
    log redaction could only find it as a whole token).

    A file's single trailing newline is dropped (editors add one).
    """
    kind, _, target = check_secret_ref(ref).partition(":")
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise SecretRefError(f"environment variable {target} is not set")
        return _long_enough(ref, value)
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
    return _long_enough(ref, text)


def _long_enough(ref: str, value: str) -> Secret:
    if len(value) < MIN_SECRET_LENGTH:
        what = "empty" if not value else f"shorter than {MIN_SECRET_LENGTH} characters"
        raise SecretRefError(f"the secret in {ref} is {what}; set a real credential there")
    return Secret(value)


_reader = _LiveSecretIndex()
_reader_lock = threading.RLock()  # reentrant: rendering a value may log


@contextmanager
def live_secrets() -> Iterator[SecretIndex]:
    """The index of every Secret alive now, for the log redaction; the lock is held
    while the caller uses it (threads log too: executors, the Windows service)."""
    with _reader_lock:
        yield _reader.index()

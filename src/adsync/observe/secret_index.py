"""Find every live secret, in every form ``adsync.secret.encoded_forms`` lists, in log text.

The log step scans each line for all live secrets, and secrets come and go all
the time (one per change received, one per delivery). One regex alternation of
every form would be recompiled on each change of that set and try every form at
each position of the text; this index is updated one secret at a time, and a scan
costs about one dict lookup per text position whatever the number of secrets.
Matches are leftmost, longest first: what ``adsync.secret.secret_pattern`` finds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set

from adsync.secret import REDACTED, encoded_forms

_KEY = 4  # a form is looked up by its first _KEY characters (a shorter form: by itself)


class SecretIndex:
    """The forms of a set of secret values, kept in step with ``update``."""

    def __init__(self) -> None:
        self._forms_of: dict[str, frozenset[str]] = {}  # value -> its forms
        self._holders: Counter[str] = Counter()  # form -> how many values have it
        self._by_key: dict[str, list[str]] = {}  # first _KEY chars -> forms, longest first
        self._short: Counter[int] = Counter()  # lengths (< _KEY) of short forms
        self._short_lengths: tuple[int, ...] = ()  # longest first

    def update(self, values: Set[str]) -> None:
        """Make the index hold exactly the forms of ``values``."""
        for value in self._forms_of.keys() - values:
            for form in self._forms_of.pop(value):
                self._release(form)
        for value in values - self._forms_of.keys():
            forms = frozenset(encoded_forms(value))
            self._forms_of[value] = forms
            for form in forms:
                self._hold(form)

    def _hold(self, form: str) -> None:
        self._holders[form] += 1
        if self._holders[form] > 1:
            return
        bucket = self._by_key.setdefault(form[:_KEY], [])
        bucket.append(form)
        bucket.sort(key=len, reverse=True)
        if len(form) < _KEY:
            self._short[len(form)] += 1
            self._short_lengths = tuple(sorted(self._short, reverse=True))

    def _release(self, form: str) -> None:
        self._holders[form] -= 1
        if self._holders[form]:
            return
        del self._holders[form]
        key = form[:_KEY]
        bucket = self._by_key[key]
        bucket.remove(form)
        if not bucket:
            del self._by_key[key]
        if len(form) < _KEY:
            self._short[len(form)] -= 1
            if not self._short[len(form)]:
                del self._short[len(form)]
            self._short_lengths = tuple(sorted(self._short, reverse=True))

    def redact(self, text: str) -> str:
        """``text`` with every form of every held secret replaced by ``***``."""
        keys = self._by_key
        if not keys:
            return text
        shorts = self._short_lengths
        if shorts:
            starts = [
                i
                for i in range(len(text))
                if text[i : i + _KEY] in keys or any(text[i : i + n] in keys for n in shorts)
            ]
        else:
            starts = [i for i in range(len(text) - _KEY + 1) if text[i : i + _KEY] in keys]
        out: list[str] = []
        end = 0
        for i in starts:
            if i < end:
                continue  # inside the form just replaced
            form = self._longest_at(text, i)
            if form is not None:
                out += (text[end:i], REDACTED)
                end = i + len(form)
        if not out:
            return text
        out.append(text[end:])
        return "".join(out)

    def _longest_at(self, text: str, i: int) -> str | None:
        for form in self._by_key.get(text[i : i + _KEY], ()):
            if len(form) >= _KEY and text.startswith(form, i):
                return form
        for n in self._short_lengths:
            piece = text[i : i + n]
            if len(piece) == n and piece in self._holders:
                return piece
        return None

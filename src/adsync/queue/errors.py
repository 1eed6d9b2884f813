"""Errors the queue raises; none of them ever holds a key or a password."""

from __future__ import annotations


class QueueError(Exception):
    """The queue cannot do what was asked (the message says why, for the operator)."""


class QueueKeyError(QueueError):
    """The master key is missing or does not open this queue's data keys.

    The daemon refuses to start rather than ACK changes it could not read back.
    """


class KeyProviderError(QueueError):
    """A key provider cannot give a usable master key (bad file mode, bad length, …)."""


class MasterKeyMissing(KeyProviderError):
    """The master key does not exist (and creating it was not allowed)."""


class SealError(QueueError):
    """A sealed value does not open: wrong key, tampered bytes, or moved to another row."""

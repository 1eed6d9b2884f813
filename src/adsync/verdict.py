"""A policy pre-check's answer: one enum for the plugin API and the wire.

``adsync.plugin.Verdict`` (what a backend's ``check`` answers) and
``adsync.ingest.wire.VerdictCode`` (the VERDICT frame's status byte) are this enum.
It lives below both, in a standard-library-only module: the plugin API cannot
import the ingest package (which imports the plugin API), and the wire, which the
Samba hooks load per password event, cannot import the plugin API (pydantic).
"""

from __future__ import annotations

import enum


class Verdict(enum.IntEnum):
    """The values are the wire's (docs/ipc.md, VERDICT status)."""

    ACCEPT = 0
    REJECT = 1
    UNDECIDED = 2

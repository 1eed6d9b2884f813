"""The ingest section's limits reach the servers as one ``Limits``, with the spec's defaults."""

from __future__ import annotations

import dataclasses

from adsync.config import config_from_data
from adsync.ingest.codec import Limits

HOOK = {"type": "webhook", "url": "https://hr.example.com/hook", "secret": "env:HR"}


def test_defaults_are_the_spec_limits() -> None:
    assert config_from_data({"backends": {"hr": HOOK}}).ingest.limits() == Limits()


def test_every_configured_limit_is_carried() -> None:
    ingest = {
        "max_connections": 3,
        "frame_timeout": "2s",
        "idle_timeout": "1m",
        "handshake_timeout": "500ms",
        "max_frame": 4096,
        "max_field": 100,
        "max_password": 200,
    }
    limits = config_from_data({"ingest": ingest, "backends": {"hr": HOOK}}).ingest.limits()
    assert limits == Limits(
        max_connections=3,
        frame_timeout=2.0,
        idle_timeout=60.0,
        handshake_timeout=0.5,
        max_frame=4096,
        max_field=100,
        max_password=200,
    )
    shared = {f.name for f in dataclasses.fields(Limits)} & set(ingest)
    assert shared == set(ingest)  # each key of the section is a Limits field

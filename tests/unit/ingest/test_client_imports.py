"""Hooks start a process per event: the client must not pull in the heavy modules."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("asyncio", "pydantic", "aiohttp", "structlog", "adsync.plugin", "adsync.ingest.server")


def test_client_imports_only_stdlib_and_secret() -> None:
    code = (
        "import sys, json; import adsync.ingest.client; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('adsync') "
        f"or m.split('.')[0] in {[h.split('.')[0] for h in HEAVY]!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert [m for m in loaded if m in HEAVY or m.split(".")[0] in HEAVY] == []
    assert set(loaded) <= {
        "adsync",
        "adsync.secret",
        "adsync.ingest",
        "adsync.ingest.codec",
        "adsync.ingest.wire",
        "adsync.ingest.handshake",
        "adsync.ingest.client",
        "adsync.verdict",  # the VERDICT status enum, shared with the plugin API
    }

"""The modules a hook process loads: only what the Unix socket path needs (issue 16).

Samba starts a hook per password event; every import is paid per event. The hook
scripts run ``python -I -S``; this runs the same ``adsync.hooks.main`` the same way
(a daemon that is not there: the check answers undecided, the sync gives up at
once) and pins what got imported.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from adsync.hooks.install import adsync_root

COMMON = {
    "adsync", "adsync.hooks", "adsync.hooks.main", "adsync.hooks.settings",
    "adsync.hooks.alert", "adsync.hooks.backoff", "adsync.hooks.frames",
    "adsync.ingest", "adsync.ingest.wire",
    "adsync.verdict",  # wire's VerdictCode: one IntEnum, imports only enum (as wire does)
}  # fmt: skip
ADSYNC = {
    "samba-check": COMMON | {"adsync.hooks.samba_check"},
    "samba-sync": COMMON
    | {
        "adsync.hooks.samba_sync", "adsync.hooks.ldif", "adsync.hooks.samba_event",
        "adsync.hooks.sync_state",
    },
}  # fmt: skip
FORBIDDEN = {
    "click", "pydantic", "structlog", "ruamel", "dataclasses", "typing", "inspect",
    "socket", "selectors", "asyncio", "json", "re", "pathlib", "uuid", "hashlib", "base64",
    "argparse", "contextlib", "platform", "adsync.secret", "adsync.config",
    "adsync.ingest.codec", "adsync.ingest.client", "adsync.ingest.handshake",
}  # fmt: skip
PROBE = """
import io, os, sys
before = set(sys.modules)
sys.path.append(ROOT)
sys.stdin = io.TextIOWrapper(io.BytesIO(STDIN))
os.environ["SAMBA_CPS_ACCOUNT_NAME"] = "alice"
from adsync.hooks.main import main
code = main(ARGS)
sys.__stdout__.write("\\nMODULES " + repr(sorted(set(sys.modules) - before)) + "\\n")
"""
LDIF = (
    b"dn: CN=alice,CN=Users,DC=adsync,DC=test\nobjectGUID: abf599a2-49c1-4d58-afa1-7cf29a54d1a7\n"
    b"sAMAccountName: alice\nmsDS-KeyVersionNumber: 4\npwdLastSet: 0\n"
    b"virtualClearTextUTF8:: UMOkc3N3w7ZyZDE=\n"
)


@pytest.mark.parametrize("command", ["samba-check", "samba-sync"])
def test_hook_imports_only_the_socket_path(tmp_path: Path, command: str) -> None:
    config = tmp_path / "adsync.yaml"
    config.write_text(
        f"ingest:\n  unix_socket: {tmp_path}/absent.sock\nqueue:\n  path: {tmp_path}/q.db\n"
    )
    args = [command, "--config", str(config), "--domain", "ADSYNC"]
    if command == "samba-sync":
        args += ["--max-wait", "0"]
    probe = (
        PROBE.replace("ROOT", repr(adsync_root()))
        .replace("STDIN", repr(LDIF if command == "samba-sync" else b"Pass-w0rd!"))
        .replace("ARGS", repr(args))
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", probe], capture_output=True, timeout=60, check=True
    )
    line = done.stdout.decode().rsplit("MODULES ", 1)[1]
    loaded = set(ast.literal_eval(line))
    assert {m for m in loaded if m.startswith("adsync")} == ADSYNC[command]
    assert not loaded & FORBIDDEN, sorted(loaded & FORBIDDEN)

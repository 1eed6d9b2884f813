"""The hook scripts ``adsync samba setup`` writes, and the GPG key it finds (pure text in/out).

Each script is a few lines of Python started with ``-I -S``: isolated (no
``PYTHON*`` variables, no user site, the script's directory not on the path: it
runs as root) and without ``site`` (no scan of site-packages and its ``.pth``
files). ``sys.path`` gets exactly the directory that holds this ``adsync``. A
console script cannot pass those flags and ``python -I -S -m adsync…`` cannot
find adsync without ``site``, hence a written script; re-run setup after moving
or reinstalling adsync elsewhere.
"""

from __future__ import annotations

import os
import shlex
import sys

CHECK_HOOK = "samba-check-hook"
SYNC_HOOK = "samba-sync-hook"


def adsync_root() -> str:
    """The directory that contains the ``adsync`` package in use (site-packages, or src/)."""
    import adsync

    return os.path.dirname(os.path.dirname(os.path.abspath(adsync.__file__)))


def hook_script(command: str, fixed_args: list[str], *, python: str | None = None) -> str:
    """The text of a hook script for ``command`` (samba-check or samba-sync)."""
    python = python or sys.executable
    if any(c.isspace() for c in python):
        raise ValueError(f"the Python path {python!r} has a space: a #! line cannot hold it")
    return (
        f"#!{python} -IS\n"
        f"# Written by `adsync samba setup`: {command} (docs/samba.md). Isolated Python\n"
        "# (-I -S): no environment, no site-packages scan; adsync is loaded from the path below.\n"
        "import sys\n"
        f"sys.path.append({adsync_root()!r})  # after the standard library: nothing shadows it\n"
        "from adsync.hooks.main import main\n"
        f"sys.exit(main([{', '.join(repr(a) for a in [command, *fixed_args])}, *sys.argv[1:]]))\n"
    )


def check_line(hook_dir: str, config: str, on_undecided: str, domain: str) -> str:
    """The ``check password script`` value: Samba runs it with ``/bin/sh -c``."""
    return shlex.join(
        [
            os.path.join(hook_dir, CHECK_HOOK),
            "--config", config, "--on-undecided", on_undecided, "--domain", domain,
        ]
    )  # fmt: skip


def encryption_keys(colons: str) -> list[str]:
    """Fingerprints of usable secret keys that can encrypt, from ``gpg --with-colons``."""
    found: list[str] = []
    wanted = False
    for line in colons.splitlines():
        fields = line.split(":")
        if fields[0] == "sec":
            usable = len(fields) > 11 and fields[1] not in ("r", "e", "d", "i")
            wanted = usable and "E" in fields[11]
        elif fields[0] == "fpr" and wanted and len(fields) > 9:
            found.append(fields[9])  # the fpr line right after "sec" is the primary key's
            wanted = False
        else:
            wanted = False
    return found

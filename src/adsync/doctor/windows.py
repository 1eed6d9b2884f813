"""The LSA filter on a Windows DC: registered in Notification Packages, the DLL in System32,
its settings matching the daemon's ingest, and its log saying LSASS loaded it.

The registry is read through ``Registry`` (winreg on Windows, a dict in tests), so every
check runs on Linux too."""

from __future__ import annotations

import ntpath
from pathlib import Path
from typing import Protocol

from adsync.doctor.model import Context, Result

LSA_KEY = r"SYSTEM\CurrentControlSet\Control\Lsa"
FILTER_KEY = r"SOFTWARE\adsync\Filter"
PACKAGE = "adsyncflt"
INSTALL = r"run install.ps1 from the bundle (elevated), then reboot"


class Registry(Protocol):
    def get(self, key: str, value: str) -> object | None:
        """HKEY_LOCAL_MACHINE\\key\\value, or None when absent."""


class WinReg:  # pragma: no cover - Windows only
    def get(self, key: str, value: str) -> object | None:
        import winreg  # type: ignore[import-not-found,unused-ignore]

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as handle:  # type: ignore[attr-defined,unused-ignore]
                data, _ = winreg.QueryValueEx(handle, value)  # type: ignore[attr-defined,unused-ignore]
        except OSError:
            return None
        return data  # type: ignore[no-any-return,unused-ignore]


def filter_dll(ctx: Context) -> list[Result]:
    if not ctx.windows:
        return []
    reg = ctx.registry
    if reg is None:  # pragma: no cover - Windows only
        reg = ctx.registry = WinReg()
    packages = reg.get(LSA_KEY, "Notification Packages")
    listed = [str(p) for p in packages] if isinstance(packages, list | tuple) else []
    results = []
    if PACKAGE in [p.strip().lower() for p in listed]:
        results.append(
            Result.ok("filter registered", f"Notification Packages: {', '.join(listed)}")
        )
    else:
        results.append(
            Result.fail(
                "filter registered",
                f"{PACKAGE} is not in Notification Packages ({', '.join(listed) or 'empty'})",
                INSTALL,
            )
        )
    dll = ctx.system_root / "System32" / f"{PACKAGE}.dll"
    if dll.is_file():
        results.append(Result.ok("filter DLL", f"{dll} present"))
    else:
        results.append(Result.fail("filter DLL", f"{dll} is missing", INSTALL))
    results.extend(_settings(ctx, reg))
    results.append(_loaded(ctx, reg))
    return results


def _settings(ctx: Context, reg: Registry) -> list[Result]:
    tcp = ctx.config.ingest.tcp_address
    if tcp is None:
        return [
            Result.fail(
                "filter settings",
                "ingest.tcp is off: the filter has nothing to talk to",
                "set ingest.tcp: 127.0.0.1:17635 in the config",
            )
        ]
    port = reg.get(FILTER_KEY, "Port")
    port = 17635 if port is None else port
    key_file = reg.get(FILTER_KEY, "KeyFile")
    key_file = str(ctx.program_data / "adsync" / "filter.key") if key_file is None else key_file
    problems = []
    if port != tcp[1]:
        problems.append(f"the filter's Port is {port}, the daemon listens on {tcp[1]}")
    if _norm(str(key_file)) != _norm(str(ctx.config.ingest.psk_file)):
        problems.append(
            f"the filter's KeyFile is {key_file}, "
            f"the daemon's psk_file {ctx.config.ingest.psk_file}"
        )
    if problems:
        return [
            Result.fail(
                "filter settings",
                "; ".join(problems),
                "run install.ps1 -Port/-KeyFile with the config's values, then reboot",
            )
        ]
    return [Result.ok("filter settings", f"Port {port} and KeyFile match the config")]


def _loaded(ctx: Context, reg: Registry) -> Result:
    """The filter's own heartbeat: its log's ``initialized`` line, written when LSASS loads it."""
    log = reg.get(FILTER_KEY, "LogFile")
    path = Path(str(log)) if log else ctx.program_data / "adsync" / "adsyncflt.log"
    if log == "":
        return Result.skip("filter loaded", "LogFile is empty (logging off): cannot tell")
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    if " initialized " in text + " " or text.rstrip().endswith("initialized"):
        return Result.ok("filter loaded", f"{path} says initialized")
    return Result.fail(
        "filter loaded",
        f"{path} has no 'initialized' line: LSASS has not loaded the filter",
        "reboot the DC (LSASS loads packages at boot); with LSA protection, sign the DLL",
    )


def _norm(path: str) -> str:
    return ntpath.normcase(ntpath.normpath(path.replace("/", "\\")))

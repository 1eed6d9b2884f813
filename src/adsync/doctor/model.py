"""What a check returns and how results print (pure)."""

from __future__ import annotations

import enum
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adsync.wording import plural

if TYPE_CHECKING:
    from adsync.config import Config
    from adsync.doctor.windows import Registry


class Status(enum.StrEnum):
    OK = "ok"
    FAIL = "fail"
    SKIP = "skip"  # not applicable here (no Samba on this host, not Windows, …)


MARK = {Status.OK: "✓", Status.FAIL: "✗", Status.SKIP: "-"}


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    status: Status
    detail: str
    fix: str = ""

    @classmethod
    def ok(cls, name: str, detail: str) -> Result:
        return cls(name, Status.OK, detail)

    @classmethod
    def fail(cls, name: str, detail: str, fix: str) -> Result:
        return cls(name, Status.FAIL, detail, fix)

    @classmethod
    def skip(cls, name: str, detail: str) -> Result:
        return cls(name, Status.SKIP, detail)


@dataclass
class Context:
    """Everything a check looks at; tests replace the parts a host cannot offer."""

    config: Config
    config_path: Path
    smb_conf: Path = Path("/etc/samba/smb.conf")
    windows: bool = sys.platform == "win32"
    registry: Registry | None = None  # Windows: HKLM reads
    system_root: Path = Path("C:/Windows")
    program_data: Path = Path("C:/ProgramData")
    now: Callable[[], float] = time.time
    proc: Path = Path("/proc")  # Linux: where running syncpasswords is looked for
    service_ids: tuple[int, int] | None = None  # the daemon's uid/gid under the systemd unit
    # filled by the target probes: (backend, seconds the target's Date differs from ours)
    skews: list[tuple[str, float]] = field(default_factory=list)


def render_lines(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        line = f"{MARK[r.status]} {r.name}: {r.detail}"
        if r.status is Status.FAIL and r.fix:
            line += f" — fix: {r.fix}"
        lines.append(line)
    failed = sum(r.status is Status.FAIL for r in results)
    lines.append("all checks passed" if not failed else f"{plural(failed, 'check')} failed")
    return lines


def render_json(results: list[Result]) -> dict[str, Any]:
    return {
        "ok": not any(r.status is Status.FAIL for r in results),
        "checks": [
            {"name": r.name, "status": r.status.value, "detail": r.detail, "fix": r.fix}
            for r in results
        ],
    }

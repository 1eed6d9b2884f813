"""Where the Linux service keeps things and who owns them: one definition for
``adsync service install`` (which makes it so) and ``adsync doctor`` (which checks it)."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from adsync.plugin import SecretRef

_SECRET_MARK = get_args(SecretRef)[1]  # the validator that makes a str a SecretRef

SERVICE_USER = "adsync"
UNIT_NAME = "adsync.service"
UNIT_PATH = Path("/etc/systemd/system") / UNIT_NAME
SYSUSERS_PATH = Path("/etc/sysusers.d/adsync.conf")
CONFIG_DIR = Path("/etc/adsync")  # ConfigurationDirectory=: root:adsync 0750, read-only
STATE_DIR = Path("/var/lib/adsync")  # StateDirectory=: adsync 0700, the queue
RUNTIME_DIR = Path("/run/adsync")  # RuntimeDirectory=: adsync 0750, the socket
HIDDEN_PREFIXES = (Path("/home"), Path("/root"), Path("/run/user"))  # ProtectHome=yes


def secret_refs(model: BaseModel, prefix: str = "") -> list[tuple[str, str]]:
    """Every ``SecretRef`` value set in ``model`` (nested models too), with its key path."""
    found: list[tuple[str, str]] = []
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            found.extend(secret_refs(value, key + "."))
        elif isinstance(value, str) and any(m is _SECRET_MARK for m in field.metadata):
            found.append((key, value))
    return found


def under(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents

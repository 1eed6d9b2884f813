"""Optional dependencies (``pip install 'adsync[EXTRA]'``): one place that says which is missing.

A production install carries only what every DC needs; a feature whose library is an
extra checks for it when it is configured or used and fails with one line that names
the extra, never with a traceback from deep inside an import.
"""

from __future__ import annotations

import importlib.util

# extra -> the top-level modules it provides (kept in step with pyproject.toml)
EXTRAS: dict[str, tuple[str, ...]] = {
    "ldap": ("bonsai",),
    "console": ("rich",),
    "testing": ("pytest", "pytest_asyncio", "lxml"),
}


class MissingExtra(ImportError):
    """A feature was configured or used whose extra is not installed."""

    def __init__(self, extra: str, feature: str) -> None:
        self.extra = extra
        super().__init__(f"{feature} needs the '{extra}' extra: pip install 'adsync[{extra}]'")


def installed(extra: str) -> bool:
    """True when every module of ``extra`` can be imported (nothing is imported here)."""
    return all(_found(module) for module in EXTRAS[extra])


def require(extra: str, feature: str) -> None:
    """Raise ``MissingExtra`` (one line, naming the extra) unless ``extra`` is installed."""
    if not installed(extra):
        raise MissingExtra(extra, feature)


def _found(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a None in sys.modules
        return False


__all__ = ["EXTRAS", "MissingExtra", "installed", "require"]

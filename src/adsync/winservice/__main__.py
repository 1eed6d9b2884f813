"""The service host: ``python -m adsync.winservice --config PATH`` (what the SCM starts).

``adsync service install`` registers this command line; the process hosts the
one service with ``servicemanager`` (no pythonservice.exe, so a venv works).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    from adsync.winservice.api import load
    from adsync.winservice.service import make_service_class

    parser = argparse.ArgumentParser(prog="python -m adsync.winservice")
    parser.add_argument("--config", required=True, type=Path)
    args = parser.parse_args(argv)
    win32 = load()
    cls = make_service_class(win32, args.config)
    win32.manager.Initialize()
    win32.manager.PrepareToHostSingle(cls)
    win32.manager.StartServiceCtrlDispatcher()


if __name__ == "__main__":  # pragma: no cover - run by the service control manager
    main(sys.argv[1:])

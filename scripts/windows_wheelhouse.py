"""Fill a wheelhouse with every runtime dependency of the given wheels for CPython on
win_amd64, and check that it is complete.

``pip download --platform win_amd64`` picks Windows wheels but evaluates environment
markers for the machine it runs on (Linux): ``pywin32; sys_platform == 'win32'`` and
``colorama; platform_system == 'Windows'`` would be left out. So this reads each wheel's
``Requires-Dist``, evaluates the markers for Windows and each Python version, downloads
what is missing (wheels only), and repeats until nothing is.

    python scripts/windows_wheelhouse.py WHEELHOUSE ROOT_WHEEL [--extras ldap] \
        [--python 3.11 --python 3.12 --python 3.13] [--check-only]

Needs ``packaging`` (pip's own dependency; in the test venv through pytest).
"""

from __future__ import annotations

import argparse
import email.parser
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.tags import Tag, compatible_tags, cpython_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

PLATFORM = "win_amd64"


def windows_env(python: str) -> dict[str, str]:
    env = default_environment()
    major, minor = python.split(".")
    env.update(
        {
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "os_name": "nt",
            "sys_platform": "win32",
            "platform_system": "Windows",
            "platform_machine": "AMD64",
            "platform_release": "10",
            "python_version": python,
            "python_full_version": f"{python}.0",
            "implementation_version": f"{python}.0",
        }
    )
    del major, minor
    return env


def tags_for(python: str) -> set[Tag]:
    version = tuple(int(p) for p in python.split("."))
    return set(cpython_tags(version, platforms=[PLATFORM])) | set(
        compatible_tags(version, f"cp{version[0]}{version[1]}", platforms=[PLATFORM])
    )


def wheels(house: Path) -> list[Path]:
    return sorted(house.glob("*.whl"))


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return email.parser.Parser().parsestr(zf.read(name).decode("utf-8"))


def _applies(req: Requirement, env: dict[str, str], extras: frozenset[str]) -> bool:
    if req.marker is None:
        return True
    return any(req.marker.evaluate({**env, "extra": e}) for e in {"", *extras})


def _plain(req: Requirement) -> str:
    """The requirement without its marker (pip would evaluate it for Linux)."""
    extras = f"[{','.join(sorted(req.extras))}]" if req.extras else ""
    return f"{req.name}{extras}{req.specifier}"


def resolve(house: Path, root: str, extras: set[str], python: str) -> tuple[list[str], list[str]]:
    """(requirements no wheel satisfies, files that are not wheels) for one Python version."""
    env = windows_env(python)
    tags = tags_for(python)
    available: dict[str, list[tuple[Path, str]]] = {}
    for wheel in wheels(house):
        name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
        if wheel_tags & tags:
            available.setdefault(name, []).append((wheel, str(version)))
    stray = sorted(p.name for p in house.iterdir() if p.suffix != ".whl")
    missing: set[str] = set()
    seen: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[Path, frozenset[str]]] = []
    root_wheels = available.get(canonicalize_name(root), [])
    if not root_wheels:
        return [root], stray
    todo.append((root_wheels[-1][0], frozenset(extras)))
    while todo:
        wheel, wanted = todo.pop()
        key = (wheel.name, wanted)
        if key in seen:
            continue
        seen.add(key)
        for text in metadata(wheel).get_all("Requires-Dist") or []:
            req = Requirement(text)
            if not _applies(req, env, wanted):
                continue
            fits = [
                w
                for w, v in available.get(canonicalize_name(req.name), [])
                if req.specifier.contains(v, prereleases=True)
            ]
            if not fits:
                missing.add(_plain(req))
                continue
            todo.append((fits[-1], frozenset(req.extras)))
    return sorted(missing), stray


def download(house: Path, requirements: list[str], python: str) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--platform",
            PLATFORM,
            "--implementation",
            "cp",
            "--python-version",
            python,
            "--dest",
            str(house),
            *requirements,
        ],
        check=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("house", type=Path)
    parser.add_argument("root_wheel", type=Path)
    parser.add_argument("--extras", default="")
    parser.add_argument("--python", action="append", default=[])
    parser.add_argument("--check-only", action="store_true")
    args = parser.parse_args()
    pythons = args.python or ["3.11", "3.12", "3.13"]
    extras = {e for e in args.extras.split(",") if e}
    root = parse_wheel_filename(args.root_wheel.name)[0]
    failed = False
    for python in pythons:
        for _ in range(10):
            missing, stray = resolve(args.house, root, extras, python)
            if not missing or args.check_only:
                break
            download(args.house, missing, python)
        if missing or stray:
            failed = True
            print(f"cp{python} win_amd64: missing {missing}, not wheels {stray}", file=sys.stderr)
        else:
            print(f"cp{python} win_amd64: every runtime dependency is a wheel")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

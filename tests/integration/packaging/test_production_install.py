"""A production install (``pip install .``, no extras) imports every module and runs the demo.

A module may fail to import only with ``adsync.extras.MissingExtra`` (one line naming
its extra), or be listed in ``TEST_ONLY`` with the test dependency it needs and why.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import run_python

pytestmark = pytest.mark.slow

# module -> why it may not import in a production install (test fixtures, not the product)
TEST_ONLY = {
    "adsync.testing.slapd": "pytest fixture around a real slapd (needs pytest)",
    "adsync.testing.samba_dc": "pytest fixture around a real Samba AD DC (needs pytest)",
    "adsync.testing.oim": "the OIM SPML fake parses SOAP with lxml (the test extra)",
}

IMPORT_ALL = r"""
import importlib, json, pkgutil, adsync
from adsync.extras import MissingExtra
out = {}
for info in pkgutil.walk_packages(adsync.__path__, "adsync."):
    if info.name.endswith(".__main__"):  # importing it runs the program (checked below)
        continue
    try:
        importlib.import_module(info.name)
        out[info.name] = "ok"
    except MissingExtra as exc:
        out[info.name] = "extra:" + exc.extra + ":" + str(exc)
    except BaseException as exc:
        out[info.name] = "error:" + type(exc).__name__ + ": " + str(exc).splitlines()[0]
print(json.dumps(out))
"""


def test_no_extra_is_installed(production_venv: Path) -> None:
    probe = run_python(
        production_venv,
        "import importlib.util as u; print(u.find_spec('bonsai'), u.find_spec('rich'))",
    )
    assert probe.stdout.split() == ["None", "None"], probe.stderr


def test_every_module_imports_without_extras(production_venv: Path) -> None:
    result = run_python(production_venv, IMPORT_ALL)
    assert result.returncode == 0, result.stderr[-2000:]
    outcomes: dict[str, str] = json.loads(result.stdout)
    assert "adsync.backends.ldap" in outcomes and "adsync.cli.doctor" in outcomes
    main_modules = run_python(production_venv, "import adsync.cli, adsync.winservice.runner")
    assert main_modules.returncode == 0, main_modules.stderr
    broken = {
        name: what
        for name, what in outcomes.items()
        if what.startswith("error:") and name not in TEST_ONLY
    }
    assert broken == {}
    for name, what in outcomes.items():
        if what.startswith("extra:"):
            extra, _, message = what[len("extra:") :].partition(":")
            assert "\n" not in message and f"adsync[{extra}]" in message, (name, message)
    stale = [name for name in TEST_ONLY if outcomes.get(name) == "ok"]
    assert stale == [], f"{stale} import fine now: drop them from TEST_ONLY"
    # the backends themselves load: the ldap one needs bonsai only when configured
    assert outcomes["adsync.backends.ldap"] == "ok"


def test_ldap_backend_configured_without_extra_is_one_line(
    production_venv: Path, tmp_path: Path
) -> None:
    config = tmp_path / "adsync.yaml"
    config.write_text(
        "backends:\n"
        "  directory:\n"
        "    type: ldap\n"
        "    url: ldaps://ldap.example.test\n"
        "    bind_dn: cn=adsync\n"
        "    bind_password: env:LDAP_PW\n"
        "    base_dn: dc=example,dc=test\n",
        encoding="utf-8",
    )
    adsync = production_venv.parent / "adsync"
    for command in (["check-config"], ["run"]):
        done = subprocess.run(
            [str(adsync), *command, "--config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        first = done.stderr.splitlines()[0]
        assert first == (
            f"{config}:2: backends.directory: the ldap backend needs the 'ldap' extra: "
            "pip install 'adsync[ldap]'"
        )
        assert "Traceback" not in done.stderr


def test_demo_runs_without_extras(production_venv: Path) -> None:
    """README command 1: a production install runs the demo (plain lines without rich)."""
    adsync = production_venv.parent / "adsync"
    done = subprocess.run(
        [str(adsync), "demo", "--non-interactive"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Result:" in done.stdout


def test_the_systemd_unit_template_is_packaged(production_venv: Path, tmp_path: Path) -> None:
    config = tmp_path / "adsync.yaml"
    config.write_text(
        "backends:\n  hr: {type: webhook, url: 'https://127.0.0.1:9/', secret: 'env:HR'}\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [str(production_venv.parent / "adsync"), "service", "unit", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ProtectSystem=strict" in done.stdout
    assert f"ExecStart={production_venv} -m adsync run --config {config}" in done.stdout

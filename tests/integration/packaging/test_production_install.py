"""A production install (``pip install .``, no extras) imports every module and runs the demo.

No module of the installed package may fail to import, ``adsync.testing`` included: what
needs an extra (bonsai; pytest and lxml for the test kit) checks for it when it is used and
fails with one line naming the extra (``adsync.extras.MissingExtra``). The one module that
is nothing but its extra (``adsync.demo.live``, rich's screen) raises that line on import.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from .conftest import run_python

pytestmark = pytest.mark.slow

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
    broken = {name: what for name, what in outcomes.items() if what.startswith("error:")}
    assert broken == {}
    for name, what in outcomes.items():
        if what.startswith("extra:"):
            extra, _, message = what[len("extra:") :].partition(":")
            assert "\n" not in message and f"adsync[{extra}]" in message, (name, message)
    # the backends and the test kit load: what needs an extra checks for it when used
    assert outcomes["adsync.backends.ldap"] == "ok"
    kit = {name: what for name, what in outcomes.items() if name.startswith("adsync.testing.")}
    assert "adsync.testing.samba_dc" in kit and set(kit.values()) == {"ok"}, kit


USE_TEST_KIT = r"""
from adsync.extras import MissingExtra
def attempt(use):
    try:
        use()
    except MissingExtra as exc:
        print(exc)
    else:
        print("no error")
from adsync.testing.oim import FakeOim
attempt(FakeOim)
import adsync.testing.slapd as slapd
attempt(lambda: slapd.slapd)
import adsync.testing.samba_dc as samba_dc
attempt(lambda: samba_dc.samba_template)
import adsync.testing.contract as contract  # the kit's class is there, with nothing to mark
test = contract.BackendContract.test_contract_delivered
print(contract.BackendContract.__name__, hasattr(test, "pytestmark"))
"""


def test_the_test_kit_without_its_extra_is_one_line_naming_it(production_venv: Path) -> None:
    result = run_python(production_venv, USE_TEST_KIT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == [
        "the OIM SPML fake (lxml) needs the 'testing' extra: pip install 'adsync[testing]'",
        "the slapd fixture needs the 'testing' extra: pip install 'adsync[testing]'",
        "the samba_template fixture needs the 'testing' extra: pip install 'adsync[testing]'",
        "BackendContract False",
    ]


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

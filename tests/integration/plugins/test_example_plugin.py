"""The plugin of docs/plugins.md, as an author would use it: files copied from the page,
installed with pip (its own pyproject and entry point), its tests run by a plain pytest
(pytest-asyncio in its default strict mode) — and adsync's own schema test still passes
with that third-party plugin installed beside it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "plugin_example"
FILE_MARK = "# file: "


def doc_files() -> dict[str, str]:
    """Each code block of the page whose first line is ``# file: PATH``, by PATH."""
    blocks = re.findall(r"```\w*\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    return {
        block.splitlines()[0][len(FILE_MARK) :]: block
        for block in blocks
        if block.startswith(FILE_MARK)
    }


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_the_example_is_the_page() -> None:
    """Every file of examples/plugin_example is on the page, as it is there."""
    files = doc_files()
    on_disk = {
        str(p.relative_to(EXAMPLE)): p.read_text(encoding="utf-8")
        for p in EXAMPLE.rglob("*")
        if p.is_file() and p.suffix in (".py", ".toml") and "__pycache__" not in p.parts
    }
    assert sorted(files) == sorted(on_disk)
    for path, text in on_disk.items():
        assert files[path] == text, f"{path} differs from its block in docs/plugins.md"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The plugin written from the page into a fresh project, then pip-installed into a
    target directory (the test environment itself stays untouched)."""
    base = tmp_path_factory.mktemp("plugin")
    project = base / "adsync-myiam"
    for path, text in doc_files().items():
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text, encoding="utf-8")
    site = base / "site"
    result = run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), "."],
        project,
        dict(os.environ),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "adsync_myiam").is_dir()
    shutil.rmtree(project / "src")  # the tests must import the installed package
    return project, site


def env_with(site: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(site)
    return env


def test_the_contract_kit_passes_in_strict_mode(installed: tuple[Path, Path]) -> None:
    project, site = installed
    result = run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA"],
        project,
        env_with(site),
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "asyncio: mode=Mode.STRICT" in out, out  # not auto mode: the kit marks itself
    summary = result.stdout.strip().splitlines()[-1]
    assert re.search(r"\b9 passed\b", summary) and "skipped" not in summary, summary
    passed = {line.rsplit("::", 1)[-1] for line in out.splitlines() if line.startswith("PASSED")}
    assert {
        "test_contract_delivered",
        "test_contract_rejected",
        "test_contract_unknown_user",
        "test_contract_unreachable_then_delivered",
        "test_contract_cancellation_is_safe",
        "test_contract_close_releases_connections",
        "test_contract_tls_verification_stays_on",
        "test_contract_policy_check",
        "test_the_entry_point_names_the_backend",
    } == passed


def test_operators_can_configure_the_installed_plugin(
    installed: tuple[Path, Path], tmp_path: Path
) -> None:
    _, site = installed
    config = tmp_path / "adsync.yaml"
    config.write_text(
        "backends:\n  iam:\n    type: myiam\n    url: https://iam.example.com\n"
        "    token: env:MYIAM_TOKEN\n",
        encoding="utf-8",
    )
    ok = run(
        [sys.executable, "-m", "adsync", "config", "check", "--config", str(config)],
        tmp_path,
        env_with(site),
    )
    assert (ok.returncode, ok.stdout.strip()) == (0, "OK: 1 backend (iam)"), ok.stderr
    config.write_text(
        "backends:\n  iam:\n    type: myiam\n    url: http://iam.example.com\n"
        "    token: env:MYIAM_TOKEN\n",
        encoding="utf-8",
    )
    bad = run(
        [sys.executable, "-m", "adsync", "config", "check", "--config", str(config)],
        tmp_path,
        env_with(site),
    )
    assert bad.returncode == 1 and "backends.iam" in bad.stderr and "https" in bad.stderr


def test_adsyncs_schema_test_passes_with_the_plugin_installed(
    installed: tuple[Path, Path],
) -> None:
    _, site = installed
    schema_test = ROOT / "tests" / "unit" / "config" / "test_example_and_schema.py"
    result = run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", str(schema_test)],
        ROOT,
        env_with(site),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    listed = run(
        [
            sys.executable,
            "-c",
            "from adsync.plugin import available_backend_types as a; print(a())",
        ],
        ROOT,
        env_with(site),
    )
    assert "'myiam'" in listed.stdout  # the plugin really was installed for that run

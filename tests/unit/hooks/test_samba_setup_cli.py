from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from adsync.cli import main
from adsync.hooks.smbconf import global_value

CONF = (
    "[global]\n\tnetbios name = DC1\n\tpassword hash gpg key ids = ABCDEF\n"
    "\n[sysvol]\n\tpath = /s\n"
)


def run(tmp_path: Path, *extra: str) -> tuple[str, Path, Path]:
    smb = tmp_path / "smb.conf"
    smb.write_text(CONF)
    config = tmp_path / "adsync.yaml"
    config.write_text("backends: {}\n")
    hook = tmp_path / "hook"
    args = ["samba", "setup", "--smb-conf", str(smb), "--config", str(config)]
    result = CliRunner().invoke(main, [*args, "--hook-script", str(hook), *extra])
    assert result.exit_code == 0, result.output
    return result.output, smb, hook


def test_prints_without_changing(tmp_path: Path) -> None:
    output, smb, hook = run(tmp_path)
    assert "check password script = " in output and "hook samba-check --config" in output
    assert "--cache-ldb-initialize" in output and f"--script={hook}" in output
    assert "ABCDEF   # already set" in output
    assert smb.read_text() == CONF and not hook.exists()


def test_apply_edits_smb_conf_and_writes_the_hook(tmp_path: Path) -> None:
    _, smb, hook = run(tmp_path, "--apply")
    value = global_value(smb.read_text(), "check password script")
    assert value is not None and value.endswith(f"hook samba-check --config {tmp_path}/adsync.yaml")
    assert (tmp_path / "smb.conf.bak").read_text() == CONF
    assert os.access(hook, os.X_OK) and "hook samba-sync --config" in hook.read_text()

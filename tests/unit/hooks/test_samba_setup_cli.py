"""`adsync samba setup` and `adsync samba baseline`, on files (no Samba needed)."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from adsync.cli import main
from adsync.hooks.install import encryption_keys
from adsync.hooks.smbconf import global_value
from adsync.hooks.sync_state import load_state

CONF = (
    "[global]\n\tnetbios name = DC1\n\tworkgroup = adsync\n"
    "\tpassword hash gpg key ids = ABCDEF\n\n[sysvol]\n\tpath = /s\n"
)


def run(
    tmp_path: Path, *extra: str, conf: str = CONF, code: int = 0, env: dict[str, str] | None = None
) -> tuple[str, Path, Path]:
    smb = tmp_path / "smb.conf"
    smb.write_text(conf)
    config = tmp_path / "adsync.yaml"
    if not config.exists():
        config.write_text(
            f"queue:\n  path: {tmp_path}/q/queue.db\nprecheck:\n  on_undecided: reject\n"
        )
    hooks = tmp_path / "hooks"
    args = ["samba", "setup", "--smb-conf", str(smb), "--config", str(config)]
    result = CliRunner().invoke(main, [*args, "--hook-dir", str(hooks), *extra], env=env)
    assert result.exit_code == code, result.output
    return result.output, smb, hooks


def test_prints_without_changing(tmp_path: Path) -> None:
    output, smb, hooks = run(tmp_path)
    check = (
        f"check password script = {hooks}/samba-check-hook --config {tmp_path}/adsync.yaml"
        " --on-undecided reject --domain ADSYNC"
    )
    assert check in output  # on_undecided from the config; domain = workgroup, upper case
    assert "samba baseline --config" in output
    assert "--cache-ldb-initialize" in output and f"--script={hooks}/samba-sync-hook" in output
    assert "ABCDEF   # already set" in output
    assert smb.read_text() == CONF and not hooks.exists()


def test_apply_edits_smb_conf_and_writes_working_hooks(tmp_path: Path) -> None:
    _, smb, hooks = run(tmp_path, "--apply", "--on-undecided", "accept")
    value = global_value(smb.read_text(), "check password script")
    assert value is not None
    argv = shlex.split(value)
    assert argv == [
        f"{hooks}/samba-check-hook", "--config", f"{tmp_path}/adsync.yaml",
        "--on-undecided", "accept", "--domain", "ADSYNC",
    ]  # fmt: skip
    assert global_value(smb.read_text(), "password hash gpg key ids") == "ABCDEF"
    assert (tmp_path / "smb.conf.bak").read_text() == CONF
    sync = (hooks / "samba-sync-hook").read_text()
    assert sync.splitlines()[0].endswith(" -IS")
    config = f"{tmp_path}/adsync.yaml"
    assert f"main(['samba-sync', '--config', '{config}', '--domain', 'ADSYNC', *sys" in sync
    # The check hook as Samba runs it (/bin/sh -c the line): config moved away → the line's
    # --on-undecided applies, loudly; with reject on the line the change is refused.
    (tmp_path / "adsync.yaml").rename(tmp_path / "moved.yaml")
    for on_undecided, expected in (("accept", 0), ("reject", 1)):
        line = value.replace("--on-undecided accept", f"--on-undecided {on_undecided}")
        done = subprocess.run(
            ["/bin/sh", "-c", line],
            input=b"Pass-w0rd!",
            capture_output=True,
            env={"SAMBA_CPS_ACCOUNT_NAME": "alice"},
            timeout=30,
            check=False,
        )
        assert done.returncode == expected, done.stderr
        assert b"cannot be read" in done.stderr and b"adsync.yaml" in done.stderr


def test_apply_without_a_gpg_key_stops_with_the_step(tmp_path: Path) -> None:
    conf = CONF.replace("\tpassword hash gpg key ids = ABCDEF\n", "")
    gnupg = tmp_path / "gnupg"
    gnupg.mkdir(mode=0o700)
    output, smb, hooks = run(tmp_path, "--apply", conf=conf, code=1, env={"GNUPGHOME": str(gnupg)})
    assert "--quick-gen-key" in output and "encr never" in output and "--passphrase ''" in output
    assert smb.read_text() == conf and not hooks.exists()


def test_apply_with_gpg_key_writes_it(tmp_path: Path) -> None:
    conf = CONF.replace("\tpassword hash gpg key ids = ABCDEF\n", "")
    _, smb, _ = run(tmp_path, "--apply", "--gpg-key", "0123456789ABCDEF", conf=conf)
    assert global_value(smb.read_text(), "password hash gpg key ids") == "0123456789ABCDEF"


def test_no_workgroup_stops(tmp_path: Path) -> None:
    output, _, _ = run(tmp_path, conf="[global]\n\tnetbios name = DC1\n", code=1)
    assert "workgroup" in output


def test_encryption_keys_from_gpg_colons() -> None:
    listing = (
        "sec:u:2048:1:2718F8A7CA9956EA:1796203663:::u:::ecEC:::+:::23::0:\n"
        "fpr:::::::::482DF05B7A51456F30BD4F772718F8A7CA9956EA:\n"
        "uid:u::::1796203663::4A04::x <x@y>::::::::::0:\n"
        "sec:u:2048:1:AAAA:1796203663:::u:::scSC:::+:::23::0:\n"  # sign only
        "fpr:::::::::BBBB:\n"
        "sec:r:2048:1:CCCC:1796203663:::u:::ecEC:::+:::23::0:\n"  # revoked
        "fpr:::::::::DDDD:\n"
    )
    assert encryption_keys(listing) == ["482DF05B7A51456F30BD4F772718F8A7CA9956EA"]


# A config has at least one backend.
ONE_BACKEND = "backends:\n  hr: {type: webhook, url: 'https://127.0.0.1:9/', secret: 'env:HR'}\n"


def test_baseline_command_records_now(tmp_path: Path) -> None:
    config = tmp_path / "adsync.yaml"
    config.write_text(f"queue:\n  path: {tmp_path}/q/queue.db\n" + ONE_BACKEND)
    result = CliRunner().invoke(main, ["samba", "baseline", "--config", str(config)])
    assert result.exit_code == 0, result.output
    state = load_state(str(tmp_path / "q"))
    assert state.baseline_ms is not None and state.initial_skipped == 0
    assert oct(os.stat(tmp_path / "q" / "samba-sync.state").st_mode & 0o777) == "0o600"
    assert "--cache-ldb-initialize" in result.output


@pytest.mark.parametrize("text", ["not: [closed\n", ""])
def test_baseline_with_a_bad_config_fails_clearly(tmp_path: Path, text: str) -> None:
    config = tmp_path / "adsync.yaml"
    if text:
        config.write_text("precheck:\n  on_undecided: maybe\n")
    result = CliRunner().invoke(main, ["samba", "baseline", "--config", str(config)])
    assert result.exit_code == 1 and "adsync.yaml" in result.output


def test_a_percent_in_a_path_is_refused(tmp_path: Path) -> None:
    percent = tmp_path / "50%"
    percent.mkdir()
    output, smb, _ = run(percent, "--apply", code=1)
    assert "substituted" in output and smb.read_text() == CONF

"""``adsync test``: no password argument, a warning naming the targets, ``--backend`` direct."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from adsync.testing.contract import sha256_hex
from adsync.testing.scim import FakeScim

TOKEN = "scim-cli-token"
PASSWORD = "Cl1-Test!pässword"


def write_config(tmp_path: Path, fake: FakeScim) -> Path:
    (tmp_path / "token").write_text(TOKEN, encoding="utf-8")
    config = tmp_path / "adsync.yaml"
    config.write_text(
        f"""
ingest:
  unix_socket: {tmp_path / "none.sock"}
  tcp: null
queue:
  path: {tmp_path / "queue.db"}
keys:
  path: {tmp_path / "master.key"}
metrics:
  listen: null
backends:
  idp:
    type: scim
    url: {fake.base_url}
    token: file:{tmp_path / "token"}
    allow_plain_http: true
  other:
    type: scim
    url: {fake.base_url}
    token: file:{tmp_path / "token"}
    allow_plain_http: true
""",
        encoding="utf-8",
    )
    return config


async def adsync(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "adsync",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_refuses_a_password_argument_without_echoing_it(tmp_path: Path) -> None:
    async with FakeScim(users=["jdoe"], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        code, out, err = await adsync("test", "--config", str(config), "jdoe", PASSWORD)
        assert code == 2
        assert "a password on the command line is refused" in err
        assert PASSWORD not in out + err
        assert fake.received == []  # nothing was sent


async def test_backend_delivers_to_that_target_only_and_warns(tmp_path: Path) -> None:
    async with FakeScim(users=["jdoe"], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        code, out, err = await adsync(
            "test",
            "--config",
            str(config),
            "--backend",
            "idp",
            "--password-stdin",
            "jdoe",
            stdin=PASSWORD.encode() + b"\n",
        )
        assert code == 0, out + err
        assert out.strip() == "idp: delivered: HTTP 204"
        assert "WARNING: this sets jdoe's password for real on: idp" in err
        assert "other" not in err
        assert fake.password_digests("patch") == [sha256_hex(PASSWORD)]
        assert PASSWORD not in out + err


async def test_backend_outcome_decides_the_exit_code(tmp_path: Path) -> None:
    async with FakeScim(users=["jdoe"], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        fake.reject("too short")
        code, out, _ = await adsync(
            "test",
            "--config",
            str(config),
            "--backend",
            "idp",
            "--password-stdin",
            "jdoe",
            stdin=PASSWORD.encode(),
        )
        assert code == 1
        assert out.startswith("idp: rejected: HTTP 400 invalidValue: too short")


async def test_unknown_backend_is_named(tmp_path: Path) -> None:
    async with FakeScim(users=["jdoe"], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        code, _, err = await adsync(
            "test",
            "--config",
            str(config),
            "--backend",
            "nope",
            "--password-stdin",
            "jdoe",
            stdin=PASSWORD.encode(),
        )
        assert code == 1
        assert "no backend named 'nope' (configured: idp, other)" in err
        assert fake.received == []


async def test_without_backend_the_warning_names_every_target(tmp_path: Path) -> None:
    async with FakeScim(users=["jdoe"], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        code, _, err = await adsync(
            "test", "--config", str(config), "--password-stdin", "jdoe", stdin=PASSWORD.encode()
        )
        assert "for real on: idp, other" in err
        assert code == 1 and "cannot reach the daemon" in err  # no daemon runs here
        assert PASSWORD not in err


@pytest.mark.parametrize("flag", ["--password", "-p"])
async def test_no_password_option_exists(tmp_path: Path, flag: str) -> None:
    async with FakeScim(users=["jdoe"], token=TOKEN) as fake:
        config = write_config(tmp_path, fake)
        code, out, err = await adsync("test", "--config", str(config), flag, PASSWORD, "jdoe")
        assert code == 2
        assert PASSWORD not in out + err

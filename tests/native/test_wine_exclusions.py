"""Accounts whose secrets are not user passwords, under wine against the fake daemon:
krbtgt, krbtgt_<n> (RODC), *$ (computers, trusts, gMSA) and the ExcludeAccounts patterns
are accepted by PasswordFilter without asking the daemon, whatever OnUndecided says, and
never leave the DLL as a CHANGE."""

from __future__ import annotations

import random

import lsa_wire as wire
from lsa_fakedaemon import FakeDaemon
from lsa_wine import Harness, WinePrefix, sha, winpath, write_changes, write_checks

from adsync.testing.leaks import REGISTRY


def random_secret(rng: random.Random, units: int = 120) -> str:
    """A machine/krbtgt secret as LSA hands it over: random UTF-16 code units, with lone
    surrogates and U+0000 in it, so it is not valid UTF-16."""
    cps = [rng.randrange(0, 0x10000) for _ in range(units)]
    cps[3], cps[10], cps[20] = 0xD800, 0x0000, 0xDFFF
    return "".join(chr(c) for c in cps)


def set_exclude_accounts(wine: WinePrefix, patterns: list[str]) -> None:
    """Adds the REG_MULTI_SZ value (hex(7): UTF-16LE strings, NUL-separated, NUL-ended)."""
    data = ("\0".join(patterns) + "\0\0").encode("utf-16-le")
    text = "\r\n".join(
        [
            "Windows Registry Editor Version 5.00",
            "",
            r"[HKEY_LOCAL_MACHINE\SOFTWARE\adsync\Filter]",
            '"ExcludeAccounts"=hex(7):' + ",".join(f"{b:02x}" for b in data),
            "",
        ]
    )
    reg = wine.logs / "exclude.reg"
    reg.write_bytes(b"\xff\xfe" + text.encode("utf-16-le"))  # a v5 file is UTF-16LE
    assert wine.run(["reg", "import", winpath(reg)], "reg-import-exclude") == 0


async def test_krbtgt_and_machine_secrets_accepted_without_asking(filter_setup, tmp_path) -> None:
    """OnUndecided=reject and a daemon that rejects everything: the excluded accounts are
    still accepted (never asked), the user is rejected (asked)."""
    rng = random.Random(0x5EED)
    user_pw = REGISTRY.password("User-Candidate-Pw-1")
    checks = [
        (True, "krbtgt", "", random_secret(rng)),  # the KDC key reset (New-KrbtgtKeys)
        (True, "krbtgt_12345", "", random_secret(rng)),  # an RODC's krbtgt
        (True, "HOST1$", "", random_secret(rng)),  # a computer's machine password
        (True, "CORP\\TRUST$", "", random_secret(rng)),
        (False, "alice", "Alice A", user_pw),
    ]
    with FakeDaemon(filter_setup.psk, verdict=1) as daemon:
        filter_setup.configure(daemon.port, OnUndecided="reject")
        h = Harness(filter_setup.wine, tmp_path)
        assert await h.run("init", "filter", winpath(write_checks(tmp_path / "k.txt", checks))) == 0
    assert daemon.errors == []
    assert [r for r, _ in h.filter_results()] == [1, 1, 1, 1, 0]
    assert [c["account"] for c in daemon.checks] == ["alice"]


async def test_no_frame_leaves_the_dll_for_excluded_accounts(filter_setup, tmp_path) -> None:
    rng = random.Random(7)
    secrets = [random_secret(rng) for _ in range(3)]
    only_excluded = [
        (1001, "HOST1$", secrets[0]),
        (502, "krbtgt_12345", secrets[1]),
        (502, "KRBTGT", secrets[2]),
    ]
    checks = [(True, a, "", p) for _, a, p in only_excluded]
    with FakeDaemon(filter_setup.psk, verdict=1) as daemon:
        filter_setup.configure(daemon.port, OnUndecided="reject")
        h = Harness(filter_setup.wine, tmp_path)
        assert (
            await h.run(
                "init",
                "filter",
                winpath(write_checks(tmp_path / "k.txt", checks)),
                "notify",
                winpath(write_changes(tmp_path / "c.txt", only_excluded)),
                "sleep",
                "1500",  # the worker would have connected and sent by now
            )
            == 0
        )
        received = bytes(daemon.received)
    assert [r for r, _ in h.filter_results()] == [1, 1, 1]
    assert len(h.notify_ns()) == 3
    # The worker's own start-up probe may run the handshake (it learns whether the daemon
    # is up); nothing else: no CHECK, no CHANGE, no account name in any byte sent.
    assert set(daemon.frame_types) <= {wire.HELLO, wire.AUTH}
    for _, account, _ in only_excluded:
        assert account.encode() not in received and account.encode("utf-16-le") not in received
    assert not filter_setup.spool_file.exists() or filter_setup.spool_file.stat().st_size == 0
    assert "change_not_captured" not in filter_setup.log_text()  # excluded, not dropped
    assert filter_setup.log_text().count("account_excluded") == 6


async def test_exclude_accounts_patterns_honoured(filter_setup, tmp_path) -> None:
    pw = {a: REGISTRY.password(f"Pattern-Pw-{a}-1") for a in ("svc_backup", "MSOL_ab12", "bob")}
    rows = [
        (1200, "SVC_Backup", pw["svc_backup"]),
        (1201, "msol_AB12", pw["MSOL_ab12"]),
        (1202, "bob", pw["bob"]),
        (1203, "WEB01$", pw["bob"]),
    ]
    checks = [(False, a, "", p) for _, a, p in rows]
    with FakeDaemon(filter_setup.psk, verdict=1) as daemon:
        filter_setup.configure(daemon.port, OnUndecided="reject")
        set_exclude_accounts(filter_setup.wine, ["svc_*", "MSOL_????", ""])
        h = Harness(filter_setup.wine, tmp_path)
        await h.start(
            "init",
            "filter",
            winpath(write_checks(tmp_path / "k.txt", checks)),
            "notify",
            winpath(write_changes(tmp_path / "c.txt", rows)),
            "wait",
            winpath(h.stop_file),
            "30",
        )
        seen = daemon.wait_changes(1, within=20)
        h.release()
        assert await h.wait() == 0
    assert daemon.errors == []
    assert [r for r, _ in h.filter_results()] == [1, 1, 0, 1]
    assert [c["account"] for c in daemon.checks] == ["bob"]
    assert [(c.account, c.password_sha256) for c in seen] == [("bob", sha(pw["bob"]))]
    assert "exclude_accounts_loaded code=0 count=2" in filter_setup.log_text()

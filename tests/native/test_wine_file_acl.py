"""The DLL refuses a key file (or its directory) that anyone but SYSTEM, Administrators and
its own account may open: a planted or readable PSK would let anyone pose as the daemon.
Under wine a file's DACL follows its Unix mode (a world-readable file carries an Everyone
read entry), which is what these tests vary."""

from __future__ import annotations

from lsa_wine import Harness


async def test_world_readable_key_file_is_refused(filter_setup, tmp_path) -> None:
    filter_setup.configure(1)
    filter_setup.key_file.chmod(0o644)
    h = Harness(filter_setup.wine, tmp_path)
    assert await h.run("init") == 0
    assert h.lines()[1] == ["init", "0"]  # InitializeChangeNotify: FALSE
    assert "key_file_unusable code=-19" in filter_setup.log_text()  # ADSY_E_ACL_BROAD


async def test_key_in_a_world_open_directory_is_refused(filter_setup, tmp_path) -> None:
    filter_setup.configure(1)
    filter_setup.root.chmod(0o777)  # anyone could replace filter.key
    try:
        h = Harness(filter_setup.wine, tmp_path, name="open-dir")
        assert await h.run("init") == 0
    finally:
        filter_setup.root.chmod(0o700)
    assert h.lines()[1] == ["init", "0"]
    assert "key_file_unusable code=-19" in filter_setup.log_text()


async def test_private_key_file_is_accepted(filter_setup, tmp_path) -> None:
    filter_setup.configure(1)
    h = Harness(filter_setup.wine, tmp_path, name="private")
    assert await h.run("init") == 0
    assert h.lines()[1] == ["init", "1"]
    assert "key_file_unusable" not in filter_setup.log_text()


async def test_dpapi_protected_key_file_is_used(filter_setup, tmp_path) -> None:
    """install.ps1 stores the PSK as a DPAPI blob (machine scope); the DLL opens it. Under
    wine DPAPI round-trips without a real machine key: this shows the format and the call,
    not the protection."""
    import subprocess

    from lsa_fakedaemon import FakeDaemon
    from lsa_wine import NATIVE, winpath, write_changes

    from adsync.testing.leaks import REGISTRY

    exe = tmp_path / "psk_protect.exe"
    subprocess.run(
        [
            "x86_64-w64-mingw32-gcc",
            "-municode",
            "-O2",
            "-o",
            str(exe),
            str(NATIVE / "tests" / "psk_protect.c"),
            "-lcrypt32",
        ],
        check=True,
    )
    blob = tmp_path / "blob.key"
    rc = filter_setup.wine.run([str(exe), winpath(filter_setup.key_file), winpath(blob)], "protect")
    assert rc == 0
    sealed = blob.read_bytes()
    assert len(sealed) > 32 and filter_setup.psk not in sealed
    filter_setup.key_file.write_bytes(sealed)
    pw = REGISTRY.password("Dpapi-Key-Pw-1")
    with FakeDaemon(filter_setup.psk) as daemon:  # the daemon holds the raw key
        filter_setup.configure(daemon.port)
        h = Harness(filter_setup.wine, tmp_path, name="dpapi")
        await h.start(
            "init",
            "notify",
            winpath(write_changes(tmp_path / "c.txt", [(5, "dora", pw)])),
            "wait",
            winpath(h.stop_file),
            "30",
        )
        seen = daemon.wait_changes(1, within=20)
        h.release()
        assert await h.wait() == 0
    assert h.lines()[1] == ["init", "1"]
    assert [c.account for c in seen] == ["dora"]  # the handshake proved the same key

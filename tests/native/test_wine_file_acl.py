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

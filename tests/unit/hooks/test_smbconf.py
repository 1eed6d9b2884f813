from __future__ import annotations

from adsync.hooks.smbconf import global_value, set_global

CONF = """# Global parameters
[global]
\tnetbios name = DC1
\tCheck Password  Script = /old/script
\tpassword hash gpg key ids = ABC

[sysvol]
\tpath = /var/lib/samba/sysvol
\tcheck password script = not-global
"""


def test_global_value_ignores_case_spacing_and_other_sections() -> None:
    assert global_value(CONF, "check password script") == "/old/script"
    assert global_value(CONF, "password hash gpg key ids") == "ABC"
    assert global_value(CONF, "workgroup") is None


def test_set_global_replaces_and_appends_in_global() -> None:
    out = set_global(CONF, {"check password script": "/new hook", "log level": "1"})
    assert global_value(out, "check password script") == "/new hook"
    assert global_value(out, "log level") == "1"
    assert "\tcheck password script = not-global" in out  # other sections untouched
    assert out.index("log level") < out.index("[sysvol]")
    assert out.count("heck") == 2


def test_set_global_is_idempotent() -> None:
    once = set_global(CONF, {"check password script": "/new"})
    assert set_global(once, {"check password script": "/new"}) == once


def test_set_global_without_a_global_section() -> None:
    out = set_global("[homes]\n\tbrowseable = No\n", {"check password script": "/x"})
    assert out.startswith("[global]\n\tcheck password script = /x\n")
    assert "[homes]" in out


def test_appended_line_stays_before_the_blank_line_ending_global() -> None:
    out = set_global("[global]\n\ta = 1\n\n[homes]\n", {"b": "2"})
    assert out == "[global]\n\ta = 1\n\tb = 2\n\n[homes]\n"

"""install.ps1 / uninstall.ps1 cannot run here (no PowerShell): these checks read the
scripts and hold them to what docs/windows.md promises — every write is behind
ShouldProcess (so -WhatIf covers registry writes too), nothing is removed silently, a re-run
writes only given settings and absent defaults, and the complexity-policy statement is the
corrected one. The behaviour itself is checked by hand (docs/windows.md, "Installer and
files")."""

from __future__ import annotations

import re
from pathlib import Path

from lsa_wine import NATIVE

WRITES = re.compile(
    r"\b(Set-ItemProperty|New-Item|Remove-Item|Copy-Item|Set-Acl|Move-Item|"
    r"WriteAllBytes|::Move|CreateDirectory|New-ItemProperty)\b"
)
GUARDS = ("ShouldProcess", "Invoke-Step")


def unguarded_writes(path: Path) -> list[str]:
    """Lines that write without an enclosing ShouldProcess / Invoke-Step block."""
    stack: list[bool] = []
    bad = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        guarded_here = any(g in code for g in GUARDS)
        if WRITES.search(code) and not guarded_here and not any(stack):
            bad.append(f"{path.name}:{n}: {line.strip()}")
        for ch in code:
            if ch == "{":
                stack.append(guarded_here)
            elif ch == "}" and stack:
                stack.pop()
    return bad


def test_every_write_honours_whatif() -> None:
    for name in ("install.ps1", "uninstall.ps1"):
        assert unguarded_writes(NATIVE / name) == []


def test_the_check_itself_finds_an_unguarded_write(tmp_path: Path) -> None:
    script = tmp_path / "x.ps1"
    script.write_text(
        "if ($PSCmdlet.ShouldProcess($k, 'set')) {\n  Set-ItemProperty -Path $k\n}\n"
        "Set-ItemProperty -Path $k -Name Port -Value 1\n"
    )
    assert unguarded_writes(script) == ["x.ps1:4: Set-ItemProperty -Path $k -Name Port -Value 1"]


def test_uninstall_never_hides_a_failure() -> None:
    text = (NATIVE / "uninstall.ps1").read_text()
    removals = [line for line in text.splitlines() if "Remove-Item" in line]
    assert removals and not [line for line in removals if "SilentlyContinue" in line]
    assert "exit 1" in text


def test_rerun_keeps_operator_settings() -> None:
    text = (NATIVE / "install.ps1").read_text()
    # settings are written from the merge of bound parameters and absent values only
    assert "Get-SettingsToWrite $existing $PSBoundParameters $defaults" in text
    assert not re.search(r"Set-ItemProperty -Path \$settingsKey -Name \w+ -Value \$\w+ ", text)


def test_complexity_and_lsa_protection_statements() -> None:
    text = (NATIVE / "install.ps1").read_text()
    assert "is called only while" not in text
    assert 'whatever the "Passwords must meet complexity requirements" policy says' in text
    assert "RunAsPPL" in text and "Microsoft" in text and "Authenticode" in text
    docs = (NATIVE.parents[1] / "docs" / "windows.md").read_text()
    assert "PasswordFilter is called only while" not in docs


def test_install_registers_the_event_log_source_the_dll_reports_to() -> None:
    """ReportEventW under a source with no registry key still logs, but the DLL's caps,
    faults and kill switch must be findable by source: install.ps1 registers exactly the
    name win32/log.c passes to RegisterEventSourceW, under the Application log, behind
    ShouldProcess (covered by the -WhatIf check above); uninstall -Purge removes it."""
    source = re.search(r'#define EVENT_SOURCE L"(\w+)"', (NATIVE / "win32" / "log.c").read_text())
    assert source
    install = (NATIVE / "install.ps1").read_text()
    assert f"$PackageName = '{source.group(1)}'" in install
    key = r"HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\$PackageName"
    assert f'$eventKey = "{key}"' in install
    assert re.search(r"New-Item -Path \$eventKey", install)
    assert re.search(r"-Name 'TypesSupported' -Value 7 -Type DWord", install)
    uninstall = (NATIVE / "uninstall.ps1").read_text()
    purge = uninstall[uninstall.index("if ($Purge)") :]
    assert f'$eventKey = "{key}"' in purge and "Remove-Item -Path $eventKey" in purge

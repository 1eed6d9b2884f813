<#
.SYNOPSIS
  Removes adsyncflt from LSA's Notification Packages (other entries untouched).

.DESCRIPTION
  LSASS keeps a loaded package until reboot, so the DLL file is removed only when it is
  not in use (otherwise the script says so; run it again after the reboot). Changes still
  in the spool would be lost with the spool: the script refuses to remove files while the
  spool (or a set-aside adsyncflt.spool.bad-* file) holds records, unless -Force is given.
  The key file, the settings and the Event Log source "adsyncflt" are kept unless -Purge is
  given (the daemon may still use the key; the source keeps old events readable). Every step that fails is reported, and the script then exits with code 1: it never
  says "removed" for something that is still there. -WhatIf shows every step.
#>
#Requires -RunAsAdministrator
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [switch]$Purge,
    [switch]$Force
)
$ErrorActionPreference = 'Stop'
$PackageName = 'adsyncflt'
$failures = New-Object System.Collections.Generic.List[string]

function Invoke-Step([string]$Target, [string]$Action, [scriptblock]$Do) {
    if (-not $PSCmdlet.ShouldProcess($Target, $Action)) { return }
    try {
        & $Do
        Write-Host "${Action}: $Target"
    } catch {
        $failures.Add("${Action} ${Target}: $($_.Exception.Message)")
    }
}

$lsaKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa'
$current = @((Get-ItemProperty -Path $lsaKey -Name 'Notification Packages' -ErrorAction SilentlyContinue).'Notification Packages')
$kept = [string[]]@($current | Where-Object { $_ -and $_ -ne $PackageName })
if ($kept.Count -ne @($current | Where-Object { $_ }).Count) {
    Invoke-Step "$lsaKey\Notification Packages" "remove $PackageName (now: $($kept -join ', '))" {
        Set-ItemProperty -Path $lsaKey -Name 'Notification Packages' -Value $kept -Type MultiString
    }
} else {
    Write-Host "$PackageName was not in Notification Packages."
}

$settingsKey = 'HKLM:\SOFTWARE\adsync\Filter'
$spoolDir = Join-Path $env:ProgramData 'adsync\spool'
$keyFile = Join-Path $env:ProgramData 'adsync\filter.key'
if (Test-Path $settingsKey) {
    $s = Get-ItemProperty -Path $settingsKey
    if ($s.SpoolDir) { $spoolDir = [Environment]::ExpandEnvironmentVariables($s.SpoolDir) }
    if ($s.KeyFile) { $keyFile = [Environment]::ExpandEnvironmentVariables($s.KeyFile) }
}
$spools = @(Get-ChildItem -LiteralPath $spoolDir -Filter 'adsyncflt.spool*' -File -ErrorAction SilentlyContinue |
        Where-Object { $_.Length -gt 0 })
if ($spools -and -not $Force) {
    Write-Warning ("These spool files still hold undelivered changes: $($spools.FullName -join ', '). " +
        "Start the daemon and wait until they are empty (a set-aside *.bad-* file: " +
        "'adsync filter spool replay FILE'), or use -Force.")
    exit 2
}

$dll = Join-Path $env:SystemRoot "System32\$PackageName.dll"
if (Test-Path -LiteralPath $dll) {
    if ($PSCmdlet.ShouldProcess($dll, 'delete')) {
        try {
            Remove-Item -LiteralPath $dll -Force
            Write-Host "Removed $dll"
        } catch {
            $failures.Add("$dll is still loaded by LSASS (or locked): reboot, then run this script again to delete it.")
        }
    }
}
if ($Purge) {
    if (Test-Path -LiteralPath $spoolDir) {
        Invoke-Step $spoolDir 'delete the spool folder' { Remove-Item -LiteralPath $spoolDir -Recurse -Force }
    }
    if (Test-Path -LiteralPath $keyFile) {
        Invoke-Step $keyFile 'delete the key file' { Remove-Item -LiteralPath $keyFile -Force }
    }
    if (Test-Path $settingsKey) {
        Invoke-Step $settingsKey 'delete the settings' { Remove-Item -Path $settingsKey -Recurse -Force }
    }
    $eventKey = "HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\$PackageName"
    if (Test-Path $eventKey) {
        Invoke-Step $eventKey 'unregister the Event Log source' { Remove-Item -Path $eventKey -Recurse -Force }
    }
}
if ($failures.Count) {
    foreach ($f in $failures) { Write-Error $f -ErrorAction Continue }
    Write-Warning "Uninstall incomplete: $($failures.Count) step(s) failed (above)."
    exit 1
}
Write-Warning 'REBOOT this domain controller: LSASS unloads notification packages only at boot.'

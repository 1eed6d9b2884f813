<#
.SYNOPSIS
  Removes adsyncflt from LSA's Notification Packages (other entries untouched).

.DESCRIPTION
  LSASS keeps a loaded package until reboot, so the DLL file is removed only when it is
  not in use (otherwise the script says so; run it again after the reboot). Changes still
  in the spool would be lost with the spool: the script refuses to remove files while the
  spool is not empty unless -Force is given. The key file and settings are kept unless
  -Purge is given (the daemon may still use the key).
#>
#Requires -RunAsAdministrator
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [switch]$Purge,
    [switch]$Force
)
$ErrorActionPreference = 'Stop'
$PackageName = 'adsyncflt'

$lsaKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa'
$current = @((Get-ItemProperty -Path $lsaKey -Name 'Notification Packages' -ErrorAction SilentlyContinue).'Notification Packages')
$kept = [string[]]@($current | Where-Object { $_ -and $_ -ne $PackageName })
if ($kept.Count -ne @($current | Where-Object { $_ }).Count) {
    Set-ItemProperty -Path $lsaKey -Name 'Notification Packages' -Value $kept -Type MultiString
    Write-Host "Notification Packages: $($kept -join ', ')"
} else {
    Write-Host "$PackageName was not in Notification Packages."
}

$settingsKey = 'HKLM:\SOFTWARE\adsync\Filter'
$spoolDir = Join-Path $env:ProgramData 'adsync\spool'
$keyFile = Join-Path $env:ProgramData 'adsync\filter.key'
if (Test-Path $settingsKey) {
    $s = Get-ItemProperty -Path $settingsKey
    if ($s.SpoolDir) { $spoolDir = $s.SpoolDir }
    if ($s.KeyFile) { $keyFile = $s.KeyFile }
}
$spool = Join-Path $spoolDir 'adsyncflt.spool'
if ((Test-Path -LiteralPath $spool) -and (Get-Item -LiteralPath $spool).Length -gt 0 -and -not $Force) {
    Write-Warning "The spool $spool still holds undelivered changes: start the daemon and wait until it is empty, or use -Force."
    return
}

$dll = Join-Path $env:SystemRoot "System32\$PackageName.dll"
if (Test-Path -LiteralPath $dll) {
    try {
        Remove-Item -LiteralPath $dll -Force
        Write-Host "Removed $dll"
    } catch {
        Write-Warning "$dll is still loaded by LSASS: reboot, then run this script again to delete it."
    }
}
if ($Purge) {
    Remove-Item -LiteralPath $spoolDir -Recurse -Force -ErrorAction SilentlyContinue
    Remove-Item -LiteralPath $keyFile -Force -ErrorAction SilentlyContinue
    Remove-Item -Path $settingsKey -Recurse -Force -ErrorAction SilentlyContinue
    Write-Host 'Removed the spool, the key file and the settings.'
}
Write-Warning 'REBOOT this domain controller: LSASS unloads notification packages only at boot.'

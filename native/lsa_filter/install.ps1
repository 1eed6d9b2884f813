<#
.SYNOPSIS
  Installs the adsync LSA notification package (adsyncflt.dll) on a domain controller.

.DESCRIPTION
  1. Copies adsyncflt.dll to %SystemRoot%\System32.
  2. Creates the pre-shared key file (32 random bytes) if it does not exist, and sets its
     ACL to SYSTEM and Administrators only (inheritance off). The daemon reads the same file
     (ingest.psk_file).
  3. Writes the filter's settings under HKLM\SOFTWARE\adsync\Filter (existing values that
     are not given as parameters are kept).
  4. Adds "adsyncflt" to HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Notification Packages
     (REG_MULTI_SZ) without removing or reordering the other entries.
  LSASS loads notification packages at boot: a reboot is required.

.EXAMPLE
  .\install.ps1 -DllPath .\adsyncflt.dll -Port 17635
#>
#Requires -RunAsAdministrator
[CmdletBinding(SupportsShouldProcess = $true)]
param(
    [string]$DllPath = (Join-Path $PSScriptRoot 'adsyncflt.dll'),
    [string]$KeyFile = (Join-Path $env:ProgramData 'adsync\filter.key'),
    [ValidateRange(1, 65535)][int]$Port = 17635,
    [string]$SpoolDir = (Join-Path $env:ProgramData 'adsync\spool'),
    [ValidateRange(100, 30000)][int]$DeadlineMs = 2000,
    [ValidateSet('accept', 'reject')][string]$OnUndecided = 'accept',
    [ValidateSet('error', 'warning', 'info', 'debug')][string]$LogLevel = 'warning'
)
$ErrorActionPreference = 'Stop'
$PackageName = 'adsyncflt'
$SystemSid = New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-18'
$AdminsSid = New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'

if (-not [Environment]::Is64BitProcess) {
    throw 'Run this script in 64-bit PowerShell: the DLL is 64-bit and must go to the real System32.'
}
if (-not (Test-Path -LiteralPath $DllPath -PathType Leaf)) {
    throw "DLL not found: $DllPath"
}

# 1. the DLL
$target = Join-Path $env:SystemRoot "System32\$PackageName.dll"
if ($PSCmdlet.ShouldProcess($target, 'copy adsyncflt.dll')) {
    try {
        Copy-Item -LiteralPath $DllPath -Destination $target -Force
    } catch {
        throw "Cannot replace $target (LSASS keeps a loaded package open: uninstall, reboot, then install). $_"
    }
}

# 2. the pre-shared key, SYSTEM and Administrators only
$keyDir = Split-Path -Parent $KeyFile
New-Item -ItemType Directory -Force -Path $keyDir | Out-Null
if (-not (Test-Path -LiteralPath $KeyFile)) {
    $bytes = New-Object byte[] 32
    $rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()
    try { $rng.GetBytes($bytes) } finally { $rng.Dispose() }
    # Create the file empty with the restricted ACL first, then write the key into it.
    New-Item -ItemType File -Path $KeyFile | Out-Null
    $created = $true
} else {
    $created = $false
}
$acl = New-Object System.Security.AccessControl.FileSecurity
$acl.SetAccessRuleProtection($true, $false)   # no inherited entries
foreach ($sid in @($SystemSid, $AdminsSid)) {
    $rule = New-Object System.Security.AccessControl.FileSystemAccessRule($sid, 'FullControl', 'Allow')
    $acl.AddAccessRule($rule)
}
$acl.SetOwner($AdminsSid)
Set-Acl -LiteralPath $KeyFile -AclObject $acl
if ($created) {
    [System.IO.File]::WriteAllBytes($KeyFile, $bytes)
    [Array]::Clear($bytes, 0, $bytes.Length)
}
if ((Get-Item -LiteralPath $KeyFile).Length -ne 32) {
    throw "$KeyFile must hold exactly 32 bytes (the daemon writes raw bytes, not text)."
}

# 3. settings
$settingsKey = 'HKLM:\SOFTWARE\adsync\Filter'
if (-not (Test-Path $settingsKey)) { New-Item -Path $settingsKey -Force | Out-Null }
Set-ItemProperty -Path $settingsKey -Name Port -Value $Port -Type DWord
Set-ItemProperty -Path $settingsKey -Name KeyFile -Value $KeyFile -Type String
Set-ItemProperty -Path $settingsKey -Name SpoolDir -Value $SpoolDir -Type String
Set-ItemProperty -Path $settingsKey -Name DeadlineMs -Value $DeadlineMs -Type DWord
Set-ItemProperty -Path $settingsKey -Name OnUndecided -Value $OnUndecided -Type String
Set-ItemProperty -Path $settingsKey -Name LogLevel -Value $LogLevel -Type String

# 4. Notification Packages: append, never clobber
$lsaKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa'
$current = @((Get-ItemProperty -Path $lsaKey -Name 'Notification Packages' -ErrorAction SilentlyContinue).'Notification Packages')
$current = @($current | Where-Object { $_ -and $_.Trim() })
if ($current -contains $PackageName) {
    Write-Host "Notification Packages already lists ${PackageName}: $($current -join ', ')"
} else {
    $new = [string[]]($current + $PackageName)
    Set-ItemProperty -Path $lsaKey -Name 'Notification Packages' -Value $new -Type MultiString
    Write-Host "Notification Packages: $($new -join ', ')"
}

Write-Host ''
Write-Host "Installed. The daemon must use the same key file ($KeyFile) and ingest.tcp 127.0.0.1:$Port."
Write-Host 'PasswordFilter is called only while "Passwords must meet complexity requirements" is enabled.'
Write-Warning 'REBOOT this domain controller: LSASS loads notification packages only at boot.'

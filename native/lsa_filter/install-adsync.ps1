<#
.SYNOPSIS
  Installs the adsync daemon on a Windows domain controller from the offline bundle
  (no internet, no compiler): a venv from the bundled wheels, the config, the service.

.DESCRIPTION
  1. Finds CPython 3.11, 3.12 or 3.13 (the py launcher, or -Python).
  2. Creates a venv in -InstallDir and installs adsync from .\wheels only (pip --no-index).
  3. Creates -ConfigDir with a protected ACL (SYSTEM and Administrators, no inheritance).
     If -ConfigPath does not exist, writes a skeleton there and STOPS: add your backends,
     then run this script again. An existing config is never overwritten.
  4. Checks the config, registers the Windows service (adsync service install) and starts it.
  5. With -WithFilter, runs .\install.ps1 (the LSA filter DLL; a reboot is needed after it).
  6. Runs adsync doctor: every check, one line each. The filter checks pass only after the
     filter is installed and the DC rebooted.

.EXAMPLE
  .\install-adsync.ps1                       # first run: writes the config skeleton
  notepad C:\ProgramData\adsync\adsync.yaml  # add backends
  .\install-adsync.ps1 -WithFilter           # second run: venv, service, filter, doctor
#>
#Requires -RunAsAdministrator
[CmdletBinding()]
param(
    [string]$InstallDir = (Join-Path $env:ProgramFiles 'adsync'),
    [string]$ConfigDir = (Join-Path $env:ProgramData 'adsync'),
    [string]$ConfigPath = (Join-Path (Join-Path $env:ProgramData 'adsync') 'adsync.yaml'),
    [string]$Python = '',
    [ValidateRange(1, 65535)][int]$Port = 17635,
    [switch]$WithFilter
)
$ErrorActionPreference = 'Stop'
$Wheels = Join-Path $PSScriptRoot 'wheels'
$Extras = (Get-Content -LiteralPath (Join-Path $PSScriptRoot 'EXTRAS.txt') -Raw).Trim()
$SystemSid = New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-18'
$AdminsSid = New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'

function Invoke-Checked([string]$Exe, [string[]]$Arguments) {
    & $Exe @Arguments
    if ($LASTEXITCODE -ne 0) { throw "$Exe $($Arguments -join ' ') failed (exit $LASTEXITCODE)" }
}

function Set-ProtectedAcl([string]$Path, [bool]$IsDirectory) {
    if ($IsDirectory) {
        $acl = New-Object System.Security.AccessControl.DirectorySecurity
        $inherit = 'ContainerInherit, ObjectInherit'
    } else {
        $acl = New-Object System.Security.AccessControl.FileSecurity
        $inherit = 'None'
    }
    $acl.SetAccessRuleProtection($true, $false)   # no inherited entries
    foreach ($sid in @($SystemSid, $AdminsSid)) {
        $rule = New-Object System.Security.AccessControl.FileSystemAccessRule(
            $sid, 'FullControl', $inherit, 'None', 'Allow')
        $acl.AddAccessRule($rule)
    }
    $acl.SetOwner($AdminsSid)
    Set-Acl -LiteralPath $Path -AclObject $acl
}

# 1. Python 3.11-3.13 (the py launcher knows every installed version)
if (-not $Python -and (Get-Command py -ErrorAction SilentlyContinue)) {
    $ErrorActionPreference = 'Continue'   # py writes to stderr for a version it lacks
    foreach ($v in @('3.13', '3.12', '3.11')) {
        $found = & py "-$v" -c 'import sys; print(sys.executable)' 2>$null
        if ($LASTEXITCODE -eq 0 -and $found) { $Python = "$found".Trim(); break }
    }
    $ErrorActionPreference = 'Stop'
}
if (-not $Python) {
    throw 'No CPython 3.11, 3.12 or 3.13 found: install one for all users (python.org installer), or pass -Python C:\path\python.exe'
}
$version = (& $Python -c 'import sys; print("%d.%d" % sys.version_info[:2])').Trim()
if (@('3.11', '3.12', '3.13') -notcontains $version) {
    throw "$Python is Python $version; the bundle has wheels for 3.11, 3.12 and 3.13"
}
Write-Host "Python $version at $Python"

# 2. the venv, from the bundled wheels only. A running service holds the venv's files
#    open (Windows cannot replace a loaded .pyd): stop it first when upgrading.
$existing = Get-Service -Name 'adsync' -ErrorAction SilentlyContinue
if ($existing -and $existing.Status -eq 'Running') {
    Write-Host 'Stopping the adsync service to upgrade its venv.'
    Stop-Service -Name 'adsync'
}
$venv = Join-Path $InstallDir 'venv'
$venvPython = Join-Path $venv 'Scripts\python.exe'
$adsync = Join-Path $venv 'Scripts\adsync.exe'
if (-not (Test-Path -LiteralPath $venvPython)) { Invoke-Checked $Python @('-m', 'venv', $venv) }
$spec = if ($Extras) { "adsync[$Extras]" } else { 'adsync' }
Invoke-Checked $venvPython @('-m', 'pip', 'install', '--no-index', '--find-links', $Wheels,
    '--disable-pip-version-check', '--upgrade', $spec)
Write-Host "adsync installed in $venv"

# 3. the config directory (protected ACL) and, the first time, a skeleton
New-Item -ItemType Directory -Force -Path $ConfigDir | Out-Null
Set-ProtectedAcl $ConfigDir $true
if (-not (Test-Path -LiteralPath $ConfigPath)) {
    $keyFile = Join-Path $ConfigDir 'filter.key'
    $skeleton = @"
# adsync on a Windows DC (docs/windows.md, docs/configuration.md for every key).
ingest:
  unix_socket: null
  tcp: 127.0.0.1:$Port                 # the filter's Port (install.ps1 -Port)
  psk_file: $keyFile                   # the filter's KeyFile
queue:
  path: $(Join-Path $ConfigDir 'queue.db')
keys:
  provider: dpapi                      # machine-scope DPAPI, created at first start
  path: $(Join-Path $ConfigDir 'master.dpapi')
backends:
  # Add one entry per target system, e.g.:
  # idp:
  #   type: scim
  #   url: https://idp.example.com/scim/v2
  #   token: file:$(Join-Path $ConfigDir 'scim.secret')
"@
    [System.IO.File]::WriteAllText($ConfigPath, $skeleton, (New-Object System.Text.UTF8Encoding $false))
    Set-ProtectedAcl $ConfigPath $false
    Write-Host ''
    Write-Warning "Wrote the config skeleton $ConfigPath. Add your backends, then run this script again."
    exit 0
}
Set-ProtectedAcl $ConfigPath $false

# 4. check, register and start the service
Invoke-Checked $adsync @('check-config', '--config', $ConfigPath)
if ($existing) {
    Write-Host 'The adsync service is already installed; starting it with the new venv.'
} else {
    Invoke-Checked $adsync @('service', 'install', '--config', $ConfigPath)
}
Invoke-Checked $adsync @('service', 'start')

# 5. the LSA filter, when asked for
if ($WithFilter) {
    $psk = (Select-String -LiteralPath $ConfigPath -Pattern '^\s*psk_file:\s*(\S+)').Matches
    $keyFile = if ($psk) { $psk[0].Groups[1].Value } else { Join-Path $ConfigDir 'filter.key' }
    & (Join-Path $PSScriptRoot 'install.ps1') -DllPath (Join-Path $PSScriptRoot 'adsyncflt.dll') -Port $Port -KeyFile $keyFile
}

# 6. check everything
Write-Host ''
& $adsync doctor --config $ConfigPath
if ($LASTEXITCODE -ne 0) {
    Write-Warning 'adsync doctor found problems (above). The filter checks pass after install.ps1 and a reboot.'
    exit $LASTEXITCODE
}

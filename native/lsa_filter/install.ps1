<#
.SYNOPSIS
  Installs the adsync LSA notification package (adsyncflt.dll) on a domain controller.

.DESCRIPTION
  1. Checks LSA protection (RunAsPPL): with it on, LSASS loads only plug-ins that carry a
     Microsoft signature (LSA plug-in file signing); an Authenticode signature of our own is
     not enough. The script says so, and what the DLL's signature is.
  2. Creates %ProgramData%\adsync (or the key file's folder) with a protected DACL: SYSTEM
     and Administrators full control, inheritance off, owner Administrators. An existing
     folder or key file that is a reparse point, is owned by someone else or lets anyone
     else in is REFUSED with the command that fixes it: a key others can plant or read lets
     them pose as the daemon.
  3. Creates the pre-shared key (32 random bytes) protected with DPAPI (machine scope,
     entropy "adsync/1 filter psk") if it does not exist. An existing raw 32-byte key is
     kept as it is (the daemon may still read it raw).
  4. Copies adsyncflt.dll to %SystemRoot%\System32.
  5. Writes HKLM\SOFTWARE\adsync\Filter: only the values given as parameters, and the
     defaults of values that do not exist yet. A re-run (an upgrade) keeps every value the
     operator set, so a fail-closed OnUndecided=reject never turns back into accept.
  6. Registers the Application Event Log source "adsyncflt" (HKLM\SYSTEM\CurrentControlSet\
     Services\EventLog\Application\adsyncflt), which the DLL reports dropped changes, an
     unusable spool, faults and the kill switch to.
  7. Adds "adsyncflt" to HKLM\SYSTEM\CurrentControlSet\Control\Lsa\Notification Packages
     (REG_MULTI_SZ) without removing or reordering the other entries.
  Every write honours -WhatIf (registry writes included). LSASS loads notification
  packages at boot: a reboot is required. The "Passwords must meet complexity
  requirements" policy does not matter: LSA calls every registered package either way (the
  policy only switches the built-in complexity check).

.EXAMPLE
  .\install.ps1 -DllPath .\adsyncflt.dll -Port 17635
  .\install.ps1 -OnUndecided reject -ExcludeAccounts 'svc_*','MSOL_*'
  .\install.ps1 -WhatIf
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
    [ValidateSet('error', 'warning', 'info', 'debug')][string]$LogLevel = 'warning',
    [string[]]$ExcludeAccounts
)
$ErrorActionPreference = 'Stop'
$PackageName = 'adsyncflt'
$SystemSid = New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-18'
$AdminsSid = New-Object System.Security.Principal.SecurityIdentifier 'S-1-5-32-544'
$Trusted = @($SystemSid.Value, $AdminsSid.Value)
$PskEntropy = [System.Text.Encoding]::ASCII.GetBytes('adsync/1 filter psk')
$FixAcl = 'icacls "{0}" /setowner *S-1-5-32-544 /T && icacls "{0}" /inheritance:r /grant:r *S-1-5-18:(OI)(CI)F *S-1-5-32-544:(OI)(CI)F /T'

if (-not [Environment]::Is64BitProcess) {
    throw 'Run this script in 64-bit PowerShell: the DLL is 64-bit and must go to the real System32.'
}
if (-not (Test-Path -LiteralPath $DllPath -PathType Leaf)) {
    throw "DLL not found: $DllPath"
}

# --- the decisions, one place each ------------------------------------------------------

# A SID's account name for messages (the SID itself when it no longer resolves).
function Get-PrincipalName([string]$Sid) {
    try {
        return (New-Object System.Security.Principal.SecurityIdentifier $Sid).Translate(
            [System.Security.Principal.NTAccount]).Value
    } catch { return $Sid }
}

# Why a path must not hold the filter's secrets, or $null when it may (same rules as the
# DLL's core/acl.c: reparse point, owner, every allow entry SYSTEM or Administrators).
function Get-UnsafeReason([string]$Path, [bool]$RequireProtected) {
    $item = Get-Item -LiteralPath $Path -Force
    if ($item.Attributes -band [IO.FileAttributes]::ReparsePoint) {
        return 'it is a reparse point (symbolic link, junction or mount point)'
    }
    $acl = Get-Acl -LiteralPath $Path
    $owner = $acl.GetOwner([System.Security.Principal.SecurityIdentifier]).Value
    if ($Trusted -notcontains $owner) { return "it is owned by $(Get-PrincipalName $owner)" }
    if ($RequireProtected -and -not $acl.AreAccessRulesProtected) {
        return 'it inherits entries from its parent (inheritance is on)'
    }
    foreach ($rule in $acl.GetAccessRules($true, $true, [System.Security.Principal.SecurityIdentifier])) {
        if ($rule.AccessControlType -eq 'Allow' -and $Trusted -notcontains $rule.IdentityReference.Value) {
            return "it grants $($rule.FileSystemRights) to $(Get-PrincipalName $rule.IdentityReference.Value)"
        }
    }
    return $null
}

function New-ProtectedDirectorySecurity {
    $acl = New-Object System.Security.AccessControl.DirectorySecurity
    $acl.SetAccessRuleProtection($true, $false)   # inheritance off, nothing copied
    foreach ($sid in @($SystemSid, $AdminsSid)) {
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule(
                    $sid, 'FullControl', 'ContainerInherit,ObjectInherit', 'None', 'Allow')))
    }
    $acl.SetOwner($AdminsSid)
    return $acl
}

# A folder for secrets: created protected, or refused when it exists and is not.
function Initialize-SecretDirectory([string]$Dir) {
    if (Test-Path -LiteralPath $Dir) {
        $why = Get-UnsafeReason $Dir $true
        if ($why) {
            throw "Refusing to use $Dir for the filter's key and spool: $why. Check who created it; if it is yours, fix it with:`n  $($FixAcl -f $Dir)"
        }
        return
    }
    if ($PSCmdlet.ShouldProcess($Dir, 'create with a protected DACL (SYSTEM, Administrators)')) {
        $parent = Split-Path -Parent $Dir
        if (-not (Test-Path -LiteralPath $parent)) { New-Item -ItemType Directory -Path $parent | Out-Null }
        # Created with its final DACL in one call: never reachable with an inherited one.
        $security = New-ProtectedDirectorySecurity
        if ($PSVersionTable.PSEdition -eq 'Core') {   # .NET (Core): the ACL extension method
            [System.IO.FileSystemAclExtensions]::Create((New-Object System.IO.DirectoryInfo $Dir), $security)
        } else {                                      # Windows PowerShell 5.1: .NET Framework
            [System.IO.Directory]::CreateDirectory($Dir, $security) | Out-Null
        }
        $why = Get-UnsafeReason $Dir $true
        if ($why) { throw "Created $Dir but its ACL is not as set: $why" }
    }
}

# The settings a run writes: given parameters always, defaults only where absent.
function Get-SettingsToWrite($Existing, $Bound, $Defaults) {
    $write = [ordered]@{}
    foreach ($name in $Defaults.Keys) {
        if ($Bound.ContainsKey($name)) { $write[$name] = $Bound[$name] }
        elseif ($null -eq $Existing -or $null -eq $Existing.$name) { $write[$name] = $Defaults[$name] }
    }
    return $write
}

# --- 1. LSA protection ------------------------------------------------------------------
$lsaKey = 'HKLM:\SYSTEM\CurrentControlSet\Control\Lsa'
$lsa = Get-ItemProperty -Path $lsaKey
$ppl = @($lsa.RunAsPPL, $lsa.RunAsPPLBoot) | Where-Object { $_ -in 1, 2 }
$sig = Get-AuthenticodeSignature -LiteralPath $DllPath
Write-Host "adsyncflt.dll signature: $($sig.Status) $($sig.SignerCertificate.Subject)"
if ($ppl) {
    Write-Warning ("LSA protection is ON (RunAsPPL). LSASS then loads only plug-ins signed by " +
        "Microsoft through LSA plug-in file signing (Partner Center hardware dashboard, EV certificate); " +
        "an Authenticode signature of your own is NOT enough. Unless adsyncflt.dll carries that " +
        "signature, LSASS will not load it and no password will be synchronised (see docs/windows.md, " +
        "'LSA protection'; audit first with AuditLevel=8, CodeIntegrity events 3065/3066).")
}

# --- 2. the folder and 3. the key -------------------------------------------------------
$keyDir = Split-Path -Parent $KeyFile
Initialize-SecretDirectory $keyDir
if (Test-Path -LiteralPath $KeyFile) {
    $why = Get-UnsafeReason $KeyFile $false
    if ($why) {
        throw "Refusing the existing key file ${KeyFile}: $why. A key others could plant or read lets them pose as the daemon. Delete it (the daemon and the filter then need a new one) or fix it with:`n  $($FixAcl -f $keyDir)"
    }
    Write-Host "Keeping the existing key file $KeyFile"
} elseif ($PSCmdlet.ShouldProcess($KeyFile, 'create the pre-shared key (DPAPI, machine scope)')) {
    Add-Type -AssemblyName System.Security
    $bytes = New-Object byte[] 32
    $rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()
    try { $rng.GetBytes($bytes) } finally { $rng.Dispose() }
    $blob = [System.Security.Cryptography.ProtectedData]::Protect(
        $bytes, $PskEntropy, [System.Security.Cryptography.DataProtectionScope]::LocalMachine)
    [Array]::Clear($bytes, 0, $bytes.Length)
    # Written under a private name in the protected folder (it inherits the DACL), then
    # moved into place: Move fails rather than replace a key someone created meanwhile.
    $tmp = Join-Path $keyDir ('.filter.key.' + [guid]::NewGuid().ToString('n'))
    [System.IO.File]::WriteAllBytes($tmp, $blob)
    [System.IO.File]::Move($tmp, $KeyFile)
}

# --- 4. the DLL -------------------------------------------------------------------------
$target = Join-Path $env:SystemRoot "System32\$PackageName.dll"
if ($PSCmdlet.ShouldProcess($target, 'copy adsyncflt.dll')) {
    try {
        Copy-Item -LiteralPath $DllPath -Destination $target -Force
    } catch {
        throw "Cannot replace $target (LSASS keeps a loaded package open: uninstall, reboot, then install). $_"
    }
}

# --- 5. settings: the operator's values survive a re-run ---------------------------------
$settingsKey = 'HKLM:\SOFTWARE\adsync\Filter'
$defaults = [ordered]@{
    Port = $Port; KeyFile = $KeyFile; SpoolDir = $SpoolDir; DeadlineMs = $DeadlineMs
    OnUndecided = $OnUndecided; LogLevel = $LogLevel
}
$types = @{ Port = 'DWord'; DeadlineMs = 'DWord'; ExcludeAccounts = 'MultiString' }
$existing = if (Test-Path $settingsKey) { Get-ItemProperty -Path $settingsKey } else { $null }
$write = Get-SettingsToWrite $existing $PSBoundParameters $defaults
if ($PSBoundParameters.ContainsKey('ExcludeAccounts')) {  # no default: absent means none
    $write['ExcludeAccounts'] = [string[]]$ExcludeAccounts
}
if (-not (Test-Path $settingsKey) -and $PSCmdlet.ShouldProcess($settingsKey, 'create key')) {
    New-Item -Path $settingsKey -Force | Out-Null
}
foreach ($name in $write.Keys) {
    $type = if ($types.ContainsKey($name)) { $types[$name] } else { 'String' }
    if ($PSCmdlet.ShouldProcess("$settingsKey\$name", "set to $($write[$name] -join ', ')")) {
        Set-ItemProperty -Path $settingsKey -Name $name -Value $write[$name] -Type $type
    }
}
$kept = @($defaults.Keys | Where-Object { -not $write.Contains($_) })
if ($kept) { Write-Host "Kept the existing settings: $($kept -join ', ')" }

# --- 6. the Event Log source the DLL reports to (RegisterEventSourceW "adsyncflt") --------
# The message file is .NET Framework's EventLogMessages.dll, as EventLog.CreateEventSource
# registers it: it maps every event id to "%1", the DLL's one string. Without it the event
# is still logged, with Event Viewer's "description ... cannot be found" preamble.
$eventKey = "HKLM:\SYSTEM\CurrentControlSet\Services\EventLog\Application\$PackageName"
$messageFile = Join-Path $env:SystemRoot 'Microsoft.NET\Framework64\v4.0.30319\EventLogMessages.dll'
if (-not (Test-Path $eventKey) -and $PSCmdlet.ShouldProcess($eventKey, 'register the Event Log source')) {
    New-Item -Path $eventKey -Force | Out-Null
}
if ($PSCmdlet.ShouldProcess("$eventKey\TypesSupported", 'set to 7 (error, warning, information)')) {
    Set-ItemProperty -Path $eventKey -Name 'TypesSupported' -Value 7 -Type DWord
}
if ((Test-Path -LiteralPath $messageFile) -and
    $PSCmdlet.ShouldProcess("$eventKey\EventMessageFile", "set to $messageFile")) {
    Set-ItemProperty -Path $eventKey -Name 'EventMessageFile' -Value $messageFile -Type ExpandString
}

# --- 7. Notification Packages: append, never clobber ------------------------------------
$current = @($lsa.'Notification Packages' | Where-Object { $_ -and $_.Trim() })
if ($current -contains $PackageName) {
    Write-Host "Notification Packages already lists ${PackageName}: $($current -join ', ')"
} elseif ($PSCmdlet.ShouldProcess("$lsaKey\Notification Packages", "append $PackageName")) {
    $new = [string[]]($current + $PackageName)
    Set-ItemProperty -Path $lsaKey -Name 'Notification Packages' -Value $new -Type MultiString
    Write-Host "Notification Packages: $($new -join ', ')"
}

Write-Host ''
Write-Host "Installed. The daemon must use the same key file ($KeyFile) and ingest.tcp 127.0.0.1:$Port."
Write-Host 'PasswordFilter and PasswordChangeNotify are called whatever the "Passwords must meet complexity requirements" policy says.'
Write-Warning 'REBOOT this domain controller: LSASS loads notification packages only at boot.'

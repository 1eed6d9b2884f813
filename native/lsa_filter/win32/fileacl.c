/* Gathers what core/acl.c decides on: is the path a reparse point, who owns it, whom its
 * DACL lets in. Trusted: SYSTEM, BUILTIN\Administrators and the process's own user (SYSTEM
 * inside LSASS; the test user under wine). */
#include "internal.h"

#include <aclapi.h>

#include "../core/acl.h"

#define MAX_ACES 64

static int sid_is(PSID sid, WELL_KNOWN_SID_TYPE type)
{
    BYTE buf[SECURITY_MAX_SID_SIZE];
    DWORD n = sizeof buf;
    return CreateWellKnownSid(type, NULL, buf, &n) && EqualSid(sid, (PSID)buf);
}

static int sid_is_self(PSID sid)
{
    HANDLE tok;
    BYTE buf[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
    DWORD n = 0;
    int same = 0;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok))
        return 0;
    if (GetTokenInformation(tok, TokenUser, buf, sizeof buf, &n))
        same = EqualSid(sid, ((TOKEN_USER *)buf)->User.Sid);
    CloseHandle(tok);
    return same;
}

static int trusted(PSID sid)
{
    return sid && IsValidSid(sid) &&
           (sid_is(sid, WinLocalSystemSid) || sid_is(sid, WinBuiltinAdministratorsSid) ||
            sid_is_self(sid));
}

static int is_allow(BYTE type)
{
    return type == ACCESS_ALLOWED_ACE_TYPE || type == ACCESS_ALLOWED_OBJECT_ACE_TYPE ||
           type == ACCESS_ALLOWED_CALLBACK_ACE_TYPE ||
           type == ACCESS_ALLOWED_CALLBACK_OBJECT_ACE_TYPE || type == ACCESS_ALLOWED_COMPOUND_ACE_TYPE;
}

int adsy_check_secret_path(const WCHAR *path)
{
    adsy_ace_info aces[MAX_ACES];
    adsy_sec_info info = {0, 0, 0, 0, aces};
    DWORD attrs = GetFileAttributesW(path);
    if (attrs == INVALID_FILE_ATTRIBUTES)
        return (int)GetLastError();
    info.reparse_point = (attrs & FILE_ATTRIBUTE_REPARSE_POINT) != 0;
    PSID owner = NULL;
    PACL dacl = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    DWORD rc = GetNamedSecurityInfoW(path, SE_FILE_OBJECT,
                                     OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION,
                                     &owner, NULL, &dacl, NULL, &sd);
    if (rc != ERROR_SUCCESS)
        return (int)rc;
    info.owner_trusted = trusted(owner);
    info.has_dacl = dacl != NULL;
    int verdict = ADSY_OK;
    for (DWORD i = 0; dacl && i < dacl->AceCount; i++) {
        ACE_HEADER *h = NULL;
        if (i >= MAX_ACES || !GetAce(dacl, i, (void **)&h)) {
            verdict = ADSY_E_ACL_BROAD; /* cannot be read whole: not trusted */
            break;
        }
        aces[i].allow = is_allow(h->AceType);
        aces[i].mask = aces[i].allow ? ((ACCESS_ALLOWED_ACE *)h)->Mask : 0;
        /* the plain allow entry's SID; other allow types are never trusted */
        aces[i].trusted = h->AceType == ACCESS_ALLOWED_ACE_TYPE &&
                          trusted((PSID) & ((ACCESS_ALLOWED_ACE *)h)->SidStart);
        info.ace_count = i + 1;
    }
    if (verdict == ADSY_OK)
        verdict = adsy_secret_path_verdict(&info);
    LocalFree(sd);
    return verdict;
}

int adsy_check_secret_file(const WCHAR *path)
{
    WCHAR dir[MAX_PATH];
    int rc = adsy_check_secret_path(path);
    if (rc != ADSY_OK)
        return rc;
    lstrcpynW(dir, path, MAX_PATH);
    WCHAR *cut = NULL;
    for (WCHAR *p = dir; *p; p++)
        if (*p == L'\\' || *p == L'/')
            cut = p;
    if (!cut || cut == dir || cut[-1] == L':')
        return ADSY_OK; /* a drive's root: nothing of ours to check */
    *cut = 0;
    return adsy_check_secret_path(dir);
}

/* The pre-shared key file: checked (owner, DACL, no reparse point: fileacl.c), then read.
 * On a DC it is a DPAPI blob (machine scope, entropy "adsync/1 filter psk") written by
 * install.ps1; a file of exactly 32 bytes is the raw key (as the daemon writes it on Linux,
 * and as the wine tests use it). */
#include "internal.h"

#include <wincrypt.h>

#define PSK_FILE_MAX 4096

static const char PSK_ENTROPY[] = "adsync/1 filter psk";

static int unprotect(const uint8_t *blob, DWORD n, uint8_t out[32])
{
    DATA_BLOB in = {n, (BYTE *)blob}, ent = {sizeof PSK_ENTROPY - 1, (BYTE *)PSK_ENTROPY};
    DATA_BLOB plain = {0, NULL};
    if (!CryptUnprotectData(&in, NULL, &ent, NULL, NULL, CRYPTPROTECT_UI_FORBIDDEN, &plain))
        return (int)GetLastError();
    int rc = plain.cbData == 32 ? ADSY_OK : ADSY_E_FIELDLEN;
    if (rc == ADSY_OK)
        memcpy(out, plain.pbData, 32);
    SecureZeroMemory(plain.pbData, plain.cbData);
    LocalFree(plain.pbData);
    return rc;
}

int adsy_psk_load(const WCHAR *path, uint8_t out[32])
{
    int rc = adsy_check_secret_file(path); /* a planted or readable key: refused */
    if (rc != ADSY_OK)
        return rc;
    HANDLE h = CreateFileW(path, GENERIC_READ, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return (int)GetLastError();
    static uint8_t buf[PSK_FILE_MAX + 1]; /* InitializeChangeNotify only: one caller */
    DWORD got = 0;
    BOOL ok = ReadFile(h, buf, sizeof buf, &got, NULL);
    CloseHandle(h);
    if (!ok || got == 0 || got > PSK_FILE_MAX)
        rc = ADSY_E_LENGTH;
    else if (got == 32)
        memcpy(out, buf, 32);
    else
        rc = unprotect(buf, got, out);
    SecureZeroMemory(buf, sizeof buf);
    return rc;
}

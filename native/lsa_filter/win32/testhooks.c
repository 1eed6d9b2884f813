/* Test hooks, compiled into build/adsyncflt_test.dll only (never into adsyncflt.dll;
 * tests/native/test_wine_lsass_safety.py checks the release DLL has none of these names).
 * They let the wine tests reproduce what a real DC's hardware does and wine cannot:
 *   ADSY_TEST_STALL_FILE=<path>  while the file exists, every spool write (with the spool
 *                                lock held) and the spool's start-up check wait - a disk
 *                                that stopped answering;
 *   account "adsy-test-fault"    PasswordChangeNotify / PasswordFilter fault (an access
 *                                violation in this DLL's code) - for the fault guard. */
#include "internal.h"

#ifdef ADSY_TEST_HOOKS
void adsy_test_stall(void)
{
    WCHAR path[MAX_PATH];
    DWORD n = GetEnvironmentVariableW(L"ADSY_TEST_STALL_FILE", path, MAX_PATH);
    if (n == 0 || n >= MAX_PATH)
        return;
    while (GetFileAttributesW(path) != INVALID_FILE_ATTRIBUTES)
        Sleep(10);
}

int *volatile adsy_test_null;

void adsy_test_crash(void)
{
    *adsy_test_null = 1;
}

int adsy_test_is_fault(const UNICODE_STRING *a)
{
    static const WCHAR name[] = L"adsy-test-fault";
    size_t len = sizeof name / sizeof name[0] - 1;
    return a && a->Buffer && a->Length == len * 2 && memcmp(a->Buffer, name, len * 2) == 0;
}
#endif

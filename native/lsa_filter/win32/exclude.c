/* Accounts whose secrets are not user passwords (krbtgt, krbtgt_*, *$) and the operator's
 * ExcludeAccounts patterns (REG_MULTI_SZ under HKLM\SOFTWARE\adsync\Filter, read once in
 * InitializeChangeNotify). The matching itself is the core's (core/exclude.c): no lock, no
 * allocation, no system call on LSASS's thread; the `account_excluded` debug line goes into
 * the log ring (adsy_log) and the worker writes it out. */
#include "internal.h"

#include "../core/exclude.h"

#define MAX_VALUE_UNITS 32768u

static adsy_exclusions g_excl; /* written once before the exports use it, then read-only */
static volatile LONG64 g_excluded;

void adsy_exclusions_load(void)
{
    DWORD bytes = MAX_VALUE_UNITS * sizeof(WCHAR);
    WCHAR *buf = HeapAlloc(GetProcessHeap(), HEAP_ZERO_MEMORY, bytes + 2 * sizeof(WCHAR));
    adsy_excl_init(&g_excl);
    if (!buf) {
        adsy_log(ADSY_LOG_ERROR, "exclude_accounts_unread", ERROR_OUTOFMEMORY, 0);
        return;
    }
    LONG rc = RegGetValueW(HKEY_LOCAL_MACHINE, L"SOFTWARE\\adsync\\Filter", L"ExcludeAccounts",
                           RRF_RT_REG_MULTI_SZ, NULL, buf, &bytes);
    if (rc == ERROR_SUCCESS) {
        int n = adsy_excl_load_multisz(&g_excl, (const uint16_t *)buf, bytes / sizeof(WCHAR));
        if (n < 0)
            adsy_log(ADSY_LOG_ERROR, "exclude_accounts_truncated", n, g_excl.count);
        else
            adsy_log(ADSY_LOG_INFO, "exclude_accounts_loaded", 0, (unsigned long long)n);
    } else if (rc != ERROR_FILE_NOT_FOUND) {
        adsy_log(ADSY_LOG_ERROR, "exclude_accounts_unread", rc, 0);
    }
    HeapFree(GetProcessHeap(), 0, buf);
}

/* which: 0 PasswordFilter, 1 PasswordChangeNotify (the log's code). */
int adsy_account_is_excluded(const UNICODE_STRING *account, int which)
{
    if (!account || !account->Buffer || account->Length < 2)
        return 0;
    if (!adsy_account_excluded(&g_excl, (const uint16_t *)account->Buffer, account->Length / 2))
        return 0;
    LONG64 n = InterlockedIncrement64(&g_excluded);
    adsy_log(ADSY_LOG_DEBUG, "account_excluded", which, (unsigned long long)n);
    return 1;
}

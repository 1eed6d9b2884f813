/* Settings from HKLM\SOFTWARE\adsync\Filter, each with a safe default and clamped to a
 * sane range, so a missing or wrong value never stops password changes. */
#include "internal.h"

#include <wchar.h>

#define KEY_PATH L"SOFTWARE\\adsync\\Filter"

static DWORD get_dword(HKEY k, const WCHAR *name, DWORD def, DWORD lo, DWORD hi)
{
    DWORD v = 0, sz = sizeof v;
    if (!k || RegGetValueW(k, NULL, name, RRF_RT_REG_DWORD, NULL, &v, &sz) != ERROR_SUCCESS)
        return def;
    if (v < lo)
        return lo;
    if (v > hi)
        return hi;
    return v;
}

/* REG_SZ or REG_EXPAND_SZ (expanded); the default is expanded too. */
static void get_str(HKEY k, const WCHAR *name, const WCHAR *def, WCHAR *out, DWORD cap)
{
    WCHAR raw[MAX_PATH];
    DWORD sz = sizeof raw;
    const WCHAR *src = def;
    if (k && RegGetValueW(k, NULL, name, RRF_RT_REG_SZ | RRF_RT_REG_EXPAND_SZ | RRF_NOEXPAND,
                          NULL, raw, &sz) == ERROR_SUCCESS)
        src = raw;
    DWORD n = ExpandEnvironmentStringsW(src, out, cap);
    if (n == 0 || n > cap)
        wcsncpy(out, def, cap - 1), out[cap - 1] = 0;
}

void adsy_settings_load(adsy_settings *s)
{
    HKEY k = NULL;
    if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, KEY_PATH, 0, KEY_READ, &k) != ERROR_SUCCESS)
        k = NULL;
    s->port = get_dword(k, L"Port", 17635, 1, 65535);
    get_str(k, L"KeyFile", L"%ProgramData%\\adsync\\filter.key", s->key_file, MAX_PATH);
    s->deadline_ms = get_dword(k, L"DeadlineMs", 2000, 100, 30000);
    WCHAR v[32];
    get_str(k, L"OnUndecided", L"accept", v, 32);
    s->on_undecided_accept = _wcsicmp(v, L"reject") != 0;
    get_str(k, L"OnUndecidedSet", s->on_undecided_accept ? L"accept" : L"reject", v, 32);
    s->on_undecided_set_accept = _wcsicmp(v, L"reject") != 0;
    get_str(k, L"SpoolDir", L"%ProgramData%\\adsync\\spool", s->spool_dir, MAX_PATH);
    get_str(k, L"LogLevel", L"warning", v, 32);
    s->log_level = !_wcsicmp(v, L"error")  ? ADSY_LOG_ERROR
                 : !_wcsicmp(v, L"info")   ? ADSY_LOG_INFO
                 : !_wcsicmp(v, L"debug")  ? ADSY_LOG_DEBUG
                                           : ADSY_LOG_WARNING;
    get_str(k, L"LogFile", L"%ProgramData%\\adsync\\adsyncflt.log", s->log_file, MAX_PATH);
    s->queue_capacity = get_dword(k, L"QueueCapacity", 1024, 64, 8192);
    s->backoff_initial_ms = get_dword(k, L"BackoffInitialMs", 1000, 10, 600000);
    s->backoff_max_ms = get_dword(k, L"BackoffMaxMs", 60000, s->backoff_initial_ms, 3600000);
    s->connect_timeout_ms = get_dword(k, L"ConnectTimeoutMs", 2000, 100, 60000);
    s->ack_timeout_ms = get_dword(k, L"AckTimeoutMs", 15000, 1000, 300000);
    s->spool_after_ms = get_dword(k, L"SpoolAfterMs", 1000, 50, s->ack_timeout_ms);
    s->spool_max_records = get_dword(k, L"SpoolMaxRecords", 100000, 1, 10000000);
    s->spool_max_age_s = get_dword(k, L"SpoolMaxAgeSeconds", 604800, 60, 31536000);
    if (k)
        RegCloseKey(k);
}

/* The kill switch. Reading the registry on every call would put a registry query (a
 * wineserver round trip under wine, a kernel call on Windows) on LSASS's hot path; instead
 * a watcher thread keeps g_disabled equal to the value: it re-reads it whenever the key
 * changes (RegNotifyChangeKeyValue) and at least every WATCH_POLL_MS (a key deleted and
 * created again by an installer is reopened). Each call reads the flag: no lock, no
 * system call. The watcher touches nothing but the registry. */
#define WATCH_POLL_MS 500

static volatile LONG g_disabled;

static int read_disabled(HKEY *k)
{
    DWORD v = 0, sz = sizeof v, type = 0;
    LONG rc = *k ? RegQueryValueExW(*k, L"Disabled", NULL, &type, (BYTE *)&v, &sz)
                 : ERROR_KEY_DELETED;
    if (rc == ERROR_KEY_DELETED || rc == ERROR_INVALID_HANDLE) {
        if (*k)
            RegCloseKey(*k);
        *k = NULL;
        if (RegOpenKeyExW(HKEY_LOCAL_MACHINE, KEY_PATH, 0, KEY_QUERY_VALUE | KEY_NOTIFY, k) !=
            ERROR_SUCCESS)
            *k = NULL;
        sz = sizeof v;
        rc = *k ? RegQueryValueExW(*k, L"Disabled", NULL, &type, (BYTE *)&v, &sz)
                : ERROR_FILE_NOT_FOUND;
    }
    return rc == ERROR_SUCCESS && type == REG_DWORD && sz == sizeof v && v != 0;
}

static DWORD WINAPI watch_main(LPVOID arg)
{
    HANDLE changed = (HANDLE)arg;
    HKEY k = NULL;
    for (;;) {
        if (k)
            RegNotifyChangeKeyValue(k, FALSE, REG_NOTIFY_CHANGE_LAST_SET, changed, TRUE);
        LONG now = read_disabled(&k);
        if (InterlockedExchange(&g_disabled, now) != now)
            adsy_log(ADSY_LOG_WARNING | ADSY_LOG_EVENTLOG, "kill_switch", now, 0);
        WaitForSingleObject(changed, WATCH_POLL_MS);
    }
    return 0;
}

void adsy_settings_watch(void)
{
    HKEY k = NULL;
    InterlockedExchange(&g_disabled, read_disabled(&k)); /* right from the first call */
    if (k)
        RegCloseKey(k);
    HANDLE changed = CreateEventW(NULL, FALSE, FALSE, NULL);
    HANDLE t = changed ? CreateThread(NULL, 0, watch_main, changed, 0, NULL) : NULL;
    if (t)
        CloseHandle(t);
    else
        adsy_log(ADSY_LOG_ERROR, "settings_watch_failed", (long)GetLastError(), 0);
}

int adsy_settings_disabled(void)
{
    return g_disabled != 0;
}

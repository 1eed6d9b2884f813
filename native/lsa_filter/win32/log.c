/* The filter's log: one line per event, "<utc> <level> <event> code=<n> count=<n>".
 * The signature admits only a constant event name and two numbers, so no code path can
 * write a password, an account or a reason text into it.
 *
 * adsy_log never touches a file: it records the event into a lock-free ring (no lock, no
 * system call: LSASS's threads call it). The worker drains the ring (adsy_log_flush): it
 * opens the log file once per drain, appends, closes; entries marked ADSY_LOG_EVENTLOG
 * also go to the Application Event Log (source "adsyncflt"). A full ring drops the event
 * and the worker logs how many were dropped (`log_events_dropped`). */
#include "internal.h"

#include <stdio.h>

#define EVENT_SOURCE L"adsyncflt"

static adsy_logring g_ring;
static WCHAR g_log_path[MAX_PATH];
static int g_log_level = ADSY_LOG_WARNING;
static volatile LONG g_log_ready;
static HANDLE g_evsrc;

void adsy_log_init(const adsy_settings *s)
{
    lstrcpynW(g_log_path, s->log_file, MAX_PATH);
    g_log_level = s->log_level;
    if (InterlockedCompareExchange(&g_log_ready, 1, 0) == 0)
        adsy_logring_init(&g_ring);
}

void adsy_log(int level, const char *event, long code, unsigned long long count)
{
    int lvl = level & 0x0F;
    if (!g_log_ready || (lvl > g_log_level && !(level & ADSY_LOG_EVENTLOG)))
        return;
    adsy_logent e = {adsy_unix_ms(), event, code, count, level};
    adsy_logring_put(&g_ring, &e);
    adsy_worker_wake(); /* a system call only when the worker sleeps */
}

static int format(char *line, size_t cap, const adsy_logent *e)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    FILETIME ft;
    SYSTEMTIME t;
    uint64_t ft100 = e->unix_ms * 10000u + 116444736000000000ull;
    ft.dwLowDateTime = (DWORD)ft100;
    ft.dwHighDateTime = (DWORD)(ft100 >> 32);
    FileTimeToSystemTime(&ft, &t);
    int n = snprintf(line, cap, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ %s %s code=%ld count=%llu\r\n",
                     t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond, t.wMilliseconds,
                     names[e->level & 3], e->event, e->code, e->count);
    if (n <= 0)
        return 0;
    return n >= (int)cap ? (int)cap - 1 : n;
}

/* Event Log: one string "adsyncflt: <event> code=<n> count=<n>"; the event id says what
 * it is (1: error, 2: warning, 3: information). */
static void report_event(const adsy_logent *e)
{
    WCHAR msg[160];
    if (!g_evsrc)
        g_evsrc = RegisterEventSourceW(NULL, EVENT_SOURCE);
    if (!g_evsrc)
        return;
    int lvl = e->level & 0x0F;
    WORD type = lvl == ADSY_LOG_ERROR     ? EVENTLOG_ERROR_TYPE
              : lvl == ADSY_LOG_WARNING ? EVENTLOG_WARNING_TYPE
                                        : EVENTLOG_INFORMATION_TYPE;
    int n = _snwprintf(msg, sizeof msg / sizeof msg[0] - 1, L"adsyncflt: %hs code=%ld count=%llu",
                       e->event, e->code, e->count);
    msg[n < 0 ? sizeof msg / sizeof msg[0] - 1 : (size_t)n] = 0;
    const WCHAR *strings[1] = {msg};
    ReportEventW(g_evsrc, type, 0, (DWORD)(lvl + 1), NULL, 1, 0, strings, NULL);
}

void adsy_log_flush(void)
{
    adsy_logent e;
    HANDLE h = INVALID_HANDLE_VALUE;
    char line[200];
    unsigned long long lost = adsy_logring_take_dropped(&g_ring);
    if (lost) {
        adsy_logent d = {adsy_unix_ms(), "log_events_dropped", 0, lost, ADSY_LOG_WARNING};
        adsy_logring_put(&g_ring, &d);
    }
    while (adsy_logring_take(&g_ring, &e)) {
        if (e.level & ADSY_LOG_EVENTLOG)
            report_event(&e);
        if ((e.level & 0x0F) > g_log_level || g_log_path[0] == 0)
            continue;
        if (h == INVALID_HANDLE_VALUE)
            h = CreateFileW(g_log_path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE,
                            NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
        int n = format(line, sizeof line, &e);
        DWORD w;
        if (h != INVALID_HANDLE_VALUE && n > 0)
            WriteFile(h, line, (DWORD)n, &w, NULL);
    }
    if (h != INVALID_HANDLE_VALUE)
        CloseHandle(h);
}

/* The filter's log: one line per event, "<utc> <level> <event> code=<n> count=<n>".
 * The signature admits only a constant event name and two numbers, so no code path can
 * write a password, an account or a reason text into it. */
#include "internal.h"

#include <stdio.h>

static CRITICAL_SECTION g_log_lock;
static WCHAR g_log_path[MAX_PATH];
static int g_log_level = ADSY_LOG_WARNING;
static int g_log_ready;

void adsy_log_init(const adsy_settings *s)
{
    if (!g_log_ready) {
        InitializeCriticalSection(&g_log_lock);
        g_log_ready = 1;
    }
    lstrcpynW(g_log_path, s->log_file, MAX_PATH);
    g_log_level = s->log_level;
}

void adsy_log(int level, const char *event, long code, unsigned long long count)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (!g_log_ready || level > g_log_level || g_log_path[0] == 0)
        return;
    SYSTEMTIME t;
    GetSystemTime(&t);
    char line[200];
    int n = snprintf(line, sizeof line,
                     "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ %s %s code=%ld count=%llu\r\n",
                     t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond, t.wMilliseconds,
                     names[level], event, code, count);
    if (n <= 0)
        return;
    if (n >= (int)sizeof line)
        n = (int)sizeof line - 1;
    EnterCriticalSection(&g_log_lock);
    HANDLE h = CreateFileW(g_log_path, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE,
                           NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h != INVALID_HANDLE_VALUE) {
        DWORD w;
        WriteFile(h, line, (DWORD)n, &w, NULL);
        CloseHandle(h);
    }
    LeaveCriticalSection(&g_log_lock);
}

/* Test harness: loads adsyncflt.dll as LSASS does (LoadLibrary, GetProcAddress of the
 * three exports, UNICODE_STRING arguments that are not NUL-terminated) and drives it.
 *
 *   harness.exe DLL RESULTS COMMAND...
 *     init                      InitializeChangeNotify          -> "init <0|1>"
 *     init-timed                the same, timed                 -> "init-timed <0|1> <ns>"
 *     notify-null               PasswordChangeNotify(NULL, 0, NULL), then with empty
 *                               strings (LSA does call so)     -> "notify-null <ns> <status>"
 *     notify FILE               one PasswordChangeNotify per line "rid<TAB>hex(account UTF-16LE)
 *                               <TAB>hex(password UTF-16LE)"  -> "notify <i> <ns> <status>"
 *     filter FILE               one PasswordFilter per line "set_op<TAB>hex(account)<TAB>hex(full
 *                               name)<TAB>hex(password)"     -> "filter <i> <result> <ns>"
 *     wait STOPFILE SECONDS     sleep until STOPFILE exists (the worker keeps running)
 *     sleep MS
 * Passwords are given as hex of UTF-16LE so that any code unit sequence (lone surrogates
 * too) can be passed; results go to a file because wine's output must never be piped. */
#include <windows.h>
#include <ntsecapi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

typedef BOOLEAN(NTAPI *init_fn)(void);
typedef BOOLEAN(NTAPI *filter_fn)(PUNICODE_STRING, PUNICODE_STRING, PUNICODE_STRING, BOOLEAN);
typedef NTSTATUS(NTAPI *notify_fn)(PUNICODE_STRING, ULONG, PUNICODE_STRING);

static FILE *g_out;
static LARGE_INTEGER g_freq;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* hex of UTF-16LE -> a heap UNICODE_STRING of exactly that many bytes (no terminator). */
static int parse_ustr(const char *hex, size_t n, UNICODE_STRING *u)
{
    if (n % 4 != 0 || n / 2 > 65534)
        return 0;
    size_t bytes = n / 2;
    BYTE *b = HeapAlloc(GetProcessHeap(), 0, bytes ? bytes : 1);
    if (!b)
        return 0;
    for (size_t i = 0; i < bytes; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            HeapFree(GetProcessHeap(), 0, b);
            return 0;
        }
        b[i] = (BYTE)(hi << 4 | lo);
    }
    u->Buffer = (PWSTR)b;
    u->Length = (USHORT)bytes;
    u->MaximumLength = (USHORT)bytes;
    return 1;
}

static void free_ustr(UNICODE_STRING *u)
{
    if (u->Buffer) {
        SecureZeroMemory(u->Buffer, u->MaximumLength);
        HeapFree(GetProcessHeap(), 0, u->Buffer);
    }
    memset(u, 0, sizeof *u);
}

/* Splits a line at tabs into at most max fields (in place). */
static int split(char *line, char **f, int max)
{
    int n = 0;
    char *p = line;
    size_t len = strlen(line);
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        line[--len] = 0;
    if (len == 0)
        return 0;
    while (n < max) {
        f[n++] = p;
        char *t = strchr(p, '\t');
        if (!t)
            break;
        *t = 0;
        p = t + 1;
    }
    return n;
}

static long long elapsed_ns(LARGE_INTEGER a, LARGE_INTEGER b)
{
    return (long long)((double)(b.QuadPart - a.QuadPart) * 1e9 / (double)g_freq.QuadPart);
}

static char g_line[300000];

static int cmd_notify(notify_fn notify, const wchar_t *path)
{
    FILE *f = _wfopen(path, L"rb");
    if (!f)
        return 2;
    int i = 0;
    while (fgets(g_line, sizeof g_line, f)) {
        char *fld[3];
        if (split(g_line, fld, 3) != 3)
            continue;
        UNICODE_STRING user = {0}, pw = {0};
        ULONG rid = strtoul(fld[0], NULL, 10);
        if (!parse_ustr(fld[1], strlen(fld[1]), &user) || !parse_ustr(fld[2], strlen(fld[2]), &pw)) {
            fprintf(g_out, "notify %d bad-line\n", i++);
            free_ustr(&user);
            free_ustr(&pw);
            continue;
        }
        LARGE_INTEGER t0, t1;
        QueryPerformanceCounter(&t0);
        NTSTATUS st = notify(&user, rid, &pw);
        QueryPerformanceCounter(&t1);
        fprintf(g_out, "notify %d %lld %ld\n", i++, elapsed_ns(t0, t1), (long)st);
        free_ustr(&user);
        free_ustr(&pw);
    }
    SecureZeroMemory(g_line, sizeof g_line);
    fclose(f);
    fflush(g_out);
    return 0;
}

static int cmd_filter(filter_fn filter, const wchar_t *path)
{
    FILE *f = _wfopen(path, L"rb");
    if (!f)
        return 2;
    int i = 0;
    while (fgets(g_line, sizeof g_line, f)) {
        char *fld[4];
        if (split(g_line, fld, 4) != 4)
            continue;
        UNICODE_STRING acct = {0}, full = {0}, pw = {0};
        BOOLEAN set_op = (BOOLEAN)(fld[0][0] == '1');
        if (!parse_ustr(fld[1], strlen(fld[1]), &acct) || !parse_ustr(fld[2], strlen(fld[2]), &full) ||
            !parse_ustr(fld[3], strlen(fld[3]), &pw)) {
            fprintf(g_out, "filter %d bad-line\n", i++);
        } else {
            LARGE_INTEGER t0, t1;
            QueryPerformanceCounter(&t0);
            BOOLEAN ok = filter(&acct, &full, &pw, set_op);
            QueryPerformanceCounter(&t1);
            fprintf(g_out, "filter %d %d %lld\n", i++, ok ? 1 : 0, elapsed_ns(t0, t1));
        }
        free_ustr(&acct);
        free_ustr(&full);
        free_ustr(&pw);
        fflush(g_out);
    }
    SecureZeroMemory(g_line, sizeof g_line);
    fclose(f);
    return 0;
}

int wmain(int argc, wchar_t **argv)
{
    if (argc < 4) {
        fwprintf(stderr, L"usage: harness.exe DLL RESULTS COMMAND...\n");
        return 2;
    }
    QueryPerformanceFrequency(&g_freq);
    g_out = _wfopen(argv[2], L"ab");
    if (!g_out)
        return 2;
    HMODULE dll = LoadLibraryW(argv[1]);
    if (!dll) {
        fprintf(g_out, "load-failed %lu\n", GetLastError());
        fclose(g_out);
        return 3;
    }
    init_fn init = (init_fn)(void (*)(void))GetProcAddress(dll, "InitializeChangeNotify");
    filter_fn filter = (filter_fn)(void (*)(void))GetProcAddress(dll, "PasswordFilter");
    notify_fn notify = (notify_fn)(void (*)(void))GetProcAddress(dll, "PasswordChangeNotify");
    if (!init || !filter || !notify) {
        fprintf(g_out, "exports-missing\n");
        fclose(g_out);
        return 3;
    }
    fprintf(g_out, "loaded\n");
    fflush(g_out);
    int rc = 0;
    for (int i = 3; i < argc && rc == 0; i++) {
        if (!wcscmp(argv[i], L"init")) {
            fprintf(g_out, "init %d\n", init() ? 1 : 0);
            fflush(g_out);
        } else if (!wcscmp(argv[i], L"init-timed")) {
            LARGE_INTEGER t0, t1;
            QueryPerformanceCounter(&t0);
            BOOLEAN ok = init();
            QueryPerformanceCounter(&t1);
            fprintf(g_out, "init-timed %d %lld\n", ok ? 1 : 0, elapsed_ns(t0, t1));
            fflush(g_out);
        } else if (!wcscmp(argv[i], L"notify-null")) {
            UNICODE_STRING empty = {0, 0, NULL};
            LARGE_INTEGER t0, t1;
            QueryPerformanceCounter(&t0);
            NTSTATUS st = notify(NULL, 0, NULL);
            NTSTATUS st2 = notify(&empty, 500, &empty);
            QueryPerformanceCounter(&t1);
            fprintf(g_out, "notify-null %lld %ld\n", elapsed_ns(t0, t1), (long)(st | st2));
            fflush(g_out);
        } else if (!wcscmp(argv[i], L"notify") && i + 1 < argc) {
            rc = cmd_notify(notify, argv[++i]);
        } else if (!wcscmp(argv[i], L"filter") && i + 1 < argc) {
            rc = cmd_filter(filter, argv[++i]);
        } else if (!wcscmp(argv[i], L"wait") && i + 2 < argc) {
            const wchar_t *stop = argv[++i];
            DWORD limit = (DWORD)_wtoi(argv[++i]) * 1000u;
            ULONGLONG end = GetTickCount64() + limit;
            while (GetFileAttributesW(stop) == INVALID_FILE_ATTRIBUTES && GetTickCount64() < end)
                Sleep(50);
            fprintf(g_out, "waited %d\n", GetFileAttributesW(stop) != INVALID_FILE_ATTRIBUTES);
            fflush(g_out);
        } else if (!wcscmp(argv[i], L"sleep") && i + 1 < argc) {
            Sleep((DWORD)_wtoi(argv[++i]));
        } else {
            fprintf(g_out, "bad-command\n");
            rc = 2;
        }
    }
    fprintf(g_out, "done %d\n", rc);
    fclose(g_out);
    /* Like LSASS, never unload the package; exit the process directly. */
    ExitProcess((UINT)rc);
}

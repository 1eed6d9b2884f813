/* The spool file: sealed records appended and flushed (FlushFileBuffers) before the
 * in-memory copy is forgotten; read oldest first; emptied once every record is ACKed.
 * Only the worker thread calls into this file (adsy_spool_setup aside, which does no
 * I/O): no LSASS thread ever takes g_lock, so holding it across WriteFile/FlushFileBuffers
 * can stall the worker only, never a password change. The worker opens and checks the
 * spool (adsy_spool_init) as its first job, never LSASS's boot thread.
 * Reading (core/spool.c, adsy_spool_step) costs a damaged record that record only: it is
 * skipped and reading resumes at the next record that opens; a torn or zero-filled tail is
 * cut off; the whole file is set aside (renamed *.bad-<unix ms>, for `adsync filter spool
 * replay`) only when no record in it opens under the current key. */
#include "internal.h"

#include "../core/spooler.h"

#include <sddl.h>
#include <stdio.h>
#include <wchar.h>

#define SPOOL_NAME L"adsyncflt.spool"
#define PEEK_MAX 64
#define READ_TRIES 3

static CRITICAL_SECTION g_lock;
static HANDLE g_file = INVALID_HANDLE_VALUE;
static WCHAR g_path[MAX_PATH];
static uint64_t g_base; /* records start here (0 unless a foreign file could not be moved) */
static uint64_t g_read_off, g_end_off, g_pending;
static uint64_t g_peek_end[PEEK_MAX];
static uint64_t g_skip_reported; /* damaged bytes before this offset are already logged */
static unsigned long long g_skipped;
static uint8_t g_rec[ADSY_SPOOL_MAX_RECORD]; /* guarded by g_lock */
static adsy_spool_reader g_reader;          /* guarded by g_lock */
static DWORD g_last_error;                  /* of the last failed write or flush */

static int read_once(uint64_t off, void *buf, DWORD n)
{
    OVERLAPPED o;
    DWORD got = 0;
    memset(&o, 0, sizeof o);
    o.Offset = (DWORD)off;
    o.OffsetHigh = (DWORD)(off >> 32);
    return ReadFile(g_file, buf, n, &got, &o) && got == n;
}

/* The reader's callback: a failed ReadFile is retried (a transient error — a busy
 * volume, an antivirus filter — must not look like a damaged record). */
static int read_cb(void *ctx, uint64_t off, uint8_t *buf, size_t n)
{
    (void)ctx;
    for (int i = 0; i < READ_TRIES; i++) {
        if (read_once(off, buf, (DWORD)n))
            return 0;
        if (i + 1 < READ_TRIES)
            Sleep(20u << i);
    }
    adsy_log(ADSY_LOG_ERROR, "spool_read_failed", (long)GetLastError(), n);
    return -1;
}

static int write_at(uint64_t off, const void *buf, DWORD n)
{
    OVERLAPPED o;
    DWORD put = 0;
    memset(&o, 0, sizeof o);
    o.Offset = (DWORD)off;
    o.OffsetHigh = (DWORD)(off >> 32);
    return WriteFile(g_file, buf, n, &put, &o) && put == n;
}

static int truncate_at(uint64_t off)
{
    LARGE_INTEGER li;
    li.QuadPart = (LONGLONG)off;
    return SetFilePointerEx(g_file, li, NULL, FILE_BEGIN) && SetEndOfFile(g_file) &&
           FlushFileBuffers(g_file);
}

/* The file callbacks of core/spooler.c (which decides what is written and flushed when). */
static int file_write(void *ctx, uint64_t off, const uint8_t *buf, size_t n)
{
    (void)ctx;
    if (write_at(off, buf, (DWORD)n))
        return 0;
    g_last_error = GetLastError();
    return -1;
}

static int file_flush(void *ctx)
{
    (void)ctx;
    if (FlushFileBuffers(g_file))
        return 0;
    g_last_error = GetLastError();
    return -1;
}

static int file_truncate(void *ctx, uint64_t size)
{
    (void)ctx;
    return truncate_at(size) ? 0 : -1;
}

static int file_random(void *ctx, uint8_t *buf, size_t n)
{
    (void)ctx;
    if (adsy_random(buf, (ULONG)n) == ADSY_OK)
        return 0;
    g_last_error = GetLastError();
    return -1;
}

static const adsy_spool_file g_spool_file = {file_write, file_flush, file_truncate, file_random,
                                             NULL};

int adsy_path_join(WCHAR *out, size_t cap, const WCHAR *dir, const WCHAR *name)
{
    int n = _snwprintf(out, cap, L"%ls\\%ls", dir, name);
    if (n < 0 || (size_t)n >= cap) { /* msvcrt: -1 and no NUL when it does not fit */
        out[0] = 0;
        return 0;
    }
    out[n] = 0;
    return 1;
}

static int open_file(void)
{
    g_file = CreateFileW(g_path, GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ, NULL, OPEN_ALWAYS,
                         FILE_ATTRIBUTE_NORMAL, NULL);
    return g_file != INVALID_HANDLE_VALUE;
}

/* The spool directory (and only it) gets a protected DACL: SYSTEM full control. A reparse
 * point (a junction or symlink planted to redirect the spool), a DACL that cannot be set,
 * or one that still lets anyone else in, is refused. */
static int make_dir(const WCHAR *dir)
{
    WCHAR tmp[MAX_PATH];
    lstrcpynW(tmp, dir, MAX_PATH);
    if (lstrlenW(tmp) < 3) /* "C:\\" at least: a drive-relative or empty SpoolDir is refused */
        return ERROR_BAD_PATHNAME;
    for (WCHAR *p = tmp + 3; *p; p++) {
        if (*p == L'\\' || *p == L'/') {
            WCHAR save = *p;
            *p = 0;
            CreateDirectoryW(tmp, NULL);
            *p = save;
        }
    }
    PSECURITY_DESCRIPTOR sd = NULL;
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(L"D:P(A;OICI;FA;;;SY)",
                                                              SDDL_REVISION_1, &sd, NULL))
        return (int)GetLastError();
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    int rc = ADSY_OK;
    if (!CreateDirectoryW(dir, &sa) && GetLastError() != ERROR_ALREADY_EXISTS)
        rc = (int)GetLastError();
    DWORD attrs = rc == ADSY_OK ? GetFileAttributesW(dir) : 0;
    if (rc == ADSY_OK && (attrs == INVALID_FILE_ATTRIBUTES || !(attrs & FILE_ATTRIBUTE_DIRECTORY)))
        rc = ERROR_DIRECTORY;
    if (rc == ADSY_OK && (attrs & FILE_ATTRIBUTE_REPARSE_POINT))
        rc = ADSY_E_REPARSE;
    if (rc == ADSY_OK &&
        !SetFileSecurityW(dir, DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, sd))
        rc = (int)GetLastError();
    LocalFree(sd);
    return rc == ADSY_OK ? adsy_check_secret_path(dir) : rc;
}

/* Renames a spool in which no record opens (another key) out of the way, for the
 * operator and `adsync filter spool replay`. If it cannot be moved it stays where it is and
 * new records go after it: never destroyed. */
static int set_aside(const WCHAR *dir, uint64_t end)
{
    WCHAR bad[MAX_PATH], name[48];
    int n = _snwprintf(name, 48, L"%ls.bad-%llu", SPOOL_NAME, (unsigned long long)adsy_unix_ms());
    name[47] = 0; /* cannot be cut: the name and 20 digits fit */
    CloseHandle(g_file);
    g_file = INVALID_HANDLE_VALUE;
    int joined = n > 0 && adsy_path_join(bad, MAX_PATH, dir, name);
    int moved = joined && MoveFileExW(g_path, bad, MOVEFILE_WRITE_THROUGH);
    DWORD err = moved ? 0 : joined ? GetLastError() : ERROR_FILENAME_EXCED_RANGE;
    if (!open_file())
        return ADSY_E_SPACE;
    if (moved) {
        adsy_log(ADSY_LOG_ERROR, "spool_set_aside", ADSY_E_AUTH, end);
        return ADSY_OK;
    }
    adsy_log(ADSY_LOG_ERROR, "spool_set_aside_failed", (long)err, end);
    g_base = g_read_off = g_end_off = end;
    return ADSY_OK;
}

static void report_skip(void *ctx, int why, unsigned long long skipped)
{
    (void)ctx;
    adsy_log(ADSY_LOG_ERROR, "spool_record_skipped", why, skipped);
}

/* Checks every record once at start (core/spooler.c decides): counts those that open,
 * reports the damaged ones (kept in place and skipped when read), cuts a torn tail.
 * Under g_lock. */
static int scan_at_start(const WCHAR *dir, uint64_t end)
{
    adsy_spool_scan sc;
    adsy_spool_check(&g_reader, &g_spool_file, end, report_skip, NULL, &sc);
    g_skipped += sc.skipped;
    g_skip_reported = sc.stop;
    if (sc.action == ADSY_SCAN_SET_ASIDE)
        return set_aside(dir, end);
    if (sc.action == ADSY_SCAN_CUT)
        adsy_log(ADSY_LOG_WARNING, "spool_torn_tail_cut", sc.why, end - sc.cut_at);
    /* ADSY_SCAN_UNDECIDED (a read failed): the worker reads (and checks) the rest later */
    g_end_off = sc.end;
    g_pending = sc.ok;
    return ADSY_OK;
}

void adsy_spool_setup(void)
{
    static int lock_ready;
    if (!lock_ready) {
        InitializeCriticalSection(&g_lock);
        lock_ready = 1;
    }
}

int adsy_spool_init(const WCHAR *dir)
{
    ADSY_TEST_STALL(); /* a slow disk at boot: only the worker waits */
    int dir_rc = make_dir(dir);
    if (dir_rc != ADSY_OK) {
        adsy_log(ADSY_LOG_ERROR, "spool_dir_failed", dir_rc, 0);
        return ADSY_E_SPACE;
    }
    if (!adsy_path_join(g_path, MAX_PATH, dir, SPOOL_NAME)) {
        adsy_log(ADSY_LOG_ERROR, "spool_dir_failed", ERROR_FILENAME_EXCED_RANGE, 0);
        return ADSY_E_SPACE;
    }
    if (!open_file()) {
        adsy_log(ADSY_LOG_ERROR, "spool_open_failed", (long)GetLastError(), 0);
        return ADSY_E_SPACE;
    }
    g_reader.aead = ADSY_AEAD;
    g_reader.read = read_cb;
    g_base = g_read_off = g_end_off = g_pending = g_skip_reported = 0;
    LARGE_INTEGER size;
    if (!GetFileSizeEx(g_file, &size)) {
        adsy_log(ADSY_LOG_ERROR, "spool_open_failed", (long)GetLastError(), 0);
        return ADSY_E_SPACE;
    }
    uint64_t end = (uint64_t)size.QuadPart;
    EnterCriticalSection(&g_lock);
    int rc = scan_at_start(dir, end);
    LeaveCriticalSection(&g_lock);
    if (g_pending)
        adsy_log(ADSY_LOG_INFO, "spool_found", 0, g_pending);
    return rc;
}

int adsy_spool_append(const adsy_change *const *changes, size_t n)
{
    EnterCriticalSection(&g_lock);
    ADSY_TEST_STALL(); /* a stalled disk, with the lock held */
    if (g_file == INVALID_HANDLE_VALUE) {
        LeaveCriticalSection(&g_lock);
        return ADSY_E_SPACE; /* no spool (its directory failed): kept in memory */
    }
    g_last_error = 0;
    int rc = adsy_spool_write_batch(ADSY_AEAD, &g_spool_file, g_rec, changes, n, &g_end_off);
    if (rc == ADSY_OK)
        g_pending += n;
    else
        adsy_log(ADSY_LOG_ERROR, "spool_write_failed", (long)g_last_error, n);
    LeaveCriticalSection(&g_lock);
    return rc;
}

/* Everything read and acknowledged: the file is emptied (down to g_base). */
static void reset_if_consumed(void)
{
    if (g_read_off < g_end_off)
        return;
    truncate_at(g_base);
    g_read_off = g_end_off = g_skip_reported = g_base;
    g_pending = 0;
}

size_t adsy_spool_peek(adsy_change *out, size_t max)
{
    size_t got = 0;
    if (max > PEEK_MAX)
        max = PEEK_MAX;
    EnterCriticalSection(&g_lock);
    uint64_t off = g_read_off;
    while (got < max && off < g_end_off) {
        uint64_t next;
        int why;
        int st = adsy_spool_step(&g_reader, off, g_end_off, &out[got], &next, &why);
        if (st == ADSY_STEP_RECORD) {
            g_peek_end[got++] = next;
            off = next;
            continue;
        }
        if (st == ADSY_STEP_IOERR || st == ADSY_STEP_END)
            break; /* a read error is retried on the next round */
        /* damaged since the start-up check: that record only is lost (reported once) */
        if (st == ADSY_STEP_TORN)
            next = g_end_off;
        if (next > g_skip_reported) {
            g_skipped++;
            g_pending = g_pending ? g_pending - 1 : 0;
            g_skip_reported = next;
            adsy_log(ADSY_LOG_ERROR, "spool_record_skipped", why, g_skipped);
        }
        off = next;
        if (got == 0)
            g_read_off = off;
    }
    if (got == 0)
        reset_if_consumed();
    LeaveCriticalSection(&g_lock);
    return got;
}

void adsy_spool_consume(size_t n)
{
    if (n == 0)
        return;
    EnterCriticalSection(&g_lock);
    if (n > PEEK_MAX)
        n = PEEK_MAX;
    g_read_off = g_peek_end[n - 1];
    g_pending = g_pending >= n ? g_pending - n : 0;
    reset_if_consumed();
    LeaveCriticalSection(&g_lock);
}

int adsy_spool_pending(void)
{
    EnterCriticalSection(&g_lock);
    int p = g_read_off < g_end_off;
    LeaveCriticalSection(&g_lock);
    return p;
}

unsigned long long adsy_spool_count(void)
{
    EnterCriticalSection(&g_lock);
    unsigned long long p = g_pending;
    LeaveCriticalSection(&g_lock);
    return p;
}

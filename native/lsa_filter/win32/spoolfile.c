/* The spool file: sealed records appended and flushed (FlushFileBuffers) before the
 * in-memory copy is forgotten; read oldest first; emptied once every record is ACKed.
 * Only the worker thread calls into this file (adsy_spool_setup aside, which does no
 * I/O): no LSASS thread ever takes g_lock, so holding it across WriteFile/FlushFileBuffers
 * can stall the worker only, never a password change.
 * A record that no longer opens (other key, corruption) sets the whole file aside
 * (renamed *.bad-<tick>) instead of destroying it; a torn tail is cut off. */
#include "internal.h"

#include <sddl.h>
#include <stdio.h>
#include <wchar.h>

#define SPOOL_NAME L"adsyncflt.spool"
#define PEEK_MAX 64

static CRITICAL_SECTION g_lock;
static HANDLE g_file = INVALID_HANDLE_VALUE;
static WCHAR g_path[MAX_PATH];
static uint64_t g_read_off, g_end_off, g_pending;
static uint64_t g_peek_end[PEEK_MAX];
static uint8_t g_rec[ADSY_SPOOL_MAX_RECORD]; /* guarded by g_lock */

static int read_at(uint64_t off, void *buf, DWORD n)
{
    OVERLAPPED o;
    DWORD got = 0;
    memset(&o, 0, sizeof o);
    o.Offset = (DWORD)off;
    o.OffsetHigh = (DWORD)(off >> 32);
    return ReadFile(g_file, buf, n, &got, &o) && got == n;
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

/* Reads and opens the record at off; 1 ok, 0 torn/absent (end), -1 does not open. */
static int load_record(uint64_t off, uint64_t file_end, adsy_change *c, uint64_t *next)
{
    size_t len;
    if (file_end - off < 8 || !read_at(off, g_rec, 8))
        return 0;
    if (adsy_spool_record_len(g_rec, &len) != ADSY_OK)
        return -1;
    if (file_end - off < len)
        return 0;
    if (!read_at(off + 8, g_rec + 8, (DWORD)(len - 8)))
        return 0;
    int rc = adsy_spool_open(ADSY_AEAD, g_rec, len, c);
    SecureZeroMemory(g_rec, len);
    if (rc != ADSY_OK)
        return -1;
    *next = off + len;
    return 1;
}

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

/* The spool directory (and only it) gets a protected DACL: SYSTEM full control. */
static int make_dir(const WCHAR *dir)
{
    WCHAR tmp[MAX_PATH];
    lstrcpynW(tmp, dir, MAX_PATH);
    if (lstrlenW(tmp) < 3) { /* "C:\\" at least: a drive-relative or empty SpoolDir is refused */
        SetLastError(ERROR_BAD_PATHNAME);
        return 0;
    }
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
        return 0;
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    int ok = CreateDirectoryW(dir, &sa) || GetLastError() == ERROR_ALREADY_EXISTS;
    if (ok)
        SetFileSecurityW(dir, DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION,
                         sd);
    LocalFree(sd);
    return ok;
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
    if (!make_dir(dir)) {
        adsy_log(ADSY_LOG_ERROR, "spool_dir_failed", (long)GetLastError(), 0);
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
    LARGE_INTEGER size;
    GetFileSizeEx(g_file, &size);
    uint64_t end = (uint64_t)size.QuadPart, off = 0, next;
    static adsy_change c;
    int r;
    g_pending = 0;
    while ((r = load_record(off, end, &c, &next)) == 1) {
        off = next;
        g_pending++;
    }
    SecureZeroMemory(&c, sizeof c);
    if (r < 0) {
        /* Keep what cannot be opened for the operator; start a new spool. */
        WCHAR bad[MAX_PATH], suffix[40];
        _snwprintf(suffix, 40, L"%ls.bad-%llu", SPOOL_NAME, (unsigned long long)adsy_now_ms());
        suffix[39] = 0;
        if (!adsy_path_join(bad, MAX_PATH, dir, suffix))
            return ADSY_E_SPACE; /* cannot happen: g_path fitted and the suffix is short */
        CloseHandle(g_file);
        MoveFileExW(g_path, bad, MOVEFILE_WRITE_THROUGH);
        adsy_log(ADSY_LOG_ERROR, "spool_set_aside", ADSY_E_AUTH, g_pending);
        g_pending = 0;
        off = 0;
        if (!open_file())
            return ADSY_E_SPACE;
        truncate_at(0);
    } else if (off < end) {
        adsy_log(ADSY_LOG_WARNING, "spool_torn_tail_cut", 0, end - off);
        truncate_at(off);
    }
    g_read_off = 0;
    g_end_off = off;
    if (g_pending)
        adsy_log(ADSY_LOG_INFO, "spool_found", 0, g_pending);
    return ADSY_OK;
}

int adsy_spool_append(const adsy_change *const *changes, size_t n)
{
    int rc = ADSY_OK;
    EnterCriticalSection(&g_lock);
    ADSY_TEST_STALL(); /* a stalled disk, with the lock held */
    if (g_file == INVALID_HANDLE_VALUE) {
        LeaveCriticalSection(&g_lock);
        return ADSY_E_SPACE; /* no spool (its directory failed): kept in memory */
    }
    uint64_t start = g_end_off, off = start;
    for (size_t i = 0; i < n && rc == ADSY_OK; i++) {
        uint8_t nonce[ADSY_SPOOL_NONCE_LEN];
        size_t len;
        if (adsy_random(nonce, sizeof nonce) != ADSY_OK)
            rc = ADSY_E_CRYPTO;
        else
            rc = adsy_spool_seal(ADSY_AEAD, changes[i], nonce, g_rec, sizeof g_rec, &len);
        if (rc == ADSY_OK) {
            if (write_at(off, g_rec, (DWORD)len))
                off += len;
            else
                rc = ADSY_E_SPACE;
        }
        SecureZeroMemory(g_rec, sizeof g_rec);
    }
    if (rc == ADSY_OK && !FlushFileBuffers(g_file))
        rc = ADSY_E_SPACE;
    if (rc == ADSY_OK) {
        g_end_off = off;
        g_pending += n;
    } else {
        adsy_log(ADSY_LOG_ERROR, "spool_write_failed", (long)GetLastError(), n);
        truncate_at(start); /* nothing half-written stays behind */
    }
    LeaveCriticalSection(&g_lock);
    return rc;
}

static uint64_t g_damaged_from = UINT64_MAX;

/* A record written by us since the start-up check that no longer opens: the rest of the
 * file cannot be delimited, so it is dropped (counted in the log). */
static void skip_damaged(void)
{
    g_read_off = g_end_off;
    g_pending = 0;
    g_damaged_from = UINT64_MAX;
    truncate_at(0);
    g_read_off = g_end_off = 0;
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
        int r = load_record(off, g_end_off, &out[got], &next);
        if (r != 1) {
            /* Verified at start and written by us since: skip the damaged rest. */
            adsy_log(ADSY_LOG_ERROR, "spool_record_unreadable", r, g_pending);
            g_damaged_from = off;
            if (got == 0)
                skip_damaged();
            break;
        }
        g_peek_end[got++] = next;
        off = next;
    }
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
    if (g_read_off == g_damaged_from)
        skip_damaged();
    if (g_read_off >= g_end_off) {
        truncate_at(0);
        g_read_off = g_end_off = 0;
        g_pending = 0;
    }
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

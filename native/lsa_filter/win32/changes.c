/* The hand-off from LSASS's thread to the worker: PasswordChangeNotify converts the
 * UNICODE_STRINGs on its own stack and pushes the change into the lock-free queue
 * (core/queue.c). No lock, no file, no random-number call (event ids are pre-filled in
 * the free slots by the worker): a full queue is counted as a drop and reported by the
 * worker, never waited on, never written to the spool from here. */
#include "internal.h"

#include "../core/utf.h"

static adsy_queue g_queue;
static adsy_qslot *g_slots;
static uint64_t g_seq_base;
static volatile LONG g_ready;
static volatile LONG64 g_dropped, g_not_captured;

/* A fresh random event id for a slot that becomes free (worker, or init). Should the
 * RNG ever fail, a unique id still comes from a per-process random prefix and the
 * position, so that two changes never share an id (the daemon de-duplicates by it). */
static uint8_t g_id_prefix[8];
static void fill_event_id(adsy_change *c, uint64_t position, void *ctx)
{
    (void)ctx;
    if (adsy_random(c->event_id, ADSY_EVENT_ID_LEN) == ADSY_OK)
        return;
    memcpy(c->event_id, g_id_prefix, 8);
    for (int i = 0; i < 8; i++)
        c->event_id[8 + i] = (uint8_t)(position >> (56 - 8 * i));
}

/* Pins the slots in RAM (no password paged out): raises LSASS's working set by their size
 * if VirtualLock says the quota is too small, once; logs when it still fails. */
static void lock_slots(SIZE_T size)
{
    if (VirtualLock(g_slots, size))
        return;
    DWORD err = GetLastError();
    SIZE_T lo = 0, hi = 0;
    if (err == ERROR_WORKING_SET_QUOTA &&
        GetProcessWorkingSetSize(GetCurrentProcess(), &lo, &hi) &&
        SetProcessWorkingSetSize(GetCurrentProcess(), lo + size + 65536, hi + size + 65536) &&
        VirtualLock(g_slots, size))
        return;
    adsy_log(ADSY_LOG_WARNING, "queue_not_locked_in_ram", (long)GetLastError(), size);
}

int adsy_changes_init(DWORD capacity)
{
    SIZE_T size = (SIZE_T)capacity * sizeof(adsy_qslot);
    g_slots = VirtualAlloc(NULL, size, MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
    if (!g_slots)
        return ADSY_E_SPACE;
    lock_slots(size);
    if (adsy_random(g_id_prefix, sizeof g_id_prefix) != ADSY_OK)
        return ADSY_E_CRYPTO;
    adsy_queue_init(&g_queue, g_slots, capacity, fill_event_id, NULL);
    /* Source sequence: base + queue position, monotonic per DC across restarts: the base is
     * the start time in 100 ns units (FILETIME), so a new process starts above the old one
     * unless the old one captured more than 10 million changes per second it ran, or the
     * clock went back across the restart (docs/ipc.md, "Source sequence"). */
    g_seq_base = adsy_filetime();
    InterlockedExchange(&g_ready, 1);
    return ADSY_OK;
}

static int fill(adsy_change *c, const UNICODE_STRING *user, ULONG rid, const UNICODE_STRING *pw)
{
    size_t n;
    int rc = adsy_utf16_to_utf8((const uint16_t *)user->Buffer, user->Length / 2, c->account,
                                sizeof c->account, &n);
    if (rc != ADSY_OK)
        return rc;
    c->account_len = (uint16_t)n;
    rc = adsy_utf16_to_utf8((const uint16_t *)pw->Buffer, pw->Length / 2, c->password,
                            sizeof c->password, &n);
    if (rc != ADSY_OK)
        return rc;
    c->password_len = (uint16_t)n;
    c->rid = rid;
    c->changed_at_ms = adsy_unix_ms();
    return ADSY_OK;
}

NTSTATUS adsy_changes_notify(const UNICODE_STRING *user, ULONG rid, const UNICODE_STRING *pw)
{
    if (!g_ready)
        return 0;
    if (!user || !pw || !user->Buffer || !pw->Buffer || user->Length == 0 || pw->Length == 0) {
        /* LSA does call notification packages without a password (e.g. NULL/NULL):
         * nothing to capture, and not an error. */
        adsy_log(ADSY_LOG_DEBUG, "change_without_password", 0, 1);
        return 0;
    }
    if (adsy_account_is_excluded(user, 1))
        return 0; /* krbtgt, machine, trust, gMSA, ExcludeAccounts: never sent */
    ADSY_TEST_FAULT(user);
    adsy_change c;
    int rc = fill(&c, user, rid, pw);
    if (rc != ADSY_OK) {
        LONG64 n = InterlockedIncrement64(&g_not_captured);
        adsy_log(ADSY_LOG_ERROR, "change_not_captured", rc, (unsigned long long)n);
    } else if (adsy_queue_push(&g_queue, &c, g_seq_base) != 0) {
        InterlockedIncrement64(&g_dropped); /* the worker reports it (log + Event Log) */
    }
    SecureZeroMemory(&c, sizeof c);
    adsy_worker_wake();
    return 0; /* STATUS_SUCCESS: LSA ignores it anyway */
}

unsigned long long adsy_changes_take_dropped(void)
{
    return (unsigned long long)InterlockedExchange64(&g_dropped, 0);
}

size_t adsy_changes_copy(adsy_change *out, size_t max)
{
    size_t n = 0;
    const adsy_change *c;
    while (n < max && (c = adsy_queue_peek(&g_queue, n)) != NULL) {
        memcpy(&out[n], c, sizeof out[n]);
        n++;
    }
    return n;
}

void adsy_changes_pop(size_t n)
{
    adsy_queue_pop(&g_queue, n);
}

size_t adsy_changes_count(int *past_half)
{
    if (past_half)
        *past_half = adsy_queue_past_half(&g_queue);
    return adsy_queue_count(&g_queue);
}

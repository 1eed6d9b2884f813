/* The hand-off from LSASS's thread to the worker: PasswordChangeNotify converts the
 * UNICODE_STRINGs straight into a slot of the bounded queue and returns. */
#include "internal.h"

#include "../core/utf.h"

static CRITICAL_SECTION g_qlock;
static adsy_queue g_queue;
static adsy_change *g_slots;
static uint64_t g_seq;
static volatile LONG g_ready;
static volatile LONG64 g_dropped;

int adsy_changes_init(DWORD capacity)
{
    g_slots = VirtualAlloc(NULL, (SIZE_T)capacity * sizeof(adsy_change), MEM_COMMIT | MEM_RESERVE,
                           PAGE_READWRITE);
    if (!g_slots)
        return ADSY_E_SPACE;
    VirtualLock(g_slots, (SIZE_T)capacity * sizeof(adsy_change)); /* best effort: no paging */
    InitializeCriticalSection(&g_qlock);
    adsy_queue_init(&g_queue, g_slots, capacity);
    /* Source sequence: monotonic within the process and, as it starts from the clock,
     * also across restarts (unless the clock goes back). */
    g_seq = adsy_unix_ms() << 16;
    InterlockedExchange(&g_ready, 1);
    return ADSY_OK;
}

/* Event ids come from a pool refilled 64 at a time: one RNG call per 64 changes instead
 * of one per change keeps PasswordChangeNotify free of system calls on most calls. */
static uint8_t g_id_pool[64 * ADSY_EVENT_ID_LEN];
static size_t g_id_left;

static int next_event_id(uint8_t out[ADSY_EVENT_ID_LEN]) /* under g_qlock */
{
    if (g_id_left == 0) {
        if (adsy_random(g_id_pool, sizeof g_id_pool) != ADSY_OK)
            return ADSY_E_CRYPTO;
        g_id_left = sizeof g_id_pool / ADSY_EVENT_ID_LEN;
    }
    g_id_left--;
    memcpy(out, g_id_pool + g_id_left * ADSY_EVENT_ID_LEN, ADSY_EVENT_ID_LEN);
    SecureZeroMemory(g_id_pool + g_id_left * ADSY_EVENT_ID_LEN, ADSY_EVENT_ID_LEN);
    return ADSY_OK;
}

static int fill(adsy_change *c, const UNICODE_STRING *user, ULONG rid, const UNICODE_STRING *pw)
{
    size_t n;
    int rc;
    if (!user || !pw || !user->Buffer || !pw->Buffer || user->Length == 0 || pw->Length == 0)
        return ADSY_E_EMPTY;
    rc = adsy_utf16_to_utf8((const uint16_t *)user->Buffer, user->Length / 2, c->account,
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
    return next_event_id(c->event_id);
}

NTSTATUS adsy_changes_notify(const UNICODE_STRING *user, ULONG rid, const UNICODE_STRING *pw)
{
    if (!g_ready)
        return 0;
    int rc;
    int queued = 0;
    EnterCriticalSection(&g_qlock);
    adsy_change *slot = adsy_queue_reserve(&g_queue);
    if (slot) {
        rc = fill(slot, user, rid, pw);
        if (rc == ADSY_OK) {
            slot->seq = ++g_seq;
            adsy_queue_commit(&g_queue);
            queued = 1;
        } else {
            adsy_queue_abandon(&g_queue);
        }
    } else {
        rc = ADSY_E_SPACE;
    }
    LeaveCriticalSection(&g_qlock);

    if (!slot) {
        /* Queue full: the worker is stuck. Losing the change is worse than a short
         * write on this thread, so it goes straight to the spool. */
        adsy_change c;
        EnterCriticalSection(&g_qlock);
        rc = fill(&c, user, rid, pw);
        c.seq = ++g_seq;
        LeaveCriticalSection(&g_qlock);
        if (rc == ADSY_OK) {
            const adsy_change *one = &c;
            rc = adsy_spool_append(&one, 1);
            queued = rc == ADSY_OK;
        }
        SecureZeroMemory(&c, sizeof c);
        adsy_log(ADSY_LOG_WARNING, "queue_full_spooled_directly", rc, 1);
    }
    if (!queued) {
        LONG64 d = InterlockedIncrement64(&g_dropped);
        adsy_log(ADSY_LOG_ERROR, "change_not_captured", rc, (unsigned long long)d);
    }
    adsy_worker_wake();
    return 0; /* STATUS_SUCCESS: LSA ignores it anyway */
}

size_t adsy_changes_copy(adsy_change *out, size_t max)
{
    EnterCriticalSection(&g_qlock);
    size_t n = adsy_queue_count(&g_queue);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        memcpy(&out[i], adsy_queue_peek(&g_queue, i), sizeof out[i]);
    LeaveCriticalSection(&g_qlock);
    return n;
}

void adsy_changes_pop(size_t n)
{
    EnterCriticalSection(&g_qlock);
    adsy_queue_pop(&g_queue, n);
    LeaveCriticalSection(&g_qlock);
}

size_t adsy_changes_count(int *past_half)
{
    EnterCriticalSection(&g_qlock);
    size_t n = adsy_queue_count(&g_queue);
    if (past_half)
        *past_half = adsy_queue_past_half(&g_queue);
    LeaveCriticalSection(&g_qlock);
    return n;
}

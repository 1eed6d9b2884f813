/* The worker thread: sends the spool (oldest first), then the in-memory queue, as
 * pipelined CHANGE frames; forgets a change only on ACK 0 (or a definitive refusal);
 * spools while the daemon is unreachable or the queue is past half full. */
#include "internal.h"

#include "../core/batch.h"

#define BATCH 32
#define IDLE_CLOSE_MS 60000

adsy_settings g_settings;
uint8_t g_psk[32];
adsy_str g_domain, g_host;

static HANDLE g_wake;
static adsy_change g_batch[BATCH];            /* worker-only */
static uint8_t g_tx[BATCH * (ADSY_MAX_ACCOUNT + ADSY_MAX_PASSWORD + 2 * ADSY_MAX_STRING + 128)];
static adsy_conn g_conn = {INVALID_SOCKET, NULL, 1};
static adsy_link g_link;
static unsigned long long g_sent, g_refused;

static volatile LONG g_waiting; /* 1 while the worker sleeps (or is about to) */

/* SetEvent is a system call (a wineserver round trip under wine): made only when the
 * worker sleeps. The worker sets g_waiting before it looks at the queue a last time, and
 * notify commits before it looks at g_waiting, so a change is never left unnoticed. */
void adsy_worker_wake(void)
{
    if (g_wake && InterlockedCompareExchange(&g_waiting, 0, 1) == 1)
        SetEvent(g_wake);
}

enum { SEND_OK, SEND_BUSY, SEND_DROP };

/* Sends n changes and reads their ACKs; *done is how many leading changes may be
 * forgotten (stored, or refused for good). */
static int send_batch(size_t n, size_t *done)
{
    size_t off = 0;
    uint64_t base = g_conn.next_request_id;
    int result = SEND_OK;
    *done = 0;
    for (size_t i = 0; i < n; i++) {
        long len = adsy_encode_change(g_tx + off, sizeof g_tx - off, base + i, &g_batch[i],
                                      g_domain, g_host);
        if (len < 0) {
            /* Cannot happen for a change that passed fill() (g_tx holds BATCH maximal
             * frames). Never loop on it: the first change is dropped (counted), a later
             * one waits for the next batch. */
            adsy_log(ADSY_LOG_ERROR, "encode_failed", len, 1);
            if (i == 0) {
                *done = 1;
                return SEND_OK;
            }
            n = i;
            break;
        }
        off += (size_t)len;
    }
    g_conn.next_request_id += n;
    ULONGLONG deadline = adsy_now_ms() + g_settings.ack_timeout_ms;
    int rc = adsy_conn_send(&g_conn, g_tx, off, deadline);
    SecureZeroMemory(g_tx, off);
    if (rc != ADSY_NET_OK) {
        adsy_log(ADSY_LOG_WARNING, "send_failed", rc, n);
        return SEND_DROP;
    }
    uint8_t status[BATCH];
    memset(status, 0xFF, sizeof status);
    for (size_t got = 0; got < n; got++) {
        adsy_reply r;
        rc = adsy_conn_recv(&g_conn, &r, deadline);
        if (rc != ADSY_NET_OK) {
            adsy_log(ADSY_LOG_WARNING, "ack_not_received", rc, n - got);
            result = SEND_DROP;
            break;
        }
        if (r.type == ADSY_T_ERROR) {
            adsy_log(ADSY_LOG_ERROR, "daemon_error_reply", 0, n - got);
            result = SEND_DROP;
            break;
        }
        if (r.type != ADSY_T_ACK || r.request_id < base || r.request_id >= base + n ||
            status[r.request_id - base] != 0xFF) {
            adsy_log(ADSY_LOG_ERROR, "unexpected_reply", r.type, 1);
            result = SEND_DROP;
            break;
        }
        status[r.request_id - base] = r.status;
    }
    size_t k = 0;
    while (k < n && (status[k] == ADSY_ACK_STORED || status[k] == ADSY_ACK_REFUSED)) {
        if (status[k] == ADSY_ACK_REFUSED) {
            g_refused++;
            adsy_log(ADSY_LOG_ERROR, "change_refused", 1, g_refused);
        }
        k++;
    }
    *done = k;
    g_sent += k;
    if (result == SEND_OK && k < n)
        result = SEND_BUSY; /* status 2 (or out of order after one): keep and resend */
    return result;
}

/* Moves the whole in-memory queue to the spool, oldest first, BATCH at a time; a change
 * leaves memory only after its record is flushed. */
static void spool_queue(void)
{
    for (;;) {
        size_t n = adsy_changes_copy(g_batch, BATCH);
        if (n == 0)
            break;
        const adsy_change *ptrs[BATCH];
        for (size_t i = 0; i < n; i++)
            ptrs[i] = &g_batch[i];
        int rc = adsy_spool_append(ptrs, n);
        SecureZeroMemory(g_batch, sizeof g_batch);
        if (rc != ADSY_OK)
            break; /* kept in memory; logged by the spool */
        adsy_changes_pop(n);
        adsy_log(ADSY_LOG_INFO, "spooled", 0, adsy_spool_count());
    }
}

static void drop_connection(void)
{
    adsy_conn_close(&g_conn);
    adsy_link_failed(&g_link, adsy_now_ms(), adsy_random32());
}

static DWORD WINAPI worker_main(LPVOID arg)
{
    (void)arg;
    ULONGLONG last_used = 0;
    adsy_link_init(&g_link, g_settings.backoff_initial_ms, g_settings.backoff_max_ms);
    for (;;) {
        int past_half = 0;
        size_t queued = adsy_changes_count(&past_half);
        int spooled = adsy_spool_pending();
        ULONGLONG now = adsy_now_ms();

        if ((queued || spooled) && adsy_link_should_connect(&g_link, now)) {
            int rc = adsy_conn_open(&g_conn, g_settings.port, g_psk,
                                    now + g_settings.connect_timeout_ms);
            if (rc == ADSY_NET_OK) {
                adsy_link_connected(&g_link);
                last_used = adsy_now_ms();
                adsy_log(ADSY_LOG_INFO, "connected", 0, g_link.failures);
            } else {
                adsy_link_failed(&g_link, adsy_now_ms(), adsy_random32());
                adsy_log(rc == ADSY_NET_AUTH ? ADSY_LOG_ERROR : ADSY_LOG_WARNING,
                         rc == ADSY_NET_AUTH ? "daemon_proof_failed" : "connect_failed", rc,
                         g_link.failures);
            }
        }
        if (queued && adsy_link_should_spool(&g_link, past_half)) {
            spool_queue();
            queued = adsy_changes_count(NULL);
            spooled = adsy_spool_pending();
        }
        now = adsy_now_ms();
        if (g_link.state == ADSY_LINK_UP && (spooled || queued) &&
            adsy_link_may_send(&g_link, now)) {
            size_t n, done = 0;
            int from_spool = spooled;
            n = from_spool ? adsy_spool_peek(g_batch, BATCH) : adsy_changes_copy(g_batch, BATCH);
            n = adsy_batch_prefix(g_batch, n); /* one change per account in flight */
            int res = n ? send_batch(n, &done) : SEND_OK;
            if (n) {
                if (from_spool)
                    adsy_spool_consume(done);
                else
                    adsy_changes_pop(done);
            }
            SecureZeroMemory(g_batch, sizeof g_batch);
            last_used = adsy_now_ms();
            if (done)
                adsy_link_progress(&g_link);
            if (res == SEND_DROP)
                drop_connection();
            else if (res == SEND_BUSY)
                adsy_link_busy(&g_link, adsy_now_ms(), adsy_random32());
            continue;
        }
        if (g_link.state == ADSY_LINK_UP && !queued && !spooled &&
            adsy_now_ms() - last_used > IDLE_CLOSE_MS) {
            adsy_conn_close(&g_conn); /* before the daemon's idle limit; reconnect at once */
            g_link.state = ADSY_LINK_DOWN;
            g_link.next_ms = 0;
        }
        DWORD wait = INFINITE;
        if (queued || spooled)
            wait = adsy_link_wait_ms(&g_link, adsy_now_ms());
        else if (g_link.state == ADSY_LINK_UP)
            wait = IDLE_CLOSE_MS;
        if (wait > 0) {
            InterlockedExchange(&g_waiting, 1);
            if (!queued && adsy_changes_count(NULL) != 0)
                wait = 0; /* arrived meanwhile: go round again */
            if (wait > 0)
                WaitForSingleObject(g_wake, wait);
            InterlockedExchange(&g_waiting, 0);
        }
    }
    return 0;
}

int adsy_worker_start(void)
{
    g_wake = CreateEventW(NULL, FALSE, FALSE, NULL);
    if (!g_wake)
        return ADSY_E_SPACE;
    HANDLE t = CreateThread(NULL, 0, worker_main, NULL, 0, NULL);
    if (!t)
        return ADSY_E_SPACE;
    CloseHandle(t);
    return ADSY_OK;
}

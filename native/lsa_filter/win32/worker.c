/* The worker thread: owns the network link, the spool, the log file and the Event Log.
 * It opens and checks the spool first (never LSASS's boot thread), then sends the spool
 * (oldest first) and the in-memory queue as pipelined CHANGE frames; forgets a change
 * only on ACK 0 (or a definitive refusal) or once its spool record is flushed. It spools
 * while the daemon is unreachable, while the queue is past half full, and whatever the
 * daemon leaves un-ACKed for SpoolAfterMs or answers busy, so a slow or busy daemon
 * cannot keep changes in memory only. */
#include "internal.h"

#include "../core/batch.h"

#define BATCH 32
#define IDLE_CLOSE_MS 60000
#define SLICE_MS 200
#define MAX_WORKER_FAULTS 3

adsy_settings g_settings;
uint8_t g_psk[32];
adsy_str g_domain, g_host;
volatile LONG g_daemon_down;

static HANDLE g_wake;
static adsy_change g_batch[BATCH];            /* worker-only: the batch in flight */
static adsy_change g_moving[BATCH];           /* worker-only: memory -> spool */
static uint8_t g_tx[BATCH * (ADSY_MAX_ACCOUNT + ADSY_MAX_PASSWORD + 2 * ADSY_MAX_STRING + 128)];
static adsy_conn g_conn = {INVALID_SOCKET, NULL, 1};
static adsy_link g_link;
static unsigned long long g_sent, g_refused;

/* Changes lost for a limit: counted as they go, reported by report_drops() in the log at
 * once and in the Event Log at most every EVENTLOG_EVERY_MS per kind (a mass change
 * against a full spool must not flood it); the count is the total since start. */
#define EVENTLOG_EVERY_MS 60000
enum { DROP_QUEUE, DROP_SPOOL_FULL, DROP_SPOOL_AGE, DROP_KINDS };
static struct {
    const char *event;
    long code;
    unsigned long long total, logged, evlogged;
    ULONGLONG ev_at;
} g_drops[DROP_KINDS] = {
    {"queue_full_change_dropped", 0, 0, 0, 0, 0},
    {"spool_full_change_dropped", 0, 0, 0, 0, 0},
    {"spool_expired_change_dropped", 0, 0, 0, 0, 0},
};
static ULONGLONG g_last_used;
static int g_busy; /* the last batch was answered busy: spool until the daemon stores again */

static volatile LONG g_waiting; /* 1 while the worker sleeps (or is about to) */
static volatile LONG g_probe;   /* PasswordFilter could not connect */

/* SetEvent is a system call (a wineserver round trip under wine): made only when the
 * worker sleeps. The worker sets g_waiting before it looks at the queue a last time, and
 * notify commits before it looks at g_waiting, so a change is never left unnoticed. */
void adsy_worker_wake(void)
{
    if (g_wake && InterlockedCompareExchange(&g_waiting, 0, 1) == 1)
        SetEvent(g_wake);
}

void adsy_worker_probe(void)
{
    if (!g_daemon_down && InterlockedExchange(&g_probe, 1) == 0)
        adsy_worker_wake();
}

/* Appends c[0..n) to the spool within SpoolMaxRecords; what does not fit is dropped,
 * counted, logged and reported in the Event Log. 1 when all n may leave memory. */
static int spool_changes(const adsy_change *c, size_t n)
{
    unsigned long long have = adsy_spool_count();
    size_t room = have >= g_settings.spool_max_records ? 0
                  : (size_t)(g_settings.spool_max_records - have) < n
                      ? (size_t)(g_settings.spool_max_records - have)
                      : n;
    if (room) {
        const adsy_change *ptrs[BATCH];
        for (size_t i = 0; i < room; i++)
            ptrs[i] = &c[i];
        if (adsy_spool_append(ptrs, room) != ADSY_OK)
            return 0; /* kept in memory; logged by the spool */
    }
    if (room < n) {
        g_drops[DROP_SPOOL_FULL].total += n - room;
    }
    return 1;
}

/* Moves the whole in-memory queue to the spool, oldest first, BATCH at a time; a change
 * leaves memory only after its record is flushed. */
static void spool_queue(void)
{
    for (;;) {
        size_t n = adsy_changes_copy(g_moving, BATCH);
        if (n == 0)
            break;
        int ok = spool_changes(g_moving, n);
        SecureZeroMemory(g_moving, sizeof g_moving);
        if (!ok)
            break;
        adsy_changes_pop(n);
        adsy_log(ADSY_LOG_INFO, "spooled", 0, adsy_spool_count());
    }
}

/* Waits until an ACK can be read or until. With spool_meanwhile (the daemon is slow),
 * whatever LSASS hands over meanwhile goes to the spool within SLICE_MS. */
static int wait_ack(ULONGLONG until, int spool_meanwhile)
{
    for (;;) {
        ULONGLONG now = adsy_now_ms();
        ULONGLONG slice = spool_meanwhile && now + SLICE_MS < until ? now + SLICE_MS : until;
        int rc = adsy_conn_readable(&g_conn, slice);
        if (rc != ADSY_NET_TIMEOUT || slice >= until)
            return rc;
        if (adsy_changes_count(NULL))
            spool_queue();
        adsy_log_flush();
    }
}

enum { SEND_OK, SEND_BUSY, SEND_DROP };

static size_t leading_done(const uint8_t *status, size_t n)
{
    size_t k = 0;
    while (k < n && (status[k] == ADSY_ACK_STORED || status[k] == ADSY_ACK_REFUSED))
        k++;
    return k;
}

/* Changes of a memory batch that the daemon has not stored yet go to the spool (and
 * leave memory): a resend from the spool is harmless, the daemon knows the event id. */
static int spool_rest(const uint8_t *status, size_t n, int *popped)
{
    size_t k = leading_done(status, n);
    if (*popped || !spool_changes(g_batch + k, n - k))
        return 0;
    adsy_changes_pop(n);
    *popped = 1;
    adsy_log(ADSY_LOG_INFO, "unacked_spooled", 0, n - k);
    return 1;
}

/* Sends g_batch[0..n) and reads their ACKs, then forgets what may be forgotten: consumes
 * spool records / pops queued changes (stored, refused for good, or spooled). */
static int send_batch(size_t n, int from_spool)
{
    size_t off = 0;
    uint64_t base = g_conn.next_request_id;
    int result = SEND_OK, popped = 0;
    for (size_t i = 0; i < n; i++) {
        long len = adsy_encode_change(g_tx + off, sizeof g_tx - off, base + i, &g_batch[i],
                                      g_domain, g_host);
        if (len < 0) {
            /* Cannot happen for a change that passed fill() (g_tx holds BATCH maximal
             * frames). Never loop on it: the first change is dropped (counted), a later
             * one waits for the next batch. */
            adsy_log(ADSY_LOG_ERROR, "encode_failed", len, 1);
            if (i == 0) {
                if (from_spool)
                    adsy_spool_consume(1);
                else
                    adsy_changes_pop(1);
                return SEND_OK;
            }
            n = i;
            break;
        }
        off += (size_t)len;
    }
    g_conn.next_request_id += n;
    ULONGLONG now = adsy_now_ms();
    ULONGLONG deadline = now + g_settings.ack_timeout_ms;
    ULONGLONG slow_at = now + g_settings.spool_after_ms;
    int slow = 0;
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
        if (!slow) {
            rc = wait_ack(slow_at < deadline ? slow_at : deadline, 0);
            if (rc == ADSY_NET_TIMEOUT && slow_at < deadline) {
                /* un-ACKed after SpoolAfterMs: the daemon is slow; make them durable now,
                 * and what arrives meanwhile too */
                slow = 1;
                if (!from_spool)
                    spool_rest(status, n, &popped);
            }
        }
        if (slow) /* spool meanwhile only once this batch is out of memory's head */
            rc = wait_ack(deadline, popped || from_spool);
        if (rc == ADSY_NET_OK)
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
        if (r.status == ADSY_ACK_REFUSED) {
            g_refused++;
            adsy_log(ADSY_LOG_ERROR, "change_refused", 1, g_refused);
        }
    }
    size_t k = leading_done(status, n);
    g_sent += k;
    if (result == SEND_OK && k < n) {
        result = SEND_BUSY; /* status 2 (or out of order after one): keep and resend */
        if (!from_spool)
            spool_rest(status, n, &popped); /* busy: durable before the back-off */
    }
    if (from_spool)
        adsy_spool_consume(k);
    else if (!popped)
        adsy_changes_pop(k);
    return k ? result | 0x100 : result;
}

/* Records of the spool older than SpoolMaxAgeSeconds are dropped, not sent (counted,
 * logged, Event Log), the oldest first. 1 if some were. */
static int drop_expired(size_t n)
{
    uint64_t limit = (uint64_t)g_settings.spool_max_age_s * 1000u;
    uint64_t now = adsy_unix_ms();
    size_t k = 0;
    while (k < n && g_batch[k].changed_at_ms + limit < now)
        k++;
    if (k == 0)
        return 0;
    adsy_spool_consume(k);
    g_drops[DROP_SPOOL_AGE].total += k;
    return 1;
}

static void drop_connection(void)
{
    adsy_conn_close(&g_conn);
    adsy_link_failed(&g_link, adsy_now_ms(), adsy_random32());
}

static void try_connect(void)
{
    InterlockedExchange(&g_probe, 0);
    int rc = adsy_conn_open(&g_conn, g_settings.port, g_psk,
                            adsy_now_ms() + g_settings.connect_timeout_ms);
    if (rc == ADSY_NET_OK) {
        adsy_link_connected(&g_link);
        InterlockedExchange(&g_daemon_down, 0);
        g_last_used = adsy_now_ms();
        adsy_log(ADSY_LOG_INFO, "connected", 0, g_link.failures);
        return;
    }
    adsy_link_failed(&g_link, adsy_now_ms(), adsy_random32());
    InterlockedExchange(&g_daemon_down, 1); /* PasswordFilter answers OnUndecided at once */
    adsy_log(rc == ADSY_NET_AUTH ? ADSY_LOG_ERROR : ADSY_LOG_WARNING,
             rc == ADSY_NET_AUTH ? "daemon_proof_failed" : "connect_failed", rc,
             g_link.failures);
}

/* Logs new drops; returns how long until an Event Log report is due (INFINITE: none). */
static DWORD report_drops(void)
{
    DWORD due = INFINITE;
    ULONGLONG now = adsy_now_ms();
    g_drops[DROP_QUEUE].total += adsy_changes_take_dropped();
    g_drops[DROP_QUEUE].code = (long)g_settings.queue_capacity;
    g_drops[DROP_SPOOL_FULL].code = (long)g_settings.spool_max_records;
    g_drops[DROP_SPOOL_AGE].code = (long)g_settings.spool_max_age_s;
    for (int i = 0; i < DROP_KINDS; i++) {
        if (g_drops[i].total == g_drops[i].evlogged)
            continue;
        int ev = g_drops[i].ev_at == 0 || now - g_drops[i].ev_at >= EVENTLOG_EVERY_MS;
        if (ev || g_drops[i].total != g_drops[i].logged)
            adsy_log(ADSY_LOG_ERROR | (ev ? ADSY_LOG_EVENTLOG : 0), g_drops[i].event,
                     g_drops[i].code, g_drops[i].total);
        g_drops[i].logged = g_drops[i].total;
        if (ev) {
            g_drops[i].evlogged = g_drops[i].total;
            g_drops[i].ev_at = now;
        } else if (g_drops[i].ev_at + EVENTLOG_EVERY_MS - now < due) {
            due = (DWORD)(g_drops[i].ev_at + EVENTLOG_EVERY_MS - now);
        }
    }
    return due;
}

/* One round: report, connect if due, spool if needed, send one batch or sleep. */
static void step(void)
{
    int past_half = 0;
    report_drops();
    size_t queued = adsy_changes_count(&past_half);
    int spooled = adsy_spool_pending();
    if (g_probe && g_link.state == ADSY_LINK_UP) {
        InterlockedExchange(&g_probe, 0);
        if (!adsy_conn_alive(&g_conn))
            drop_connection(); /* the daemon went away while we were idle */
    }
    int want = queued || spooled || g_daemon_down || g_probe;
    if (want && adsy_link_should_connect(&g_link, adsy_now_ms()))
        try_connect();
    if (queued && (g_busy || adsy_link_should_spool(&g_link, past_half))) {
        spool_queue();
        queued = adsy_changes_count(NULL);
        spooled = adsy_spool_pending();
    }
    if (g_link.state == ADSY_LINK_UP && (spooled || queued) &&
        adsy_link_may_send(&g_link, adsy_now_ms())) {
        int from_spool = spooled;
        size_t n = from_spool ? adsy_spool_peek(g_batch, BATCH) : adsy_changes_copy(g_batch, BATCH);
        if (from_spool && drop_expired(n)) {
            SecureZeroMemory(g_batch, sizeof g_batch);
            return;
        }
        n = adsy_batch_prefix(g_batch, n); /* one change per account in flight */
        int res = n ? send_batch(n, from_spool) : SEND_OK;
        SecureZeroMemory(g_batch, sizeof g_batch);
        g_last_used = adsy_now_ms();
        if (res & 0x100)
            adsy_link_progress(&g_link);
        res &= 0xFF;
        g_busy = res == SEND_BUSY;
        if (res == SEND_DROP)
            drop_connection();
        else if (res == SEND_BUSY)
            adsy_link_busy(&g_link, adsy_now_ms(), adsy_random32());
        adsy_log_flush();
        return;
    }
    if (g_link.state == ADSY_LINK_UP && !queued && !spooled &&
        adsy_now_ms() - g_last_used > IDLE_CLOSE_MS) {
        adsy_conn_close(&g_conn); /* before the daemon's idle limit; reconnect at once */
        g_link.state = ADSY_LINK_DOWN;
        g_link.next_ms = 0;
    }
    DWORD wait = report_drops();
    want = queued || spooled || g_daemon_down || g_probe;
    if (want) {
        DWORD link_wait = adsy_link_wait_ms(&g_link, adsy_now_ms());
        wait = link_wait < wait ? link_wait : wait;
    } else if (g_link.state == ADSY_LINK_UP && IDLE_CLOSE_MS < wait) {
        wait = IDLE_CLOSE_MS;
    }
    adsy_log_flush();
    if (wait > 0) {
        InterlockedExchange(&g_waiting, 1);
        if (!queued && adsy_changes_count(NULL) != 0)
            wait = 0; /* arrived meanwhile: go round again */
        if (wait > 0)
            WaitForSingleObject(g_wake, wait);
        InterlockedExchange(&g_waiting, 0);
    }
}

static DWORD WINAPI worker_main(LPVOID arg)
{
    (void)arg;
    static volatile int faults; /* survives a resumed context */
    adsy_link_init(&g_link, g_settings.backoff_initial_ms, g_settings.backoff_max_ms);
    /* The spool: created, opened, every record read and opened here, not at boot. */
    int rc = adsy_spool_init(g_settings.spool_dir);
    if (rc != ADSY_OK)
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "spool_unavailable", rc, 0);
    InterlockedExchange(&g_probe, 1); /* learn at once whether the daemon is there */
    for (;;) {
        adsy_guard g;
        ADSY_GUARD_ENTER(g);
        if (g.faulted) {
            adsy_conn_close(&g_conn);
            g_link.state = ADSY_LINK_DOWN;
            adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "fault_in_worker", 0, g_faults);
            if (++faults >= MAX_WORKER_FAULTS) {
                InterlockedExchange(&g_daemon_down, 1);
                adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "worker_stopped", 0, faults);
                adsy_log_flush();
                return 1;
            }
            Sleep(1000);
            continue;
        }
        step();
        adsy_guard_leave(&g);
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

/* The three entry points LSASS calls (names fixed by the .def file). */
#include "internal.h"

#include "../core/utf.h"

static volatile LONG g_init_state; /* 0 not yet, 1 running, 2 ok, 3 failed */
static int g_worker_started;       /* the worker drains the log ring from then on */
static uint8_t g_domain_buf[256], g_host_buf[256];

__attribute__((no_stack_protector)) BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason,
                                                         LPVOID reserved)
{
    (void)reserved;
    if (reason == DLL_PROCESS_ATTACH) {
        adsy_ssp_init(); /* no DLL load, no lock: counters and ids only */
        DisableThreadLibraryCalls(inst); /* nothing else here: loader lock */
    }
    return TRUE;
}

ULONGLONG adsy_now_ms(void)
{
    return GetTickCount64();
}

uint64_t adsy_filetime(void)
{
    FILETIME ft;
    GetSystemTimeAsFileTime(&ft);
    return ((uint64_t)ft.dwHighDateTime << 32) | ft.dwLowDateTime; /* 100 ns since 1601 */
}

uint64_t adsy_unix_ms(void)
{
    return (adsy_filetime() - 116444736000000000ull) / 10000u;
}

static void name_utf8(COMPUTER_NAME_FORMAT f, uint8_t *out, size_t cap, adsy_str *s)
{
    WCHAR w[128];
    DWORD n = 128;
    size_t len = 0;
    s->p = out;
    s->len = 0;
    if (GetComputerNameExW(f, w, &n) && n > 0 &&
        adsy_utf16_to_utf8((const uint16_t *)w, n, out, cap, &len) == ADSY_OK)
        s->len = len;
}

/* Everything InitializeChangeNotify does on LSASS's boot thread: settings, the exclusions,
 * the key file (a DPAPI blob or 32 raw bytes, its ACL checked), key derivation, the queue,
 * the worker. The spool (directory, open, read and decrypt every record) is the worker's
 * first job, never done here. */
static BOOLEAN initialize(void)
{
    adsy_settings_load(&g_settings);
    adsy_log_init(&g_settings);
    adsy_settings_watch();
    adsy_exclusions_load();
    int rc;
    if ((rc = adsy_crypto_init()) != ADSY_OK) {
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "crypto_init_failed", rc, 0);
        goto fail;
    }
    if ((rc = adsy_psk_load(g_settings.key_file, g_psk)) != 0) {
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "key_file_unusable", rc, 0);
        goto fail;
    }
    uint8_t spool_key[32];
    rc = adsy_spool_key(ADSY_MAC, g_psk, spool_key);
    if (rc == ADSY_OK)
        rc = adsy_aead_set_key(spool_key);
    SecureZeroMemory(spool_key, sizeof spool_key);
    if (rc != ADSY_OK) {
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "spool_key_failed", rc, 0);
        goto fail;
    }
    name_utf8(ComputerNameDnsDomain, g_domain_buf, sizeof g_domain_buf, &g_domain);
    name_utf8(ComputerNameDnsHostname, g_host_buf, sizeof g_host_buf, &g_host);
    adsy_spool_setup();
    if ((rc = adsy_net_init()) != ADSY_OK ||
        (rc = adsy_changes_init(g_settings.queue_capacity)) != ADSY_OK ||
        (rc = adsy_worker_start()) != ADSY_OK) {
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "init_failed", rc, 0);
        goto fail;
    }
    g_worker_started = 1;
    adsy_log(ADSY_LOG_INFO, "initialized", 0, 0);
    return TRUE;
fail:
    /* No worker will ever drain the ring: write out why the package stays inactive here,
     * once (LSASS's boot thread, which already read the key file). */
    adsy_log_flush();
    return FALSE;
}

BOOLEAN NTAPI InitializeChangeNotify(void)
{
    if (InterlockedCompareExchange(&g_init_state, 1, 0) != 0)
        return g_init_state == 2;
    int guard_rc = adsy_guard_init(); /* first, so that the rest runs guarded */
    adsy_guard g;
    ADSY_GUARD_ENTER(g);
    if (g.faulted) {
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "fault_in_initialize", 0, g_faults);
        if (!g_worker_started)
            adsy_log_flush();
        InterlockedExchange(&g_init_state, 3);
        return FALSE;
    }
    BOOLEAN ok = initialize();
    if (guard_rc != ADSY_OK)
        adsy_log(ADSY_LOG_WARNING, "fault_guard_unavailable", guard_rc, 0);
    adsy_guard_leave(&g);
    InterlockedExchange(&g_init_state, ok ? 2 : 3);
    return ok;
}

NTSTATUS NTAPI PasswordChangeNotify(PUNICODE_STRING UserName, ULONG RelativeId,
                                    PUNICODE_STRING NewPassword)
{
    if (g_init_state != 2)
        return 0;
    if (adsy_settings_disabled())
        return 0; /* the kill switch: nothing captured */
    adsy_guard g;
    ADSY_GUARD_ENTER(g);
    if (g.faulted) {
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "fault_in_change_notify", 0, g_faults);
        return 0;
    }
    NTSTATUS st = adsy_changes_notify(UserName, RelativeId, NewPassword);
    adsy_guard_leave(&g);
    return st;
}

/* UTF-16 UNICODE_STRING -> UTF-8 in buf; an empty or unconvertible one gives len 0. */
static int to_utf8(const UNICODE_STRING *u, uint8_t *buf, size_t cap, adsy_str *s)
{
    size_t n = 0;
    s->p = buf;
    s->len = 0;
    if (!u || !u->Buffer || u->Length == 0)
        return ADSY_E_EMPTY;
    int rc = adsy_utf16_to_utf8((const uint16_t *)u->Buffer, u->Length / 2, buf, cap, &n);
    s->len = n;
    return rc;
}

enum { CHECK_ACCEPT, CHECK_REJECT, CHECK_UNDECIDED };

static int ask_daemon(const UNICODE_STRING *acct, const UNICODE_STRING *full,
                      const UNICODE_STRING *pw, BOOLEAN set_op, ULONGLONG deadline)
{
    uint8_t a[ADSY_MAX_ACCOUNT], f[ADSY_MAX_STRING], p[ADSY_MAX_PASSWORD];
    uint8_t frame[4 + 16 + 6 * 3 + 1 + ADSY_MAX_ACCOUNT + ADSY_MAX_STRING + ADSY_MAX_PASSWORD +
                  sizeof g_domain_buf + sizeof g_host_buf];
    adsy_str as, fs, ps;
    adsy_conn c = {.s = INVALID_SOCKET, .next_request_id = 1};
    adsy_reply r;
    int verdict = CHECK_UNDECIDED;
    long n = ADSY_E_EMPTY;

    if (to_utf8(acct, a, sizeof a, &as) == ADSY_OK && to_utf8(pw, p, sizeof p, &ps) == ADSY_OK) {
        if (to_utf8(full, f, sizeof f, &fs) != ADSY_OK)
            fs.len = 0; /* optional */
        n = adsy_encode_check(frame, sizeof frame, 0, as, fs, ps, set_op, g_domain, g_host);
    }
    SecureZeroMemory(p, sizeof p);
    if (n < 0) {
        adsy_log(ADSY_LOG_WARNING, "check_not_encodable", n, 0);
        return CHECK_UNDECIDED;
    }
    ADSY_TEST_FAULT(acct);
    int rc = adsy_conn_open(&c, g_settings.port, g_psk, deadline);
    if (rc == ADSY_NET_CLOSED || rc == ADSY_NET_TIMEOUT)
        adsy_worker_probe(); /* the worker finds out whether the daemon is down */
    if (rc == ADSY_NET_OK) {
        uint64_t id = c.next_request_id++;
        for (int i = 0; i < 8; i++)
            frame[12 + i] = (uint8_t)(id >> (56 - 8 * i));
        rc = adsy_conn_send(&c, frame, (size_t)n, deadline);
    }
    SecureZeroMemory(frame, sizeof frame);
    if (rc == ADSY_NET_OK)
        rc = adsy_conn_recv(&c, &r, deadline);
    if (rc == ADSY_NET_OK && r.type == ADSY_T_VERDICT && r.request_id == c.next_request_id - 1)
        verdict = r.status == ADSY_ACCEPT ? CHECK_ACCEPT
                : r.status == ADSY_REJECT ? CHECK_REJECT
                                          : CHECK_UNDECIDED;
    else
        adsy_log(ADSY_LOG_WARNING, "check_undecided", rc, 0);
    adsy_conn_close(&c);
    return verdict;
}

static BOOLEAN undecided(BOOLEAN set_op)
{
    int accept = set_op ? g_settings.on_undecided_set_accept : g_settings.on_undecided_accept;
    return accept ? TRUE : FALSE;
}

BOOLEAN NTAPI PasswordFilter(PUNICODE_STRING AccountName, PUNICODE_STRING FullName,
                             PUNICODE_STRING Password, BOOLEAN SetOperation)
{
    if (g_init_state != 2)
        return TRUE; /* not initialised: never block password changes */
    if (adsy_settings_disabled())
        return TRUE; /* the kill switch: accept without asking */
    if (adsy_account_is_excluded(AccountName, 0))
        return TRUE; /* not a user password: never asked about, never refused */
    if (g_daemon_down) {
        /* the worker's last connect failed: do not spend the deadline on it */
        adsy_log(ADSY_LOG_DEBUG, "check_daemon_down", 0, 1);
        return undecided(SetOperation);
    }
    adsy_guard g;
    ADSY_GUARD_ENTER(g);
    if (g.faulted) {
        adsy_log(ADSY_LOG_ERROR | ADSY_LOG_EVENTLOG, "fault_in_password_filter", 0, g_faults);
        return undecided(SetOperation);
    }
    ULONGLONG deadline = adsy_now_ms() + g_settings.deadline_ms;
    int v = ask_daemon(AccountName, FullName, Password, SetOperation, deadline);
    adsy_guard_leave(&g);
    if (v == CHECK_ACCEPT)
        return TRUE;
    if (v == CHECK_REJECT) {
        adsy_log(ADSY_LOG_INFO, "check_rejected", 0, 1);
        return FALSE;
    }
    return undecided(SetOperation);
}

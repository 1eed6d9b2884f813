/* Shared state of the Win32 shell. Everything here runs inside LSASS: no unbounded
 * allocation; LSASS's threads take no lock and do no file I/O (the bounded CHECK on its
 * socket is their only wait); the worker thread owns the spool, the log file and the
 * Event Log; nothing but event names, counts and error codes is ever logged. */
#ifndef ADSY_INTERNAL_H
#define ADSY_INTERNAL_H

#include <winsock2.h>
#include <windows.h>
#include <ntsecapi.h>
#include <stdint.h>

#include "../core/adsy_errors.h"
#include "../core/change.h"
#include "../core/kdf.h"
#include "../core/link.h"
#include "../core/logring.h"
#include "../core/proto.h"
#include "../core/queue.h"
#include "../core/seal.h"
#include "../core/spool.h"

#define ADSY_CLIENT_NAME "adsyncflt/1.0"

/* ---- settings (settings.c): HKLM\SOFTWARE\adsync\Filter ---- */
typedef struct adsy_settings {
    DWORD port;               /* Port, default 17635 */
    WCHAR key_file[MAX_PATH]; /* KeyFile, default %ProgramData%\adsync\filter.key */
    DWORD deadline_ms;        /* DeadlineMs: PasswordFilter's CHECK budget, default 2000 */
    int on_undecided_accept;  /* OnUndecided: "accept" (default) | "reject": a change */
    int on_undecided_set_accept; /* OnUndecidedSet: the same for a set (admin reset);
                                    default: OnUndecided's value */
    WCHAR spool_dir[MAX_PATH];/* SpoolDir, default %ProgramData%\adsync\spool */
    int log_level;            /* LogLevel: error|warning|info|debug, default warning */
    WCHAR log_file[MAX_PATH]; /* LogFile, default %ProgramData%\adsync\adsyncflt.log; "" = off */
    DWORD queue_capacity;     /* QueueCapacity, default 1024 (64..8192) */
    DWORD backoff_initial_ms; /* BackoffInitialMs, default 1000 */
    DWORD backoff_max_ms;     /* BackoffMaxMs, default 60000 */
    DWORD connect_timeout_ms; /* ConnectTimeoutMs, default 2000 */
    DWORD ack_timeout_ms;     /* AckTimeoutMs, default 15000 */
    DWORD spool_after_ms;     /* SpoolAfterMs: un-ACKed this long -> spooled, default 1000 */
    DWORD spool_max_records;  /* SpoolMaxRecords, default 100000 */
    DWORD spool_max_age_s;    /* SpoolMaxAgeSeconds, default 604800 (7 days) */
} adsy_settings;

void adsy_settings_load(adsy_settings *s);
/* Starts the watcher thread that keeps the kill switch current (InitializeChangeNotify). */
void adsy_settings_watch(void);
/* The kill switch, checked on every call: DWORD Disabled != 0, as the watcher last read
 * it (within milliseconds of a change). No lock, no system call. */
int adsy_settings_disabled(void);

/* ---- logging (log.c): event names are constants, values are numbers ----
 * adsy_log only records into a lock-free ring (any thread, no system call); the worker
 * writes the ring out (adsy_log_flush) to the log file and, for ADSY_LOG_EVENTLOG
 * entries, to the Application Event Log. */
enum { ADSY_LOG_ERROR = 0, ADSY_LOG_WARNING = 1, ADSY_LOG_INFO = 2, ADSY_LOG_DEBUG = 3 };
#define ADSY_LOG_EVENTLOG 0x10 /* or'ed into the level: also an Event Log entry */
void adsy_log_init(const adsy_settings *s);
void adsy_log(int level, const char *event, long code, unsigned long long count);
void adsy_log_flush(void); /* worker only */

/* ---- crypto (wincrypto.c): BCrypt ---- */
int adsy_crypto_init(void);
int adsy_random(void *buf, ULONG n);
uint32_t adsy_random32(void);
int adsy_bcrypt_hmac(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *msg,
                     size_t msg_len, uint8_t out[32]);
int adsy_aead_set_key(const uint8_t key[32]);
extern const adsy_aead ADSY_AEAD;
extern const adsy_mac ADSY_MAC;
/* An AES-256-GCM of its own key (a sealed connection's direction); free it after use. */
int adsy_gcm_key(const uint8_t key[32], adsy_aead *out);
void adsy_gcm_key_free(adsy_aead *a);

/* ---- network (net.c) ---- */
typedef struct adsy_conn {
    SOCKET s;
    uint8_t *rx; /* ADSY_SEALED_MAX bytes, heap: a frame's bytes as they arrive */
    uint64_t next_request_id;
    int sealed;  /* after AUTH_OK: every frame sealed (protocol version 2) */
    uint8_t *pt; /* ADSY_FRAME_MAX bytes, heap: an opened reply */
    uint8_t *tx; /* ADSY_CONN_TX bytes, heap: sealed frames on their way out (a batch's
                    small frames go in one send; the largest frame fits alone) */
    adsy_seal_dir out, in;
} adsy_conn;
#define ADSY_CONN_TX (4u + ADSY_SEALED_MAX)

int adsy_net_init(void);
/* Connects to 127.0.0.1:port and runs the PSK handshake of protocol version 2, all before
 * deadline (tick ms). The daemon's proof is checked before anything else is sent; from
 * AUTH_OK on, send seals and recv opens every frame. */
int adsy_conn_open(adsy_conn *c, DWORD port, const uint8_t psk[32], ULONGLONG deadline);
/* buf: whole cleartext frames, one after another (sealed here once the handshake is done). */
int adsy_conn_send(adsy_conn *c, const uint8_t *buf, size_t len, ULONGLONG deadline);
int adsy_conn_recv(adsy_conn *c, adsy_reply *r, ULONGLONG deadline);
/* ADSY_NET_OK once a byte can be read, ADSY_NET_TIMEOUT at until (nothing consumed). */
int adsy_conn_readable(adsy_conn *c, ULONGLONG until);
/* 0 when the peer has closed or reset the connection (checked without waiting). */
int adsy_conn_alive(adsy_conn *c);
void adsy_conn_close(adsy_conn *c);

enum { ADSY_NET_OK = 0, ADSY_NET_TIMEOUT = -100, ADSY_NET_CLOSED = -101, ADSY_NET_SOCKET = -102,
       ADSY_NET_PROTOCOL = -103, ADSY_NET_AUTH = -104, ADSY_NET_NOMEM = -105,
       ADSY_NET_SEAL = -106 /* a sealed reply failed its tag: the connection is dropped */ };

/* ---- spool file (spoolfile.c): touched by the worker thread only ---- */
void adsy_spool_setup(void); /* no I/O: InitializeChangeNotify */
int adsy_spool_init(const WCHAR *dir); /* directory, open, check: on the worker */
/* Seals and appends n changes, then FlushFileBuffers; ADSY_OK only once they are durable. */
int adsy_spool_append(const adsy_change *const *changes, size_t n);
/* Reads up to max records from the read cursor without consuming them. */
size_t adsy_spool_peek(adsy_change *out, size_t max);
/* Consumes n records (acknowledged); empties the file when everything is consumed. */
void adsy_spool_consume(size_t n);
int adsy_spool_pending(void);
unsigned long long adsy_spool_count(void);
/* Joins dir and name into out[cap] with a terminating NUL; 0 if it does not fit. */
int adsy_path_join(WCHAR *out, size_t cap, const WCHAR *dir, const WCHAR *name);

/* ---- secret paths (fileacl.c): owner and DACL limited to SYSTEM/Administrators ---- */
/* ADSY_OK, an ADSY_E_ACL_* / ADSY_E_REPARSE code, or a Win32 error (> 0). */
int adsy_check_secret_path(const WCHAR *path);
/* The file and the directory holding it. */
int adsy_check_secret_file(const WCHAR *path);
/* The PSK (psk.c): checked, then a DPAPI blob (machine scope) or 32 raw bytes. */
int adsy_psk_load(const WCHAR *path, uint8_t out[32]);

/* ---- account exclusions (exclude.c): krbtgt, krbtgt_*, *$, ExcludeAccounts ---- */
void adsy_exclusions_load(void);
/* 1: never forward nor refuse this account's secret (which: 0 filter, 1 notify). */
int adsy_account_is_excluded(const UNICODE_STRING *account, int which);

/* ---- changes (changes.c): the lock-free queue between LSASS and the worker ---- */
int adsy_changes_init(DWORD capacity);
/* Called on LSASS's thread: converts and enqueues; no lock, no I/O, no wait: a full
 * queue is a counted drop. */
NTSTATUS adsy_changes_notify(const UNICODE_STRING *user, ULONG rid, const UNICODE_STRING *pw);
/* Worker side. */
size_t adsy_changes_copy(adsy_change *out, size_t max);
void adsy_changes_pop(size_t n);
size_t adsy_changes_count(int *past_half);
/* Changes lost because the queue was full, since the last call (worker reports them). */
unsigned long long adsy_changes_take_dropped(void);

/* ---- worker (worker.c) ---- */
extern adsy_settings g_settings;
extern uint8_t g_psk[32];
extern adsy_str g_domain, g_host;
/* 1 while the worker's last connect failed: PasswordFilter then answers OnUndecided at
 * once instead of spending its deadline. Only the worker sets and clears it. */
extern volatile LONG g_daemon_down;
int adsy_worker_start(void);
void adsy_worker_wake(void);
/* PasswordFilter could not reach the daemon: ask the worker to find out (cheap). */
void adsy_worker_probe(void);

/* ---- fault guard (guard.c): a fault in our code on a guarded thread returns from the
 * guarded call instead of taking LSASS down. Usage, in a function that returns after:
 *     adsy_guard g; ADSY_GUARD_ENTER(g); if (g.faulted) {...recover; return...}
 *     ...body...; adsy_guard_leave();  */
typedef struct adsy_guard {
    CONTEXT ctx; /* where to resume: captured at entry */
    volatile LONG faulted;
    int armed;  /* registered in the TLS slot (the guard is installed) */
    void *prev; /* the guard this one nests in, restored on leave */
} adsy_guard;
int adsy_guard_init(void);
/* RtlCaptureContext "returns twice" (again when a fault resumes the saved context). */
__attribute__((returns_twice)) void adsy_capture_context(PCONTEXT c) __asm__("RtlCaptureContext");
void adsy_guard_arm(adsy_guard *g);
void adsy_guard_leave(adsy_guard *g);
#define ADSY_GUARD_ENTER(g)                                                                    \
    do {                                                                                       \
        (g).faulted = 0;                                                                       \
        (g).armed = 0;                                                                         \
        adsy_capture_context(&(g).ctx);                                                        \
        if (!(g).faulted)                                                                      \
            adsy_guard_arm(&(g));                                                              \
    } while (0)
extern volatile LONG64 g_faults;

/* ---- test hooks: compiled into build/adsyncflt_test.dll only (-DADSY_TEST_HOOKS) ---- */
#ifdef ADSY_TEST_HOOKS
void adsy_test_stall(void);            /* waits while %ADSY_TEST_STALL_FILE% exists */
int adsy_test_is_fault(const UNICODE_STRING *account); /* account "adsy-test-fault" */
void adsy_test_crash(void); /* an access violation in this DLL's code */
#define ADSY_TEST_STALL() adsy_test_stall()
#define ADSY_TEST_FAULT(acct)                                                                  \
    do {                                                                                       \
        if (adsy_test_is_fault(acct))                                                          \
            adsy_test_crash();                                                                 \
    } while (0)
#else
#define ADSY_TEST_STALL() ((void)0)
#define ADSY_TEST_FAULT(acct) ((void)0)
#endif

/* ---- exports (exports.c) ---- */
BOOLEAN NTAPI InitializeChangeNotify(void);
BOOLEAN NTAPI PasswordFilter(PUNICODE_STRING AccountName, PUNICODE_STRING FullName,
                             PUNICODE_STRING Password, BOOLEAN SetOperation);
NTSTATUS NTAPI PasswordChangeNotify(PUNICODE_STRING UserName, ULONG RelativeId,
                                    PUNICODE_STRING NewPassword);

void adsy_ssp_init(void); /* ssp.c: seeds the stack protector's guard, in DllMain */
ULONGLONG adsy_now_ms(void); /* monotonic tick */
uint64_t adsy_filetime(void); /* system time, 100 ns units since 1601 (FILETIME) */
uint64_t adsy_unix_ms(void);

#endif

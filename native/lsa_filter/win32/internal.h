/* Shared state of the Win32 shell. Everything here runs inside LSASS: no unbounded
 * allocation, no blocking on LSASS's threads except the bounded CHECK, no logging of
 * anything but event names, counts and error codes. */
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
#include "../core/proto.h"
#include "../core/queue.h"
#include "../core/spool.h"

#define ADSY_CLIENT_NAME "adsyncflt/1.0"

/* ---- settings (settings.c): HKLM\SOFTWARE\adsync\Filter ---- */
typedef struct adsy_settings {
    DWORD port;               /* Port, default 17635 */
    WCHAR key_file[MAX_PATH]; /* KeyFile, default %ProgramData%\adsync\filter.key */
    DWORD deadline_ms;        /* DeadlineMs: PasswordFilter's CHECK budget, default 2000 */
    int on_undecided_accept;  /* OnUndecided: "accept" (default) | "reject" */
    WCHAR spool_dir[MAX_PATH];/* SpoolDir, default %ProgramData%\adsync\spool */
    int log_level;            /* LogLevel: error|warning|info|debug, default warning */
    WCHAR log_file[MAX_PATH]; /* LogFile, default %ProgramData%\adsync\adsyncflt.log; "" = off */
    DWORD queue_capacity;     /* QueueCapacity, default 1024 (64..8192) */
    DWORD backoff_initial_ms; /* BackoffInitialMs, default 1000 */
    DWORD backoff_max_ms;     /* BackoffMaxMs, default 60000 */
    DWORD connect_timeout_ms; /* ConnectTimeoutMs, default 2000 */
    DWORD ack_timeout_ms;     /* AckTimeoutMs, default 15000 */
} adsy_settings;

void adsy_settings_load(adsy_settings *s);

/* ---- logging (log.c): event names are constants, values are numbers ---- */
enum { ADSY_LOG_ERROR = 0, ADSY_LOG_WARNING = 1, ADSY_LOG_INFO = 2, ADSY_LOG_DEBUG = 3 };
void adsy_log_init(const adsy_settings *s);
void adsy_log(int level, const char *event, long code, unsigned long long count);

/* ---- crypto (wincrypto.c): BCrypt ---- */
int adsy_crypto_init(void);
int adsy_random(void *buf, ULONG n);
uint32_t adsy_random32(void);
int adsy_bcrypt_hmac(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *msg,
                     size_t msg_len, uint8_t out[32]);
int adsy_aead_set_key(const uint8_t key[32]);
extern const adsy_aead ADSY_AEAD;
extern const adsy_mac ADSY_MAC;

/* ---- network (net.c) ---- */
typedef struct adsy_conn {
    SOCKET s;
    uint8_t *rx; /* ADSY_FRAME_MAX bytes, heap */
    uint64_t next_request_id;
} adsy_conn;

int adsy_net_init(void);
/* Connects to 127.0.0.1:port and runs the PSK handshake, all before deadline (tick ms).
 * The daemon's proof is checked before anything else is sent. */
int adsy_conn_open(adsy_conn *c, DWORD port, const uint8_t psk[32], ULONGLONG deadline);
int adsy_conn_send(adsy_conn *c, const uint8_t *buf, size_t len, ULONGLONG deadline);
int adsy_conn_recv(adsy_conn *c, adsy_reply *r, ULONGLONG deadline);
void adsy_conn_close(adsy_conn *c);

enum { ADSY_NET_OK = 0, ADSY_NET_TIMEOUT = -100, ADSY_NET_CLOSED = -101, ADSY_NET_SOCKET = -102,
       ADSY_NET_PROTOCOL = -103, ADSY_NET_AUTH = -104, ADSY_NET_NOMEM = -105 };

/* ---- spool file (spoolfile.c) ---- */
int adsy_spool_init(const WCHAR *dir);
/* Seals and appends n changes, then FlushFileBuffers; ADSY_OK only once they are durable. */
int adsy_spool_append(const adsy_change *const *changes, size_t n);
/* Reads up to max records from the read cursor without consuming them. */
size_t adsy_spool_peek(adsy_change *out, size_t max);
/* Consumes n records (acknowledged); empties the file when everything is consumed. */
void adsy_spool_consume(size_t n);
int adsy_spool_pending(void);
unsigned long long adsy_spool_count(void);

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

/* ---- changes (changes.c): the queue between LSASS and the worker ---- */
int adsy_changes_init(DWORD capacity);
/* Called on LSASS's thread: converts and enqueues; never blocks on the network. */
NTSTATUS adsy_changes_notify(const UNICODE_STRING *user, ULONG rid, const UNICODE_STRING *pw);
/* Worker side. */
size_t adsy_changes_copy(adsy_change *out, size_t max);
void adsy_changes_pop(size_t n);
size_t adsy_changes_count(int *past_half);

/* ---- worker (worker.c) ---- */
extern adsy_settings g_settings;
extern uint8_t g_psk[32];
extern adsy_str g_domain, g_host;
int adsy_worker_start(void);
void adsy_worker_wake(void);

/* ---- exports (exports.c) ---- */
BOOLEAN NTAPI InitializeChangeNotify(void);
BOOLEAN NTAPI PasswordFilter(PUNICODE_STRING AccountName, PUNICODE_STRING FullName,
                             PUNICODE_STRING Password, BOOLEAN SetOperation);
NTSTATUS NTAPI PasswordChangeNotify(PUNICODE_STRING UserName, ULONG RelativeId,
                                    PUNICODE_STRING NewPassword);

ULONGLONG adsy_now_ms(void); /* monotonic tick */
uint64_t adsy_unix_ms(void);

#endif

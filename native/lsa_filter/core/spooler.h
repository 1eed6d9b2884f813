/* The spool file's write side and its start-up check, over file callbacks: WriteFile /
 * FlushFileBuffers / SetEndOfFile in the DLL (win32/spoolfile.c), an in-memory recorder
 * that keeps written bytes apart from flushed ones in the native tests (power loss).
 *
 * The durability rule lives here, once: a batch is sealed and written record by record
 * after the current end, then flushed; only when the flush returned is the batch counted
 * as spooled (the worker may then forget it). Any failure cuts the file back to where the
 * batch started, so nothing half-written stays behind a later batch. */
#ifndef ADSY_SPOOLER_H
#define ADSY_SPOOLER_H
#include <stddef.h>
#include <stdint.h>

#include "change.h"
#include "spool.h"

typedef struct adsy_spool_file {
    /* Writes exactly n bytes at off: 0, or -1. */
    int (*write)(void *ctx, uint64_t off, const uint8_t *buf, size_t n);
    /* Makes everything written so far durable: 0 once it is, or -1. */
    int (*flush)(void *ctx);
    /* Sets the file's size, then flushes: 0, or -1. */
    int (*truncate)(void *ctx, uint64_t size);
    /* A fresh nonce: 0, or -1. */
    int (*random)(void *ctx, uint8_t *buf, size_t n);
    void *ctx;
} adsy_spool_file;

/* Seals changes[0..n) and appends them at *end, then flushes. ADSY_OK once the flush
 * returned: *end is the new end. Otherwise the file is cut back to *end (unchanged) and
 * the error is ADSY_E_CRYPTO (sealing or the nonce failed) or ADSY_E_SPACE (a write or
 * the flush failed). rec[ADSY_SPOOL_MAX_RECORD] is scratch space, wiped. */
int adsy_spool_write_batch(adsy_aead a, const adsy_spool_file *f, uint8_t *rec,
                           const adsy_change *const *changes, size_t n, uint64_t *end);

/* What the start-up check decided. */
enum {
    ADSY_SCAN_KEEP = 1,  /* every byte up to end stays (damaged records are skipped later) */
    ADSY_SCAN_CUT,       /* a torn tail was cut off at cut_at (the file now ends there) */
    ADSY_SCAN_SET_ASIDE, /* no record opens (another key): the caller sets the file aside */
    ADSY_SCAN_UNDECIDED  /* a read failed: nothing decided, the worker reads the rest later */
};

typedef struct adsy_spool_scan {
    int action;
    int why;                /* the torn tail's reason (ADSY_SCAN_CUT) */
    unsigned long long ok;  /* records that open */
    unsigned long long skipped;
    uint64_t stop;          /* where reading stopped: damage before it is reported */
    uint64_t end;           /* the file's end after the check */
    uint64_t cut_at;        /* ADSY_SCAN_CUT: where the tail was cut */
    int cut_failed;         /* ADSY_SCAN_CUT: the truncate callback failed */
} adsy_spool_scan;

/* Called once per skipped (damaged) record: why, and the number skipped so far. */
typedef void (*adsy_skip_fn)(void *ctx, int why, unsigned long long skipped);

/* Reads every record of [0, end) once: counts those that open, reports the damaged ones
 * (they stay in place and are skipped when read), cuts a torn tail through f->truncate,
 * and asks for the file to be set aside only when no record in it opens. */
void adsy_spool_check(adsy_spool_reader *r, const adsy_spool_file *f, uint64_t end,
                      adsy_skip_fn on_skip, void *skip_ctx, adsy_spool_scan *out);

#endif

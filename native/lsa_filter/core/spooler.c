#include "spooler.h"

#include <string.h>

#include "adsy_errors.h"
#include "wipe.h"

/* Seals one change into rec and writes it at off: ADSY_OK and *len, or the error. */
static int put_record(adsy_aead a, const adsy_spool_file *f, uint8_t *rec, const adsy_change *c,
                      uint64_t off, size_t *len)
{
    uint8_t nonce[ADSY_SPOOL_NONCE_LEN];
    if (f->random(f->ctx, nonce, sizeof nonce) != 0)
        return ADSY_E_CRYPTO;
    int rc = adsy_spool_seal(a, c, nonce, rec, ADSY_SPOOL_MAX_RECORD, len);
    if (rc == ADSY_OK && f->write(f->ctx, off, rec, *len) != 0)
        rc = ADSY_E_SPACE;
    adsy_wipe(rec, ADSY_SPOOL_MAX_RECORD);
    return rc;
}

int adsy_spool_write_batch(adsy_aead a, const adsy_spool_file *f, uint8_t *rec,
                           const adsy_change *const *changes, size_t n, uint64_t *end)
{
    uint64_t off = *end;
    int rc = ADSY_OK;
    for (size_t i = 0; i < n && rc == ADSY_OK; i++) {
        size_t len = 0;
        rc = put_record(a, f, rec, changes[i], off, &len);
        off += len;
    }
    if (rc == ADSY_OK && f->flush(f->ctx) != 0)
        rc = ADSY_E_SPACE;
    if (rc == ADSY_OK)
        *end = off;
    else
        f->truncate(f->ctx, *end); /* nothing half-written stays behind */
    return rc;
}

void adsy_spool_check(adsy_spool_reader *r, const adsy_spool_file *f, uint64_t end,
                      adsy_skip_fn on_skip, void *skip_ctx, adsy_spool_scan *out)
{
    adsy_change c;
    uint64_t off = 0, next;
    int why = 0, st;
    memset(out, 0, sizeof *out);
    while ((st = adsy_spool_step(r, off, end, &c, &next, &why)) == ADSY_STEP_RECORD ||
           st == ADSY_STEP_SKIP) {
        if (st == ADSY_STEP_RECORD) {
            out->ok++;
        } else {
            out->skipped++;
            if (on_skip)
                on_skip(skip_ctx, why, out->skipped);
        }
        off = next;
    }
    adsy_wipe(&c, sizeof c);
    out->stop = off;
    out->end = end;
    if (st == ADSY_STEP_IOERR) {
        out->action = ADSY_SCAN_UNDECIDED;
    } else if (out->ok == 0 && out->skipped > 0) {
        out->action = ADSY_SCAN_SET_ASIDE;
    } else if (st == ADSY_STEP_TORN) {
        out->action = ADSY_SCAN_CUT;
        out->why = why;
        out->cut_at = off;
        out->cut_failed = f->truncate(f->ctx, off) != 0;
        out->end = off;
    } else {
        out->action = ADSY_SCAN_KEEP;
    }
}

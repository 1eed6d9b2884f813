#include "spool.h"

#include <string.h>

#include "adsy_errors.h"
#include "proto.h"
#include "wipe.h"

static void be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

static long build_plaintext(const adsy_change *c, uint8_t *pt, size_t cap)
{
    /* The CHANGE encoder's field writer, without the frame header. */
    adsy_writer w = {pt, cap, 0, 0};
    adsy_w_field(&w, ADSY_TAG_ACCOUNT, c->account, c->account_len);
    adsy_w_field(&w, ADSY_TAG_PASSWORD, c->password, c->password_len);
    adsy_w_u32(&w, ADSY_TAG_RID, c->rid);
    adsy_w_u64(&w, ADSY_TAG_CHANGED_AT, c->changed_at_ms);
    adsy_w_field(&w, ADSY_TAG_EVENT_ID, c->event_id, ADSY_EVENT_ID_LEN);
    adsy_w_u64(&w, ADSY_TAG_SOURCE_SEQ, c->seq);
    return w.err ? w.err : (long)w.len;
}

int adsy_spool_seal(adsy_aead a, const adsy_change *c, const uint8_t nonce[12], uint8_t *out,
                    size_t cap, size_t *out_len)
{
    uint8_t pt[ADSY_SPOOL_MAX_PT];
    *out_len = 0;
    if (c->account_len == 0 || c->password_len == 0)
        return ADSY_E_EMPTY;
    if (c->account_len > ADSY_MAX_ACCOUNT || c->password_len > ADSY_MAX_PASSWORD)
        return ADSY_E_SPACE;
    long n = build_plaintext(c, pt, sizeof pt);
    int rc = ADSY_OK;
    if (n < 0) {
        rc = (int)n;
    } else if (cap < ADSY_SPOOL_HEAD_LEN + (size_t)n + ADSY_SPOOL_TAG_LEN) {
        rc = ADSY_E_SPACE;
    } else {
        memcpy(out, ADSY_SPOOL_MAGIC, 4);
        be32(out + 4, (uint32_t)n);
        memcpy(out + 8, nonce, ADSY_SPOOL_NONCE_LEN);
        if (a.seal(a.ctx, nonce, out, 8, pt, (size_t)n, out + ADSY_SPOOL_HEAD_LEN,
                   out + ADSY_SPOOL_HEAD_LEN + n) != 0)
            rc = ADSY_E_CRYPTO;
        else
            *out_len = ADSY_SPOOL_HEAD_LEN + (size_t)n + ADSY_SPOOL_TAG_LEN;
    }
    adsy_wipe(pt, sizeof pt);
    return rc;
}

int adsy_spool_record_len(const uint8_t head[8], size_t *rec_len)
{
    if (memcmp(head, ADSY_SPOOL_MAGIC, 4) != 0)
        return ADSY_E_MAGIC;
    uint32_t n = (uint32_t)get_be(head + 4, 4);
    if (n == 0 || n > ADSY_SPOOL_MAX_PT)
        return ADSY_E_LENGTH;
    *rec_len = ADSY_SPOOL_HEAD_LEN + n + ADSY_SPOOL_TAG_LEN;
    return ADSY_OK;
}

int adsy_spool_parse(const uint8_t *pt, size_t n, adsy_change *c)
{
    unsigned seen = 0;
    adsy_tlv it = {pt, n, 0};
    uint8_t tag;
    const uint8_t *v;
    uint16_t l;
    int rc;
    memset(c, 0, sizeof *c);
    while ((rc = adsy_tlv_next(&it, &tag, &v, &l)) == 1) {
        unsigned bit;
        switch (tag) {
        case ADSY_TAG_ACCOUNT:
            bit = 1;
            if (l == 0 || l > ADSY_MAX_ACCOUNT)
                rc = ADSY_E_FIELDLEN;
            else {
                memcpy(c->account, v, l);
                c->account_len = l;
            }
            break;
        case ADSY_TAG_PASSWORD:
            bit = 2;
            if (l == 0 || l > ADSY_MAX_PASSWORD)
                rc = ADSY_E_FIELDLEN;
            else {
                memcpy(c->password, v, l);
                c->password_len = l;
            }
            break;
        case ADSY_TAG_RID:
            bit = 4;
            if (l != 4)
                rc = ADSY_E_FIELDLEN;
            else
                c->rid = (uint32_t)get_be(v, 4);
            break;
        case ADSY_TAG_CHANGED_AT:
            bit = 8;
            if (l != 8)
                rc = ADSY_E_FIELDLEN;
            else
                c->changed_at_ms = get_be(v, 8);
            break;
        case ADSY_TAG_EVENT_ID:
            bit = 16;
            if (l != ADSY_EVENT_ID_LEN)
                rc = ADSY_E_FIELDLEN;
            else
                memcpy(c->event_id, v, l);
            break;
        case ADSY_TAG_SOURCE_SEQ:
            bit = 32;
            if (l != 8)
                rc = ADSY_E_FIELDLEN;
            else
                c->seq = get_be(v, 8);
            break;
        default:
            rc = ADSY_E_VALUE; /* we wrote it: anything else is corruption */
            bit = 0;
            break;
        }
        if (rc < 0)
            break;
        if (seen & bit) {
            rc = ADSY_E_DUP;
            break;
        }
        seen |= bit;
    }
    if (rc == 0 && seen != 63u)
        rc = ADSY_E_MISSING;
    if (rc < 0) {
        adsy_wipe(c, sizeof *c);
        return rc;
    }
    return ADSY_OK;
}

int adsy_spool_open(adsy_aead a, const uint8_t *rec, size_t rec_len, adsy_change *c)
{
    uint8_t pt[ADSY_SPOOL_MAX_PT];
    size_t want;
    memset(c, 0, sizeof *c);
    if (rec_len < 8)
        return ADSY_E_TRUNC;
    int rc = adsy_spool_record_len(rec, &want);
    if (rc != ADSY_OK)
        return rc;
    if (rec_len != want)
        return ADSY_E_TRUNC;
    size_t n = want - ADSY_SPOOL_HEAD_LEN - ADSY_SPOOL_TAG_LEN;
    if (a.open(a.ctx, rec + 8, rec, 8, rec + ADSY_SPOOL_HEAD_LEN, n,
               rec + ADSY_SPOOL_HEAD_LEN + n, pt) != 0) {
        adsy_wipe(pt, sizeof pt);
        return ADSY_E_AUTH;
    }
    rc = adsy_spool_parse(pt, n, c);
    adsy_wipe(pt, sizeof pt);
    return rc;
}

/* ---- reading back ---- */

/* 1: a record opens at off (*c, *len); 0: none does (*why); -1: read error. */
static int try_open(adsy_spool_reader *r, uint64_t off, uint64_t end, adsy_change *c,
                    size_t *len, int *why)
{
    if (end - off < 8) {
        *why = ADSY_E_TRUNC;
        return 0;
    }
    if (r->read(r->ctx, off, r->rec, 8) != 0)
        return -1;
    int rc = adsy_spool_record_len(r->rec, len);
    if (rc != ADSY_OK) {
        *why = rc;
        return 0;
    }
    if (*len > end - off) {
        *why = ADSY_E_TRUNC;
        return 0;
    }
    if (r->read(r->ctx, off + 8, r->rec + 8, *len - 8) != 0) {
        adsy_wipe(r->rec, *len);
        return -1;
    }
    rc = adsy_spool_open(r->aead, r->rec, *len, c);
    adsy_wipe(r->rec, *len);
    if (rc != ADSY_OK) {
        *why = rc;
        return 0;
    }
    return 1;
}

/* 1 when [off, end) holds zero bytes only; -1 read error. */
static int all_zero(adsy_spool_reader *r, uint64_t off, uint64_t end)
{
    while (off < end) {
        size_t n = end - off < ADSY_SPOOL_WIN ? (size_t)(end - off) : ADSY_SPOOL_WIN;
        if (r->read(r->ctx, off, r->win, n) != 0)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (r->win[i] != 0)
                return 0;
        off += n;
    }
    return 1;
}

/* The first offset >= from where a record opens: 1 found, 0 none, -1 read error. */
static int resync(adsy_spool_reader *r, uint64_t from, uint64_t end, uint64_t *found)
{
    adsy_change c;
    uint64_t pos = from;
    int result = 0;
    while (result == 0 && end > pos && end - pos >= 8) {
        size_t n = end - pos < ADSY_SPOOL_WIN ? (size_t)(end - pos) : ADSY_SPOOL_WIN;
        if (r->read(r->ctx, pos, r->win, n) != 0)
            return -1;
        for (size_t i = 0; i + 4 <= n && result == 0; i++) {
            if (memcmp(r->win + i, ADSY_SPOOL_MAGIC, 4) != 0)
                continue;
            size_t len;
            int why;
            uint64_t at = pos + i;
            int rc = try_open(r, at, end, &c, &len, &why);
            adsy_wipe(&c, sizeof c);
            if (rc != 0) {
                result = rc;
                *found = at;
            }
        }
        pos += n - 3; /* overlap: a magic across the window's edge is still seen */
    }
    return result;
}

int adsy_spool_step(adsy_spool_reader *r, uint64_t off, uint64_t end, adsy_change *c,
                    uint64_t *next, int *why)
{
    size_t len = 0;
    uint64_t found;
    *why = ADSY_OK;
    *next = off;
    memset(c, 0, sizeof *c);
    if (off >= end)
        return ADSY_STEP_END;
    int rc = try_open(r, off, end, c, &len, why);
    if (rc < 0)
        return ADSY_STEP_IOERR;
    if (rc == 1) {
        *next = off + len;
        return ADSY_STEP_RECORD;
    }
    int z = all_zero(r, off, end);
    if (z < 0)
        return ADSY_STEP_IOERR;
    if (z == 1) {
        *why = ADSY_E_TRUNC;
        return ADSY_STEP_TORN;
    }
    int cut_short = *why == ADSY_E_TRUNC; /* header or record runs past the end */
    if (!cut_short && len > 0) {
        /* a sound header around a record that does not open: its length is likely right */
        if (off + len == end) {
            /* the last record, ending in 8+ zero bytes: its header reached the disk, its
             * tag did not (an append cut by a power loss after the size grew; a real tag
             * ends so with odds of 2^-64): a torn write, cut, never taken for a file in
             * which no record opens (a set-aside) when it is the only record */
            z = all_zero(r, end - ADSY_SPOOL_TORN_ZEROS, end);
            if (z < 0)
                return ADSY_STEP_IOERR;
            if (z == 1) {
                *why = ADSY_E_TRUNC;
                return ADSY_STEP_TORN;
            }
            *next = end;
            return ADSY_STEP_SKIP;
        }
        int dummy;
        size_t l2;
        rc = try_open(r, off + len, end, c, &l2, &dummy);
        adsy_wipe(c, sizeof *c);
        if (rc < 0)
            return ADSY_STEP_IOERR;
        if (rc == 1) {
            *next = off + len;
            return ADSY_STEP_SKIP;
        }
    }
    rc = resync(r, off + 1, end, &found);
    if (rc < 0)
        return ADSY_STEP_IOERR;
    if (rc == 1) {
        *next = found;
        return ADSY_STEP_SKIP;
    }
    if (cut_short)
        return ADSY_STEP_TORN;
    /* nothing opens up to the end: an append whose size reached the disk before its data
     * (the file ends in zeros; a real tag ends in 16 zero bytes with odds of 2^-128) */
    z = all_zero(r, end - off > ADSY_SPOOL_TAG_LEN ? end - ADSY_SPOOL_TAG_LEN : off, end);
    if (z < 0)
        return ADSY_STEP_IOERR;
    if (z == 1) {
        *why = ADSY_E_TRUNC;
        return ADSY_STEP_TORN;
    }
    *next = end;
    return ADSY_STEP_SKIP;
}

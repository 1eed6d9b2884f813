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

#include "proto.h"

#include <string.h>

#include "adsy_errors.h"
#include "utf.h"

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xFF);
        v >>= 8;
    }
}

static uint64_t get_be(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

void adsy_w_begin(adsy_writer *w, uint8_t *buf, size_t cap, uint8_t type, uint64_t request_id)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->err = 0;
    if (cap < 4 + ADSY_HEADER_LEN) {
        w->err = ADSY_E_SPACE;
        return;
    }
    memcpy(buf + 4, "ADSY", 4);
    buf[8] = ADSY_VERSION;
    buf[9] = type;
    buf[10] = 0;
    buf[11] = 0;
    put_be(buf + 12, request_id, 8);
    w->len = 4 + ADSY_HEADER_LEN;
}

void adsy_w_field(adsy_writer *w, uint8_t tag, const void *val, size_t len)
{
    if (w->err)
        return;
    if (len > 0xFFFF || w->cap - w->len < 3 + len || w->len + 3 + len - 4 > ADSY_FRAME_MAX) {
        w->err = ADSY_E_SPACE;
        return;
    }
    w->buf[w->len] = tag;
    put_be(w->buf + w->len + 1, len, 2);
    if (len)
        memcpy(w->buf + w->len + 3, val, len);
    w->len += 3 + len;
}

void adsy_w_u8(adsy_writer *w, uint8_t tag, uint8_t v)
{
    adsy_w_field(w, tag, &v, 1);
}

void adsy_w_u32(adsy_writer *w, uint8_t tag, uint32_t v)
{
    uint8_t b[4];
    put_be(b, v, 4);
    adsy_w_field(w, tag, b, 4);
}

void adsy_w_u64(adsy_writer *w, uint8_t tag, uint64_t v)
{
    uint8_t b[8];
    put_be(b, v, 8);
    adsy_w_field(w, tag, b, 8);
}

long adsy_w_end(adsy_writer *w)
{
    if (w->err)
        return w->err;
    put_be(w->buf, w->len - 4, 4);
    return (long)w->len;
}

static void opt_str(adsy_writer *w, uint8_t tag, adsy_str s)
{
    if (s.len == 0)
        return;
    if (s.len > ADSY_MAX_STRING) {
        if (!w->err)
            w->err = ADSY_E_SPACE;
        return;
    }
    adsy_w_field(w, tag, s.p, s.len);
}

long adsy_encode_hello(uint8_t *buf, size_t cap, uint64_t rid, const uint8_t nonce[32],
                       adsy_str client_name)
{
    adsy_writer w;
    adsy_w_begin(&w, buf, cap, ADSY_T_HELLO, rid);
    adsy_w_field(&w, ADSY_TAG_NONCE, nonce, ADSY_NONCE_LEN);
    opt_str(&w, ADSY_TAG_CLIENT_NAME, client_name);
    return adsy_w_end(&w);
}

long adsy_encode_auth(uint8_t *buf, size_t cap, uint64_t rid, const uint8_t proof[32])
{
    adsy_writer w;
    adsy_w_begin(&w, buf, cap, ADSY_T_AUTH, rid);
    adsy_w_field(&w, ADSY_TAG_CLIENT_PROOF, proof, ADSY_PROOF_LEN);
    return adsy_w_end(&w);
}

long adsy_encode_change(uint8_t *buf, size_t cap, uint64_t rid, const adsy_change *c,
                        adsy_str domain, adsy_str host)
{
    if (c->account_len == 0 || c->password_len == 0)
        return ADSY_E_EMPTY;
    if (c->account_len > ADSY_MAX_ACCOUNT || c->password_len > ADSY_MAX_PASSWORD)
        return ADSY_E_SPACE;
    adsy_writer w;
    adsy_w_begin(&w, buf, cap, ADSY_T_CHANGE, rid);
    adsy_w_field(&w, ADSY_TAG_ACCOUNT, c->account, c->account_len);
    adsy_w_field(&w, ADSY_TAG_PASSWORD, c->password, c->password_len);
    opt_str(&w, ADSY_TAG_DOMAIN, domain);
    opt_str(&w, ADSY_TAG_SOURCE_HOST, host);
    adsy_w_u64(&w, ADSY_TAG_CHANGED_AT, c->changed_at_ms);
    adsy_w_field(&w, ADSY_TAG_EVENT_ID, c->event_id, ADSY_EVENT_ID_LEN);
    adsy_w_u32(&w, ADSY_TAG_RID, c->rid);
    adsy_w_u64(&w, ADSY_TAG_SOURCE_SEQ, c->seq);
    return adsy_w_end(&w);
}

long adsy_encode_check(uint8_t *buf, size_t cap, uint64_t rid, adsy_str account,
                       adsy_str full_name, adsy_str password, int admin_reset, adsy_str domain,
                       adsy_str host)
{
    if (account.len == 0 || password.len == 0)
        return ADSY_E_EMPTY;
    if (account.len > ADSY_MAX_ACCOUNT || password.len > ADSY_MAX_PASSWORD)
        return ADSY_E_SPACE;
    adsy_writer w;
    adsy_w_begin(&w, buf, cap, ADSY_T_CHECK, rid);
    adsy_w_field(&w, ADSY_TAG_ACCOUNT, account.p, account.len);
    opt_str(&w, ADSY_TAG_FULL_NAME, full_name);
    adsy_w_field(&w, ADSY_TAG_PASSWORD, password.p, password.len);
    adsy_w_u8(&w, ADSY_TAG_SET_OPERATION, admin_reset ? 1 : 0);
    opt_str(&w, ADSY_TAG_DOMAIN, domain);
    opt_str(&w, ADSY_TAG_SOURCE_HOST, host);
    return adsy_w_end(&w);
}

int adsy_frame_length(const uint8_t prefix[4], uint32_t max_len, uint32_t *len)
{
    uint32_t n = (uint32_t)get_be(prefix, 4);
    if (max_len > ADSY_FRAME_MAX)
        max_len = ADSY_FRAME_MAX;
    if (n < ADSY_FRAME_MIN || n > max_len)
        return ADSY_E_LENGTH;
    *len = n;
    return ADSY_OK;
}

int adsy_tlv_next(adsy_tlv *it, uint8_t *tag, const uint8_t **val, uint16_t *len)
{
    if (it->off == it->n)
        return 0;
    if (it->n - it->off < 3)
        return ADSY_E_TRUNC;
    uint16_t l = (uint16_t)get_be(it->p + it->off + 1, 2);
    if (it->n - it->off - 3 < l)
        return ADSY_E_TRUNC;
    *tag = it->p[it->off];
    *val = it->p + it->off + 3;
    *len = l;
    it->off += 3 + (size_t)l;
    return 1;
}

int adsy_decode_reply(const uint8_t *payload, size_t len, adsy_reply *out)
{
    memset(out, 0, sizeof *out);
    if (len < ADSY_HEADER_LEN)
        return ADSY_E_TRUNC;
    if (len > ADSY_FRAME_MAX)
        return ADSY_E_LENGTH;
    if (memcmp(payload, "ADSY", 4) != 0)
        return ADSY_E_MAGIC;
    if (payload[4] != ADSY_VERSION)
        return ADSY_E_VERSION;
    uint8_t type = payload[5];
    if (payload[6] != 0 || payload[7] != 0)
        return ADSY_E_FLAGS;
    switch (type) {
    case ADSY_T_CHALLENGE:
    case ADSY_T_AUTH_OK:
    case ADSY_T_VERDICT:
    case ADSY_T_ACK:
    case ADSY_T_ERROR:
        break;
    default:
        return ADSY_E_TYPE;
    }
    out->type = type;
    out->request_id = get_be(payload + 8, 8);

    adsy_tlv it = {payload + ADSY_HEADER_LEN, len - ADSY_HEADER_LEN, 0};
    uint8_t tag;
    const uint8_t *v;
    uint16_t l;
    int rc;
    while ((rc = adsy_tlv_next(&it, &tag, &v, &l)) == 1) {
        switch (tag) {
        case ADSY_TAG_NONCE:
            if (type != ADSY_T_CHALLENGE)
                break; /* not a field of this type: skipped like an unknown tag */
            if (out->has_nonce)
                return ADSY_E_DUP;
            if (l != ADSY_NONCE_LEN)
                return ADSY_E_FIELDLEN;
            memcpy(out->nonce, v, l);
            out->has_nonce = 1;
            break;
        case ADSY_TAG_DAEMON_PROOF:
            if (type != ADSY_T_CHALLENGE)
                break;
            if (out->has_proof)
                return ADSY_E_DUP;
            if (l != ADSY_PROOF_LEN)
                return ADSY_E_FIELDLEN;
            memcpy(out->proof, v, l);
            out->has_proof = 1;
            break;
        case ADSY_TAG_STATUS:
            if (type != ADSY_T_VERDICT && type != ADSY_T_ACK)
                break;
            if (out->has_status)
                return ADSY_E_DUP;
            if (l != 1)
                return ADSY_E_FIELDLEN;
            if (v[0] > 2)
                return ADSY_E_VALUE;
            out->status = v[0];
            out->has_status = 1;
            break;
        case ADSY_TAG_REASON:
            if (type != ADSY_T_VERDICT && type != ADSY_T_ACK && type != ADSY_T_ERROR)
                break;
            if (out->has_reason)
                return ADSY_E_DUP;
            if (!adsy_utf8_valid(v, l))
                return ADSY_E_UTF8;
            out->reason_len = l;
            out->has_reason = 1;
            break;
        default:
            break; /* unknown tags are skipped (forward compatibility) */
        }
    }
    if (rc < 0)
        return rc;
    if (type == ADSY_T_CHALLENGE && !(out->has_nonce && out->has_proof))
        return ADSY_E_MISSING;
    if ((type == ADSY_T_VERDICT || type == ADSY_T_ACK) && !out->has_status)
        return ADSY_E_MISSING;
    return ADSY_OK;
}

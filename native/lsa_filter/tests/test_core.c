/* Native tests of the portable core; built with ASan/UBSan by `make check`. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/acl.h"
#include "../core/adsy_errors.h"
#include "../core/batch.h"
#include "../core/exclude.h"
#include "../core/kdf.h"
#include "../core/link.h"
#include "../core/logring.h"
#include "../core/proto.h"
#include "../core/queue.h"
#include "../core/spool.h"
#include "../core/utf.h"
#include "sha256.h"
#include "toy_aead.h"

static int failures, checks;
#define CHECK(cond)                                                                    \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)
#define CHECK_EQ(a, b) CHECK((long long)(a) == (long long)(b))

static size_t unhex(const char *h, uint8_t *out)
{
    size_t n = 0;
    while (*h) {
        if (*h == ' ' || *h == '\n') {
            h++;
            continue;
        }
        unsigned v;
        sscanf(h, "%2x", &v);
        out[n++] = (uint8_t)v;
        h += 2;
    }
    return n;
}

static int contains(const uint8_t *h, size_t n, const char *needle, size_t k)
{
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(h + i, needle, k) == 0)
            return 1;
    return 0;
}

static const adsy_mac MAC = {t_hmac_sha256, NULL};

/* ---------------- UTF-16 -> UTF-8 ---------------- */
static void test_utf16(void)
{
    uint8_t out[64];
    size_t n;
    const uint16_t pw[] = {'P', 0xE4, 's', 's', 'w', 0xF6, 'r', 'd', 0x20AC, '1'};
    CHECK_EQ(adsy_utf16_to_utf8(pw, 10, out, sizeof out, &n), ADSY_OK);
    CHECK_EQ(n, 14);
    CHECK(memcmp(out, "P\xc3\xa4sswo\xcc\x88rd", 0) == 0);
    CHECK(memcmp(out, "P\xc3\xa4ssw\xc3\xb6rd\xe2\x82\xac" "1", 14) == 0);

    const uint16_t astral[] = {0xD83D, 0xDE00, 'x', 0xDBFF, 0xDFFF};
    CHECK_EQ(adsy_utf16_to_utf8(astral, 5, out, sizeof out, &n), ADSY_OK);
    CHECK_EQ(n, 9);
    CHECK(memcmp(out, "\xf0\x9f\x98\x80x\xf4\x8f\xbf\xbf", 9) == 0);

    const uint16_t lone_high_end[] = {'a', 0xD800};
    CHECK_EQ(adsy_utf16_to_utf8(lone_high_end, 2, out, sizeof out, &n), ADSY_E_SURROGATE);
    CHECK_EQ(n, 0);
    CHECK_EQ(out[0], 0); /* partial output wiped */
    const uint16_t high_then_char[] = {0xD800, 'a'};
    CHECK_EQ(adsy_utf16_to_utf8(high_then_char, 2, out, sizeof out, &n), ADSY_E_SURROGATE);
    const uint16_t two_highs[] = {0xD800, 0xD800, 0xDC00};
    CHECK_EQ(adsy_utf16_to_utf8(two_highs, 3, out, sizeof out, &n), ADSY_E_SURROGATE);
    const uint16_t lone_low[] = {0xDC00, 'a'};
    CHECK_EQ(adsy_utf16_to_utf8(lone_low, 2, out, sizeof out, &n), ADSY_E_SURROGATE);
    const uint16_t nul[] = {'a', 0, 'b'};
    CHECK_EQ(adsy_utf16_to_utf8(nul, 3, out, sizeof out, &n), ADSY_E_NUL);
    CHECK_EQ(adsy_utf16_to_utf8(pw, 0, out, sizeof out, &n), ADSY_OK);
    CHECK_EQ(n, 0);

    /* exact fit and one byte short */
    CHECK_EQ(adsy_utf16_to_utf8(pw, 10, out, 14, &n), ADSY_OK);
    CHECK_EQ(adsy_utf16_to_utf8(pw, 10, out, 13, &n), ADSY_E_SPACE);
    CHECK_EQ(adsy_utf16_to_utf8(astral, 2, out, 3, &n), ADSY_E_SPACE);

    /* 256 UTF-16 units of U+20AC fill 768 bytes */
    uint16_t big[256];
    uint8_t bigout[1024];
    for (int i = 0; i < 256; i++)
        big[i] = 0x20AC;
    CHECK_EQ(adsy_utf16_to_utf8(big, 256, bigout, sizeof bigout, &n), ADSY_OK);
    CHECK_EQ(n, 768);
    CHECK(adsy_utf8_valid(bigout, n));
}

static void test_utf8_valid(void)
{
    CHECK(adsy_utf8_valid((const uint8_t *)"abc", 3));
    CHECK(adsy_utf8_valid((const uint8_t *)"\xe2\x82\xac\xf0\x9f\x98\x80", 7));
    CHECK(!adsy_utf8_valid((const uint8_t *)"\xc0\x80", 2));         /* overlong NUL */
    CHECK(!adsy_utf8_valid((const uint8_t *)"\xe0\x80\xaf", 3));     /* overlong */
    CHECK(!adsy_utf8_valid((const uint8_t *)"\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!adsy_utf8_valid((const uint8_t *)"\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!adsy_utf8_valid((const uint8_t *)"\xe2\x82", 2));         /* truncated */
    CHECK(!adsy_utf8_valid((const uint8_t *)"\x80", 1));             /* stray continuation */
    CHECK(!adsy_utf8_valid((const uint8_t *)"\xff", 1));
}

/* ---------------- frames ---------------- */
static const char *SPEC_CHANGE =
    "00 00 00 50"
    "41 44 53 59 01 20 00 00 00 00 00 00 00 00 00 07"
    "10 00 05 61 6c 69 63 65"
    "12 00 0e 50 c3 a4 73 73 77 c3 b6 72 64 e2 82 ac 31"
    "14 00 06 41 44 53 59 4e 43"
    "18 00 08 00 00 01 8b cf e5 68 00"
    "19 00 10 00 01 02 03 04 05 06 07 08 09 0a 0b 0c 0d 0e 0f";
static const char *SPEC_ACK =
    "00 00 00 14  41 44 53 59 01 21 00 00 00 00 00 00 00 00 00 07  20 00 01 00";

static adsy_change *spec_change(void)
{
    static adsy_change c;
    memset(&c, 0, sizeof c);
    memcpy(c.account, "alice", 5);
    c.account_len = 5;
    memcpy(c.password, "P\xc3\xa4ssw\xc3\xb6rd\xe2\x82\xac" "1", 14);
    c.password_len = 14;
    c.changed_at_ms = 1700000000000ull;
    for (int i = 0; i < 16; i++)
        c.event_id[i] = (uint8_t)i;
    c.rid = 1102;
    c.seq = 42;
    return &c;
}

static void test_encode_spec_example(void)
{
    uint8_t want[256], buf[512];
    size_t wn = unhex(SPEC_CHANGE, want);
    CHECK_EQ(wn, 84);

    /* field by field, as in the spec: byte-exact */
    adsy_writer w;
    adsy_change *c = spec_change();
    adsy_w_begin(&w, buf, sizeof buf, ADSY_T_CHANGE, 7);
    adsy_w_field(&w, ADSY_TAG_ACCOUNT, c->account, c->account_len);
    adsy_w_field(&w, ADSY_TAG_PASSWORD, c->password, c->password_len);
    adsy_w_field(&w, ADSY_TAG_DOMAIN, "ADSYNC", 6);
    adsy_w_u64(&w, ADSY_TAG_CHANGED_AT, c->changed_at_ms);
    adsy_w_field(&w, ADSY_TAG_EVENT_ID, c->event_id, 16);
    CHECK_EQ(adsy_w_end(&w), 84);
    CHECK(memcmp(buf, want, 84) == 0);

    /* the DLL's CHANGE: the example, then RID and source sequence */
    adsy_str dom = {(const uint8_t *)"ADSYNC", 6}, none = {NULL, 0};
    long n = adsy_encode_change(buf, sizeof buf, 7, c, dom, none);
    CHECK_EQ(n, 84 + 7 + 11);
    CHECK_EQ(buf[3], 80 + 7 + 11);
    CHECK(memcmp(buf + 4, want + 4, 80) == 0);
    CHECK(memcmp(buf + 84, "\x16\x00\x04\x00\x00\x04\x4e", 7) == 0);
    CHECK(memcmp(buf + 91, "\x1a\x00\x08\x00\x00\x00\x00\x00\x00\x00\x2a", 11) == 0);

    /* too small a buffer never writes past it */
    CHECK_EQ(adsy_encode_change(buf, 60, 7, c, dom, none), ADSY_E_SPACE);
    CHECK_EQ(adsy_encode_change(buf, 10, 7, c, dom, none), ADSY_E_SPACE);
    c->password_len = 0;
    CHECK_EQ(adsy_encode_change(buf, sizeof buf, 7, c, dom, none), ADSY_E_EMPTY);
}

static void test_encode_handshake_and_check(void)
{
    uint8_t buf[256], nonce[32];
    memset(nonce, 0xAB, 32);
    adsy_str name = {(const uint8_t *)"adsyncflt/1", 11};
    long n = adsy_encode_hello(buf, sizeof buf, 1, nonce, name);
    CHECK_EQ(n, 4 + 16 + 35 + 14);
    CHECK_EQ(buf[9], ADSY_T_HELLO);
    CHECK(buf[20] == 0x01 && buf[21] == 0 && buf[22] == 32);
    n = adsy_encode_auth(buf, sizeof buf, 2, nonce);
    CHECK_EQ(n, 4 + 16 + 35);
    CHECK(buf[20] == 0x04);

    adsy_str acct = {(const uint8_t *)"bob", 3}, pw = {(const uint8_t *)"pw", 2};
    adsy_str fn = {(const uint8_t *)"Bob B", 5}, none = {NULL, 0};
    n = adsy_encode_check(buf, sizeof buf, 9, acct, fn, pw, 1, none, none);
    CHECK_EQ(n, 4 + 16 + 6 + 8 + 5 + 4);
    CHECK_EQ(buf[9], ADSY_T_CHECK);
    CHECK(memcmp(buf + 20, "\x10\x00\x03" "bob\x11\x00\x05" "Bob B\x12\x00\x02pw\x13\x00\x01\x01",
                 6 + 8 + 5 + 4) == 0);
    adsy_str empty = {(const uint8_t *)"", 0};
    CHECK_EQ(adsy_encode_check(buf, sizeof buf, 9, acct, fn, empty, 0, none, none), ADSY_E_EMPTY);
}

static void test_decode_reply(void)
{
    uint8_t f[256];
    adsy_reply r;
    size_t n = unhex(SPEC_ACK, f);
    uint32_t len;
    CHECK_EQ(adsy_frame_length(f, ADSY_FRAME_MAX, &len), ADSY_OK);
    CHECK_EQ(len, 20);
    CHECK_EQ(adsy_decode_reply(f + 4, n - 4, &r), ADSY_OK);
    CHECK_EQ(r.type, ADSY_T_ACK);
    CHECK_EQ(r.request_id, 7);
    CHECK(r.has_status && r.status == 0);

    uint8_t p[4] = {0, 0, 0, 15};
    CHECK_EQ(adsy_frame_length(p, ADSY_FRAME_MAX, &len), ADSY_E_LENGTH);
    p[3] = 16;
    CHECK_EQ(adsy_frame_length(p, ADSY_FRAME_MAX, &len), ADSY_OK);
    uint8_t big[4] = {0, 1, 0, 0}, bigger[4] = {0, 1, 0, 1};
    CHECK_EQ(adsy_frame_length(big, ADSY_FRAME_MAX, &len), ADSY_OK);
    CHECK_EQ(adsy_frame_length(bigger, ADSY_FRAME_MAX, &len), ADSY_E_LENGTH);
    CHECK_EQ(adsy_frame_length(big, 4096, &len), ADSY_E_LENGTH);

    uint8_t g[64];
#define RESET() memcpy(g, f + 4, 20)
    RESET();
    g[0] = 'X';
    CHECK_EQ(adsy_decode_reply(g, 20, &r), ADSY_E_MAGIC);
    RESET();
    g[4] = 2;
    CHECK_EQ(adsy_decode_reply(g, 20, &r), ADSY_E_VERSION);
    RESET();
    g[7] = 1;
    CHECK_EQ(adsy_decode_reply(g, 20, &r), ADSY_E_FLAGS);
    RESET();
    g[5] = ADSY_T_CHANGE;
    CHECK_EQ(adsy_decode_reply(g, 20, &r), ADSY_E_TYPE);
    RESET();
    CHECK_EQ(adsy_decode_reply(g, 19, &r), ADSY_E_TRUNC);
    CHECK_EQ(adsy_decode_reply(g, 15, &r), ADSY_E_TRUNC);
    CHECK_EQ(adsy_decode_reply(g, 16, &r), ADSY_E_MISSING); /* ACK without status */
    RESET();
    g[19] = 3;
    CHECK_EQ(adsy_decode_reply(g, 20, &r), ADSY_E_VALUE);
    RESET();
    memcpy(g + 20, "\x20\x00\x01\x02", 4); /* status twice */
    CHECK_EQ(adsy_decode_reply(g, 24, &r), ADSY_E_DUP);
    RESET();
    memcpy(g + 20, "\x77\x00\x02zz", 5); /* unknown tag skipped */
    CHECK_EQ(adsy_decode_reply(g, 25, &r), ADSY_OK);
    CHECK_EQ(r.status, 0);
    RESET();
    memcpy(g + 20, "\x21\x00\x02\xc3\x28", 5); /* reason with invalid UTF-8 */
    CHECK_EQ(adsy_decode_reply(g, 25, &r), ADSY_E_UTF8);
    RESET();
    memcpy(g + 20, "\x21\x00\x03" "bad", 6);
    CHECK_EQ(adsy_decode_reply(g, 26, &r), ADSY_OK);
    CHECK_EQ(r.reason_len, 3);
    RESET();
    g[18] = 2; /* status field claims 2 bytes */
    CHECK_EQ(adsy_decode_reply(g, 20, &r), ADSY_E_TRUNC);
    memcpy(g + 20, "\x00", 1);
    CHECK_EQ(adsy_decode_reply(g, 21, &r), ADSY_E_FIELDLEN);

    /* CHALLENGE: needs a 32-byte nonce and proof */
    uint8_t ch[16 + 70];
    memcpy(ch, "ADSY\x01\x02\x00\x00\0\0\0\0\0\0\0\x01", 16);
    ch[16] = 0x01, ch[17] = 0, ch[18] = 32;
    memset(ch + 19, 0x11, 32);
    ch[51] = 0x03, ch[52] = 0, ch[53] = 32;
    memset(ch + 54, 0x22, 32);
    CHECK_EQ(adsy_decode_reply(ch, 86, &r), ADSY_OK);
    CHECK(r.has_nonce && r.has_proof && r.nonce[0] == 0x11 && r.proof[31] == 0x22);
    CHECK_EQ(adsy_decode_reply(ch, 51, &r), ADSY_E_MISSING);
    ch[18] = 31;
    CHECK_EQ(adsy_decode_reply(ch, 50, &r), ADSY_E_FIELDLEN);

    /* AUTH_OK and ERROR have no required fields */
    uint8_t ok[16];
    memcpy(ok, "ADSY\x01\x04\x00\x00\0\0\0\0\0\0\0\x02", 16);
    CHECK_EQ(adsy_decode_reply(ok, 16, &r), ADSY_OK);
    CHECK_EQ(r.type, ADSY_T_AUTH_OK);
    ok[5] = 0x7F;
    CHECK_EQ(adsy_decode_reply(ok, 16, &r), ADSY_OK);
    CHECK_EQ(r.type, ADSY_T_ERROR);
}

/* ---------------- HMAC, handshake, HKDF ---------------- */
static void test_crypto(void)
{
    uint8_t out[64], want[64];
    /* RFC 4231 test case 2 */
    t_hmac_sha256(NULL, (const uint8_t *)"Jefe", 4,
                  (const uint8_t *)"what do ya want for nothing?", 28, out);
    unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", want);
    CHECK(memcmp(out, want, 32) == 0);

    uint8_t key[32], cn[32], sn[32];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)i;
    memset(cn, 0x11, 32);
    memset(sn, 0x22, 32);
    /* values computed independently with Python's hmac module */
    unhex("0441a8fd459ab3d19a6ff63400b29ad22cb733fedd508095932a254112f27d22", want);
    CHECK_EQ(adsy_hs_proof(MAC, key, 1, cn, sn, out), ADSY_OK);
    CHECK(memcmp(out, want, 32) == 0);
    CHECK_EQ(adsy_hs_check_daemon(MAC, key, cn, sn, want), ADSY_OK);
    want[31] ^= 1;
    CHECK_EQ(adsy_hs_check_daemon(MAC, key, cn, sn, want), ADSY_E_AUTH);
    unhex("1024d439aac6566b053ec1410e598e38800658170595ab1db80ecd63e2ebcbf9", want);
    CHECK_EQ(adsy_hs_proof(MAC, key, 0, cn, sn, out), ADSY_OK);
    CHECK(memcmp(out, want, 32) == 0);

    /* RFC 5869 test case 1 */
    uint8_t ikm[22], salt[13], info[10];
    memset(ikm, 0x0b, 22);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (uint8_t)(0xf0 + i);
    unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
          "34007208d5b887185865",
          want);
    CHECK_EQ(adsy_hkdf_sha256(MAC, salt, 13, ikm, 22, info, 10, out, 42), ADSY_OK);
    CHECK(memcmp(out, want, 42) == 0);

    /* the spool key, as Python's cryptography HKDF derives it */
    unhex("fdcb72a8188ff11d2de5426a956e6fbf6beb8177475f5c8f66b6116673e8fcf4", want);
    CHECK_EQ(adsy_spool_key(MAC, key, out), ADSY_OK);
    CHECK(memcmp(out, want, 32) == 0);

    CHECK(adsy_ct_equal(key, key, 32));
    CHECK(!adsy_ct_equal(cn, sn, 32));
}

/* ---------------- queue ---------------- */
static void fill_id(adsy_change *c, uint64_t pos, void *ctx)
{
    (void)ctx;
    c->event_id[0] = (uint8_t)(pos + 1); /* the shell puts random bytes here */
}

static adsy_change mk(uint32_t rid, char pw)
{
    adsy_change c;
    memset(&c, 0, sizeof c);
    c.rid = rid;
    c.account[0] = 'a';
    c.account_len = 1;
    c.password[0] = (uint8_t)pw;
    c.password_len = 1;
    return c;
}

static void test_queue(void)
{
    static adsy_qslot slots[4];
    adsy_queue q;
    adsy_queue_init(&q, slots, 4, fill_id, NULL);
    CHECK_EQ(adsy_queue_count(&q), 0);
    CHECK(adsy_queue_peek(&q, 0) == NULL);
    for (uint32_t i = 0; i < 4; i++) {
        adsy_change c = mk(i, 'x');
        CHECK_EQ(adsy_queue_push(&q, &c, 1000), 0);
        CHECK_EQ(adsy_queue_past_half(&q), i >= 2);
    }
    adsy_change extra = mk(9, 'z');
    CHECK_EQ(adsy_queue_push(&q, &extra, 1000), -1); /* full: refused at once */
    CHECK_EQ(adsy_queue_count(&q), 4);
    CHECK_EQ(adsy_queue_peek(&q, 0)->rid, 0);
    CHECK_EQ(adsy_queue_peek(&q, 0)->seq, 1000); /* sequence = base + queue position */
    CHECK_EQ(adsy_queue_peek(&q, 3)->seq, 1003);
    CHECK_EQ(adsy_queue_peek(&q, 2)->event_id[0], 3); /* the pre-filled id is kept */
    CHECK(adsy_queue_peek(&q, 4) == NULL);
    const adsy_change *first = adsy_queue_peek(&q, 0);
    adsy_queue_pop(&q, 1);
    CHECK_EQ(first->password[0], 0); /* popped slot wiped */
    CHECK_EQ(first->password_len, 0);
    CHECK_EQ(first->event_id[0], 5); /* and re-filled for position 4 */
    /* wrap around keeps FIFO order and the sequence */
    adsy_change c = mk(4, 'y');
    CHECK_EQ(adsy_queue_push(&q, &c, 1000), 0);
    for (uint32_t i = 0; i < 4; i++)
        CHECK_EQ(adsy_queue_peek(&q, i)->rid, i + 1);
    CHECK_EQ(adsy_queue_peek(&q, 3)->seq, 1004);
    adsy_queue_pop(&q, 10);
    CHECK_EQ(adsy_queue_count(&q), 0);
    CHECK_EQ(adsy_queue_past_half(&q), 0);
}

/* Several producer threads and one consumer: nothing lost, nothing twice, each
 * producer's changes in its own order, sequence numbers strictly increasing. */
#define QT_PRODUCERS 4
#ifndef QT_EACH
#define QT_EACH 20000 /* fewer under ThreadSanitizer (make tsan), which is slower */
#endif
static adsy_qslot qt_slots[64];
static adsy_queue qt_q;
static atomic_int qt_full;

static void *qt_producer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < QT_EACH;) {
        adsy_change c = mk(id << 24 | i, 'p');
        if (adsy_queue_push(&qt_q, &c, 0) == 0)
            i++;
        else
            atomic_fetch_add(&qt_full, 1);
    }
    return NULL;
}

static void test_queue_threads(void)
{
    pthread_t t[QT_PRODUCERS];
    uint32_t next[QT_PRODUCERS] = {0};
    adsy_queue_init(&qt_q, qt_slots, 64, NULL, NULL);
    for (uintptr_t i = 0; i < QT_PRODUCERS; i++)
        pthread_create(&t[i], NULL, qt_producer, (void *)i);
    long got = 0, bad = 0;
    uint64_t last_seq = 0;
    while (got < (long)QT_PRODUCERS * QT_EACH) {
        size_t n = adsy_queue_count(&qt_q);
        for (size_t k = 0; k < n; k++) {
            const adsy_change *c = adsy_queue_peek(&qt_q, k);
            uint32_t p = c->rid >> 24;
            if (p >= QT_PRODUCERS || (c->rid & 0xFFFFFF) != next[p] || (got && c->seq <= last_seq))
                bad++;
            else
                next[p]++;
            last_seq = c->seq;
            got++;
        }
        adsy_queue_pop(&qt_q, n);
    }
    for (int i = 0; i < QT_PRODUCERS; i++)
        pthread_join(t[i], NULL);
    CHECK_EQ(bad, 0);
    CHECK_EQ(adsy_queue_count(&qt_q), 0);
    for (int i = 0; i < QT_PRODUCERS; i++)
        CHECK_EQ(next[i], QT_EACH);
}

/* ---------------- log ring ---------------- */
static void test_logring(void)
{
    static adsy_logring r;
    adsy_logent e = {1, "ev", -3, 7, 1}, out;
    adsy_logring_init(&r);
    CHECK_EQ(adsy_logring_take(&r, &out), 0);
    for (int i = 0; i < ADSY_LOGRING_CAP; i++) {
        e.count = (unsigned long long)i;
        CHECK_EQ(adsy_logring_put(&r, &e), 0);
    }
    CHECK_EQ(adsy_logring_put(&r, &e), -1); /* full: dropped and counted, never waits */
    CHECK_EQ(adsy_logring_put(&r, &e), -1);
    CHECK_EQ(adsy_logring_take_dropped(&r), 2);
    CHECK_EQ(adsy_logring_take_dropped(&r), 0);
    for (int i = 0; i < ADSY_LOGRING_CAP; i++) {
        CHECK_EQ(adsy_logring_take(&r, &out), 1);
        CHECK_EQ(out.count, i);
    }
    CHECK(strcmp(out.event, "ev") == 0 && out.code == -3 && out.level == 1);
    CHECK_EQ(adsy_logring_take(&r, &out), 0);
    CHECK_EQ(adsy_logring_put(&r, &e), 0); /* wraps */
    CHECK_EQ(adsy_logring_take(&r, &out), 1);
}

/* ---------------- spool records ---------------- */
static void test_spool(void)
{
    adsy_aead a = {toy_seal, toy_open, NULL};
    static uint8_t rec[ADSY_SPOOL_MAX_RECORD];
    static adsy_change back;
    uint8_t nonce[12] = {9, 9, 9};
    size_t n, rl;
    adsy_change *c = spec_change();
    CHECK_EQ(adsy_spool_seal(a, c, nonce, rec, sizeof rec, &n), ADSY_OK);
    CHECK_EQ(n, 8 + 12 + (8 + 17 + 7 + 11 + 19 + 11) + 16);
    CHECK(memcmp(rec, "ASP1", 4) == 0);
    CHECK(!contains(rec, n, "alice", 5)); /* sealed, not in clear */
    CHECK_EQ(adsy_spool_record_len(rec, &rl), ADSY_OK);
    CHECK_EQ(rl, n);
    CHECK_EQ(adsy_spool_open(a, rec, n, &back), ADSY_OK);
    CHECK(memcmp(&back, c, sizeof back) == 0);

    rec[30] ^= 1; /* tampered ciphertext */
    CHECK_EQ(adsy_spool_open(a, rec, n, &back), ADSY_E_AUTH);
    CHECK_EQ(back.password_len, 0);
    rec[30] ^= 1;
    rec[7] ^= 1; /* tampered length: no longer matches the record */
    CHECK_EQ(adsy_spool_open(a, rec, n, &back), ADSY_E_TRUNC);
    rec[7] ^= 1;
    CHECK_EQ(adsy_spool_open(a, rec, n - 1, &back), ADSY_E_TRUNC);
    rec[0] = 'X';
    CHECK_EQ(adsy_spool_record_len(rec, &rl), ADSY_E_MAGIC);
    CHECK_EQ(adsy_spool_seal(a, c, nonce, rec, 40, &n), ADSY_E_SPACE);

    uint8_t head[8] = {'A', 'S', 'P', '1', 0, 0, 0x40, 0};
    CHECK_EQ(adsy_spool_record_len(head, &rl), ADSY_E_LENGTH);

    /* plaintext parser: duplicates, missing and foreign fields are corruption */
    uint8_t pt[64];
    memcpy(pt, "\x10\x00\x01" "a\x10\x00\x01" "b", 8);
    CHECK_EQ(adsy_spool_parse(pt, 8, &back), ADSY_E_DUP);
    CHECK_EQ(adsy_spool_parse(pt, 4, &back), ADSY_E_MISSING);
    memcpy(pt, "\x55\x00\x00", 3);
    CHECK_EQ(adsy_spool_parse(pt, 3, &back), ADSY_E_VALUE);
}

/* ---------------- spool read-back and recovery ---------------- */
typedef struct memfile {
    uint8_t buf[16384];
    size_t len;
    int fail_reads; /* the next n reads fail (a transient I/O error) */
} memfile;

static int mem_read(void *ctx, uint64_t off, uint8_t *b, size_t n)
{
    memfile *m = ctx;
    if (m->fail_reads > 0) {
        m->fail_reads--;
        return -1;
    }
    if (off > m->len || n > m->len - off)
        return -1;
    memcpy(b, m->buf + off, n);
    return 0;
}

static size_t g_rec_off[16];

/* Ten records, rid 1000..1009; g_rec_off[i] is where record i starts. */
static void ten_records(memfile *m, adsy_aead a)
{
    adsy_change *c = spec_change();
    memset(m, 0, sizeof *m);
    for (int i = 0; i < 10; i++) {
        uint8_t nonce[12] = {(uint8_t)i, 7};
        size_t n;
        c->rid = 1000u + (uint32_t)i;
        c->account[0] = (uint8_t)('a' + i);
        g_rec_off[i] = m->len;
        CHECK_EQ(adsy_spool_seal(a, c, nonce, m->buf + m->len, sizeof m->buf - m->len, &n), ADSY_OK);
        m->len += n;
    }
    g_rec_off[10] = m->len;
}

typedef struct scan_result {
    uint32_t rids[32];
    int n, skips, torn, ioerr;
    uint64_t torn_at, end_at;
    int last_why;
} scan_result;

static scan_result scan_all(memfile *m, adsy_aead a)
{
    static adsy_spool_reader r;
    static adsy_change c;
    scan_result s;
    memset(&s, 0, sizeof s);
    r.aead = a;
    r.read = mem_read;
    r.ctx = m;
    uint64_t off = 0, next;
    for (int guard = 0; guard < 100; guard++) {
        int why, st = adsy_spool_step(&r, off, m->len, &c, &next, &why);
        if (st == ADSY_STEP_RECORD) {
            CHECK(next > off);
            s.rids[s.n++] = c.rid;
        } else if (st == ADSY_STEP_SKIP) {
            CHECK(next > off && next <= m->len);
            s.skips++;
            s.last_why = why;
        } else if (st == ADSY_STEP_TORN) {
            s.torn = 1;
            s.torn_at = off;
            break;
        } else if (st == ADSY_STEP_IOERR) {
            s.ioerr++;
            continue; /* the caller retries later */
        } else {
            break;
        }
        off = next;
    }
    s.end_at = off;
    return s;
}

static int rids_are(const scan_result *s, const int *want, int n)
{
    if (s->n != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (s->rids[i] != 1000u + (uint32_t)want[i])
            return 0;
    return 1;
}

static void test_spool_recovery(void)
{
    adsy_aead a = {toy_seal, toy_open, NULL};
    static memfile m;
    const int all[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const int but0[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const int but4[9] = {0, 1, 2, 3, 5, 6, 7, 8, 9};
    const int but8[9] = {0, 1, 2, 3, 4, 5, 6, 7, 9};
    const int but56[8] = {0, 1, 2, 3, 4, 7, 8, 9};
    scan_result s;

    ten_records(&m, a);
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 10) && s.skips == 0 && !s.torn);

    /* one flipped bit in record 0's ciphertext: that record only */
    m.buf[g_rec_off[0] + 25] ^= 0x10;
    s = scan_all(&m, a);
    CHECK(rids_are(&s, but0, 9) && s.skips == 1 && !s.torn);
    CHECK_EQ(s.last_why, ADSY_E_AUTH);

    /* a flipped bit in record 0's length field: resynchronised on the next record */
    ten_records(&m, a);
    m.buf[g_rec_off[0] + 7] ^= 0x01;
    s = scan_all(&m, a);
    CHECK(rids_are(&s, but0, 9) && s.skips == 1 && !s.torn);

    /* a damaged magic in the middle */
    ten_records(&m, a);
    m.buf[g_rec_off[4]] = 'X';
    s = scan_all(&m, a);
    CHECK(rids_are(&s, but4, 9) && s.skips == 1);

    /* a zeroed sector across records 5 and 6 */
    ten_records(&m, a);
    memset(m.buf + g_rec_off[5] + 30, 0, g_rec_off[6] - g_rec_off[5]);
    s = scan_all(&m, a);
    CHECK(rids_are(&s, but56, 8) && s.skips == 1 && !s.torn);

    /* a length that points past the end of the file is not a torn tail when a good record
     * follows */
    ten_records(&m, a);
    m.buf[g_rec_off[8] + 6] = 0x07; /* ~1,900 bytes: within the limit, past the end */
    s = scan_all(&m, a);
    CHECK(rids_are(&s, but8, 9) && s.skips == 1 && !s.torn);

    /* a torn last record: cut there, the others kept */
    ten_records(&m, a);
    m.len = g_rec_off[9] + 30;
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 9) && s.torn && s.torn_at == g_rec_off[9] && s.skips == 0);
    m.len = g_rec_off[9] + 5; /* inside the header */
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 9) && s.torn && s.torn_at == g_rec_off[9]);

    /* a zero-filled tail (the file grew, the data never reached the disk) */
    ten_records(&m, a);
    memset(m.buf + m.len, 0, 4096 + 100);
    m.len += 4096 + 100;
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 10) && s.torn && s.torn_at == g_rec_off[10]);
    /* ... and a zero-filled last record */
    ten_records(&m, a);
    memset(m.buf + g_rec_off[9], 0, g_rec_off[10] - g_rec_off[9]);
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 9) && s.torn && s.torn_at == g_rec_off[9]);

    /* the last record half written, then zeros to the end of the file: torn */
    ten_records(&m, a);
    memset(m.buf + g_rec_off[9] + 25, 0, 4096);
    m.len = g_rec_off[9] + 25 + 4096;
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 9) && s.torn && s.torn_at == g_rec_off[9] && s.skips == 0);

    /* the last record's tag is wrong but its length is sound: skipped to the end */
    ten_records(&m, a);
    m.buf[m.len - 1] ^= 0x80;
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 9) && s.skips == 1 && !s.torn && s.end_at == m.len);

    /* another key: nothing opens, the whole file is one skip (the caller sets it aside) */
    ten_records(&m, a);
    toy_key[5] ^= 1;
    s = scan_all(&m, a);
    toy_key[5] ^= 1;
    CHECK(s.n == 0 && s.skips == 1 && !s.torn && s.end_at == m.len);

    /* a transient read error decides nothing; the retry reads everything */
    ten_records(&m, a);
    m.fail_reads = 1;
    s = scan_all(&m, a);
    CHECK(rids_are(&s, all, 10) && s.ioerr == 1 && s.skips == 0);

    /* garbage only */
    memset(&m, 0, sizeof m);
    memcpy(m.buf, "ASP1ASP1ASP1\x01\x02", 14);
    m.len = 14;
    s = scan_all(&m, a);
    CHECK(s.n == 0 && (s.torn || s.skips == 1));
    m.len = 0;
    s = scan_all(&m, a);
    CHECK(s.n == 0 && s.skips == 0 && !s.torn);
}

/* ---------------- account exclusions (glob) ---------------- */
static size_t u16(const char *s, uint16_t *out)
{
    size_t n = 0;
    while (s[n]) {
        out[n] = (uint8_t)s[n];
        n++;
    }
    return n;
}

static int glob(const char *pat, const char *name)
{
    uint16_t p[128], s[128];
    size_t pn = u16(pat, p), sn = u16(name, s);
    return adsy_glob_match16(p, pn, s, sn);
}

static int excluded(const adsy_exclusions *e, const char *name)
{
    uint16_t s[300];
    return adsy_account_excluded(e, s, u16(name, s));
}

static void test_exclude(void)
{
    CHECK(glob("svc_*", "SVC_backup"));
    CHECK(glob("*", ""));
    CHECK(glob("", ""));
    CHECK(!glob("", "a"));
    CHECK(glob("a*b*c", "aXXbYYc"));
    CHECK(glob("a*b*c", "abc"));
    CHECK(!glob("a*b*c", "acb"));
    CHECK(glob("a?c", "AbC"));
    CHECK(!glob("a?c", "ac"));
    CHECK(glob("*x", "xxxx"));
    CHECK(!glob("*x*y", "xxxx"));
    CHECK(glob("**a**", "bab"));
    CHECK(glob("test-??", "TEST-01"));
    CHECK(!glob("test-??", "TEST-1"));
    CHECK(!glob("alice", "alice2"));
    CHECK(!glob("alice", "alic"));

    /* '?' is one character: a surrogate pair too */
    uint16_t astral[3] = {'a', 0xD83D, 0xDE00}, q[2] = {'a', '?'};
    CHECK(adsy_glob_match16(q, 2, astral, 3));

    /* non-ASCII folding */
    uint16_t up[3] = {0xC4, 0x10C, 0x416}, low[3] = {0xE4, 0x10D, 0x436};
    CHECK(adsy_glob_match16(up, 3, low, 3));
    CHECK_EQ(adsy_fold16(0xD7), 0xD7); /* the multiplication sign has no case */
    CHECK_EQ(adsy_fold16(0x178), 0xFF);
    CHECK_EQ(adsy_fold16(0x139), 0x13A);
    CHECK_EQ(adsy_fold16(0x13A), 0x13A);
    CHECK_EQ(adsy_fold16(0x401), 0x451);
    CHECK_EQ(adsy_fold16(0x4E2D), 0x4E2D);

    /* built-ins: krbtgt, krbtgt_<n> (RODC), every name ending in '$' */
    const char *builtin[] = {"krbtgt", "KRBTGT", "krbtgt_12345", "KrbTgt_9", "HOST1$",
                             "TRUST$", "gmsa-web$", "CORP\\krbtgt", "CORP\\DC01$", "$"};
    for (size_t i = 0; i < sizeof builtin / sizeof *builtin; i++)
        CHECK(excluded(NULL, builtin[i]));
    const char *users[] = {"alice", "krbtgt2", "krbtgtx", "xkrbtgt", "host$1", "$x", "",
                           "CORP\\alice", "svc_backup"};
    for (size_t i = 0; i < sizeof users / sizeof *users; i++)
        CHECK(!excluded(NULL, users[i]));

    /* ExcludeAccounts (REG_MULTI_SZ) */
    static adsy_exclusions e;
    adsy_excl_init(&e);
    uint16_t ms[64];
    size_t n = 0;
    n += u16("svc_*", ms + n);
    ms[n++] = 0;
    n += u16("MSOL_????????????", ms + n);
    ms[n++] = 0;
    ms[n++] = 0;
    CHECK_EQ(adsy_excl_load_multisz(&e, ms, n), 2);
    CHECK(excluded(&e, "SVC_Backup"));
    CHECK(excluded(&e, "CORP\\svc_sql"));
    CHECK(excluded(&e, "msol_0123456789ab"));
    CHECK(!excluded(&e, "msol_0123"));
    CHECK(!excluded(&e, "alice"));
    CHECK(excluded(&e, "HOST1$"));
    /* no final terminator, empty value */
    adsy_excl_init(&e);
    CHECK_EQ(adsy_excl_load_multisz(&e, ms, 5), 1);
    CHECK(excluded(&e, "svc_x"));
    adsy_excl_init(&e);
    CHECK_EQ(adsy_excl_load_multisz(&e, ms, 0), 0);
    CHECK(!excluded(&e, "svc_x"));
    /* full: the patterns that fit are kept */
    adsy_excl_init(&e);
    uint16_t one[2] = {'x', 0};
    for (unsigned i = 0; i < ADSY_EXCL_MAX_PATTERNS; i++)
        CHECK_EQ(adsy_excl_add(&e, one, 1), ADSY_OK);
    CHECK_EQ(adsy_excl_add(&e, one, 1), ADSY_E_SPACE);
    CHECK_EQ(adsy_excl_load_multisz(&e, one, 2), ADSY_E_SPACE);
    CHECK_EQ(adsy_excl_add(&e, one, 0), ADSY_E_EMPTY);
    CHECK(excluded(&e, "X"));
    /* a name longer than ADSY_EXCL_MAX_NAME meets the built-ins only */
    char longname[300];
    memset(longname, 's', 299);
    longname[299] = 0;
    memcpy(longname, "svc_", 4);
    adsy_excl_init(&e);
    adsy_excl_add(&e, ms, 5);
    CHECK(!excluded(&e, longname));
    longname[298] = '$';
    CHECK(excluded(&e, longname));
}

/* ---------------- who may own and open the filter's secrets ---------------- */
static void test_acl(void)
{
    adsy_ace_info sys_admins[2] = {{1, 1, 0x1F01FF}, {1, 1, 0x1F01FF}};
    adsy_ace_info users_read[3] = {{1, 1, 0x1F01FF}, {1, 1, 0x1F01FF}, {1, 0, 0x1200A9}};
    adsy_ace_info deny_everyone[3] = {{1, 1, 0x1F01FF}, {0, 0, 0x1F01FF}, {1, 0, 0}};
    adsy_sec_info s = {0, 1, 1, 2, sys_admins};
    CHECK_EQ(adsy_secret_path_verdict(&s), ADSY_OK);
    s.aces = users_read; /* BUILTIN\Users: read */
    s.ace_count = 3;
    CHECK_EQ(adsy_secret_path_verdict(&s), ADSY_E_ACL_BROAD);
    s.aces = deny_everyone; /* a deny entry and an empty allow take nothing away */
    CHECK_EQ(adsy_secret_path_verdict(&s), ADSY_OK);
    s.owner_trusted = 0; /* another owner could rewrite the DACL */
    CHECK_EQ(adsy_secret_path_verdict(&s), ADSY_E_ACL_OWNER);
    s.has_dacl = 0; /* NULL DACL: everyone full control */
    CHECK_EQ(adsy_secret_path_verdict(&s), ADSY_E_ACL_NULL);
    s.reparse_point = 1; /* a junction or symlink planted to redirect */
    CHECK_EQ(adsy_secret_path_verdict(&s), ADSY_E_REPARSE);
    adsy_sec_info empty = {0, 1, 1, 0, NULL}; /* an empty DACL: nobody but the owner */
    CHECK_EQ(adsy_secret_path_verdict(&empty), ADSY_OK);
}

/* ---------------- link / retry state machine (fake clock) ---------------- */
static void test_link(void)
{
    adsy_link l;
    adsy_link_init(&l, 100, 1000);
    CHECK(adsy_link_should_connect(&l, 0));
    CHECK(adsy_link_should_spool(&l, 0)); /* down: spool */
    adsy_link_failed(&l, 0, 0);           /* rnd 0: 0.8 x 100 */
    CHECK_EQ(l.next_ms, 80);
    CHECK(!adsy_link_should_connect(&l, 79));
    CHECK_EQ(adsy_link_wait_ms(&l, 50), 30);
    CHECK(adsy_link_should_connect(&l, 80));
    adsy_link_failed(&l, 80, 0xFFFFFFFFu); /* ~1.2 x 200 */
    CHECK(l.next_ms >= 80 + 239 && l.next_ms <= 80 + 240);
    adsy_link_failed(&l, 1000, 0x80000000u); /* 1.0 x 400 */
    CHECK_EQ(l.next_ms, 1400);
    adsy_link_failed(&l, 2000, 0x80000000u); /* 800 */
    adsy_link_failed(&l, 3000, 0x80000000u); /* capped at 1000 */
    CHECK_EQ(l.next_ms, 4000);
    adsy_link_failed(&l, 5000, 0x80000000u);
    CHECK_EQ(l.next_ms, 6000);
    CHECK_EQ(l.failures, 6);

    adsy_link_connected(&l);
    CHECK(adsy_link_may_send(&l, 6000));
    CHECK(!adsy_link_should_spool(&l, 0));
    CHECK(adsy_link_should_spool(&l, 1)); /* queue past half: spool even when up */
    adsy_link_busy(&l, 6000, 0x80000000u);  /* still up, hold off 1000 */
    CHECK_EQ(l.state, ADSY_LINK_UP);
    CHECK(!adsy_link_may_send(&l, 6999));
    CHECK(adsy_link_may_send(&l, 7000));
    adsy_link_progress(&l);
    CHECK_EQ(l.delay_ms, 100);
    CHECK_EQ(l.failures, 0);
    adsy_link_failed(&l, 8000, 0x80000000u);
    CHECK_EQ(l.next_ms, 8100);
    CHECK(!adsy_link_may_send(&l, 9000));

    CHECK_EQ(adsy_link_jitter(0, 0), 1);
    CHECK_EQ(adsy_link_jitter(1000, 0), 800);
}

static void test_batch(void)
{
    static adsy_change c[5];
    const char *names[5] = {"alice", "bob", "carol", "ALICE", "dave"};
    for (int i = 0; i < 5; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].account_len = (uint16_t)strlen(names[i]);
        memcpy(c[i].account, names[i], c[i].account_len);
    }
    CHECK(adsy_same_account(&c[0], &c[3]));
    CHECK(!adsy_same_account(&c[0], &c[1]));
    CHECK_EQ(adsy_batch_prefix(c, 5), 3); /* stops before the second alice */
    CHECK_EQ(adsy_batch_prefix(c, 3), 3);
    CHECK_EQ(adsy_batch_prefix(c, 1), 1);
    CHECK_EQ(adsy_batch_prefix(c, 0), 0);
    c[3].account[0] = 0xC3; /* not ASCII: no folding */
    CHECK(!adsy_same_account(&c[0], &c[3]));
    CHECK_EQ(adsy_batch_prefix(c, 5), 5);
}

int main(void)
{
    test_batch();
    test_utf16();
    test_utf8_valid();
    test_encode_spec_example();
    test_encode_handshake_and_check();
    test_decode_reply();
    test_crypto();
    test_queue();
    test_queue_threads();
    test_logring();
    test_spool();
    test_spool_recovery();
    test_exclude();
    test_acl();
    test_link();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}

/* libFuzzer target: reading a spool file back. Whatever the bytes, every step moves forward
 * and stays inside the file, the walk ends, and the plaintext parser never reads out of
 * bounds. A transparent toy AEAD (XOR, tag = a checksum) lets the fuzzer build records that
 * open, so the resynchronisation paths are reached too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/adsy_errors.h"
#include "../core/spool.h"

static void toy_tag(const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t n,
                    uint8_t tag[16])
{
    memset(tag, 0, 16);
    for (size_t i = 0; i < aad_len; i++)
        tag[i % 16] = (uint8_t)(tag[i % 16] + aad[i]);
    for (size_t i = 0; i < n; i++)
        tag[i % 16] = (uint8_t)(tag[i % 16] + ct[i] + 1);
}

static int toy_seal(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                    const uint8_t *pt, size_t n, uint8_t *ct, uint8_t tag[16])
{
    (void)ctx;
    (void)nonce;
    for (size_t i = 0; i < n; i++)
        ct[i] = pt[i] ^ 0x5A;
    toy_tag(aad, aad_len, ct, n, tag);
    return 0;
}

static int toy_open(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                    const uint8_t *ct, size_t n, const uint8_t tag[16], uint8_t *pt)
{
    uint8_t want[16], dummy[16];
    toy_tag(aad, aad_len, ct, n, want);
    if (memcmp(want, tag, 16) != 0)
        return -1;
    return toy_seal(ctx, nonce, aad, aad_len, ct, n, pt, dummy);
}

typedef struct image {
    const uint8_t *p;
    size_t n;
} image;

static int img_read(void *ctx, uint64_t off, uint8_t *buf, size_t n)
{
    const image *m = ctx;
    if (off > m->n || n > m->n - off)
        abort(); /* the reader must never ask past the end it was given */
    memcpy(buf, m->p + off, n);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static adsy_spool_reader r;
    static adsy_change c;
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    image m = {p, size};
    r.aead = (adsy_aead){toy_seal, toy_open, NULL};
    r.read = img_read;
    r.ctx = &m;
    uint64_t off = 0, next;
    int why;
    for (size_t steps = 0;; steps++) {
        if (steps > size + 1)
            abort(); /* every step must make progress */
        int st = adsy_spool_step(&r, off, size, &c, &next, &why);
        if (st == ADSY_STEP_RECORD || st == ADSY_STEP_SKIP) {
            if (next <= off || next > size)
                abort();
            if (st == ADSY_STEP_RECORD && (c.account_len == 0 || c.password_len == 0))
                abort();
            off = next;
            continue;
        }
        if (st != ADSY_STEP_TORN && st != ADSY_STEP_END)
            abort(); /* no I/O errors from a memory image */
        break;
    }
    (void)adsy_spool_parse(p, size, &c);
    free(p);
    return 0;
}

/* libFuzzer target: the sealed framing (core/seal.c). Behind an identity AEAD (the
 * ciphertext is the plaintext, the tag must be 16 zero bytes), every input reaches the
 * length checks, the open and the reply decoder; a frame that opens seals back to the
 * same bytes, and nothing reads or writes out of bounds. The real AES-GCM is checked by
 * test_core (OpenSSL) and the wine tests (BCrypt). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/adsy_errors.h"
#include "../core/proto.h"
#include "../core/seal.h"

static const uint8_t ZERO_TAG[16];

static int id_seal(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                   const uint8_t *pt, size_t n, uint8_t *ct, uint8_t tag[16])
{
    (void)ctx, (void)nonce, (void)aad, (void)aad_len;
    memmove(ct, pt, n);
    memset(tag, 0, 16);
    return 0;
}

static int id_open(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                   const uint8_t *ct, size_t n, const uint8_t tag[16], uint8_t *pt)
{
    (void)ctx, (void)nonce, (void)aad, (void)aad_len;
    if (memcmp(tag, ZERO_TAG, 16) != 0)
        return -1;
    memmove(pt, ct, n);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint32_t len;
    if (size < 4 || adsy_sealed_length(data, &len) != ADSY_OK)
        return 0;
    if (len < ADSY_SEALED_MIN || len > ADSY_SEALED_MAX)
        abort();
    if (size - 4 < len)
        return 0; /* a cut frame: the reader waits for its bytes, never opens it */
    size_t body = len;
    uint8_t *in = malloc(body ? body : 1);
    uint8_t *pt = malloc(ADSY_FRAME_MAX);
    uint8_t *frame = malloc(4 + ADSY_FRAME_MAX);
    uint8_t *again = malloc(ADSY_SEALED_MAX + 4);
    if (!in || !pt || !frame || !again)
        abort();
    memcpy(in, data + 4, body);
    adsy_seal_dir rx = {{id_seal, id_open, NULL}, 0, 0};
    long n = adsy_open_frame(&rx, in, body, pt, ADSY_FRAME_MAX);
    if (n >= 0) {
        if ((size_t)n + ADSY_SEAL_TAG_LEN != body || rx.counter != 1 || rx.broken)
            abort();
        adsy_reply r;
        (void)adsy_decode_reply(pt, (size_t)n, &r);
        /* seal it back: the same sealed bytes */
        frame[0] = (uint8_t)(n >> 24), frame[1] = (uint8_t)(n >> 16);
        frame[2] = (uint8_t)(n >> 8), frame[3] = (uint8_t)n;
        memcpy(frame + 4, pt, (size_t)n);
        adsy_seal_dir tx = {{id_seal, id_open, NULL}, 0, 0};
        long m = adsy_seal_frame(&tx, frame, 4 + (size_t)n, again, ADSY_SEALED_MAX + 4);
        if (m != (long)(4 + body) || memcmp(again, data, 4) != 0 ||
            memcmp(again + 4, in, body) != 0)
            abort();
    } else if (!rx.broken && n == ADSY_E_AUTH) {
        abort(); /* a failed tag must break the direction */
    }
    free(in);
    free(pt);
    free(frame);
    free(again);
    return 0;
}

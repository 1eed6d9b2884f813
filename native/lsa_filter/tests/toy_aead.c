#include "toy_aead.h"

#include <string.h>

#include "../core/kdf.h"
#include "sha256.h"

uint8_t toy_key[32] = {1, 2, 3};
static void toy_stream(const uint8_t nonce[12], size_t i, uint8_t *b)
{
    uint8_t m[20];
    memcpy(m, nonce, 12);
    for (int k = 0; k < 8; k++)
        m[12 + k] = (uint8_t)(i >> (8 * k));
    t_hmac_sha256(NULL, toy_key, 32, m, 20, b);
}
static void toy_tag(const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t n,
                    uint8_t tag[16])
{
    static uint8_t m[4096];
    uint8_t full[32];
    memcpy(m, aad, aad_len);
    memcpy(m + aad_len, ct, n);
    t_hmac_sha256(NULL, toy_key, 32, m, aad_len + n, full);
    memcpy(tag, full, 16);
}
int toy_seal(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                    const uint8_t *pt, size_t n, uint8_t *ct, uint8_t tag[16])
{
    (void)ctx;
    uint8_t ks[32];
    for (size_t i = 0; i < n; i++) {
        if (i % 32 == 0)
            toy_stream(nonce, i / 32, ks);
        ct[i] = pt[i] ^ ks[i % 32];
    }
    toy_tag(aad, aad_len, ct, n, tag);
    return 0;
}
int toy_open(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                    const uint8_t *ct, size_t n, const uint8_t tag[16], uint8_t *pt)
{
    uint8_t want[16];
    toy_tag(aad, aad_len, ct, n, want);
    if (!adsy_ct_equal(want, tag, 16))
        return -1;
    uint8_t dummy[16];
    return toy_seal(ctx, nonce, aad, aad_len, ct, n, pt, dummy);
}


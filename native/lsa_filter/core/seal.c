#include "seal.h"

#include <string.h>

#include "adsy_errors.h"
#include "wipe.h"

int adsy_session_keys(adsy_mac m, const uint8_t psk[32], const uint8_t cn[32],
                      const uint8_t sn[32], uint8_t c2d[32], uint8_t d2c[32])
{
    uint8_t salt[64];
    memcpy(salt, cn, 32);
    memcpy(salt + 32, sn, 32);
    int rc = adsy_hkdf_sha256(m, salt, sizeof salt, psk, 32, (const uint8_t *)ADSY_SEAL_C2D_INFO,
                              sizeof ADSY_SEAL_C2D_INFO - 1, c2d, 32);
    if (rc == ADSY_OK)
        rc = adsy_hkdf_sha256(m, salt, sizeof salt, psk, 32, (const uint8_t *)ADSY_SEAL_D2C_INFO,
                              sizeof ADSY_SEAL_D2C_INFO - 1, d2c, 32);
    if (rc != ADSY_OK) {
        adsy_wipe(c2d, 32);
        adsy_wipe(d2c, 32);
    }
    return rc;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (uint8_t)(v & 0xFF);
        v >>= 8;
    }
}

void adsy_seal_nonce(uint64_t counter, uint8_t nonce[12])
{
    memset(nonce, 0, 4);
    put_be(nonce + 4, counter, 8);
}

long adsy_seal_frame(adsy_seal_dir *d, const uint8_t *frame, size_t frame_len, uint8_t *out,
                     size_t cap)
{
    uint8_t nonce[12];
    if (d->broken || d->counter == UINT64_MAX)
        return ADSY_E_AUTH;
    if (frame_len < 4 + ADSY_FRAME_MIN || frame_len > 4 + ADSY_FRAME_MAX)
        return ADSY_E_LENGTH;
    if (cap < frame_len + ADSY_SEAL_TAG_LEN)
        return ADSY_E_SPACE;
    size_t n = frame_len - 4;
    put_be(out, n + ADSY_SEAL_TAG_LEN, 4);
    adsy_seal_nonce(d->counter, nonce);
    if (d->aead.seal(d->aead.ctx, nonce, out, 4, frame + 4, n, out + 4, out + 4 + n) != 0) {
        d->broken = 1;
        adsy_wipe(out, frame_len + ADSY_SEAL_TAG_LEN);
        return ADSY_E_CRYPTO;
    }
    d->counter++;
    return (long)(frame_len + ADSY_SEAL_TAG_LEN);
}

int adsy_sealed_length(const uint8_t prefix[4], uint32_t *len)
{
    uint32_t n = ((uint32_t)prefix[0] << 24) | ((uint32_t)prefix[1] << 16) |
                 ((uint32_t)prefix[2] << 8) | prefix[3];
    if (n < ADSY_SEALED_MIN || n > ADSY_SEALED_MAX)
        return ADSY_E_LENGTH;
    *len = n;
    return ADSY_OK;
}

long adsy_open_frame(adsy_seal_dir *d, const uint8_t *body, size_t len, uint8_t *out,
                     size_t cap)
{
    uint8_t nonce[12], aad[4];
    if (d->broken || d->counter == UINT64_MAX)
        return ADSY_E_AUTH;
    if (len < ADSY_SEALED_MIN || len > ADSY_SEALED_MAX)
        return ADSY_E_LENGTH;
    size_t n = len - ADSY_SEAL_TAG_LEN;
    if (cap < n)
        return ADSY_E_SPACE;
    put_be(aad, len, 4);
    adsy_seal_nonce(d->counter, nonce);
    if (d->aead.open(d->aead.ctx, nonce, aad, 4, body, n, body + n, out) != 0) {
        d->broken = 1;
        adsy_wipe(out, n);
        return ADSY_E_AUTH;
    }
    d->counter++;
    return (long)n;
}

#include "kdf.h"

#include <string.h>

#include "adsy_errors.h"
#include "wipe.h"

#define LABEL_LEN 15 /* "adsync/2 daemon" and "adsync/2 client" (protocol version 2) */

int adsy_hs_proof(adsy_mac m, const uint8_t key[32], int daemon_side, const uint8_t cn[32],
                  const uint8_t sn[32], uint8_t out[32])
{
    uint8_t msg[LABEL_LEN + 64];
    memcpy(msg, daemon_side ? "adsync/2 daemon" : "adsync/2 client", LABEL_LEN);
    memcpy(msg + LABEL_LEN, cn, 32);
    memcpy(msg + LABEL_LEN + 32, sn, 32);
    return m.fn(m.ctx, key, ADSY_KEY_LEN, msg, sizeof msg, out) == 0 ? ADSY_OK : ADSY_E_CRYPTO;
}

int adsy_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    volatile uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= (uint8_t)(a[i] ^ b[i]);
    return d == 0;
}

int adsy_hs_check_daemon(adsy_mac m, const uint8_t key[32], const uint8_t cn[32],
                         const uint8_t sn[32], const uint8_t proof[32])
{
    uint8_t want[32];
    int rc = adsy_hs_proof(m, key, 1, cn, sn, want);
    if (rc == ADSY_OK && !adsy_ct_equal(want, proof, 32))
        rc = ADSY_E_AUTH;
    adsy_wipe(want, sizeof want);
    return rc;
}

int adsy_hkdf_sha256(adsy_mac m, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                     size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
                     size_t out_len)
{
    static const uint8_t zeros[32] = {0};
    uint8_t prk[32], t[32];
    uint8_t buf[32 + 256 + 1];
    size_t tlen = 0, done = 0;
    int rc = ADSY_OK;
    if (out_len > 255u * 32u || info_len > 256)
        return ADSY_E_SPACE;
    if (salt == NULL) {
        salt = zeros;
        salt_len = sizeof zeros;
    }
    if (m.fn(m.ctx, salt, salt_len, ikm, ikm_len, prk) != 0)
        return ADSY_E_CRYPTO;
    for (uint8_t i = 1; done < out_len; i++) {
        memcpy(buf, t, tlen);
        if (info_len)
            memcpy(buf + tlen, info, info_len);
        buf[tlen + info_len] = i;
        if (m.fn(m.ctx, prk, sizeof prk, buf, tlen + info_len + 1, t) != 0) {
            rc = ADSY_E_CRYPTO;
            break;
        }
        tlen = 32;
        size_t take = out_len - done < 32 ? out_len - done : 32;
        memcpy(out + done, t, take);
        done += take;
    }
    adsy_wipe(prk, sizeof prk);
    adsy_wipe(t, sizeof t);
    adsy_wipe(buf, sizeof buf);
    if (rc != ADSY_OK)
        adsy_wipe(out, out_len);
    return rc;
}

int adsy_spool_key(adsy_mac m, const uint8_t psk[32], uint8_t out[32])
{
    return adsy_hkdf_sha256(m, NULL, 0, psk, 32, (const uint8_t *)ADSY_SPOOL_KEY_INFO,
                            sizeof ADSY_SPOOL_KEY_INFO - 1, out, 32);
}

/* BCrypt: HMAC-SHA256 (handshake, HKDF), the system RNG (nonces, event ids) and
 * AES-256-GCM (spool records; sealed frames of protocol version 2, one key per direction
 * of each connection). Algorithm handles are opened once and shared. */
#include "internal.h"

#include <bcrypt.h>

static BCRYPT_ALG_HANDLE g_hmac_alg, g_aes_alg;
static BCRYPT_KEY_HANDLE g_aes_key;

int adsy_crypto_init(void)
{
    if (!g_hmac_alg &&
        BCryptOpenAlgorithmProvider(&g_hmac_alg, BCRYPT_SHA256_ALGORITHM, NULL,
                                    BCRYPT_ALG_HANDLE_HMAC_FLAG) != 0)
        return ADSY_E_CRYPTO;
    if (!g_aes_alg) {
        if (BCryptOpenAlgorithmProvider(&g_aes_alg, BCRYPT_AES_ALGORITHM, NULL, 0) != 0)
            return ADSY_E_CRYPTO;
        if (BCryptSetProperty(g_aes_alg, BCRYPT_CHAINING_MODE, (PUCHAR)BCRYPT_CHAIN_MODE_GCM,
                              sizeof BCRYPT_CHAIN_MODE_GCM, 0) != 0)
            return ADSY_E_CRYPTO;
    }
    return ADSY_OK;
}

int adsy_random(void *buf, ULONG n)
{
    return BCryptGenRandom(NULL, buf, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) == 0 ? ADSY_OK
                                                                              : ADSY_E_CRYPTO;
}

uint32_t adsy_random32(void)
{
    uint32_t v = 0;
    adsy_random(&v, sizeof v);
    return v;
}

int adsy_bcrypt_hmac(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *msg,
                     size_t msg_len, uint8_t out[32])
{
    (void)ctx;
    BCRYPT_HASH_HANDLE h = NULL;
    int rc = -1;
    if (BCryptCreateHash(g_hmac_alg, &h, NULL, 0, (PUCHAR)key, (ULONG)key_len, 0) == 0 &&
        BCryptHashData(h, (PUCHAR)msg, (ULONG)msg_len, 0) == 0 &&
        BCryptFinishHash(h, out, 32, 0) == 0)
        rc = 0;
    if (h)
        BCryptDestroyHash(h);
    return rc;
}

int adsy_aead_set_key(const uint8_t key[32])
{
    if (g_aes_key) {
        BCryptDestroyKey(g_aes_key);
        g_aes_key = NULL;
    }
    return BCryptGenerateSymmetricKey(g_aes_alg, &g_aes_key, NULL, 0, (PUCHAR)key, 32, 0) == 0
               ? ADSY_OK
               : ADSY_E_CRYPTO;
}

static void gcm_info(BCRYPT_AUTHENTICATED_CIPHER_MODE_INFO *i, const uint8_t nonce[12],
                     const uint8_t *aad, size_t aad_len, uint8_t *tag)
{
    BCRYPT_INIT_AUTH_MODE_INFO(*i);
    i->pbNonce = (PUCHAR)nonce;
    i->cbNonce = 12;
    i->pbAuthData = (PUCHAR)aad;
    i->cbAuthData = (ULONG)aad_len;
    i->pbTag = tag;
    i->cbTag = 16;
}

/* ctx: a key of adsy_gcm_key (a connection's direction), or NULL for the spool key. */
static BCRYPT_KEY_HANDLE key_of(void *ctx)
{
    return ctx ? (BCRYPT_KEY_HANDLE)ctx : g_aes_key;
}

static int gcm_seal(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                    const uint8_t *pt, size_t len, uint8_t *ct, uint8_t tag[16])
{
    BCRYPT_AUTHENTICATED_CIPHER_MODE_INFO info;
    ULONG out = 0;
    gcm_info(&info, nonce, aad, aad_len, tag);
    return BCryptEncrypt(key_of(ctx), (PUCHAR)pt, (ULONG)len, &info, NULL, 0, ct, (ULONG)len,
                         &out, 0) == 0 && out == len
               ? 0
               : -1;
}

static int gcm_open(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
                    const uint8_t *ct, size_t len, const uint8_t tag[16], uint8_t *pt)
{
    BCRYPT_AUTHENTICATED_CIPHER_MODE_INFO info;
    ULONG out = 0;
    uint8_t t[16];
    memcpy(t, tag, 16);
    gcm_info(&info, nonce, aad, aad_len, t);
    if (BCryptDecrypt(key_of(ctx), (PUCHAR)ct, (ULONG)len, &info, NULL, 0, pt, (ULONG)len, &out,
                      0) != 0 || out != len) {
        SecureZeroMemory(pt, len);
        return -1;
    }
    return 0;
}

const adsy_aead ADSY_AEAD = {gcm_seal, gcm_open, NULL};

int adsy_gcm_key(const uint8_t key[32], adsy_aead *out)
{
    BCRYPT_KEY_HANDLE h = NULL;
    if (BCryptGenerateSymmetricKey(g_aes_alg, &h, NULL, 0, (PUCHAR)key, 32, 0) != 0)
        return ADSY_E_CRYPTO;
    out->seal = gcm_seal;
    out->open = gcm_open;
    out->ctx = h;
    return ADSY_OK;
}

void adsy_gcm_key_free(adsy_aead *a)
{
    if (a->ctx) {
        BCryptDestroyKey((BCRYPT_KEY_HANDLE)a->ctx);
        a->ctx = NULL;
    }
}
const adsy_mac ADSY_MAC = {adsy_bcrypt_hmac, NULL};

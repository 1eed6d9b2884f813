/* The PSK handshake proofs and HKDF-SHA256, built on a platform HMAC-SHA256
 * (BCrypt in the DLL, a small reference implementation in the native tests). */
#ifndef ADSY_KDF_H
#define ADSY_KDF_H
#include <stddef.h>
#include <stdint.h>

#define ADSY_KEY_LEN 32u
#define ADSY_MAC_LEN 32u

/* HMAC-SHA256(key, msg) -> out; returns 0 on success. */
typedef int (*adsy_hmac_fn)(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *msg,
                            size_t msg_len, uint8_t out[32]);

typedef struct adsy_mac {
    adsy_hmac_fn fn;
    void *ctx;
} adsy_mac;

/* Protocol version 2 (the version is bound into the proofs):
 * sp = HMAC(key, "adsync/2 daemon" | cn | sn), cp = HMAC(key, "adsync/2 client" | cn | sn). */
int adsy_hs_proof(adsy_mac m, const uint8_t key[32], int daemon_side, const uint8_t cn[32],
                  const uint8_t sn[32], uint8_t out[32]);

/* ADSY_OK when the daemon's proof is right (constant-time), ADSY_E_AUTH otherwise. */
int adsy_hs_check_daemon(adsy_mac m, const uint8_t key[32], const uint8_t cn[32],
                         const uint8_t sn[32], const uint8_t proof[32]);

/* 1 when equal; time independent of where the bytes differ. */
int adsy_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

/* RFC 5869 HKDF-SHA256. salt may be NULL (= 32 zero bytes); out_len <= 255*32;
 * info_len <= 256. */
int adsy_hkdf_sha256(adsy_mac m, const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
                     size_t ikm_len, const uint8_t *info, size_t info_len, uint8_t *out,
                     size_t out_len);

/* The spool key: HKDF-SHA256(ikm = PSK, salt = none, info = ADSY_SPOOL_KEY_INFO), 32 bytes. */
#define ADSY_SPOOL_KEY_INFO "adsync/1 lsa-filter spool aes-256-gcm"
int adsy_spool_key(adsy_mac m, const uint8_t psk[32], uint8_t out[32]);

#endif

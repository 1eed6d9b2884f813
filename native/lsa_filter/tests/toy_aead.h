/* A toy AEAD (HMAC-SHA256 keystream + HMAC tag) for the native tests of the spool record
 * format; the real AES-256-GCM is BCrypt's, checked byte for byte by the wine tests. */
#ifndef ADSY_TOY_AEAD_H
#define ADSY_TOY_AEAD_H
#include <stddef.h>
#include <stdint.h>

extern uint8_t toy_key[32]; /* a test may flip a bit: "another key" */

int toy_seal(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
             const uint8_t *pt, size_t n, uint8_t *ct, uint8_t tag[16]);
int toy_open(void *ctx, const uint8_t nonce[12], const uint8_t *aad, size_t aad_len,
             const uint8_t *ct, size_t n, const uint8_t tag[16], uint8_t *pt);

#endif

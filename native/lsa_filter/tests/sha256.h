/* Reference SHA-256 / HMAC-SHA256 / AES-GCM stand-ins for the native tests only
 * (the DLL uses BCrypt). Small and slow on purpose; checked against RFC vectors. */
#ifndef TEST_SHA256_H
#define TEST_SHA256_H
#include <stddef.h>
#include <stdint.h>

void t_sha256(const uint8_t *msg, size_t len, uint8_t out[32]);
int t_hmac_sha256(void *ctx, const uint8_t *key, size_t key_len, const uint8_t *msg,
                  size_t msg_len, uint8_t out[32]);
#endif

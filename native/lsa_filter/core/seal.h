/* Sealed frames of protocol version 2 on TCP (docs/ipc.md, "Sealed frames").
 *
 * After the PSK handshake every frame in both directions is sealed with AES-256-GCM:
 *   sealed frame = length:u32 BE (= payload + 16) | ciphertext (payload) | tag (16)
 *   key   = HKDF-SHA256(ikm = PSK, salt = cn | sn, info = the direction's label), 32 bytes
 *   nonce = 4 zero bytes | counter:u64 BE  (0, 1, 2 ... per direction)
 *   AAD   = the 4 length bytes
 * A frame that fails its tag (changed, cut, replayed, reordered, reflected) breaks the
 * direction for good: the caller closes the connection.
 *
 * Pure: the AES-GCM itself is the platform's adsy_aead (BCrypt in the DLL), whose ctx
 * holds that direction's key. */
#ifndef ADSY_SEAL_H
#define ADSY_SEAL_H
#include <stddef.h>
#include <stdint.h>

#include "kdf.h"
#include "proto.h"
#include "spool.h"

#define ADSY_SEAL_TAG_LEN 16u
#define ADSY_SEALED_MIN (ADSY_FRAME_MIN + ADSY_SEAL_TAG_LEN)
#define ADSY_SEALED_MAX (ADSY_FRAME_MAX + ADSY_SEAL_TAG_LEN)
#define ADSY_SEAL_C2D_INFO "adsync/2 seal client->daemon"
#define ADSY_SEAL_D2C_INFO "adsync/2 seal daemon->client"

/* Both directions' keys from the PSK and the handshake's nonces. */
int adsy_session_keys(adsy_mac m, const uint8_t psk[32], const uint8_t cn[32],
                      const uint8_t sn[32], uint8_t c2d[32], uint8_t d2c[32]);

typedef struct adsy_seal_dir {
    adsy_aead aead;   /* keyed for this direction */
    uint64_t counter; /* the next frame's */
    int broken;       /* a frame failed: nothing more is sealed or opened */
} adsy_seal_dir;

void adsy_seal_nonce(uint64_t counter, uint8_t nonce[12]);

/* Seals one cleartext frame (length prefix + payload, frame_len bytes) into out[0..cap);
 * returns the sealed frame's size (frame_len + 16) or a negative error. */
long adsy_seal_frame(adsy_seal_dir *d, const uint8_t *frame, size_t frame_len, uint8_t *out,
                     size_t cap);

/* A sealed frame's length from its prefix: ADSY_E_LENGTH unless 32 <= len <= 65552. */
int adsy_sealed_length(const uint8_t prefix[4], uint32_t *len);

/* Opens a sealed frame's body (the len bytes after its prefix) into out[0..cap); returns
 * the payload's size (len - 16), or ADSY_E_AUTH (the direction is then broken). */
long adsy_open_frame(adsy_seal_dir *d, const uint8_t *body, size_t len, uint8_t *out,
                     size_t cap);

#endif

/* The spool record: one change sealed with AES-256-GCM, appended to the spool file.
 *
 *   record = magic "ASP1" | ct_len:u32 BE | nonce (12) | ciphertext (ct_len) | tag (16)
 *   AAD    = magic | ct_len  (the first 8 bytes)
 *   plaintext = TLV fields as in CHANGE: 0x10 account, 0x12 password, 0x16 RID u32,
 *               0x18 changed_at u64, 0x19 event id (16), 0x1A source sequence u64
 *
 * The AEAD itself is a platform callback (BCrypt in the DLL). */
#ifndef ADSY_SPOOL_H
#define ADSY_SPOOL_H
#include <stddef.h>
#include <stdint.h>

#include "change.h"

#define ADSY_SPOOL_MAGIC "ASP1"
#define ADSY_SPOOL_NONCE_LEN 12u
#define ADSY_SPOOL_TAG_LEN 16u
#define ADSY_SPOOL_HEAD_LEN (8u + ADSY_SPOOL_NONCE_LEN)
#define ADSY_SPOOL_MAX_PT                                                                      \
    (3u + ADSY_MAX_ACCOUNT + 3u + ADSY_MAX_PASSWORD + 3u + 4u + 3u + 8u + 3u + ADSY_EVENT_ID_LEN \
     + 3u + 8u)
#define ADSY_SPOOL_MAX_RECORD (ADSY_SPOOL_HEAD_LEN + ADSY_SPOOL_MAX_PT + ADSY_SPOOL_TAG_LEN)

typedef int (*adsy_seal_fn)(void *ctx, const uint8_t nonce[12], const uint8_t *aad,
                            size_t aad_len, const uint8_t *pt, size_t len, uint8_t *ct,
                            uint8_t tag[16]);
/* Returns 0 when the tag verifies; on failure pt must be left wiped. */
typedef int (*adsy_open_fn)(void *ctx, const uint8_t nonce[12], const uint8_t *aad,
                            size_t aad_len, const uint8_t *ct, size_t len, const uint8_t tag[16],
                            uint8_t *pt);

typedef struct adsy_aead {
    adsy_seal_fn seal;
    adsy_open_fn open;
    void *ctx;
} adsy_aead;

/* Seals c into out[0..cap); *out_len is the record's size. */
int adsy_spool_seal(adsy_aead a, const adsy_change *c, const uint8_t nonce[12], uint8_t *out,
                    size_t cap, size_t *out_len);

/* From the first 8 bytes, the whole record's size; ADSY_E_MAGIC or ADSY_E_LENGTH if the
 * header cannot start a record. */
int adsy_spool_record_len(const uint8_t head[8], size_t *rec_len);

/* Opens one whole record into *c (wiped on any error). */
int adsy_spool_open(adsy_aead a, const uint8_t *rec, size_t rec_len, adsy_change *c);

/* Parses the plaintext TLV (exposed for tests and fuzzing). */
int adsy_spool_parse(const uint8_t *pt, size_t n, adsy_change *c);

/* ---- reading a spool file back: one damaged record costs that record only ----
 *
 * The file is read through a callback (ReadFile in the DLL, a buffer in tests), one step at
 * a time. A step at `off` gives one of:
 *   RECORD  a record that opens; *c holds it, *next is the following offset;
 *   SKIP    bytes that do not open (a flipped bit, a zeroed sector, a bad length): *next is
 *           the next offset where a record opens, or end when none does;
 *   TORN    the rest of the file is an interrupted append: a header or record cut short by
 *           the end of the file, zero bytes only, or a record that does not open, followed
 *           by nothing that does, in a file that ends in zeros (16 zero bytes after it; 8
 *           when it is the last record): cut the file at off;
 *   END     off == end;
 *   IOERR   the callback failed (after its own retries): nothing is decided, try later.
 * *why is the reason of a SKIP or TORN (an ADSY_E_* code). */
#define ADSY_SPOOL_WIN 4096u
/* A last record that does not open and ends in this many zero bytes is a torn append. */
#define ADSY_SPOOL_TORN_ZEROS 8u

/* Reads exactly n bytes at off: 0, or -1 when they cannot be read now. */
typedef int (*adsy_read_fn)(void *ctx, uint64_t off, uint8_t *buf, size_t n);

typedef struct adsy_spool_reader {
    adsy_aead aead;
    adsy_read_fn read;
    void *ctx;
    uint8_t rec[ADSY_SPOOL_MAX_RECORD]; /* wiped after every use */
    uint8_t win[ADSY_SPOOL_WIN];        /* resynchronisation window (sealed bytes only) */
} adsy_spool_reader;

enum { ADSY_STEP_RECORD = 1, ADSY_STEP_SKIP, ADSY_STEP_TORN, ADSY_STEP_END, ADSY_STEP_IOERR };

int adsy_spool_step(adsy_spool_reader *r, uint64_t off, uint64_t end, adsy_change *c,
                    uint64_t *next, int *why);

#endif

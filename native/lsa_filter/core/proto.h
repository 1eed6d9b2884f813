/* Wire protocol (docs/ipc.md): frame encoder and reply decoder. The filter speaks version 2
 * only: the handshake in clear, then every frame sealed (seal.h); the frames inside the
 * seal are these, with version 2 in their header.
 * Pure functions over caller buffers: no allocation, no I/O. */
#ifndef ADSY_PROTO_H
#define ADSY_PROTO_H
#include <stddef.h>
#include <stdint.h>

#include "change.h"

#define ADSY_VERSION 2u
#define ADSY_FRAME_MIN 16u
#define ADSY_FRAME_MAX 65536u
#define ADSY_HEADER_LEN 16u /* magic, version, type, flags, request id */
#define ADSY_NONCE_LEN 32u
#define ADSY_PROOF_LEN 32u
#define ADSY_MAX_STRING 1024u

enum adsy_type {
    ADSY_T_HELLO = 0x01,
    ADSY_T_CHALLENGE = 0x02,
    ADSY_T_AUTH = 0x03,
    ADSY_T_AUTH_OK = 0x04,
    ADSY_T_CHECK = 0x10,
    ADSY_T_VERDICT = 0x11,
    ADSY_T_CHANGE = 0x20,
    ADSY_T_ACK = 0x21,
    ADSY_T_ERROR = 0x7F
};

enum adsy_tag {
    ADSY_TAG_NONCE = 0x01,
    ADSY_TAG_CLIENT_NAME = 0x02,
    ADSY_TAG_DAEMON_PROOF = 0x03,
    ADSY_TAG_CLIENT_PROOF = 0x04,
    ADSY_TAG_ACCOUNT = 0x10,
    ADSY_TAG_FULL_NAME = 0x11,
    ADSY_TAG_PASSWORD = 0x12,
    ADSY_TAG_SET_OPERATION = 0x13,
    ADSY_TAG_DOMAIN = 0x14,
    ADSY_TAG_SOURCE_HOST = 0x15,
    ADSY_TAG_RID = 0x16,
    ADSY_TAG_GUID = 0x17,
    ADSY_TAG_CHANGED_AT = 0x18,
    ADSY_TAG_EVENT_ID = 0x19,
    ADSY_TAG_SOURCE_SEQ = 0x1A,
    ADSY_TAG_STATUS = 0x20,
    ADSY_TAG_REASON = 0x21
};

enum adsy_verdict { ADSY_ACCEPT = 0, ADSY_REJECT = 1, ADSY_UNDECIDED = 2 };
enum adsy_ack { ADSY_ACK_STORED = 0, ADSY_ACK_REFUSED = 1, ADSY_ACK_BUSY = 2 };

/* ---- encoder ---- */
typedef struct adsy_writer {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err; /* sticky: the first error wins */
} adsy_writer;

void adsy_w_begin(adsy_writer *w, uint8_t *buf, size_t cap, uint8_t type, uint64_t request_id);
void adsy_w_field(adsy_writer *w, uint8_t tag, const void *val, size_t len);
void adsy_w_u8(adsy_writer *w, uint8_t tag, uint8_t v);
void adsy_w_u32(adsy_writer *w, uint8_t tag, uint32_t v);
void adsy_w_u64(adsy_writer *w, uint8_t tag, uint64_t v);
/* Fills in the length prefix; returns the whole frame's size (> 0) or a negative error. */
long adsy_w_end(adsy_writer *w);

/* Optional strings (domain, host): len 0 means "omit the field". */
typedef struct adsy_str {
    const uint8_t *p;
    size_t len;
} adsy_str;

long adsy_encode_hello(uint8_t *buf, size_t cap, uint64_t rid, const uint8_t nonce[32],
                       adsy_str client_name);
long adsy_encode_auth(uint8_t *buf, size_t cap, uint64_t rid, const uint8_t proof[32]);
long adsy_encode_change(uint8_t *buf, size_t cap, uint64_t rid, const adsy_change *c,
                        adsy_str domain, adsy_str host);
long adsy_encode_check(uint8_t *buf, size_t cap, uint64_t rid, adsy_str account,
                       adsy_str full_name, adsy_str password, int admin_reset, adsy_str domain,
                       adsy_str host);

/* ---- decoder ---- */

/* Reads the 4-byte length prefix; ADSY_E_LENGTH unless 16 <= len <= max_len (<= 65536). */
int adsy_frame_length(const uint8_t prefix[4], uint32_t max_len, uint32_t *len);

typedef struct adsy_tlv {
    const uint8_t *p;
    size_t n;
    size_t off;
} adsy_tlv;

/* Returns 1 and the next field, 0 at the clean end, ADSY_E_TRUNC if a field is cut. */
int adsy_tlv_next(adsy_tlv *it, uint8_t *tag, const uint8_t **val, uint16_t *len);

typedef struct adsy_reply {
    uint8_t type;
    uint64_t request_id;
    uint8_t has_nonce, has_proof, has_status, has_reason;
    uint8_t status;
    uint8_t nonce[ADSY_NONCE_LEN];
    uint8_t proof[ADSY_PROOF_LEN];
    uint16_t reason_len; /* the reason itself is never kept: nothing but codes is logged */
} adsy_reply;

/* Decodes one reply payload (the bytes after the length prefix). Accepts only the
 * daemon→client types; checks magic, version, flags, field sizes, duplicates,
 * required fields, status ranges and the reason's UTF-8. */
int adsy_decode_reply(const uint8_t *payload, size_t len, adsy_reply *out);

#endif

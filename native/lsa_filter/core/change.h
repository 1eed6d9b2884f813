/* One captured password change, in fixed-size storage (no allocation inside LSASS). */
#ifndef ADSY_CHANGE_H
#define ADSY_CHANGE_H
#include <stdint.h>

#define ADSY_MAX_ACCOUNT 1024  /* bytes of UTF-8, the daemon's limit */
#define ADSY_MAX_PASSWORD 1024 /* bytes of UTF-8 (AD allows 256 UTF-16 units) */
#define ADSY_EVENT_ID_LEN 16

typedef struct adsy_change {
    uint64_t seq;           /* source sequence, monotonic per DC (docs/ipc.md) */
    uint64_t changed_at_ms; /* Unix ms when LSASS told us */
    uint32_t rid;
    uint16_t account_len;
    uint16_t password_len;
    uint8_t event_id[ADSY_EVENT_ID_LEN];
    uint8_t account[ADSY_MAX_ACCOUNT];
    uint8_t password[ADSY_MAX_PASSWORD];
} adsy_change;

#endif

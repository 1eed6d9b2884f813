/* The worker's connection/retry state machine, pure: time is an argument (ms), randomness
 * for jitter is an argument, so tests drive it with a fake clock. */
#ifndef ADSY_LINK_H
#define ADSY_LINK_H
#include <stdint.h>

typedef enum { ADSY_LINK_DOWN = 0, ADSY_LINK_UP = 1 } adsy_link_state;

typedef struct adsy_link {
    adsy_link_state state;
    uint32_t initial_ms, max_ms; /* backoff bounds; the delay doubles per failure */
    uint32_t delay_ms;           /* the next un-jittered delay */
    uint32_t failures;           /* consecutive failures since the last success */
    uint64_t next_ms;            /* no connect/send before this time */
} adsy_link;

void adsy_link_init(adsy_link *l, uint32_t initial_ms, uint32_t max_ms);
/* Jittered delay in [0.8, 1.2] x the current delay; rnd is any 32-bit random value. */
uint32_t adsy_link_jitter(uint32_t delay_ms, uint32_t rnd);
/* Down and due: try to connect now. */
int adsy_link_should_connect(const adsy_link *l, uint64_t now);
/* Up and not holding off after a busy ACK. */
int adsy_link_may_send(const adsy_link *l, uint64_t now);
void adsy_link_connected(adsy_link *l);
/* Connect failed or the connection dropped: down, retry after a backoff delay. */
void adsy_link_failed(adsy_link *l, uint64_t now, uint32_t rnd);
/* ACK busy: stay connected, send again after a backoff delay. */
void adsy_link_busy(adsy_link *l, uint64_t now, uint32_t rnd);
/* ACK stored: the backoff starts again from its initial delay. */
void adsy_link_progress(adsy_link *l);
/* Changes go to the spool while the daemon is unreachable or the queue is past half. */
int adsy_link_should_spool(const adsy_link *l, int queue_past_half);
/* How long the worker may sleep before something is due (0 = now). */
uint32_t adsy_link_wait_ms(const adsy_link *l, uint64_t now);

#endif

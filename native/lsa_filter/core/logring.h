/* The log's hand-off: any thread (LSASS's included) records an event into a bounded ring
 * without a lock or a system call; only the worker formats and writes it out. A full ring
 * drops the event and counts it (the worker reports the count), it never waits. Same
 * per-slot sequence scheme as queue.h. */
#ifndef ADSY_LOGRING_H
#define ADSY_LOGRING_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ADSY_LOGRING_CAP 256

typedef struct adsy_logent {
    uint64_t unix_ms;
    const char *event; /* a string constant: events never carry data */
    long code;
    unsigned long long count;
    int level;
} adsy_logent;

typedef struct adsy_logring {
    struct {
        _Atomic size_t seq;
        adsy_logent e;
    } slots[ADSY_LOGRING_CAP];
    _Atomic size_t tail;
    _Atomic size_t head;
    _Atomic unsigned long long dropped;
} adsy_logring;

void adsy_logring_init(adsy_logring *r);
/* Any thread. 0, or -1 when full (counted in dropped). */
int adsy_logring_put(adsy_logring *r, const adsy_logent *e);
/* The one consumer: 1 and the oldest entry in *e, or 0 when empty. */
int adsy_logring_take(adsy_logring *r, adsy_logent *e);
/* The one consumer: the number of events dropped since the last call. */
unsigned long long adsy_logring_take_dropped(adsy_logring *r);

#endif

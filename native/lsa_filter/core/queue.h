/* Bounded FIFO of changes between LSASS's threads (many producers, PasswordChangeNotify)
 * and the worker (the one consumer), without a lock: a producer claims a position with one
 * compare-and-swap, copies its change into the slot and publishes it; a full queue is
 * reported at once, never waited on. The per-slot sequence scheme is D. Vyukov's bounded
 * MPMC queue (https://www.1024cores.net/home/lock-free-algorithms/queues/bounded-mpmc-queue),
 * used here with a single consumer, which may therefore read published slots in place
 * (peek) and free them later (pop). */
#ifndef ADSY_QUEUE_H
#define ADSY_QUEUE_H
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "change.h"

typedef struct adsy_qslot {
    _Atomic size_t seq; /* == position: free; == position + 1: published */
    adsy_change c;
} adsy_qslot;

/* Called on a slot as it becomes free (at init and after each pop, after the wipe), by
 * the consumer: the shell pre-fills a fresh random event id there, so that no producer
 * needs a random-number call. */
typedef void (*adsy_qslot_fill)(adsy_change *c, uint64_t position, void *ctx);

typedef struct adsy_queue {
    adsy_qslot *slots;
    size_t cap;
    adsy_qslot_fill fill;
    void *fill_ctx;
    _Atomic size_t tail; /* next position to claim (producers) */
    _Atomic size_t head; /* oldest position not yet popped (written by the consumer only) */
} adsy_queue;

void adsy_queue_init(adsy_queue *q, adsy_qslot *slots, size_t cap, adsy_qslot_fill fill,
                     void *ctx);

/* Producer: copies the account, password, RID and time of *src into a free slot and
 * publishes it; the slot's pre-filled event id is kept and the change's sequence is
 * seq_base + its queue position, so sequence order is queue order. Returns 0, or -1 when
 * the queue is full (the caller counts a drop: nothing waits). */
int adsy_queue_push(adsy_queue *q, const adsy_change *src, uint64_t seq_base);

/* Consumer: the i-th oldest published change (0 = head), or NULL (not there, or claimed
 * but not yet published: everything after it waits for it). */
const adsy_change *adsy_queue_peek(adsy_queue *q, size_t i);
/* Consumer: forgets the n oldest changes (wiped, re-filled, freed). */
void adsy_queue_pop(adsy_queue *q, size_t n);
/* Consumer: how many changes are published, in a row from the head. */
size_t adsy_queue_count(adsy_queue *q);
/* 1 when more than half the slots are claimed: the worker then spools. */
int adsy_queue_past_half(adsy_queue *q);

#endif

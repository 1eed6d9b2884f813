/* Bounded FIFO of changes over caller-provided slots: the hand-off from LSASS's thread
 * (PasswordChangeNotify) to the worker. Not locked: the Win32 shell holds a lock. */
#ifndef ADSY_QUEUE_H
#define ADSY_QUEUE_H
#include <stddef.h>

#include "change.h"

typedef struct adsy_queue {
    adsy_change *slots;
    size_t cap;
    size_t head;
    size_t count;
} adsy_queue;

void adsy_queue_init(adsy_queue *q, adsy_change *slots, size_t cap);
/* The slot the next change is written into, or NULL when full; it becomes visible only
 * after adsy_queue_commit (so a failed conversion leaves nothing behind). */
adsy_change *adsy_queue_reserve(adsy_queue *q);
void adsy_queue_commit(adsy_queue *q);
/* Wipes a reserved slot that will not be committed. */
void adsy_queue_abandon(adsy_queue *q);
/* i-th oldest change (0 = head), or NULL. */
adsy_change *adsy_queue_peek(adsy_queue *q, size_t i);
/* Forgets the n oldest changes, wiping their slots. */
void adsy_queue_pop(adsy_queue *q, size_t n);
size_t adsy_queue_count(const adsy_queue *q);
/* 1 when more than half the slots are in use: the worker then spools. */
int adsy_queue_past_half(const adsy_queue *q);
void adsy_queue_wipe(adsy_queue *q);

#endif

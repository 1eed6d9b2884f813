#include "queue.h"

#include "wipe.h"

void adsy_queue_init(adsy_queue *q, adsy_change *slots, size_t cap)
{
    q->slots = slots;
    q->cap = cap;
    q->head = 0;
    q->count = 0;
}

adsy_change *adsy_queue_reserve(adsy_queue *q)
{
    if (q->count >= q->cap)
        return NULL;
    return &q->slots[(q->head + q->count) % q->cap];
}

void adsy_queue_commit(adsy_queue *q)
{
    if (q->count < q->cap)
        q->count++;
}

void adsy_queue_abandon(adsy_queue *q)
{
    adsy_change *c = adsy_queue_reserve(q);
    if (c)
        adsy_wipe(c, sizeof *c);
}

adsy_change *adsy_queue_peek(adsy_queue *q, size_t i)
{
    if (i >= q->count)
        return NULL;
    return &q->slots[(q->head + i) % q->cap];
}

void adsy_queue_pop(adsy_queue *q, size_t n)
{
    if (n > q->count)
        n = q->count;
    while (n--) {
        adsy_wipe(&q->slots[q->head], sizeof q->slots[0]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    if (q->count == 0)
        q->head = 0;
}

size_t adsy_queue_count(const adsy_queue *q)
{
    return q->count;
}

int adsy_queue_past_half(const adsy_queue *q)
{
    return q->count * 2 > q->cap;
}

void adsy_queue_wipe(adsy_queue *q)
{
    adsy_wipe(q->slots, q->cap * sizeof q->slots[0]);
    q->head = 0;
    q->count = 0;
}

#include "queue.h"

#include <string.h>

#include "wipe.h"

void adsy_queue_init(adsy_queue *q, adsy_qslot *slots, size_t cap, adsy_qslot_fill fill,
                     void *ctx)
{
    q->slots = slots;
    q->cap = cap;
    q->fill = fill;
    q->fill_ctx = ctx;
    for (size_t i = 0; i < cap; i++) {
        adsy_wipe(&slots[i].c, sizeof slots[i].c);
        if (fill)
            fill(&slots[i].c, i, ctx);
        atomic_store_explicit(&slots[i].seq, i, memory_order_relaxed);
    }
    atomic_store_explicit(&q->head, 0, memory_order_relaxed);
    atomic_store_explicit(&q->tail, 0, memory_order_release);
}

int adsy_queue_push(adsy_queue *q, const adsy_change *src, uint64_t seq_base)
{
    size_t pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
    adsy_qslot *s;
    for (;;) {
        s = &q->slots[pos % q->cap];
        size_t seq = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (seq == pos) {
            if (atomic_compare_exchange_weak_explicit(&q->tail, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (seq < pos) {
            return -1; /* the slot still holds the change of the previous round: full */
        } else {
            pos = atomic_load_explicit(&q->tail, memory_order_relaxed);
        }
    }
    adsy_change *c = &s->c;
    c->seq = seq_base + pos;
    c->changed_at_ms = src->changed_at_ms;
    c->rid = src->rid;
    c->account_len = src->account_len;
    c->password_len = src->password_len;
    memcpy(c->account, src->account, src->account_len);
    memcpy(c->password, src->password, src->password_len);
    atomic_store_explicit(&s->seq, pos + 1, memory_order_release);
    return 0;
}

const adsy_change *adsy_queue_peek(adsy_queue *q, size_t i)
{
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    if (i >= q->cap)
        return NULL;
    adsy_qslot *s = &q->slots[(head + i) % q->cap];
    if (atomic_load_explicit(&s->seq, memory_order_acquire) != head + i + 1)
        return NULL;
    return &s->c;
}

void adsy_queue_pop(adsy_queue *q, size_t n)
{
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    for (; n > 0 && adsy_queue_peek(q, 0); n--, head++) {
        adsy_qslot *s = &q->slots[head % q->cap];
        adsy_wipe(&s->c, sizeof s->c);
        if (q->fill)
            q->fill(&s->c, head + q->cap, q->fill_ctx);
        atomic_store_explicit(&q->head, head + 1, memory_order_relaxed);
        atomic_store_explicit(&s->seq, head + q->cap, memory_order_release);
    }
}

size_t adsy_queue_count(adsy_queue *q)
{
    size_t n = 0;
    while (n < q->cap && adsy_queue_peek(q, n))
        n++;
    return n;
}

int adsy_queue_past_half(adsy_queue *q)
{
    size_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
    return (tail - head) * 2 > q->cap;
}

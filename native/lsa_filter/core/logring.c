#include "logring.h"

void adsy_logring_init(adsy_logring *r)
{
    for (size_t i = 0; i < ADSY_LOGRING_CAP; i++)
        atomic_store_explicit(&r->slots[i].seq, i, memory_order_relaxed);
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
    atomic_store_explicit(&r->dropped, 0, memory_order_relaxed);
    atomic_store_explicit(&r->tail, 0, memory_order_release);
}

int adsy_logring_put(adsy_logring *r, const adsy_logent *e)
{
    size_t pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
    for (;;) {
        size_t seq = atomic_load_explicit(&r->slots[pos % ADSY_LOGRING_CAP].seq,
                                          memory_order_acquire);
        if (seq == pos) {
            if (atomic_compare_exchange_weak_explicit(&r->tail, &pos, pos + 1,
                                                      memory_order_relaxed,
                                                      memory_order_relaxed))
                break;
        } else if (seq < pos) {
            atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
            return -1;
        } else {
            pos = atomic_load_explicit(&r->tail, memory_order_relaxed);
        }
    }
    r->slots[pos % ADSY_LOGRING_CAP].e = *e;
    atomic_store_explicit(&r->slots[pos % ADSY_LOGRING_CAP].seq, pos + 1, memory_order_release);
    return 0;
}

int adsy_logring_take(adsy_logring *r, adsy_logent *e)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    size_t i = head % ADSY_LOGRING_CAP;
    if (atomic_load_explicit(&r->slots[i].seq, memory_order_acquire) != head + 1)
        return 0;
    *e = r->slots[i].e;
    atomic_store_explicit(&r->head, head + 1, memory_order_relaxed);
    atomic_store_explicit(&r->slots[i].seq, head + ADSY_LOGRING_CAP, memory_order_release);
    return 1;
}

unsigned long long adsy_logring_take_dropped(adsy_logring *r)
{
    return atomic_exchange_explicit(&r->dropped, 0, memory_order_relaxed);
}

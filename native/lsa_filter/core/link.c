#include "link.h"

void adsy_link_init(adsy_link *l, uint32_t initial_ms, uint32_t max_ms)
{
    if (initial_ms == 0)
        initial_ms = 1;
    if (max_ms < initial_ms)
        max_ms = initial_ms;
    l->state = ADSY_LINK_DOWN;
    l->initial_ms = initial_ms;
    l->max_ms = max_ms;
    l->delay_ms = initial_ms;
    l->failures = 0;
    l->next_ms = 0;
}

uint32_t adsy_link_jitter(uint32_t delay_ms, uint32_t rnd)
{
    /* delay * (0.8 + 0.4 * rnd / 2^32), in 64-bit integers */
    uint64_t span = (uint64_t)delay_ms * 2u / 5u;
    uint64_t d = (uint64_t)delay_ms * 4u / 5u + ((span * rnd) >> 32);
    return d == 0 ? 1u : (uint32_t)d;
}

static void back_off(adsy_link *l, uint64_t now, uint32_t rnd)
{
    l->failures++;
    l->next_ms = now + adsy_link_jitter(l->delay_ms, rnd);
    uint64_t next = (uint64_t)l->delay_ms * 2u;
    l->delay_ms = next > l->max_ms ? l->max_ms : (uint32_t)next;
}

int adsy_link_should_connect(const adsy_link *l, uint64_t now)
{
    return l->state == ADSY_LINK_DOWN && now >= l->next_ms;
}

int adsy_link_may_send(const adsy_link *l, uint64_t now)
{
    return l->state == ADSY_LINK_UP && now >= l->next_ms;
}

void adsy_link_connected(adsy_link *l)
{
    l->state = ADSY_LINK_UP;
    l->next_ms = 0;
}

void adsy_link_failed(adsy_link *l, uint64_t now, uint32_t rnd)
{
    l->state = ADSY_LINK_DOWN;
    back_off(l, now, rnd);
}

void adsy_link_busy(adsy_link *l, uint64_t now, uint32_t rnd)
{
    back_off(l, now, rnd);
}

void adsy_link_progress(adsy_link *l)
{
    l->failures = 0;
    l->delay_ms = l->initial_ms;
    l->next_ms = 0;
}

int adsy_link_should_spool(const adsy_link *l, int queue_past_half)
{
    return l->state == ADSY_LINK_DOWN || queue_past_half;
}

uint32_t adsy_link_wait_ms(const adsy_link *l, uint64_t now)
{
    if (now >= l->next_ms)
        return 0;
    uint64_t d = l->next_ms - now;
    return d > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)d;
}

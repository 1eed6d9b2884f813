#include "batch.h"

static unsigned char fold(unsigned char x)
{
    return (x >= 'A' && x <= 'Z') ? (unsigned char)(x + 32) : x;
}

int adsy_same_account(const adsy_change *a, const adsy_change *b)
{
    if (a->account_len != b->account_len)
        return 0;
    for (size_t i = 0; i < a->account_len; i++)
        if (fold(a->account[i]) != fold(b->account[i]))
            return 0;
    return 1;
}

size_t adsy_batch_prefix(const adsy_change *c, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (adsy_same_account(&c[i], &c[j]))
                return i;
    return n;
}

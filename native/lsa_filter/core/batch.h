/* Which changes may be pipelined together: at most one per account, so that a busy ACK
 * for one change can never let a newer change of the same account be stored first. */
#ifndef ADSY_BATCH_H
#define ADSY_BATCH_H
#include <stddef.h>

#include "change.h"

/* 1 when a and b name the same account (bytes equal, ASCII letters case-folded, as AD's
 * sAMAccountName comparison is case-insensitive). */
int adsy_same_account(const adsy_change *a, const adsy_change *b);

/* Length of the longest prefix of c[0..n) in which no account appears twice. */
size_t adsy_batch_prefix(const adsy_change *c, size_t n);

#endif

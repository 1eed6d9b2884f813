/* Zeroing that the compiler may not remove (the core cannot use SecureZeroMemory). */
#ifndef ADSY_WIPE_H
#define ADSY_WIPE_H
#include <stddef.h>
void adsy_wipe(void *p, size_t n);
#endif

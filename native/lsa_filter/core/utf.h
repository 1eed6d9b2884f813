/* UTF-16 (AD's native form) to UTF-8 (the wire form), and strict UTF-8 validation. */
#ifndef ADSY_UTF_H
#define ADSY_UTF_H
#include <stddef.h>
#include <stdint.h>

/* Converts n_units UTF-16 code units to UTF-8 in out[0..cap). Surrogate pairs become one
 * 4-byte sequence; a lone surrogate is ADSY_E_SURROGATE, U+0000 is ADSY_E_NUL, and output
 * that does not fit is ADSY_E_SPACE. On error *out_len is 0 and out is wiped. */
int adsy_utf16_to_utf8(const uint16_t *in, size_t n_units, uint8_t *out, size_t cap,
                       size_t *out_len);

/* 1 if p[0..n) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int adsy_utf8_valid(const uint8_t *p, size_t n);

#endif

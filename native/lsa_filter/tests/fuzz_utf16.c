/* libFuzzer target: UTF-16 -> UTF-8 never overflows its output, and everything it accepts
 * is valid UTF-8 that decodes back to exactly the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/adsy_errors.h"
#include "../core/utf.h"

static size_t back_to_utf16(const uint8_t *s, size_t n, uint16_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        if (s[i] < 0x80) {
            c = s[i];
            i += 1;
        } else if ((s[i] & 0xE0) == 0xC0) {
            c = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
            i += 2;
        } else if ((s[i] & 0xF0) == 0xE0) {
            c = (uint32_t)(s[i] & 0x0F) << 12 | (uint32_t)(s[i + 1] & 0x3F) << 6 | (s[i + 2] & 0x3F);
            i += 3;
        } else {
            c = (uint32_t)(s[i] & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12 |
                (uint32_t)(s[i + 2] & 0x3F) << 6 | (s[i + 3] & 0x3F);
            i += 4;
        }
        if (c >= 0x10000) {
            c -= 0x10000;
            out[o++] = (uint16_t)(0xD800 + (c >> 10));
            out[o++] = (uint16_t)(0xDC00 + (c & 0x3FF));
        } else {
            out[o++] = (uint16_t)c;
        }
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t cap = data[0] * 4u; /* output capacity chosen by the fuzzer too */
    size_t units = (size - 1) / 2;
    uint16_t *in = malloc((units ? units : 1) * sizeof *in);
    uint8_t *out = malloc(cap ? cap : 1);
    uint16_t *round = malloc((units ? units : 1) * sizeof *round);
    if (!in || !out || !round)
        abort();
    for (size_t i = 0; i < units; i++)
        in[i] = (uint16_t)(data[1 + 2 * i] | data[2 + 2 * i] << 8);
    size_t n = 12345;
    int rc = adsy_utf16_to_utf8(in, units, out, cap, &n);
    if (rc == ADSY_OK) {
        if (n > cap || !adsy_utf8_valid(out, n))
            abort();
        if (back_to_utf16(out, n, round) != units || memcmp(round, in, units * 2) != 0)
            abort();
    } else {
        if (n != 0)
            abort();
        if (rc != ADSY_E_SPACE && rc != ADSY_E_SURROGATE && rc != ADSY_E_NUL)
            abort();
    }
    free(in);
    free(out);
    free(round);
    return 0;
}

#include "utf.h"

#include "adsy_errors.h"
#include "wipe.h"

int adsy_utf16_to_utf8(const uint16_t *in, size_t n_units, uint8_t *out, size_t cap,
                       size_t *out_len)
{
    size_t o = 0;
    int rc = ADSY_OK;
    *out_len = 0;
    for (size_t i = 0; i < n_units; i++) {
        uint32_t c = in[i];
        if (c == 0) {
            rc = ADSY_E_NUL;
            break;
        }
        if (c >= 0xD800 && c <= 0xDBFF) {
            if (i + 1 >= n_units || in[i + 1] < 0xDC00 || in[i + 1] > 0xDFFF) {
                rc = ADSY_E_SURROGATE;
                break;
            }
            c = 0x10000u + ((c - 0xD800u) << 10) + (uint32_t)(in[i + 1] - 0xDC00u);
            i++;
        } else if (c >= 0xDC00 && c <= 0xDFFF) {
            rc = ADSY_E_SURROGATE;
            break;
        }
        size_t need = c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        if (cap - o < need) {
            rc = ADSY_E_SPACE;
            break;
        }
        switch (need) {
        case 1:
            out[o++] = (uint8_t)c;
            break;
        case 2:
            out[o++] = (uint8_t)(0xC0 | (c >> 6));
            out[o++] = (uint8_t)(0x80 | (c & 0x3F));
            break;
        case 3:
            out[o++] = (uint8_t)(0xE0 | (c >> 12));
            out[o++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (uint8_t)(0x80 | (c & 0x3F));
            break;
        default:
            out[o++] = (uint8_t)(0xF0 | (c >> 18));
            out[o++] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
            out[o++] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
            out[o++] = (uint8_t)(0x80 | (c & 0x3F));
            break;
        }
    }
    if (rc != ADSY_OK) {
        adsy_wipe(out, o);
        return rc;
    }
    *out_len = o;
    return ADSY_OK;
}

int adsy_utf8_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        if (b < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t c, min;
        if ((b & 0xE0) == 0xC0) {
            len = 2;
            c = b & 0x1F;
            min = 0x80;
        } else if ((b & 0xF0) == 0xE0) {
            len = 3;
            c = b & 0x0F;
            min = 0x800;
        } else if ((b & 0xF8) == 0xF0) {
            len = 4;
            c = b & 0x07;
            min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            c = (c << 6) | (p[i + k] & 0x3Fu);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

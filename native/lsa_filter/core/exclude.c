#include "exclude.h"

#include <string.h>

#include "adsy_errors.h"

uint16_t adsy_fold16(uint16_t c)
{
    if (c < 0x80)
        return (c >= 'A' && c <= 'Z') ? (uint16_t)(c + 0x20) : c;
    if (c >= 0xC0 && c <= 0xDE && c != 0xD7) /* Latin-1 capitals */
        return (uint16_t)(c + 0x20);
    if (c == 0x178) /* Y with diaeresis */
        return 0xFF;
    if ((c >= 0x100 && c <= 0x12F) || (c >= 0x132 && c <= 0x137) || (c >= 0x14A && c <= 0x177))
        return (uint16_t)(c | 1); /* Latin Extended-A: even capital, odd small */
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E))
        return (c & 1) ? (uint16_t)(c + 1) : c; /* odd capital, even small */
    if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) /* Greek capitals */
        return (uint16_t)(c + 0x20);
    if (c >= 0x410 && c <= 0x42F) /* Cyrillic capitals */
        return (uint16_t)(c + 0x20);
    if (c >= 0x400 && c <= 0x40F)
        return (uint16_t)(c + 0x50);
    return c;
}

/* Units of the character starting at s[i] (2 for a surrogate pair). */
static size_t char_len(const uint16_t *s, size_t i, size_t n)
{
    if (s[i] >= 0xD800 && s[i] <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 && s[i + 1] <= 0xDFFF)
        return 2;
    return 1;
}

int adsy_glob_match16(const uint16_t *pat, size_t pn, const uint16_t *s, size_t sn)
{
    size_t p = 0, i = 0, star_p = 0, star_i = 0;
    int have_star = 0;
    while (i < sn) {
        if (p < pn && pat[p] == '*') {
            have_star = 1;
            star_p = ++p;
            star_i = i;
            continue;
        }
        if (p < pn && pat[p] == '?') {
            p++;
            i += char_len(s, i, sn);
            continue;
        }
        if (p < pn && adsy_fold16(pat[p]) == adsy_fold16(s[i])) {
            p++;
            i++;
            continue;
        }
        if (!have_star)
            return 0;
        /* let the last '*' take one more character and retry from there */
        star_i += char_len(s, star_i, sn);
        i = star_i;
        p = star_p;
    }
    while (p < pn && pat[p] == '*')
        p++;
    return p == pn;
}

static const uint16_t KRBTGT[] = {'k', 'r', 'b', 't', 'g', 't'};
static const uint16_t KRBTGT_RODC[] = {'k', 'r', 'b', 't', 'g', 't', '_', '*'};

/* Drops a "DOMAIN\" prefix. */
static void base_name(const uint16_t **name, size_t *n)
{
    for (size_t i = *n; i > 0; i--) {
        if ((*name)[i - 1] == '\\') {
            *name += i;
            *n -= i;
            return;
        }
    }
}

int adsy_account_builtin_excluded(const uint16_t *name, size_t n)
{
    base_name(&name, &n);
    if (n == 0)
        return 0;
    if (name[n - 1] == '$')
        return 1;
    if (n > ADSY_EXCL_MAX_NAME)
        return 0;
    return adsy_glob_match16(KRBTGT, 6, name, n) || adsy_glob_match16(KRBTGT_RODC, 8, name, n);
}

void adsy_excl_init(adsy_exclusions *e)
{
    memset(e, 0, sizeof *e);
}

int adsy_excl_add(adsy_exclusions *e, const uint16_t *pat, size_t n)
{
    if (n == 0)
        return ADSY_E_EMPTY;
    if (e->count >= ADSY_EXCL_MAX_PATTERNS || n > ADSY_EXCL_MAX_UNITS - e->used)
        return ADSY_E_SPACE;
    memcpy(e->units + e->used, pat, n * sizeof *pat);
    e->off[e->count] = (uint16_t)e->used;
    e->len[e->count] = (uint16_t)n;
    e->used += n;
    e->count++;
    return ADSY_OK;
}

int adsy_excl_load_multisz(adsy_exclusions *e, const uint16_t *ms, size_t units)
{
    int added = 0, full = 0;
    size_t start = 0;
    for (size_t i = 0; i <= units; i++) {
        if (i < units && ms[i] != 0)
            continue;
        if (i == start) /* an empty string ends a multi-string */
            break;
        int rc = adsy_excl_add(e, ms + start, i - start);
        if (rc == ADSY_OK)
            added++;
        else if (rc == ADSY_E_SPACE)
            full = 1;
        start = i + 1;
    }
    return full ? ADSY_E_SPACE : added;
}

int adsy_account_excluded(const adsy_exclusions *e, const uint16_t *name, size_t n)
{
    if (adsy_account_builtin_excluded(name, n))
        return 1;
    base_name(&name, &n);
    if (!e || n == 0 || n > ADSY_EXCL_MAX_NAME)
        return 0;
    for (size_t k = 0; k < e->count; k++)
        if (adsy_glob_match16(e->units + e->off[k], e->len[k], name, n))
            return 1;
    return 0;
}

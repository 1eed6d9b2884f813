/* libFuzzer target: the account glob and the ExcludeAccounts multi-string loader must never
 * read out of bounds, and the glob must agree with a plain recursive reference matcher. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/exclude.h"

static size_t ref_len(const uint16_t *s, size_t i, size_t n)
{
    return (s[i] >= 0xD800 && s[i] <= 0xDBFF && i + 1 < n && s[i + 1] >= 0xDC00 &&
            s[i + 1] <= 0xDFFF)
               ? 2
               : 1;
}

/* Exponential in the worst case: only called on short inputs. */
static int ref_match(const uint16_t *p, size_t pn, const uint16_t *s, size_t sn, size_t i)
{
    if (pn == 0)
        return i == sn;
    if (p[0] == '*') {
        for (size_t k = i;; k += ref_len(s, k, sn)) {
            if (ref_match(p + 1, pn - 1, s, sn, k))
                return 1;
            if (k >= sn)
                return 0;
        }
    }
    if (i >= sn)
        return 0;
    if (p[0] == '?')
        return ref_match(p + 1, pn - 1, s, sn, i + ref_len(s, i, sn));
    return adsy_fold16(p[0]) == adsy_fold16(s[i]) && ref_match(p + 1, pn - 1, s, sn, i + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static adsy_exclusions e;
    if (size < 1)
        return 0;
    size_t units = (size - 1) / 2;
    uint16_t *u = malloc((units ? units : 1) * sizeof *u); /* exact size: ASan sees overreads */
    if (!u)
        return 0;
    for (size_t i = 0; i < units; i++)
        u[i] = (uint16_t)(data[1 + 2 * i] | data[2 + 2 * i] << 8);
    size_t pn = units ? data[0] % (units + 1) : 0;
    const uint16_t *pat = u, *name = u + pn;
    size_t nn = units - pn;
    int got = adsy_glob_match16(pat, pn, name, nn);
    size_t stars = 0;
    for (size_t i = 0; i < pn; i++)
        stars += pat[i] == '*';
    if (pn <= 12 && nn <= 24 && stars <= 3 && got != ref_match(pat, pn, name, nn, 0))
        abort();
    if (pn == 1 && pat[0] == '*' && !got)
        abort();

    adsy_excl_init(&e);
    int n = adsy_excl_load_multisz(&e, u, units);
    if (n > (int)ADSY_EXCL_MAX_PATTERNS || e.used > ADSY_EXCL_MAX_UNITS)
        abort();
    (void)adsy_account_excluded(&e, name, nn);
    free(u);
    return 0;
}

/* Accounts whose password is not a user's: krbtgt, the RODC krbtgt_<n> accounts and every
 * account ending in '$' (computers, trusts, gMSA), plus the operator's ExcludeAccounts
 * patterns. Their secrets are never sent to the daemon and never refused by the filter.
 *
 * Patterns are globs over UTF-16 code units: '*' any run (also empty), '?' one character
 * (a surrogate pair counts as one), anything else literal. Matching is case-insensitive
 * (adsy_fold16) and covers the whole name. Pure functions: no I/O, no allocation. */
#ifndef ADSY_EXCLUDE_H
#define ADSY_EXCLUDE_H
#include <stddef.h>
#include <stdint.h>

#define ADSY_EXCL_MAX_PATTERNS 64u
#define ADSY_EXCL_MAX_UNITS 4096u /* all patterns together, UTF-16 code units */
#define ADSY_EXCL_MAX_NAME 256u   /* longer names are compared with the built-ins only */

typedef struct adsy_exclusions {
    uint16_t units[ADSY_EXCL_MAX_UNITS];
    uint16_t off[ADSY_EXCL_MAX_PATTERNS];
    uint16_t len[ADSY_EXCL_MAX_PATTERNS];
    size_t count; /* patterns */
    size_t used;  /* units */
} adsy_exclusions;

/* Simple case folding (to lower case) of ASCII, Latin-1, Latin Extended-A, basic Greek and
 * Cyrillic; every other code unit is returned unchanged. */
uint16_t adsy_fold16(uint16_t c);

/* 1 when the whole of s matches the glob pat (case-insensitive), else 0. */
int adsy_glob_match16(const uint16_t *pat, size_t pn, const uint16_t *s, size_t sn);

/* 1 for krbtgt, krbtgt_* and *$ (after any "DOMAIN\" prefix). */
int adsy_account_builtin_excluded(const uint16_t *name, size_t n);

void adsy_excl_init(adsy_exclusions *e);
/* Adds one pattern: ADSY_OK, ADSY_E_EMPTY (empty pattern, ignored) or ADSY_E_SPACE (full:
 * not added). */
int adsy_excl_add(adsy_exclusions *e, const uint16_t *pat, size_t n);
/* Loads a REG_MULTI_SZ value (NUL-separated strings, ended by an empty one; a missing
 * final terminator is tolerated). Returns the number of patterns added, or ADSY_E_SPACE
 * when some did not fit (those that fit are kept). */
int adsy_excl_load_multisz(adsy_exclusions *e, const uint16_t *ms, size_t units);

/* 1 when the account is a built-in exclusion or matches one of e's patterns (e may be
 * NULL). The name may carry a "DOMAIN\" prefix, which is ignored. */
int adsy_account_excluded(const adsy_exclusions *e, const uint16_t *name, size_t n);

#endif

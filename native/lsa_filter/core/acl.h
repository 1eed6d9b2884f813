/* Who may own and open the filter's secrets (the PSK file, the spool directory): the
 * decision, apart from the Win32 calls that gather its inputs (win32/fileacl.c).
 *
 * Trusted principals: SYSTEM, BUILTIN\Administrators, and the account the filter runs as
 * (SYSTEM inside LSASS). A path is refused when it is a reparse point, has no DACL, is owned
 * by anyone else, or has an allow entry granting any right to anyone else. Deny entries
 * only take rights away and are ignored. */
#ifndef ADSY_ACL_H
#define ADSY_ACL_H
#include <stddef.h>
#include <stdint.h>

typedef struct adsy_ace_info {
    int allow;    /* an access-allowed entry (of any allow type) */
    int trusted;  /* its SID is a trusted principal */
    uint32_t mask; /* the rights it grants */
} adsy_ace_info;

typedef struct adsy_sec_info {
    int reparse_point;
    int has_dacl;
    int owner_trusted;
    size_t ace_count;
    const adsy_ace_info *aces;
} adsy_sec_info;

/* ADSY_OK, or ADSY_E_REPARSE, ADSY_E_ACL_NULL, ADSY_E_ACL_OWNER, ADSY_E_ACL_BROAD (checked
 * in that order). */
int adsy_secret_path_verdict(const adsy_sec_info *s);

#endif

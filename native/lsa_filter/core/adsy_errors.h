/* Error codes shared by the portable core. Only these numbers are ever logged. */
#ifndef ADSY_ERRORS_H
#define ADSY_ERRORS_H

enum adsy_err {
    ADSY_OK = 0,
    ADSY_E_SPACE = -1,      /* output buffer too small / limit exceeded */
    ADSY_E_TRUNC = -2,      /* input ends inside a field or header */
    ADSY_E_MAGIC = -3,      /* not "ADSY" / not a spool record */
    ADSY_E_VERSION = -4,    /* protocol version other than ADSY_VERSION (2) */
    ADSY_E_FLAGS = -5,      /* flags field not 0 */
    ADSY_E_TYPE = -6,       /* a frame type the client never expects */
    ADSY_E_DUP = -7,        /* a known tag repeated */
    ADSY_E_FIELDLEN = -8,   /* a fixed-size field with the wrong length */
    ADSY_E_MISSING = -9,    /* a required field is absent */
    ADSY_E_VALUE = -10,     /* a field value out of its range */
    ADSY_E_UTF8 = -11,      /* invalid UTF-8 */
    ADSY_E_SURROGATE = -12, /* lone UTF-16 surrogate */
    ADSY_E_NUL = -13,       /* U+0000 inside a string */
    ADSY_E_LENGTH = -14,    /* frame length outside 16..65536 */
    ADSY_E_AUTH = -15,      /* proof or AEAD tag mismatch */
    ADSY_E_CRYPTO = -16,    /* the platform crypto callback failed */
    ADSY_E_EMPTY = -17,     /* a required string is empty */
    ADSY_E_ACL_OWNER = -18, /* a secret file/dir owned by someone other than SYSTEM/Admins */
    ADSY_E_ACL_BROAD = -19, /* ... whose DACL grants access to anyone else */
    ADSY_E_ACL_NULL = -20,  /* ... with no DACL at all (everyone has full access) */
    ADSY_E_REPARSE = -21    /* ... that is a reparse point (symlink, junction, mount point) */
};

#endif

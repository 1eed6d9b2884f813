#include "acl.h"

#include "adsy_errors.h"

int adsy_secret_path_verdict(const adsy_sec_info *s)
{
    if (s->reparse_point)
        return ADSY_E_REPARSE;
    if (!s->has_dacl)
        return ADSY_E_ACL_NULL;
    if (!s->owner_trusted)
        return ADSY_E_ACL_OWNER;
    for (size_t i = 0; i < s->ace_count; i++)
        if (s->aces[i].allow && !s->aces[i].trusted && s->aces[i].mask != 0)
            return ADSY_E_ACL_BROAD;
    return ADSY_OK;
}

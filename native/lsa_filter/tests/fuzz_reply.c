/* libFuzzer target: the reply decoder and the frame length check must never read out of
 * bounds, and whatever they accept must be self-consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../core/adsy_errors.h"
#include "../core/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    adsy_reply r;
    uint32_t len;
    if (size >= 4 && adsy_frame_length(data, ADSY_FRAME_MAX, &len) == ADSY_OK) {
        if (len < ADSY_FRAME_MIN || len > ADSY_FRAME_MAX)
            abort();
    }
    /* exact-size heap copy so ASan catches any read past the end */
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    int rc = adsy_decode_reply(p, size, &r);
    if (rc == ADSY_OK) {
        if (size < ADSY_HEADER_LEN || memcmp(p, "ADSY", 4) != 0)
            abort();
        if ((r.type == ADSY_T_ACK || r.type == ADSY_T_VERDICT) && (!r.has_status || r.status > 2))
            abort();
        if (r.type == ADSY_T_CHALLENGE && !(r.has_nonce && r.has_proof))
            abort();
        if (r.reason_len > size)
            abort();
    }
    free(p);
    return 0;
}

/* The struct_size rules (see abi.h). */
#include <string.h>

#include "core/abi.h"

vitq_status vitq_i_check_struct_size(uint32_t struct_size, size_t v1_size, const char *fn, const char *what) {
    if (struct_size >= v1_size && struct_size <= VITQ_I_STRUCT_MAX) return VITQ_OK;
    return vitq_i_fail(VITQ_ERR_ABI_MISMATCH,
                       "%s: %s.struct_size is %u; this library takes %zu to %u (fill it with the struct's *_init "
                       "function or sizeof)",
                       fn, what, (unsigned)struct_size, v1_size, VITQ_I_STRUCT_MAX);
}

void vitq_i_struct_in(void *out, size_t out_size, const void *in, uint32_t in_size) {
    uint32_t full = (uint32_t)out_size;
    memcpy(out, in, in_size < out_size ? in_size : out_size);
    memcpy(out, &full, sizeof full); /* struct_size is the first member of every public struct */
}

void vitq_i_struct_out(void *caller, uint32_t caller_size, const void *full, size_t full_size) {
    memcpy(caller, full, caller_size < full_size ? caller_size : full_size);
    memcpy(caller, &caller_size, sizeof caller_size);
}

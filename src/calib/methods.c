/* The table of PTQ methods: every line of method_list.h, in its order; the calibrator finds methods
 * here, and the API (vitq_method_count, vitq_method_get_info) and the CLI's help list them from here. */
#include <stdio.h>
#include <string.h>

#include "calib/methods.h"
#include "core/abi.h"

static const vitq_i_method *const methods[] = {
#define VITQ_I_METHOD(table, file) &table,
#include "calib/method_list.h"
#undef VITQ_I_METHOD
};
#define NUM_METHODS ((int)(sizeof methods / sizeof methods[0]))

const vitq_i_method *vitq_i_method_find(const char *name) {
    for (int i = 0; name && i < NUM_METHODS; i++)
        if (strcmp(methods[i]->name, name) == 0) return methods[i];
    return NULL;
}

void vitq_i_method_names(char *out, size_t size) {
    size_t used = 0;
    if (size) out[0] = '\0';
    for (int i = 0; i < NUM_METHODS && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? ", " : "", methods[i]->name);
        if (n > 0) used += (size_t)n;
    }
}

/* ---- public API ------------------------------------------------------------------------------- */

void vitq_method_info_init(vitq_method_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

int32_t vitq_method_count(void) { return NUM_METHODS; }

vitq_status vitq_method_get_info(int32_t index, vitq_method_info *info) {
    if (!info) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_method_get_info: info is NULL");
    vitq_status st = vitq_i_check_struct_size(info->struct_size, VITQ_I_V1_METHOD_INFO, "vitq_method_get_info",
                                              "vitq_method_info");
    if (st) return st;
    if (index < 0 || index >= NUM_METHODS)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_method_get_info: index %d of %d methods", (int)index,
                           NUM_METHODS);
    const vitq_i_method *m = methods[index];
    vitq_method_info full;
    vitq_method_info_init(&full);
    full.name = m->name;
    full.description = m->description;
    full.num_options = m->num_options;
    full.options = m->options;
    full.option_size = (uint32_t)sizeof(vitq_scheme_option);
    vitq_i_struct_out(info, info->struct_size, &full, sizeof full);
    return VITQ_OK;
}

/* Prefix tables (see name_map.h). */
#include <stdio.h>
#include <string.h>

#include "model/name_map.h"

int vitq_i_ckpt_map_prefix(const char *const (*table)[2], size_t n, const char *name, const char *prefix, char *out,
                           size_t cap) {
    for (size_t i = 0; i < n; i++)
        if (strncmp(name, table[i][0], strlen(table[i][0])) == 0) {
            snprintf(out, cap, "%s%s%s", prefix, table[i][1], name + strlen(table[i][0]));
            return 1;
        }
    return 0;
}

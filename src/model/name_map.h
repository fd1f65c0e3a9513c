/* Prefix tables, the form every layout's name map takes (names_swin.c, names_torchvision.c). */
#ifndef VITQ_MODEL_NAME_MAP_H
#define VITQ_MODEL_NAME_MAP_H

#include <stddef.h>

/* Map `name` through a table of {from prefix, to prefix} pairs: prefix + table[i][1] + what follows
 * table[i][0] in name, into out[cap], for the first entry whose [0] starts name; 0 when none does. */
int vitq_i_ckpt_map_prefix(const char *const (*table)[2], size_t n, const char *name, const char *prefix, char *out,
                           size_t cap);

#endif

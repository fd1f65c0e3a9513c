/* The table of PTQ methods (methods.c, built from method_list.h). */
#ifndef VITQ_CALIB_METHODS_H
#define VITQ_CALIB_METHODS_H

#include "calib/method.h"

/* The method called `name`, or NULL (no error recorded: the name may be a scheme's). */
const vitq_i_method *vitq_i_method_find(const char *name);

/* Names of every method, comma separated, into out (truncated to size; for messages). */
void vitq_i_method_names(char *out, size_t size);

#endif

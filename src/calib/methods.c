/* The table of PTQ methods (method.h). */
#include <string.h>

#include "calib/method.h"

static const vitq_i_method *const methods[] = {&vitq_i_method_ptq4vit, &vitq_i_method_apq, &vitq_i_method_repq,
                                              &vitq_i_method_noisyquant};
#define NUM_METHODS ((int)(sizeof methods / sizeof methods[0]))

const vitq_i_method *vitq_i_method_find(const char *name) {
    for (int i = 0; name && i < NUM_METHODS; i++)
        if (strcmp(methods[i]->name, name) == 0) return methods[i];
    return NULL;
}

const char *vitq_i_method_names(void) {
    static const char names[] = "ptq4vit, apq-vit, repq-vit, noisyquant";
    return names;
}

const vitq_scheme *vitq_i_builtin_scheme(const char *name) { return vitq_i_registry_find(NULL, name); }

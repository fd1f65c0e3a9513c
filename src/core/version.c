/* Run-time version and build features, so a program can check the library it actually linked. */
#include "core/core.h"

uint32_t vitq_version(void) { return VITQ_VERSION_NUMBER; }

const char *vitq_version_string(void) { return VITQ_VERSION_STRING; }

uint32_t vitq_build_features(void) {
    uint32_t f = 0;
#if !defined(VITQ_NO_THREADS)
    f |= VITQ_FEATURE_THREADS; /* core/pool.c: the library's pool, or OpenMP */
#if defined(_OPENMP)
    f |= VITQ_FEATURE_OPENMP;
#endif
#endif
#ifndef VITQ_NO_TLS
    f |= VITQ_FEATURE_THREAD_LOCAL;
#endif
    return f;
}

/* Status codes, their names and descriptions, and the per-thread detail message. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

/* The freestanding subset has no stdio: the messages go through core/format.c's small formatter. */
#if defined(VITQ_FREESTANDING)
#include "core/format.h"
#define vsnprintf vitq_i_vformat
#endif

/* No thread-local storage in a freestanding build (VITQ_FREESTANDING: the firmware subset, docs/firmware.md):
 * it has no threads, and _Thread_local there needs the run-time's __aeabi_read_tp, which bare-metal C
 * libraries do not provide. */
#if defined(VITQ_NO_TLS) || defined(VITQ_FREESTANDING)
#define VITQ_I_TLS
#else
#define VITQ_I_TLS _Thread_local
#endif

/* Bounded, never allocated: reporting an out-of-memory error must not need memory. */
static VITQ_I_TLS char last_error[1024];

typedef struct {
    const char *name;
    const char *text;
} status_entry;

static const status_entry status_table[] = {
    [VITQ_OK] = {"VITQ_OK", "success"},
    [VITQ_ERR_GENERIC] = {"VITQ_ERR_GENERIC", "failure"},
    [VITQ_ERR_INVALID_ARGUMENT] = {"VITQ_ERR_INVALID_ARGUMENT", "invalid argument"},
    [VITQ_ERR_OUT_OF_MEMORY] = {"VITQ_ERR_OUT_OF_MEMORY", "out of memory"},
    [VITQ_ERR_IO] = {"VITQ_ERR_IO", "input/output error"},
    [VITQ_ERR_TRUNCATED] = {"VITQ_ERR_TRUNCATED", "file or buffer truncated"},
    [VITQ_ERR_FORMAT] = {"VITQ_ERR_FORMAT", "malformed file"},
    [VITQ_ERR_DTYPE] = {"VITQ_ERR_DTYPE", "unsupported or wrong data type"},
    [VITQ_ERR_SHAPE] = {"VITQ_ERR_SHAPE", "shape mismatch"},
    [VITQ_ERR_MISSING_TENSOR] = {"VITQ_ERR_MISSING_TENSOR", "missing tensor"},
    [VITQ_ERR_UNEXPECTED_TENSOR] = {"VITQ_ERR_UNEXPECTED_TENSOR", "unexpected tensor"},
    [VITQ_ERR_MISSING_CONFIG] = {"VITQ_ERR_MISSING_CONFIG", "missing hyper-parameter"},
    [VITQ_ERR_CONFIG] = {"VITQ_ERR_CONFIG", "invalid or contradictory configuration"},
    [VITQ_ERR_UNSUPPORTED] = {"VITQ_ERR_UNSUPPORTED", "unsupported model or file variant"},
    [VITQ_ERR_CORRUPT_DATA] = {"VITQ_ERR_CORRUPT_DATA", "corrupt compressed data"},
    [VITQ_ERR_NON_FINITE] = {"VITQ_ERR_NON_FINITE", "non-finite value in an input or a weight"},
    [VITQ_ERR_BAD_STATE] = {"VITQ_ERR_BAD_STATE", "call out of order"},
    [VITQ_ERR_CANCELLED] = {"VITQ_ERR_CANCELLED", "cancelled"},
    [VITQ_ERR_BUFFER_TOO_SMALL] = {"VITQ_ERR_BUFFER_TOO_SMALL", "buffer too small"},
    [VITQ_ERR_UNKNOWN_NAME] = {"VITQ_ERR_UNKNOWN_NAME", "unknown scheme, option or point name"},
    [VITQ_ERR_OUT_OF_RANGE] = {"VITQ_ERR_OUT_OF_RANGE", "value out of range"},
    [VITQ_ERR_ABI_MISMATCH] = {"VITQ_ERR_ABI_MISMATCH", "struct or vtable version not understood"},
    [VITQ_ERR_UNSAFE] = {"VITQ_ERR_UNSAFE", "the file asks for code execution or an object outside what a state dict holds"},
};

static const status_entry *status_lookup(vitq_status status) {
    /* a negative status converts to a huge size_t; no signed test, which is always false where the enum
     * is unsigned (arm-none-eabi's short enums) */
    size_t i = (size_t)status;
    if (i >= sizeof status_table / sizeof status_table[0]) return NULL;
    return &status_table[i];
}

const char *vitq_status_string(vitq_status status) {
    const status_entry *e = status_lookup(status);
    return e ? e->text : "unknown status";
}

const char *vitq_status_name(vitq_status status) {
    const status_entry *e = status_lookup(status);
    return e ? e->name : "VITQ_ERR_UNKNOWN";
}

const char *vitq_last_error(void) { return last_error; }

void vitq_i_error_clear(void) { last_error[0] = '\0'; }

vitq_status vitq_i_fail(vitq_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

void vitq_i_error_prefix(const char *fmt, ...) {
    char prefix[512];
    char old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Truncation is fine: the message is a bounded best effort. */
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    last_error[n] = ':';
    last_error[n + 1] = ' ';
    size_t room = sizeof last_error - n - 3, len = strlen(old);
    if (len > room) len = room;
    memcpy(last_error + n + 2, old, len);
    last_error[n + 2 + len] = '\0';
}

vitq_status vitq_i_oom(const char *what, size_t bytes) {
    return vitq_i_fail(VITQ_ERR_OUT_OF_MEMORY, "cannot allocate %zu bytes for %s", bytes, what);
}

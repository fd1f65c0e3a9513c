/* Fuzz target: the quantization-point name patterns of vitq_calibrator_set (src/calib/glob.h, '*' and
 * '?'), compared with POSIX fnmatch() as the oracle (the library cannot use fnmatch: firmware libcs lack
 * it; a fuzz target may). Input: pattern, a NUL byte, the name. Inputs whose pattern holds characters
 * that mean more to fnmatch ('[', '\\') are only run, not compared. */
#include <fnmatch.h>

#include "calib/glob.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size + 2);
    FUZZ_ASSERT(buf);
    memcpy(buf, data, size);
    buf[size] = buf[size + 1] = '\0';
    const char *pattern = buf, *name = buf + strlen(buf) + 1;
    int got = vitq_i_glob_match(pattern, name);
    FUZZ_ASSERT(got == 0 || got == 1);
    if (!strpbrk(pattern, "[\\")) {
        int want = fnmatch(pattern, name, 0) == 0;
        if (got != want) {
            fprintf(stderr, "fuzz: pattern '%s' name '%s': vitq %d, fnmatch %d\n", pattern, name, got, want);
            abort();
        }
    }
    free(buf);
    return 0;
}

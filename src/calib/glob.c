/* Pattern matching with backtracking to the last '*' only: linear in practice, no recursion. */
#include "calib/glob.h"

int vitq_i_glob_match(const char *p, const char *s) {
    const char *star = 0, *resume = 0;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*p == '*') p++;
    return *p == '\0';
}

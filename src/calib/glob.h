/* Shell-style name patterns for quantization points: '*' any run of characters, '?' one. Own
 * implementation: fnmatch() is POSIX, not C, and firmware libcs lack it. */
#ifndef VITQ_CALIB_GLOB_H
#define VITQ_CALIB_GLOB_H

int vitq_i_glob_match(const char *pattern, const char *name);

#endif

/* Numeric options given as text (key = value) against a declared array of vitq_scheme_option (name,
 * range, default, whole or not): the one parser and validator of the options of schemes, methods, the
 * calibrator's per-point keys and the stand-alone quantizer. Every bad value is VITQ_ERR_OUT_OF_RANGE
 * with a message "<owner>: <key> = '<text>' is not <a number | a whole number> in [min, max]". */
#ifndef VITQ_QUANT_OPTIONS_H
#define VITQ_QUANT_OPTIONS_H

#include <stddef.h>

#include "core/core.h"

/* Index of option `key` among opts[0 .. count), or -1 (no error recorded: the key may be someone else's). */
int vitq_i_option_index(const vitq_scheme_option *opts, int32_t count, const char *key);

/* Defaults of opts[0 .. count) into values[0 .. count). */
void vitq_i_option_defaults(const vitq_scheme_option *opts, int32_t count, double *values);

/* 1 when `value` lies in [min_value, max_value] and is whole for an integer option: the one rule, also
 * for the built-in schemes' own checks at create (which report through their host). */
int vitq_i_option_in_range(const vitq_scheme_option *o, double value);

/* VITQ_OK when `value` lies in [min_value, max_value] (and is whole for an integer option). */
vitq_status vitq_i_option_check(const vitq_scheme_option *o, const char *owner, double value);

/* Parse `text` as a value of `o` into *value (unchanged on failure). */
vitq_status vitq_i_option_parse(const vitq_scheme_option *o, const char *owner, const char *text, double *value);

/* The same for an integer option whose range exceeds what a double holds exactly (seeds): whole
 * numbers are read as integers, "4.0" is accepted as 4. */
vitq_status vitq_i_option_parse_int(const vitq_scheme_option *o, const char *owner, const char *text, int64_t *value);

/* "a, b, c": the names of opts[0 .. count) into out (truncated to size), "none" when count is 0. */
void vitq_i_option_names(const vitq_scheme_option *opts, int32_t count, char *out, size_t size);

#endif

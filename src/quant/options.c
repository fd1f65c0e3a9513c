/* The option parser and validator (options.h). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "quant/options.h"

int vitq_i_option_index(const vitq_scheme_option *opts, int32_t count, const char *key) {
    for (int32_t i = 0; key && i < count; i++)
        if (strcmp(opts[i].name, key) == 0) return (int)i;
    return -1;
}

void vitq_i_option_defaults(const vitq_scheme_option *opts, int32_t count, double *values) {
    for (int32_t i = 0; i < count; i++) values[i] = opts[i].default_value;
}

/* "<owner>: <key> = <value> is not a number in [min, max]"; integer bounds printed in full (seeds). */
static vitq_status out_of_range(const vitq_scheme_option *o, const char *owner, const char *value) {
    char lo[32], hi[32];
    snprintf(lo, sizeof lo, o->is_integer ? "%.0f" : "%g", o->min_value);
    snprintf(hi, sizeof hi, o->is_integer ? "%.0f" : "%g", o->max_value);
    return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "%s%s%s = %s is not %s in [%s, %s]", owner ? owner : "",
                       owner ? ": " : "", o->name, value, o->is_integer ? "a whole number" : "a number", lo, hi);
}

int vitq_i_option_in_range(const vitq_scheme_option *o, double v) {
    return v >= o->min_value && v <= o->max_value && (!o->is_integer || v == floor(v)); /* NaN fails */
}

vitq_status vitq_i_option_check(const vitq_scheme_option *o, const char *owner, double value) {
    if (vitq_i_option_in_range(o, value)) return VITQ_OK;
    char text[40];
    snprintf(text, sizeof text, "%g", value);
    return out_of_range(o, owner, text);
}

/* The quoted text for messages (NULL shows as (null)). */
static void quoted(const char *text, char *out, size_t size) { snprintf(out, size, "'%s'", text ? text : "(null)"); }

vitq_status vitq_i_option_parse(const vitq_scheme_option *o, const char *owner, const char *text, double *value) {
    char *end = NULL;
    double v = text ? strtod(text, &end) : NAN;
    if (text && end != text && !*end && vitq_i_option_in_range(o, v)) {
        *value = v;
        return VITQ_OK;
    }
    char q[96];
    quoted(text, q, sizeof q);
    return out_of_range(o, owner, q);
}

vitq_status vitq_i_option_parse_int(const vitq_scheme_option *o, const char *owner, const char *text, int64_t *value) {
    char *end = NULL;
    errno = 0;
    long long v = text ? strtoll(text, &end, 10) : 0;
    int ok = text && end != text && !*end && !errno;
    if (ok) {
        ok = (double)v >= o->min_value && (double)v <= o->max_value;
    } else if (text) { /* "4.0", "1e3": a whole number written as a float */
        double d = strtod(text, &end);
        ok = end != text && !*end && d >= -9223372036854775808.0 && d < 9223372036854775808.0 &&
             vitq_i_option_in_range(o, d);
        v = ok ? (long long)d : 0;
    }
    if (ok) {
        *value = (int64_t)v;
        return VITQ_OK;
    }
    char q[96];
    quoted(text, q, sizeof q);
    return out_of_range(o, owner, q);
}

void vitq_i_option_names(const vitq_scheme_option *opts, int32_t count, char *out, size_t size) {
    size_t used = 0;
    if (size) out[0] = '\0';
    if (!count) snprintf(out, size, "none");
    for (int32_t i = 0; i < count && used < size; i++) {
        int n = snprintf(out + used, size - used, "%s%s", i ? ", " : "", opts[i].name);
        if (n > 0) used += (size_t)n;
    }
}

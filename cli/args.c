/* Command-line parsing into cli_args. */
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "progress.h"

static int parse_long(const char *opt, const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "vitq: %s: '%s' is not an integer in [%ld, %ld]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* "0.5" or "0.485,0.456,0.406" */
static int parse_floats(const char *opt, const char *s, float *out, int32_t *count) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || n == VITQ_MAX_CHANNELS) break;
        out[n++] = (float)v;
        p = end;
        if (*p == ',') p++;
        else if (*p) break;
    }
    if (*p || n == 0) {
        fprintf(stderr, "vitq: %s: '%s' is not a comma-separated list of up to %d numbers\n", opt, s,
                VITQ_MAX_CHANNELS);
        return -1;
    }
    *count = n;
    return 0;
}

/* Every option takes a value; an unknown one is named as such even when it is the last argument. */
static int known_option(const char *opt) {
    static const char *const names[] = {
        "--data", "--labels", "--out", "--limit", "--threads", "--batch",                  /* all commands */
        "--num-heads", "--image-size", "--layer-norm-eps", "--gelu", "--mean", "--std",    /* model overrides */
        "--execution", "--scheme", "--calib", "--calib-n", "--seed", "--wbits", "--abits", /* quantization */
        "--edge-bits", "--set", "--opt", "--quantized", "--csv", "--progress"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(opt, names[i])) return 1;
    return 0;
}

int cli_parse(int argc, char **argv, cli_args *a) {
    memset(a, 0, sizeof *a);
    vitq_model_options_init(&a->options);
    a->batch = 64;
    a->scheme = "minmax";
    a->calib_n = 32;
    a->wbits = a->abits = a->edge_bits = 8;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (!strcmp(opt, "-h") || !strcmp(opt, "--help")) return CLI_HELP;
        /* --opt=value is --opt value (only the option's own '=': values such as KEY=VALUE keep theirs) */
        char name[64];
        const char *inline_value = NULL;
        const char *eq = opt[0] == '-' && opt[1] == '-' ? strchr(opt, '=') : NULL;
        if (eq && (size_t)(eq - opt) < sizeof name) {
            memcpy(name, opt, (size_t)(eq - opt));
            name[eq - opt] = '\0';
            opt = name;
            inline_value = eq + 1;
        }
        if (opt[0] != '-') {
            if (a->model) {
                fprintf(stderr, "vitq: unexpected argument '%s'\n", opt);
                return -1;
            }
            a->model = opt;
            continue;
        }
        if (!known_option(opt)) {
            fprintf(stderr, "vitq: unknown option %s\n", opt);
            return -1;
        }
        if (!inline_value && i + 1 >= argc) {
            fprintf(stderr, "vitq: option %s needs a value\n", opt);
            return -1;
        }
        const char *val = inline_value ? inline_value : argv[++i];
        long v = 0;
        int rc = 0;
        if (!strcmp(opt, "--data")) a->data = val;
        else if (!strcmp(opt, "--labels")) a->labels = val;
        else if (!strcmp(opt, "--out")) a->out = val;
        else if (!strcmp(opt, "--limit")) rc = parse_long(opt, val, 1, 1L << 40, &a->limit);
        else if (!strcmp(opt, "--threads")) {
            rc = parse_long(opt, val, 0, 4096, &v);
            a->threads = (int)v;
            a->options.num_threads = (int32_t)v;
        } else if (!strcmp(opt, "--batch")) {
            rc = parse_long(opt, val, 1, 65536, &v);
            a->batch = (int)v;
        } else if (!strcmp(opt, "--num-heads")) {
            rc = parse_long(opt, val, 1, 65536, &v);
            a->options.num_heads = (int32_t)v;
        } else if (!strcmp(opt, "--image-size")) {
            rc = parse_long(opt, val, 1, 65536, &v);
            a->options.image_size = (int32_t)v;
        } else if (!strcmp(opt, "--layer-norm-eps")) {
            char *end;
            double e = strtod(val, &end);
            if (end == val || *end || !(e > 0 && e < 1)) {
                fprintf(stderr, "vitq: --layer-norm-eps: '%s' is not a number in (0, 1)\n", val);
                rc = -1;
            } else if (!((float)e >= FLT_MIN)) { /* as a float it would be 0 ("from the checkpoint") or subnormal */
                fprintf(stderr, "vitq: --layer-norm-eps: '%s' is below the smallest normal float %g\n", val,
                        (double)FLT_MIN);
                rc = -1;
            }
            a->options.layer_norm_eps = (float)e;
        } else if (!strcmp(opt, "--gelu")) {
            if (!strcmp(val, "erf")) a->options.gelu = VITQ_GELU_ERF;
            else if (!strcmp(val, "tanh")) a->options.gelu = VITQ_GELU_TANH;
            else {
                fprintf(stderr, "vitq: --gelu: '%s' is neither erf nor tanh\n", val);
                rc = -1;
            }
        } else if (!strcmp(opt, "--execution")) {
            if (!strcmp(val, "auto")) a->options.execution = VITQ_EXECUTION_AUTO;
            else if (!strcmp(val, "simulated")) a->options.execution = VITQ_EXECUTION_SIMULATED;
            else {
                fprintf(stderr, "vitq: --execution: '%s' is neither auto nor simulated\n", val);
                rc = -1;
            }
        } else if (!strcmp(opt, "--scheme")) a->scheme = val;
        else if (!strcmp(opt, "--calib")) a->calib = val;
        else if (!strcmp(opt, "--quantized")) a->quantized = val;
        else if (!strcmp(opt, "--csv")) a->csv = val;
        else if (!strcmp(opt, "--progress")) {
            if (cli_progress_setup(val)) {
                fprintf(stderr, "vitq: --progress: '%s' is none of auto, bar, plain, none\n", val);
                rc = -1;
            }
            a->progress = val;
        }
        else if (!strcmp(opt, "--calib-n")) rc = parse_long(opt, val, 1, 1L << 30, &a->calib_n);
        else if (!strcmp(opt, "--seed")) rc = parse_long(opt, val, 0, 1L << 62, &a->seed);
        else if (!strcmp(opt, "--wbits") || !strcmp(opt, "--abits") || !strcmp(opt, "--edge-bits")) {
            rc = parse_long(opt, val, 0, 8, &v);
            *(opt[2] == 'w' ? &a->wbits : opt[2] == 'a' ? &a->abits : &a->edge_bits) = (int)v;
        } else if (!strcmp(opt, "--set")) {
            if (a->num_sets == (int)(sizeof a->sets / sizeof a->sets[0])) {
                fprintf(stderr, "vitq: too many --set options\n");
                return -1;
            }
            a->sets[a->num_sets++] = val;
        } else if (!strcmp(opt, "--opt")) {
            if (a->num_method_opts == (int)(sizeof a->method_opts / sizeof a->method_opts[0])) {
                fprintf(stderr, "vitq: too many --opt options\n");
                return -1;
            }
            a->method_opts[a->num_method_opts++] = val;
        } else if (!strcmp(opt, "--mean")) rc = parse_floats(opt, val, a->options.mean, &a->options.num_mean);
        else if (!strcmp(opt, "--std")) rc = parse_floats(opt, val, a->options.std, &a->options.num_std);
        else {
            fprintf(stderr, "vitq: unknown option %s\n", opt);
            return -1;
        }
        if (rc) return rc;
    }
    if (!a->model) {
        fprintf(stderr, "vitq: no MODEL given\n");
        return -1;
    }
    return 0;
}

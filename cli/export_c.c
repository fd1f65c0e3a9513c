/* vitq export-c: a quantized model's integer-only program as C source for a firmware (docs/firmware.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* The C identifier a file name gives: its base name without ".c", other characters as '_'. */
static void symbol_from(const char *path, char *out, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t n = strlen(base) - 2, o = 0; /* --out ends in ".c" (checked) */
    if (base[0] >= '0' && base[0] <= '9') out[o++] = '_';
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        char c = base[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        out[o++] = ok ? c : '_';
    }
    out[o] = '\0';
}

int cli_export_c(const cli_args *args) {
    size_t n = args->out ? strlen(args->out) : 0;
    if (n < 3 || strcmp(args->out + n - 2, ".c") != 0) {
        fprintf(stderr, "vitq: export-c needs --out FILE.c (the header FILE.h is written beside it)\n");
        return 2;
    }
    if (cli_check_output(args, "--out", args->out)) return 2;
    char header[4096], symbol[80];
    if (n >= sizeof header) {
        fprintf(stderr, "vitq: --out: path too long\n");
        return 2;
    }
    memcpy(header, args->out, n + 1);
    header[n - 1] = 'h';
    if (cli_check_output(args, "--out", header)) return 2;
    if (args->symbol) snprintf(symbol, sizeof symbol, "%s", args->symbol);
    else symbol_from(args->out, symbol, sizeof symbol);
    if (args->options.execution != VITQ_EXECUTION_AUTO && args->options.execution != VITQ_EXECUTION_INTEGER_ONLY) {
        fprintf(stderr, "vitq: export-c exports the integer-only program: --execution can only be integer-only\n");
        return 2;
    }
    cli_args a = *args;
    a.options.execution = VITQ_EXECUTION_INTEGER_ONLY; /* the program exported is the integer-only one */
    vitq_model *m;
    if (cli_open(&a, 0, &m, NULL)) return 1;
    vitq_status st = vitq_model_export_c(m, symbol, args->out, header);
    vitq_model_free(m);
    if (st) return cli_fail(args->out, st);
    printf("exported %s: %s and %s\n", symbol, args->out, header);
    return 0;
}

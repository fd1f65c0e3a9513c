/* Shared pieces of the vitq command-line tool. */
#ifndef VITQ_CLI_H
#define VITQ_CLI_H

#include <stdio.h>

#include "vitq.h"

typedef struct cli_args {
    const char *model;
    const char *data;
    const char *labels;
    const char *out;
    long limit;   /* 0: all */
    int threads;  /* 0: all */
    int batch;
    vitq_model_options options;
    /* quantize */
    const char *scheme;
    const char *calib;
    long calib_n;
    long seed;
    int wbits, abits, edge_bits;
    int num_sets;
    const char *sets[64]; /* "POINT_GLOB=key:value[,key:value]" */
    int num_method_opts;
    const char *method_opts[16]; /* "key=value" options of a PTQ method */
    /* report */
    const char *quantized;
    const char *csv;
    const char *progress; /* --progress auto|bar|plain|none */
} cli_args;

/* Parse "COMMAND MODEL --opt value ..." (argv[0] is the command). 0 on success; prints errors. */
/* cli_parse's answer to -h / --help anywhere among a command's arguments. */
#define CLI_HELP 1
/* 0 when parsed, CLI_HELP when help was asked for, -1 on a usage error (already printed). */
int cli_parse(int argc, char **argv, cli_args *args);

/* Print "vitq: <what>: <status name>: <detail>" to stderr and return exit code 1. */
int cli_fail(const char *what, vitq_status st);

/* The built-in schemes and methods with their option names, one per line (main.c), for the help and
 * for errors about an unknown scheme. */
void cli_print_schemes(FILE *f);

/* Load the model and, when args->data is set, the dataset (labels found beside IDX / .npy images
 * when --labels is absent and `want_labels` is set). 0 on success. */
int cli_open(const cli_args *args, int want_labels, vitq_model **model, vitq_dataset **data);

/* 0 when `out`, the file option `flag` names, is none of the command's inputs (the model's weights and
 * the config files read beside them, --data, --labels, --calib, --quantized); otherwise prints which one
 * it is and returns 2: writing there would replace an input (refused even though writes are atomic). */
int cli_check_output(const cli_args *args, const char *flag, const char *out);

/* Write `size` bytes to `path` (the file option `flag` names) through a temporary file and a rename (the
 * library's atomic write): `path` keeps its previous content unless the whole new one is written. A pipe
 * or a device (/dev/stdout) is written in place. 0 on success; prints errors. */
int cli_write_file(const char *flag, const char *path, const void *data, size_t size);

/* Run the model over the first `n` images in batches of args->batch, reporting progress ("forward",
 * progress.h) after each. Logits of all n images land in `logits`. */
int cli_run(const cli_args *args, vitq_model *model, vitq_dataset *data, size_t n, float *logits);

int cli_info(const cli_args *args);
int cli_eval(const cli_args *args);
int cli_logits(const cli_args *args);
int cli_quantize(const cli_args *args);
int cli_points(const cli_args *args);
int cli_report(const cli_args *args);
/* Calibrate args->model's float model `m` as the quantize options say; *q receives the result. */
int cli_calibrate(const cli_args *args, vitq_model *m, vitq_model **q, vitq_calibrator **cal);

#endif

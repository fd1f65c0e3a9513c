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
    int setting; /* vitq_setting */
    int nonlinear; /* vitq_nonlinear */
    double target_bits;      /* mixed precision (0: off) */
    uint64_t target_bytes;   /* mixed precision (0: off) */
    uint32_t candidate_bits; /* mask of widths (0: the library's default) */
    int reconstruct;         /* --reconstruct */
    int recon_iters;         /* 0: the library's default */
    int recon_batch;         /* 0: the library's default */
    int recon_loss;          /* vitq_recon_loss */
    int recon_augment;       /* augmented views per calibration image */
    int num_sets;
    const char *sets[64]; /* "POINT_GLOB=key:value[,key:value]" */
    int num_method_opts;
    const char *method_opts[16]; /* "key=value" options of a PTQ method */
    /* report */
    const char *quantized;
    const char *csv;
    /* eval and logits */
    int top_k;               /* 0: 5, at most the number of classes */
    const char *class_names; /* file of names, one per line, or NULL: the model's own */
    const char *predictions; /* .csv or .jsonl (checked when parsed), or NULL */
    int json;                /* eval: the summary as one JSON object */
    const char *progress;    /* "auto" (default), "bar", "plain" or "none" (checked when parsed) */
    /* sweep */
    int bits_lo, bits_hi; /* --bits LO..HI (0: the default 3..8) */
    int mixed;            /* --mixed */
    const char *svg;      /* --svg FILE */
    /* export-c */
    const char *symbol; /* --symbol NAME (NULL: from --out's file name) */
    /* export-onnx */
    int opset; /* --opset N (0: the library's default, 17) */
    /* train-qat (--batch is the images per optimizer step there) */
    const char *teacher; /* --teacher MODEL (NULL: the float model itself) */
    int epochs, crops, micro_batch; /* 0 (crops: -1): the library's defaults */
    double lr, regularizer, warmup; /* < 0: the library's defaults */
    const char *log;     /* --log FILE.csv */
    const char *checkpoint, *resume; /* --checkpoint FILE, --resume FILE */
    const char *calibration_option;  /* the first option given that configures calibration (NULL: none) */
} cli_args;

/* The commands, as bits of cli_option.commands (in the order of the help). */
enum { CLI_INFO = 1, CLI_EVAL = 2, CLI_LOGITS = 4, CLI_POINTS = 8, CLI_QUANTIZE = 16, CLI_REPORT = 32, CLI_SWEEP = 64,
       CLI_EXPORT_C = 128, CLI_EXPORT_ONNX = 256, CLI_TRAIN_QAT = 512 };
/* The bit of command `name`; 0 for an unknown command. */
unsigned cli_command_bit(const char *name);

/* An option: its name ("--data"), its value's name (NULL for a flag such as --json), the commands
 * that take it and one line of help. The help of each command lists the options of this table it takes. */
typedef struct cli_option {
    const char *name, *value;
    unsigned commands;
    const char *help;
} cli_option;
extern const cli_option cli_options[];
extern const size_t cli_num_options;

/* Parse "COMMAND MODEL --opt value ..." (argv[0] is the command). 0 on success; prints errors. */
/* cli_parse's answer to -h / --help anywhere among a command's arguments. */
#define CLI_HELP 1
/* 0 when parsed, CLI_HELP when help was asked for, -1 on a usage error (already printed): an unknown
 * option, one the command does not take, a bad value. */
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

/* Class names for eval and logits (predict.c): name[c] for each class, or name NULL when there are none. */
typedef struct cli_names {
    const char **name;
    char *text; /* the --class-names file's text, which name[] points into */
} cli_names;
/* --class-names FILE (one name per line, line i naming class i) or else the model's own names
 * (vitq_model_class_name). 0 on success; 2 when the file does not fit the model (its line count is not
 * `classes`, an empty line, not UTF-8), 1 on other failures; prints errors. Free with cli_names_free. */
int cli_names_load(const cli_args *args, const vitq_model *model, int classes, cli_names *names);
void cli_names_free(cli_names *names);

/* The k most likely classes of each of n rows of logits into ids[n][k] (highest first; ties: lower class
 * first) and their softmax probabilities over all classes into probs[n][k]. */
void cli_top_k(const float *logits, size_t n, int classes, int k, int32_t *ids, float *probs);

/* One --predictions file's content. */
typedef struct cli_predictions {
    size_t n;
    int k;
    const int32_t *ids;      /* [n][k] */
    const float *probs;      /* [n][k] */
    const int32_t *labels;   /* [n], or NULL when unknown */
    const char *const *names; /* [classes], or NULL when unknown */
} cli_predictions;
/* Write `p` to `path` as CSV (FILE.csv) or JSON lines (FILE.jsonl) through cli_write_file. 0 on success. */
int cli_write_predictions(const char *path, const cli_predictions *p);
/* `s` as a JSON string (quoted, escaped) to `f`. */
void cli_json_string(FILE *f, const char *s);

int cli_info(const cli_args *args);
int cli_eval(const cli_args *args);
int cli_logits(const cli_args *args);
int cli_quantize(const cli_args *args);
int cli_points(const cli_args *args);
int cli_report(const cli_args *args);
int cli_sweep(const cli_args *args);
/* vitq export-c: the integer-only program as C source for a firmware (export_c.c). */
int cli_export_c(const cli_args *args);
/* vitq export-onnx: a ViT/DeiT model as an ONNX (QDQ) graph (export_onnx.c). */
int cli_export_onnx(const cli_args *args);
/* Calibrate args->model's float model `m` as the quantize options say; *q receives the result. */
int cli_calibrate(const cli_args *args, vitq_model *m, vitq_model **q, vitq_calibrator **cal);
/* The same with `run` (NULL: vitq_calibrator_run) turning the fed calibrator into *q; it prints its own
 * errors and returns an exit code. */
typedef int (*cli_run_fn)(const cli_args *args, vitq_calibrator *cal, vitq_model **q, void *ctx);
int cli_calibrate_with(const cli_args *args, vitq_model *m, vitq_model **q, vitq_calibrator **cal, cli_run_fn run,
                       void *ctx);
int cli_train_qat(const cli_args *args);

#endif

/* Command-line parsing into cli_args, and the table of options that the help is printed from. */
#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MODEL_CMDS \
    (CLI_INFO | CLI_EVAL | CLI_LOGITS | CLI_POINTS | CLI_QUANTIZE | CLI_REPORT | CLI_SWEEP | CLI_EXPORT_ONNX | \
     CLI_EXPORT_C | CLI_TRAIN_QAT)
/* points takes quantize's options, so that a quantize command line shows its configuration */
#define QUANT_CMDS (CLI_POINTS | CLI_QUANTIZE | CLI_REPORT | CLI_TRAIN_QAT)
/* sweep calibrates as quantize does, choosing the widths itself (--bits instead of --wbits, --abits and the targets) */
#define CALIB_CMDS (QUANT_CMDS | CLI_SWEEP)
#define TRAIN CLI_TRAIN_QAT

/* Every option, the commands that take it and its help line: the parser refuses an option its command
 * does not take (it would be ignored silently), and each command's help lists exactly its own. */
const cli_option cli_options[] = {
    {"--data", "IMAGES", CLI_EVAL | CLI_LOGITS | CLI_REPORT | CLI_SWEEP | TRAIN,
     "images: IDX or .npy (uint8 or float32), optionally gzipped (train-qat: the training images)"},
    {"--labels", "LABELS", CLI_EVAL | CLI_SWEEP,
     "labels (IDX or .npy); default: the file beside IMAGES named with 'labels' for 'images'"},
    {"--limit", "N", CLI_EVAL | CLI_LOGITS | CLI_REPORT | CLI_SWEEP | TRAIN,
     "the first N images only (report: default 64)"},
    {"--out", "FILE", CLI_LOGITS | CLI_QUANTIZE | CLI_EXPORT_C | CLI_EXPORT_ONNX | TRAIN,
     "logits: FILE.npy, float32 [N, classes]; quantize, train-qat: QMODEL.safetensors; export-c: FILE.c, and its header "
     "FILE.h beside it; export-onnx: FILE.onnx"},
    {"--top-k", "K", CLI_EVAL | CLI_LOGITS,
     "K most likely classes per image (default 5, at most the number of classes); eval prints top-1 and top-K"},
    {"--class-names", "FILE", CLI_EVAL | CLI_LOGITS,
     "one class name per line, line i naming class i, instead of the model's own (config.json)"},
    {"--predictions", "FILE", CLI_EVAL | CLI_LOGITS,
     "per image: index, label, top-K classes, names, probabilities; FILE.csv or FILE.jsonl"},
    {"--json", NULL, CLI_EVAL, "the summary on stdout as one JSON object instead of a line of text"},
    {"--batch", "B", CLI_EVAL | CLI_LOGITS | CLI_SWEEP | TRAIN,
     "images per forward pass (default 64); train-qat: images per optimizer step (default 64)"},
    {"--threads", "T", MODEL_CMDS, "threads (default 0: all cores)"},
    {"--progress", "MODE", MODEL_CMDS,
     "auto (default: bar on a terminal, else plain), bar (redrawn in place), plain (a line every 10 s and "
     "when a stage ends: for logs) or none"},
    {"--num-heads", "H", MODEL_CMDS, "model override: attention heads"},
    {"--layer-norm-eps", "E", MODEL_CMDS, "model override: LayerNorm epsilon"},
    {"--gelu", "erf|tanh", MODEL_CMDS, "model override: exact or tanh-approximated GELU"},
    {"--image-size", "S", MODEL_CMDS, "model override: input height = width"},
    {"--mean", "M[,M,M]", MODEL_CMDS, "model override: per-channel mean of pixels scaled to [0, 1]"},
    {"--std", "S[,S,S]", MODEL_CMDS, "model override: per-channel standard deviation"},
    {"--execution", "auto|simulated|integer-only", MODEL_CMDS,
     "quantized models: integer kernels where the quantizers allow (auto, default), simulated everywhere, or "
     "no floating point from uint8 pixels to int32 logits (a model quantized with --nonlinear; ViT and DeiT)"},
    {"--calib", "IMAGES", CALIB_CMDS, "calibration images"},
    {"--calib-n", "N", CALIB_CMDS, "calibration images drawn from --calib (default 32)"},
    {"--seed", "S", CALIB_CMDS, "seed of the draw and of schemes that use random numbers (default 0)"},
    {"--scheme", "SCHEME|METHOD", CALIB_CMDS, "every point's scheme, or a PTQ method (default minmax; list below)"},
    {"--wbits", "W", QUANT_CMDS, "weight bits (default 8; 0: float)"},
    {"--abits", "A", QUANT_CMDS, "activation bits (default 8; 0: float)"},
    {"--edge-bits", "E", CALIB_CMDS, "bits of the patch embedding and the classifier (default 8; 0: as the others)"},
    {"--setting", "default|paper", CALIB_CMDS,
     "default: --edge-bits for the patch embedding and the classifier, the image in float; paper: what the "
     "method's paper quantized (every layer at W/A bits; repq-vit's image at 8 bits)"},
    {"--nonlinear", "float|ibert|fqvit|ivit|mixed", CALIB_CMDS,
     "LayerNorm, softmax and GELU: in float (default), as integer-only kernels of I-BERT, FQ-ViT or I-ViT, "
     "or mixed: per operator the method that costs the output least SQNR on the calibration images"},
    {"--target-bits", "B", QUANT_CMDS & ~TRAIN,
     "mixed precision: lower layers' widths (weight and input together) from the widest candidate, the least "
     "harmful per byte first, until the quantized weights average at most B bits"},
    {"--target-size", "SIZE", QUANT_CMDS & ~TRAIN,
     "mixed precision: ... until the model's parameters take at most SIZE bytes (suffix KB, MB, KiB, MiB)"},
    {"--candidate-bits", "B,B,...", CALIB_CMDS & ~TRAIN, "widths mixed precision may give a layer (default 4,5,6,8)"},
    {"--reconstruct", NULL, CLI_QUANTIZE | TRAIN,
     "block reconstruction after the scheme or method: learned rounding (AdaRound) and activation steps per "
     "block, QDrop (ViT, DeiT, Swin); train-qat: the start QAT trains from"},
    {"--recon-iters", "N", CLI_QUANTIZE | TRAIN, "reconstruction: Adam steps per block (default 100)"},
    {"--recon-batch", "N", CLI_QUANTIZE | TRAIN, "reconstruction: images per step (default 32)"},
    {"--recon-loss", "mse|fisher", CLI_QUANTIZE | TRAIN,
     "reconstruction: the block output's squared error (default), or weighted by the float network's Fisher"},
    {"--recon-augment", "K", CLI_QUANTIZE | TRAIN,
     "reconstruction: K augmented views (random resized crops, flips) per calibration image (default 0)"},
    {"--set", "'POINT_GLOB=key:value[,key:value]'", CALIB_CMDS,
     "configure matching points (repeatable); keys: bits, granularity, symmetric, scheme, noisy, nonlinear "
     "and the scheme's options"},
    {"--opt", "KEY=VALUE", CALIB_CMDS, "an option of the PTQ method (repeatable)"},
    {"--quantized", "QMODEL", CLI_REPORT, "a quantized model to report on instead of calibrating one"},
    {"--csv", "FILE", CLI_REPORT | CLI_SWEEP, "report: the report's rows as CSV; sweep: one row per run"},
    {"--bits", "LO..HI", CLI_SWEEP, "the widths to sweep, W and A bits alike, in 2..8 (default 3..8; one width: B)"},
    {"--mixed", NULL, CLI_SWEEP,
     "also mixed precision: --target-bits T for each T of --bits within the candidate widths"},
    {"--svg", "FILE", CLI_SWEEP, "the accuracy-size curve as an SVG chart"},
    {"--symbol", "NAME", CLI_EXPORT_C, "the C name of the exported model (default: FILE's name without .c)"},
    {"--opset", "N", CLI_EXPORT_ONNX, "ONNX opset, 13..17 (default 17: LayerNormalization; below: LayerNorm decomposed)"},
    {"--teacher", "MODEL", TRAIN, "the float model distilled from (default: MODEL itself)"},
    {"--epochs", "N", TRAIN, "passes over the training images (default 4)"},
    {"--crops", "K", TRAIN, "random resized crops (and flips) per image and step (default 4; 0: the images unaugmented)"},
    {"--micro-batch", "N", TRAIN, "views per forward and backward: bounds the memory (default 32)"},
    {"--lr", "R", TRAIN, "AdamW's learning rate (default 5e-4), cosine decay"},
    {"--warmup", "E", TRAIN, "linear warm-up in epochs (default 0)"},
    {"--regularizer", "L", TRAIN, "the oscillation-aware bin regulariser's final weight (default 0.01; 0: off)"},
    {"--checkpoint", "FILE", TRAIN, "the training state after every epoch (replaced each time), for --resume"},
    {"--resume", "FILE", TRAIN,
     "go on from a --checkpoint of the same command line: the result is what the uninterrupted run gives"},
    {"--log", "FILE.csv", TRAIN, "a CSV line per optimizer step: loss, agreement, regulariser, flips, oscillations"},
};
const size_t cli_num_options = sizeof cli_options / sizeof cli_options[0];

static const char *const command_names[] = {"info", "eval", "logits", "points", "quantize", "report", "sweep",
                                            "export-c", "export-onnx", "train-qat"};

unsigned cli_command_bit(const char *command) {
    for (size_t i = 0; i < sizeof command_names / sizeof command_names[0]; i++)
        if (!strcmp(command, command_names[i])) return 1u << i;
    return 0;
}

/* The commands of `bits`, for "(an option of eval, logits)". */
static void command_list(unsigned bits, char *out, size_t cap) {
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof command_names / sizeof command_names[0]; i++)
        if (bits & (1u << i))
            used += (size_t)snprintf(out + used, used < cap ? cap - used : 0, "%s%s", used ? ", " : "",
                                     command_names[i]);
}

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

/* "4MB", "512KiB", "3000000": bytes (KB = 1000, KiB = 1024, ...). */
/* A whole number in lo..hi into *out; -1 (with a message naming the option) otherwise. */
static int parse_count(const char *opt, const char *s, long lo, long hi, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "vitq: %s: '%s' is not a count in %ld..%ld\n", opt, s, lo, hi);
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_size(const char *opt, const char *s, uint64_t *out) {
    static const struct { const char *suffix; double factor; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"KiB", 1024.0}, {"MiB", 1048576.0},
        {"GiB", 1073741824.0}};
    char *end;
    double v = strtod(s, &end);
    for (size_t i = 0; end != s && v > 0 && i < sizeof units / sizeof units[0]; i++)
        if (!strcmp(end, units[i].suffix) && v * units[i].factor < 1.8e19) {
            *out = (uint64_t)(v * units[i].factor);
            return 0;
        }
    fprintf(stderr, "vitq: %s: '%s' is not a positive size such as 4MB, 512KiB or 3000000\n", opt, s);
    return -1;
}

/* "4,5,6,8": a mask with bit b set for each width b in 2..8. */
static int parse_bit_set(const char *opt, const char *s, uint32_t *out) {
    uint32_t mask = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long b = strtol(p, &end, 10);
        if (end == p || b < 2 || b > 8) break;
        mask |= 1u << b;
        p = end;
        if (*p == ',') p++;
        else if (*p) break;
    }
    if (*p || !mask) {
        fprintf(stderr, "vitq: %s: '%s' is not a comma-separated list of widths in 2..8\n", opt, s);
        return -1;
    }
    *out = mask;
    return 0;
}

/* "3..8" or "6": widths lo..hi in 2..8. */
static int parse_bit_range(const char *opt, const char *s, int *lo, int *hi) {
    char *end;
    long a = strtol(s, &end, 10), b = a;
    if (end != s && !strncmp(end, "..", 2)) {
        const char *second = end + 2;
        b = strtol(second, &end, 10);
        if (end == second) b = 0;
    }
    if (end == s || *end || a < 2 || b > 8 || a > b) {
        fprintf(stderr, "vitq: %s: '%s' is not a range LO..HI of widths in 2..8 (LO <= HI) or one width\n", opt, s);
        return -1;
    }
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

static const cli_option *find_option(const char *name) {
    for (size_t i = 0; i < cli_num_options; i++)
        if (!strcmp(name, cli_options[i].name)) return &cli_options[i];
    return NULL;
}

/* 1 when `path` ends in `ext` (".csv"), case-insensitively. */
static int has_extension(const char *path, const char *ext) {
    size_t n = strlen(path), e = strlen(ext);
    if (n <= e) return 0;
    for (size_t i = 0; i < e; i++) {
        char c = path[n - e + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != ext[i]) return 0;
    }
    return 1;
}

/* The value of an option that takes one; -1 on a usage error (printed). */
static int apply(cli_args *a, const char *opt, const char *val) {
    long v = 0;
    int rc = 0;
    if (!strcmp(opt, "--data")) a->data = val;
    else if (!strcmp(opt, "--labels")) a->labels = val;
    else if (!strcmp(opt, "--out")) a->out = val;
    else if (!strcmp(opt, "--symbol")) a->symbol = val;
    else if (!strcmp(opt, "--limit")) rc = parse_long(opt, val, 1, 1L << 40, &a->limit);
    else if (!strcmp(opt, "--threads")) {
        rc = parse_long(opt, val, 0, 4096, &v);
        a->threads = (int)v;
        a->options.num_threads = (int32_t)v;
    } else if (!strcmp(opt, "--batch")) {
        rc = parse_long(opt, val, 1, 65536, &v);
        a->batch = (int)v;
    } else if (!strcmp(opt, "--top-k")) {
        rc = parse_long(opt, val, 1, 1L << 30, &v);
        a->top_k = (int)v;
    } else if (!strcmp(opt, "--class-names")) a->class_names = val;
    else if (!strcmp(opt, "--predictions")) {
        if (!has_extension(val, ".csv") && !has_extension(val, ".jsonl")) {
            fprintf(stderr, "vitq: --predictions: '%s' ends neither in .csv nor in .jsonl (the extension chooses "
                            "the format)\n", val);
            rc = -1;
        }
        a->predictions = val;
    } else if (!strcmp(opt, "--progress")) {
        if (strcmp(val, "auto") && strcmp(val, "bar") && strcmp(val, "plain") && strcmp(val, "none")) {
            fprintf(stderr, "vitq: --progress: '%s' is none of auto, bar, plain, none\n", val);
            rc = -1;
        }
        a->progress = val;
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
        else if (!strcmp(val, "integer-only")) a->options.execution = VITQ_EXECUTION_INTEGER_ONLY;
        else {
            fprintf(stderr, "vitq: --execution: '%s' is not auto, simulated or integer-only\n", val);
            rc = -1;
        }
    } else if (!strcmp(opt, "--scheme")) a->scheme = val;
    else if (!strcmp(opt, "--calib")) a->calib = val;
    else if (!strcmp(opt, "--quantized")) a->quantized = val;
    else if (!strcmp(opt, "--csv")) a->csv = val;
    else if (!strcmp(opt, "--svg")) a->svg = val;
    else if (!strcmp(opt, "--bits")) rc = parse_bit_range(opt, val, &a->bits_lo, &a->bits_hi);
    else if (!strcmp(opt, "--calib-n")) rc = parse_long(opt, val, 1, 1L << 30, &a->calib_n);
    else if (!strcmp(opt, "--opset")) {
        rc = parse_long(opt, val, 13, 17, &v);
        a->opset = (int)v;
    }
    else if (!strcmp(opt, "--seed")) rc = parse_long(opt, val, 0, 1L << 62, &a->seed);
    else if (!strcmp(opt, "--wbits") || !strcmp(opt, "--abits") || !strcmp(opt, "--edge-bits")) {
        rc = parse_long(opt, val, 0, 8, &v);
        *(opt[2] == 'w' ? &a->wbits : opt[2] == 'a' ? &a->abits : &a->edge_bits) = (int)v;
    } else if (!strcmp(opt, "--setting")) {
        if (!strcmp(val, "default")) a->setting = VITQ_SETTING_DEFAULT;
        else if (!strcmp(val, "paper")) a->setting = VITQ_SETTING_PAPER;
        else {
            fprintf(stderr, "vitq: --setting: '%s' is neither default nor paper\n", val);
            rc = -1;
        }
    } else if (!strcmp(opt, "--nonlinear")) {
        static const char *const names[] = {"float", "ibert", "fqvit", "ivit", "mixed"};
        a->nonlinear = -1;
        for (int m = 0; m < 5; m++)
            if (!strcmp(val, names[m])) a->nonlinear = m;
        if (a->nonlinear < 0) {
            fprintf(stderr, "vitq: --nonlinear: '%s' is not float, ibert, fqvit, ivit or mixed\n", val);
            rc = -1;
        }
    } else if (!strcmp(opt, "--target-bits")) {
        char *end;
        double b = strtod(val, &end);
        if (end == val || *end || !(b >= 2 && b <= 8)) {
            fprintf(stderr, "vitq: --target-bits: '%s' is not a number in [2, 8]\n", val);
            rc = -1;
        }
        a->target_bits = b;
    } else if (!strcmp(opt, "--target-size")) rc = parse_size(opt, val, &a->target_bytes);
    else if (!strcmp(opt, "--candidate-bits")) rc = parse_bit_set(opt, val, &a->candidate_bits);
    else if (!strcmp(opt, "--recon-iters")) rc = parse_count(opt, val, 1, 1000000, &a->recon_iters);
    else if (!strcmp(opt, "--recon-batch")) rc = parse_count(opt, val, 1, 100000, &a->recon_batch);
    else if (!strcmp(opt, "--recon-augment")) rc = parse_count(opt, val, 0, 64, &a->recon_augment);
    else if (!strcmp(opt, "--teacher")) a->teacher = val;
    else if (!strcmp(opt, "--log")) a->log = val;
    else if (!strcmp(opt, "--checkpoint")) a->checkpoint = val;
    else if (!strcmp(opt, "--resume")) a->resume = val;
    else if (!strcmp(opt, "--epochs")) rc = parse_count(opt, val, 1, 100000, &a->epochs);
    else if (!strcmp(opt, "--crops")) rc = parse_count(opt, val, 0, 64, &a->crops);
    else if (!strcmp(opt, "--micro-batch")) rc = parse_count(opt, val, 1, 4096, &a->micro_batch);
    else if (!strcmp(opt, "--lr") || !strcmp(opt, "--regularizer") || !strcmp(opt, "--warmup")) {
        char *end;
        double x = strtod(val, &end);
        double hi = opt[2] == 'l' ? 1.0 : opt[2] == 'r' ? 10.0 : 100000.0;
        if (end == val || *end || !(x >= 0.0 && x <= hi) || (opt[2] == 'l' && x == 0.0)) {
            fprintf(stderr, "vitq: %s: '%s' is not a number in %s, %g]\n", opt, val, opt[2] == 'l' ? "(0" : "[0", hi);
            rc = -1;
        }
        *(opt[2] == 'l' ? &a->lr : opt[2] == 'r' ? &a->regularizer : &a->warmup) = x;
    }
    else if (!strcmp(opt, "--recon-loss")) {
        a->recon_loss = !strcmp(val, "mse") ? 0 : !strcmp(val, "fisher") ? 1 : -1;
        if (a->recon_loss < 0) {
            fprintf(stderr, "vitq: --recon-loss: '%s' is not mse or fisher\n", val);
            rc = -1;
        }
    }
    else if (!strcmp(opt, "--set")) {
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
    return rc;
}

/* The options that say how a model is calibrated: meaningless for train-qat from a quantized MODEL. */
static int is_calibration_option(const char *name) {
    static const char *const names[] = {"--calib", "--calib-n", "--scheme", "--wbits", "--abits", "--edge-bits",
                                        "--setting", "--nonlinear", "--set", "--opt", "--reconstruct", "--recon-iters",
                                        "--recon-batch", "--recon-loss", "--recon-augment"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(name, names[i])) return 1;
    return 0;
}

int cli_parse(int argc, char **argv, cli_args *a) {
    memset(a, 0, sizeof *a);
    vitq_model_options_init(&a->options);
    a->batch = 64;
    a->scheme = "minmax";
    a->calib_n = 32;
    a->wbits = a->abits = a->edge_bits = 8;
    a->progress = "auto";
    a->crops = -1, a->lr = a->regularizer = a->warmup = -1.0;
    unsigned command = cli_command_bit(argv[0]);
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
        /* an unknown option is named as such even when it is the last argument */
        const cli_option *o = find_option(opt);
        if (!o) {
            fprintf(stderr, "vitq: unknown option %s\n", opt);
            return -1;
        }
        if (!(o->commands & command)) {
            char list[128];
            command_list(o->commands, list, sizeof list);
            fprintf(stderr, "vitq: %s does not take %s (an option of %s)\n", argv[0], opt, list);
            return -1;
        }
        if (!a->calibration_option && is_calibration_option(o->name)) a->calibration_option = o->name;
        if (!o->value) { /* a flag */
            if (inline_value) {
                fprintf(stderr, "vitq: option %s takes no value\n", opt);
                return -1;
            }
            if (!strcmp(opt, "--json")) a->json = 1;
            if (!strcmp(opt, "--mixed")) a->mixed = 1;
            if (!strcmp(opt, "--reconstruct")) a->reconstruct = 1;
            continue;
        }
        if (!inline_value && i + 1 >= argc) {
            fprintf(stderr, "vitq: option %s needs a value\n", opt);
            return -1;
        }
        int rc = apply(a, opt, inline_value ? inline_value : argv[++i]);
        if (rc) return rc;
    }
    if (!a->model) {
        fprintf(stderr, "vitq: no MODEL given\n");
        return -1;
    }
    return 0;
}

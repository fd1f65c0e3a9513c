/* The sweep command: the accuracy-size curve of a model. The float model is evaluated once, then the
 * model is calibrated as `vitq quantize` does at WbAb for each width b of --bits and, with --mixed,
 * with mixed precision (--target-bits t) for each t of --bits within the candidate widths; each
 * result goes through the saved file's bytes (what `vitq eval QMODEL` would load) and is evaluated
 * on --data. One line per run on stdout; --csv and --svg are rewritten after every run, so a sweep
 * cut short keeps what it measured. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "svg_plot.h"

#define DEFAULT_BITS_LO 3
#define DEFAULT_BITS_HI 8
/* the library's widths when candidate_bits is 0 (vitq.h, vitq_calibrator_options.candidate_bits) */
#define DEFAULT_CANDIDATES ((1u << 4) | (1u << 5) | (1u << 6) | (1u << 8))
#define MAX_RUNS (1 + 2 * 7) /* the float model, then at most 7 widths (2..8) uniform and mixed */

typedef struct sweep_run {
    const char *kind;           /* "fp32", "uniform" or "mixed" */
    int bits;                   /* the width, the target, or 32 for the float model */
    double average_weight_bits; /* vitq_model_info.average_weight_bits */
    uint64_t size_bytes;        /* vitq_model_info.size_bytes */
    double top1;                /* percent */
    size_t images;
    double seconds; /* calibration, the round trip through the file's bytes and evaluation */
} sweep_run;

typedef struct sweep {
    const cli_args *args;
    vitq_dataset *data;
    int32_t *labels;
    float *logits;
    size_t n;
    int classes;
    uint32_t candidates; /* mask of the mixed-precision widths */
    char name[256];      /* the model's name, for the chart's title */
    sweep_run runs[MAX_RUNS];
    int count;   /* runs done */
    int written; /* runs the files hold */
} sweep;

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "models/fmnist-vit/", "x/deit.safetensors" -> "fmnist-vit", "deit"; a file with a generic name
 * (model.safetensors, pytorch_model.bin) is named by its folder. */
static void model_name(const char *path, char *out, size_t cap) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/') buf[--len] = '\0';
    char *base = strrchr(buf, '/');
    if (base && (!strncmp(base + 1, "model.", 6) || !strncmp(base + 1, "pytorch_model.", 14))) {
        *base = '\0';
        base = strrchr(buf, '/');
    }
    base = base ? base + 1 : buf;
    char *dot = strrchr(base, '.');
    if (dot && dot != base) *dot = '\0';
    size_t n = strlen(base) < cap ? strlen(base) : cap - 1; /* a long name is cut, not an error */
    memcpy(out, base, n);
    out[n] = '\0';
}

static int lowest_bit(uint32_t mask) {
    for (int b = 0; b < 32; b++)
        if (mask & (1u << b)) return b;
    return 0;
}
static int highest_bit(uint32_t mask) {
    for (int b = 31; b >= 0; b--)
        if (mask & (1u << b)) return b;
    return 0;
}

/* top-1 of the model on the first s->n images, its size and average weight bits into r. */
static int evaluate(sweep *s, vitq_model *m, sweep_run *r) {
    int rc = cli_run(s->args, m, s->data, s->n, s->logits);
    if (rc) return rc;
    size_t correct = 0;
    for (size_t i = 0; i < s->n; i++) {
        const float *row = s->logits + i * (size_t)s->classes;
        int best = 0;
        for (int c = 1; c < s->classes; c++)
            if (row[c] > row[best]) best = c; /* a tie keeps the lower class, as eval ranks them */
        correct += best == s->labels[i];
    }
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(m, &mi);
    r->top1 = s->n ? 100.0 * (double)correct / (double)s->n : 0.0;
    r->images = s->n;
    r->size_bytes = mi.size_bytes;
    r->average_weight_bits = mi.average_weight_bits;
    return 0;
}

/* A saved file's bytes loaded as `vitq eval QMODEL` loads the file: the model options of the command
 * line (--execution, --threads, ...) apply to it as they would there. */
static int round_trip(const sweep *s, const vitq_model *q, const char *what, vitq_model **out) {
    size_t size = 0;
    vitq_status st = vitq_model_save_memory(q, NULL, 0, &size);
    if (st && st != VITQ_ERR_BUFFER_TOO_SMALL) return cli_fail(what, st);
    void *bytes = malloc(size + 1);
    if (!bytes) {
        fprintf(stderr, "vitq: out of memory for the %zu bytes of the %s model\n", size, what);
        return 1;
    }
    st = vitq_model_save_memory(q, bytes, size, &size);
    if (!st) {
        vitq_model_options options = s->args->options;
        options.progress = NULL; /* a load from memory is quick; the sweep's own line says where it is */
        st = vitq_model_load_memory(bytes, size, what, &options, out);
    }
    free(bytes);
    return st ? cli_fail(what, st) : 0;
}

/* Calibrate uniformly at `bits` (mixed 0) or with mixed precision at target `bits` (mixed 1), then
 * evaluate the result. */
static int quantized_run(sweep *s, vitq_model *fm, int mixed, int bits, sweep_run *r) {
    cli_args a = *s->args;
    if (mixed) {
        /* as `vitq quantize --target-bits` with its other defaults: --wbits/--abits 8 for any point
         * outside the layers mixed precision chooses widths for */
        a.target_bits = bits;
    } else {
        a.wbits = a.abits = bits;
        a.target_bits = 0;
        a.candidate_bits = 0;
    }
    a.target_bytes = 0;
    char what[64];
    if (mixed) snprintf(what, sizeof what, "mixed precision, target %d bits", bits);
    else snprintf(what, sizeof what, "W%dA%d", bits, bits);
    fprintf(stderr, "sweep: %s\n", what);
    double t0 = now_seconds();
    vitq_model *q = NULL, *loaded = NULL;
    vitq_calibrator *cal = NULL;
    int rc = cli_calibrate(&a, fm, &q, &cal);
    vitq_calibrator_free(cal);
    if (!rc) rc = round_trip(s, q, what, &loaded);
    vitq_model_free(q);
    r->kind = mixed ? "mixed" : "uniform";
    r->bits = bits;
    if (!rc) rc = evaluate(s, loaded, r);
    vitq_model_free(loaded);
    r->seconds = now_seconds() - t0;
    return rc;
}

static void write_csv(FILE *f, const sweep *s) {
    fputs("kind,bits,average_weight_bits,size_bytes,top1,images,seconds\n", f);
    for (int i = 0; i < s->count; i++) {
        const sweep_run *r = &s->runs[i];
        fprintf(f, "%s,%d,%.4f,%llu,%.4f,%zu,%.3f\n", r->kind, r->bits, r->average_weight_bits,
                (unsigned long long)r->size_bytes, r->top1, r->images, r->seconds);
    }
}

static void write_svg(FILE *f, const sweep *s) {
    svg_point points[2][MAX_RUNS];
    char labels[MAX_RUNS][16];
    size_t counts[2] = {0, 0};
    svg_ref_line fp32 = {NULL, 0};
    char fp32_name[96] = "", mixed_name[96], title[512], candidates[32] = "";
    for (int b = 2, used = 0; b <= 8; b++)
        if (s->candidates & (1u << b))
            used += snprintf(candidates + used, sizeof candidates - (size_t)used, "%s%d", used ? "," : "", b);
    for (int i = 0; i < s->count; i++) {
        const sweep_run *r = &s->runs[i];
        double mb = (double)r->size_bytes / 1e6;
        if (!strcmp(r->kind, "fp32")) {
            snprintf(fp32_name, sizeof fp32_name, "FP32: %.3g MB, %.2f %%", mb, r->top1);
            fp32.name = fp32_name;
            fp32.y = r->top1;
            continue;
        }
        int series = !strcmp(r->kind, "mixed");
        snprintf(labels[i], sizeof labels[i], "%d", r->bits);
        points[series][counts[series]++] = (svg_point){mb, r->top1, labels[i]};
    }
    snprintf(mixed_name, sizeof mixed_name, "mixed, target b (widths %s)", candidates);
    svg_series series[2] = {{"uniform WbAb", points[0], counts[0]}, {mixed_name, points[1], counts[1]}};
    snprintf(title, sizeof title, "%s, %s: top-1 on %zu images vs model size", s->name, s->args->scheme, s->n);
    svg_plot p;
    memset(&p, 0, sizeof p);
    p.title = title;
    p.x_label = "model size (MB)";
    p.y_label = "top-1 accuracy (%)";
    p.series = series;
    p.num_series = s->args->mixed ? 2 : 1;
    p.lines = &fp32;
    p.num_lines = fp32.name ? 1 : 0;
    p.limit_y = 1;
    p.y_min = 0;
    p.y_max = 100;
    svg_plot_write(f, &p);
}

/* The text `write` makes, written to `path` (the option `flag`) through cli_write_file. */
static int write_output(const sweep *s, const char *flag, const char *path, void (*write)(FILE *, const sweep *)) {
    if (!path) return 0;
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (f) write(f, s);
    int ok = f && !ferror(f);
    if (f && fclose(f) != 0) ok = 0;
    int rc = ok ? cli_write_file(flag, path, text, size) : 1;
    if (!ok) fprintf(stderr, "vitq: %s %s: out of memory building the file\n", flag, path);
    free(text);
    return rc;
}

/* The run s->runs[s->count] done: counted, its line on stdout, the files rewritten with every run so far. */
static int record(sweep *s) {
    const sweep_run *r = &s->runs[s->count++];
    if (s->count == 1)
        printf("%-8s %4s %9s %12s %8s %7s %8s\n", "kind", "bits", "avg_bits", "size_MB", "top1_%", "images",
               "seconds");
    printf("%-8s %4d %9.3f %12.4f %8.2f %7zu %8.2f\n", r->kind, r->bits, r->average_weight_bits,
           (double)r->size_bytes / 1e6, r->top1, r->images, r->seconds);
    fflush(stdout);
    int rc = write_output(s, "--csv", s->args->csv, write_csv);
    if (!rc) rc = write_output(s, "--svg", s->args->svg, write_svg);
    if (!rc) s->written = s->count;
    return rc;
}

/* Usage errors found before anything runs: 0 or 2 (printed). */
static int check_usage(const cli_args *args, int lo, int hi, uint32_t candidates) {
    if (!args->calib || !args->data) {
        fprintf(stderr, "vitq: sweep: --calib IMAGES and --data IMAGES are required\n");
        return 2;
    }
    if (args->candidate_bits && !args->mixed) { /* it would be ignored */
        fprintf(stderr, "vitq: sweep: --candidate-bits applies to --mixed, which is not given\n");
        return 2;
    }
    if (args->mixed && (hi < lowest_bit(candidates) || lo > highest_bit(candidates))) {
        fprintf(stderr, "vitq: sweep: --mixed: no width of --bits %d..%d lies within the candidate widths %d..%d\n",
                lo, hi, lowest_bit(candidates), highest_bit(candidates));
        return 2;
    }
    if (args->csv && args->svg && !strcmp(args->csv, args->svg)) {
        fprintf(stderr, "vitq: sweep: --csv and --svg name the same file %s\n", args->csv);
        return 2;
    }
    if (cli_check_output(args, "--csv", args->csv) || cli_check_output(args, "--svg", args->svg)) return 2;
    return 0;
}

/* The dataset's labels and the buffers of the runs. */
static int prepare(sweep *s, vitq_model *fm) {
    vitq_dataset_info di;
    vitq_dataset_info_init(&di);
    vitq_dataset_get_info(s->data, &di);
    if (!di.has_labels) {
        fprintf(stderr, "vitq: sweep: %s has no labels: give --labels LABELS (none was found beside the images)\n",
                s->args->data);
        return 2;
    }
    vitq_model_info mi;
    vitq_model_info_init(&mi);
    vitq_model_get_info(fm, &mi);
    s->classes = mi.num_classes;
    s->n = (size_t)di.count;
    if (s->args->limit > 0 && (size_t)s->args->limit < s->n) s->n = (size_t)s->args->limit;
    s->labels = malloc(s->n * sizeof *s->labels + 1);
    s->logits = malloc(s->n * (size_t)s->classes * sizeof *s->logits + 1);
    if (!s->labels || !s->logits) {
        fprintf(stderr, "vitq: out of memory for the logits of %zu images\n", s->n);
        return 1;
    }
    for (size_t i = 0; i < s->n; i++) {
        vitq_status st = vitq_dataset_label(s->data, i, &s->labels[i]);
        if (st) return cli_fail("labels", st);
    }
    return 0;
}

int cli_sweep(const cli_args *args) {
    int lo = args->bits_lo ? args->bits_lo : DEFAULT_BITS_LO, hi = args->bits_hi ? args->bits_hi : DEFAULT_BITS_HI;
    sweep s;
    memset(&s, 0, sizeof s);
    s.args = args;
    s.candidates = args->candidate_bits ? args->candidate_bits : DEFAULT_CANDIDATES;
    model_name(args->model, s.name, sizeof s.name);
    int rc = check_usage(args, lo, hi, s.candidates);
    if (rc) return rc;
    vitq_model *fm = NULL;
    rc = cli_open(args, 1, &fm, &s.data);
    if (!rc) rc = prepare(&s, fm);
    if (!rc) { /* the reference: the float model */
        double t0 = now_seconds();
        sweep_run *r = &s.runs[s.count];
        r->kind = "fp32";
        r->bits = 32;
        fprintf(stderr, "sweep: the float model\n");
        rc = evaluate(&s, fm, r);
        r->seconds = now_seconds() - t0;
        if (!rc) rc = record(&s);
    }
    for (int b = lo; b <= hi && !rc; b++)
        if (!(rc = quantized_run(&s, fm, 0, b, &s.runs[s.count]))) rc = record(&s);
    /* a target between the narrowest and the widest candidate can be met, unless it lies below what
     * every layer at the narrowest gives (the edge layers keep their bits): the uniform model at that
     * width, when it ran, tells */
    double floor_bits = 0;
    for (int i = 0; i < s.count; i++)
        if (!strcmp(s.runs[i].kind, "uniform") && s.runs[i].bits == lowest_bit(s.candidates))
            floor_bits = s.runs[i].average_weight_bits;
    for (int t = lo; args->mixed && t <= hi && !rc; t++) {
        if (t < lowest_bit(s.candidates) || t > highest_bit(s.candidates)) continue;
        if (t < floor_bits) {
            fprintf(stderr, "sweep: mixed precision, target %d bits: skipped, below the %.3f bits per weight of every "
                            "layer at %d bits (the patch embedding and the classifier keep --edge-bits)\n",
                    t, floor_bits, lowest_bit(s.candidates));
            continue;
        }
        if (!(rc = quantized_run(&s, fm, 1, t, &s.runs[s.count]))) rc = record(&s);
    }
    if (!rc && args->csv) fprintf(stderr, "wrote %s: %d runs\n", args->csv, s.count);
    if (!rc && args->svg) fprintf(stderr, "wrote %s\n", args->svg);
    if (rc && s.written && (args->csv || args->svg))
        fprintf(stderr, "vitq: sweep stopped; the files written hold the %d runs before the failure\n", s.written);
    free(s.labels);
    free(s.logits);
    vitq_dataset_free(s.data);
    vitq_model_free(fm);
    return rc;
}

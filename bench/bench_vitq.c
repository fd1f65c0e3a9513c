/* bench_vitq: times vitq through its public API only (include/vitq.h), one JSON object per line.
 *
 *   bench_vitq forward MODEL IMAGES.npy [--quant fp32|w8a8|w4a8] [--calib CALIB.npy] [--calib-n 32]
 *              [--scheme minmax] [--batches 8[,16...]] [--threads 2] [--warmup 1] [--repeats 10]
 *              [--max-seconds 60] [--logits OUT.npy] [--exec auto|simulated|integer-only]
 *              [--nonlinear float|ibert|fqvit|ivit|mixed]
 *   bench_vitq calib MODEL CALIB.npy [--schemes minmax,percentile,omse] [--counts 32[,64...]]
 *              [--wbits 8] [--abits 8] [--threads 2] [--repeats 1]
 *
 * forward: load the float model; with --quant, calibrate it (minmax by default, the first calib-n
 * images), save the result to memory and load it back as a deployment would, with integer execution
 * where vitq has it (--exec auto) or simulated quantization (--exec simulated). --nonlinear ibert (or
 * fqvit, ivit, mixed) calibrates LayerNorm, softmax and GELU onto integer kernels, and --exec
 * integer-only then runs the whole model without floating point (vitq >= 0.7). Warm up, then time
 * vitq_model_forward on
 * the first B images, `repeats` times or until `max-seconds` have passed (never fewer than 3 runs):
 * the median is the number, the samples are printed too. Memory: every byte the library allocates
 * goes through a counting vitq_allocator; "lib_peak_bytes" is the high-water mark of the model plus
 * the forward workspaces (the transient buffers of loading and calibration are reported apart), and
 * "rss_peak_kb" the process's resident high-water mark over the same span (Linux resets VmHWM on
 * request; elsewhere ru_maxrss of the whole run).
 *
 * calib: wall time of creating a calibrator, feeding N images and vitq_calibrator_run, per scheme and
 * image count, with the calibrator's own statistics. */
#define _DEFAULT_SOURCE /* for malloc_trim's prototype on glibc */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "vitq.h"

#define MAX_LIST 16
#define MIN_REPEATS 3

/* ---- counting allocator ------------------------------------------------------------------------- */

/* A 64-byte header in front of each block holds its size: 64 keeps every returned pointer aligned
 * to the largest alignment the API may ask for. Atomics, because OpenMP workers may allocate. */
#define HEADER 64
static atomic_size_t live_bytes, peak_bytes;
static atomic_ullong alloc_calls;

static void *counting_alloc(void *user, size_t size, size_t align) {
    (void)user;
    (void)align; /* at most 64, which the header already gives */
    if (size > SIZE_MAX - HEADER) return NULL;
    void *base = NULL;
    if (posix_memalign(&base, HEADER, size + HEADER) != 0) return NULL;
    memcpy(base, &size, sizeof size);
    size_t now = atomic_fetch_add(&live_bytes, size) + size;
    size_t peak = atomic_load(&peak_bytes);
    while (now > peak && !atomic_compare_exchange_weak(&peak_bytes, &peak, now)) {
    }
    atomic_fetch_add(&alloc_calls, 1);
    return (char *)base + HEADER;
}

static void counting_free(void *user, void *ptr) {
    (void)user;
    char *base = (char *)ptr - HEADER;
    size_t size;
    memcpy(&size, base, sizeof size);
    atomic_fetch_sub(&live_bytes, size);
    free(base);
}

static const vitq_allocator counting = {sizeof(vitq_allocator), counting_alloc, counting_free, NULL};

/* Start a new measuring span: the peak restarts from what is live now. */
static void reset_peak(void) { atomic_store(&peak_bytes, atomic_load(&live_bytes)); }

/* ---- process memory ----------------------------------------------------------------------------- */

/* Give freed heap back to the OS and restart the kernel's resident high-water mark, so that a span
 * after calibration is not charged for the calibrator's memory. Best effort: returns 0 if the
 * high-water mark could not be reset (then rss_peak_kb covers the whole process life). */
static int reset_rss_peak(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return 0;
    int ok = fputs("5", f) >= 0;
    return fclose(f) == 0 && ok;
}

static long rss_peak_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (f) {
        char line[256];
        long kb = -1;
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0) kb = strtol(line + 6, NULL, 10);
        fclose(f);
        if (kb >= 0) return kb;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss; /* kilobytes on Linux */
}

/* ---- small helpers ------------------------------------------------------------------------------ */

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n) {
    double s[1024];
    memcpy(s, v, (size_t)n * sizeof *v);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static int check(vitq_status st, const char *what) {
    if (st == VITQ_OK) return 0;
    fprintf(stderr, "bench_vitq: %s: %s: %s\n", what, vitq_status_name(st), vitq_last_error());
    return 1;
}

/* "1,2,4" -> {1,2,4}; returns the count, 0 on a bad list. */
static int parse_int_list(const char *s, long *out) {
    int n = 0;
    while (*s && n < MAX_LIST) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s || v <= 0) return 0;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return 0;
    }
    return n;
}

static int split_list(char *s, char **out) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok && n < MAX_LIST; tok = strtok(NULL, ",")) out[n++] = tok;
    return n;
}

/* ---- .npy float32 images ------------------------------------------------------------------------ */

/* Reads a little-endian float32, C-order .npy of any rank; *count receives the leading dimension and
 * *per_item the product of the others. Only what bench/make_model writes needs to work, but the
 * header is parsed rather than assumed. */
static float *read_npy_f32(const char *path, size_t *count, size_t *per_item) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "bench_vitq: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    unsigned char pre[12];
    char header[4096];
    float *data = NULL;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) goto bad;
    size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    if (pre[6] >= 2) { /* version 2 and 3: 4-byte header length */
        if (fread(pre + 10, 1, 2, f) != 2) goto bad;
        hlen |= (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    }
    if (hlen >= sizeof header || fread(header, 1, hlen, f) != hlen) goto bad;
    header[hlen] = 0;
    if (!strstr(header, "'<f4'") || strstr(header, "'fortran_order': True")) goto bad;
    const char *sh = strstr(header, "'shape': (");
    if (!sh) goto bad;
    sh += 10;
    size_t dims[8], rank = 0;
    while (*sh && *sh != ')' && rank < 8) {
        char *end;
        unsigned long long v = strtoull(sh, &end, 10);
        if (end == sh) goto bad;
        dims[rank++] = (size_t)v;
        sh = end;
        while (*sh == ',' || *sh == ' ') sh++;
    }
    if (rank < 1) goto bad;
    *count = dims[0];
    *per_item = 1;
    for (size_t i = 1; i < rank; i++) *per_item *= dims[i];
    size_t total = *count * *per_item;
    data = malloc(total * sizeof(float) + 1);
    if (!data || fread(data, sizeof(float), total, f) != total) goto bad;
    fclose(f);
    return data;
bad:
    fprintf(stderr, "bench_vitq: %s: not a readable float32 C-order .npy\n", path);
    free(data);
    fclose(f);
    return NULL;
}

static int write_npy_f32(const char *path, const float *data, size_t rows, size_t cols) {
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%zu, %zu), }", rows,
                       cols);
    while ((len + 11) % 64) header[len++] = ' ';
    header[len++] = '\n';
    const unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)len, 0};
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    int bad = fwrite(magic, 1, 10, f) != 10 || fwrite(header, 1, (size_t)len, f) != (size_t)len ||
              fwrite(data, sizeof(float), rows * cols, f) != rows * cols;
    return (fclose(f) != 0 || bad) ? -1 : 0;
}

/* ---- options ------------------------------------------------------------------------------------- */

typedef struct {
    const char *model, *images, *calib, *logits, *quant, *exec, *nonlinear;
    char *schemes;
    long batches[MAX_LIST], counts[MAX_LIST];
    int num_batches, num_counts;
    long calib_n, threads, warmup, repeats, wbits, abits;
    double max_seconds;
} options;

static int parse_options(int argc, char **argv, options *o) {
    static char default_schemes[] = "minmax";
    *o = (options){.quant = "fp32", .exec = "auto", .nonlinear = "float", .schemes = default_schemes, .calib_n = 32,
                   .threads = 2, .warmup = 1, .repeats = strcmp(argv[1], "calib") ? 10 : 1, .wbits = 8, .abits = 8, .max_seconds = 60};
    o->batches[0] = 8;
    o->num_batches = 1;
    o->counts[0] = 32;
    o->num_counts = 1;
    int positional = 0;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (strncmp(a, "--", 2) != 0) {
            if (positional == 0) o->model = a;
            else if (positional == 1) o->images = a;
            else return -1;
            positional++;
            continue;
        }
        if (!v) return -1;
        if (!strcmp(a, "--quant")) o->quant = v;
        else if (!strcmp(a, "--calib")) o->calib = v;
        else if (!strcmp(a, "--calib-n")) o->calib_n = atol(v);
        else if (!strcmp(a, "--scheme") || !strcmp(a, "--schemes")) o->schemes = argv[i + 1];
        else if (!strcmp(a, "--batches") || !strcmp(a, "--batch")) o->num_batches = parse_int_list(v, o->batches);
        else if (!strcmp(a, "--counts")) o->num_counts = parse_int_list(v, o->counts);
        else if (!strcmp(a, "--threads")) o->threads = atol(v);
        else if (!strcmp(a, "--warmup")) o->warmup = atol(v);
        else if (!strcmp(a, "--repeats")) o->repeats = atol(v);
        else if (!strcmp(a, "--max-seconds")) o->max_seconds = atof(v);
        else if (!strcmp(a, "--logits")) o->logits = v;
        else if (!strcmp(a, "--exec")) o->exec = v;
        else if (!strcmp(a, "--nonlinear")) o->nonlinear = v;
        else if (!strcmp(a, "--wbits")) o->wbits = atol(v);
        else if (!strcmp(a, "--abits")) o->abits = atol(v);
        else takes = 0;
        if (!takes) return -1;
        i++;
    }
    if (positional != 2 || o->num_batches == 0 || o->num_counts == 0 || o->repeats < 1 || o->repeats > 1000 ||
        o->warmup < 0 || o->threads < 0)
        return -1;
    return 0;
}

/* ---- calibration ---------------------------------------------------------------------------------- */

/* The vitq_nonlinear named `name`, -1 when unknown (or when this vitq has no integer non-linear
 * operators and something other than float is asked). */
static int nonlinear_method(const char *name) {
    if (!strcmp(name, "float")) return 0;
#if VITQ_VERSION_NUMBER >= 7000
    static const char *const names[] = {"ibert", "fqvit", "ivit", "mixed"};
    static const int methods[] = {VITQ_NONLINEAR_IBERT, VITQ_NONLINEAR_FQVIT, VITQ_NONLINEAR_IVIT,
                                  VITQ_NONLINEAR_MIXED};
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, names[i])) return methods[i];
#endif
    return -1;
}

/* Quantize `model` with `scheme` at W`wbits`A`abits` on the first n images; weights keep the
 * calibrator's defaults (per output channel, symmetric), activations per tensor; LayerNorm, softmax
 * and GELU in float or on the integer kernels of `nonlinear` (a vitq_nonlinear). */
static int calibrate(const vitq_model *model, const char *scheme, long wbits, long abits, int nonlinear,
                     const float *images, size_t n, vitq_model **quantized, vitq_calibrator_stats *stats,
                     double *wall) {
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.scheme = scheme;
    co.weight_bits = (int32_t)wbits;
    co.activation_bits = (int32_t)abits;
#if VITQ_VERSION_NUMBER >= 7000
    co.nonlinear = nonlinear;
#else
    (void)nonlinear; /* always 0 here: nonlinear_method refuses the rest */
#endif
    vitq_calibrator *cal = NULL;
    double t0 = now_seconds();
    int bad = check(vitq_calibrator_create(model, &co, &cal), "calibrator_create") ||
              check(vitq_calibrator_feed(cal, images, n), "calibrator_feed") ||
              check(vitq_calibrator_run(cal, quantized), "calibrator_run");
    *wall = now_seconds() - t0;
    vitq_calibrator_stats_init(stats);
    if (!bad) bad = check(vitq_calibrator_get_stats(cal, stats), "calibrator_get_stats");
    vitq_calibrator_free(cal);
    return bad;
}

/* The vitq_execution named `exec` (auto, simulated, integer-only), -1 when unknown or when this vitq
 * lacks it. */
static int execution_mode(const char *exec) {
    if (!strcmp(exec, "auto")) return 0;
#if VITQ_VERSION_NUMBER >= 2000
    if (!strcmp(exec, "simulated")) return VITQ_EXECUTION_SIMULATED;
#endif
#if VITQ_VERSION_NUMBER >= 7000
    if (!strcmp(exec, "integer-only")) return VITQ_EXECUTION_INTEGER_ONLY;
#endif
    return -1;
}

/* The model a deployment runs: the calibrated model saved (as vitq_model_save would write it) and
 * loaded back, which is where vitq chooses how a quantized model executes. `exec` "auto" asks for
 * integer kernels wherever the quantizers allow them (VITQ_EXECUTION_AUTO, vitq >= 0.2), "simulated"
 * for fake quantization in float, "integer-only" for no floating point at all from pixels to logits
 * (VITQ_EXECUTION_INTEGER_ONLY, vitq >= 0.7; the model needs integer non-linear operators, see
 * --nonlinear); a vitq without the switch always simulates. The calibrator returns a model that runs
 * as AUTO, hence the round trip. The hook for any further execution switch is here. */
static int deployable_model(const vitq_model *calibrated, const char *exec, const options *o, vitq_model **out) {
    int mode = execution_mode(exec);
    if (mode < 0) {
        fprintf(stderr, "bench_vitq: --exec must be auto, simulated or integer-only (this vitq: %s)\n",
                vitq_version_string());
        return 1;
    }
    size_t size = 0;
    if (check(vitq_model_save_memory(calibrated, NULL, 0, &size), "save_memory (size)")) return 1;
    void *blob = malloc(size);
    if (!blob) return check(VITQ_ERR_OUT_OF_MEMORY, "save buffer");
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.allocator = &counting;
    mo.num_threads = (int32_t)o->threads;
#if VITQ_VERSION_NUMBER >= 2000
    mo.execution = mode;
#endif
    int bad = check(vitq_model_save_memory(calibrated, blob, size, &size), "save_memory") ||
              check(vitq_model_load_memory(blob, size, "calibrated model", &mo, out), "load_memory");
    free(blob);
    return bad;
}

/* Linear layers and attention blocks the model runs with integer kernels (0 when this vitq cannot say). */
static int integer_layers(const vitq_model_info *info) {
#if VITQ_VERSION_NUMBER >= 2000
    return info->num_integer_layers;
#else
    (void)info;
    return 0;
#endif
}

static int integer_attentions(const vitq_model_info *info) {
#if VITQ_VERSION_NUMBER >= 2000
    return info->num_integer_attentions;
#else
    (void)info;
    return 0;
#endif
}

/* LayerNorms, softmaxes and GELUs on integer kernels (0 when this vitq has none). */
static int integer_nonlinear(const vitq_model_info *info) {
#if VITQ_VERSION_NUMBER >= 7000
    return info->num_integer_nonlinear;
#else
    (void)info;
    return 0;
#endif
}

/* ---- forward ------------------------------------------------------------------------------------- */

/* Largest |a - b| and cosine of two logit arrays (double sums). */
static void compare(const float *a, const float *b, size_t n, double *max_diff, double *cosine) {
    double dot = 0, na = 0, nb = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        if (d < 0) d = -d;
        if (d > worst) worst = d;
        dot += (double)a[i] * b[i];
        na += (double)a[i] * a[i];
        nb += (double)b[i] * b[i];
    }
    *max_diff = worst;
    *cosine = na > 0 && nb > 0 ? dot / sqrt(na * nb) : 1.0;
}

static void print_samples(const double *ms, int n) {
    printf(", \"samples_ms_per_image\": [");
    for (int i = 0; i < n; i++) printf("%s%.4f", i ? ", " : "", ms[i]);
    printf("]");
}

static int run_forward(const options *o) {
    long wbits = 0, abits = 0;
    if (!strcmp(o->quant, "w8a8")) wbits = 8, abits = 8;
    else if (!strcmp(o->quant, "w4a8")) wbits = 4, abits = 8;
    else if (strcmp(o->quant, "fp32") != 0) {
        fprintf(stderr, "bench_vitq: --quant must be fp32, w8a8 or w4a8\n");
        return 2;
    }
    int nonlinear = nonlinear_method(o->nonlinear), integer_only = !strcmp(o->exec, "integer-only");
    if (nonlinear < 0) {
        fprintf(stderr, "bench_vitq: --nonlinear must be float, ibert, fqvit, ivit or mixed (this vitq: %s)\n",
                vitq_version_string());
        return 2;
    }
    size_t count = 0, per_image = 0;
    float *images = read_npy_f32(o->images, &count, &per_image);
    if (!images) return 1;
    long max_batch = 0;
    for (int i = 0; i < o->num_batches; i++)
        if (o->batches[i] > max_batch) max_batch = o->batches[i];
    if ((size_t)max_batch > count) {
        fprintf(stderr, "bench_vitq: %s holds %zu images, batch %ld asked\n", o->images, count, max_batch);
        free(images);
        return 2;
    }

    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.allocator = &counting;
    mo.num_threads = (int32_t)o->threads;
    vitq_model *model = NULL, *run_model = NULL;
    double t0 = now_seconds();
    int bad = check(vitq_model_load_file(o->model, &mo, &model), "load");
    double load_seconds = now_seconds() - t0;
    size_t load_peak = atomic_load(&peak_bytes), float_model_bytes = atomic_load(&live_bytes);
    vitq_model_info info;
    vitq_model_info_init(&info);
    if (!bad) bad = check(vitq_model_get_info(model, &info), "get_info");
    if (!bad && (size_t)info.in_channels * (size_t)info.image_size * (size_t)info.image_size != per_image) {
        fprintf(stderr, "bench_vitq: %s: images do not match the model's input\n", o->images);
        bad = 1;
    }

    float *sim_logits = NULL; /* of the calibrated model, first batch */
    double calib_wall = 0;
    vitq_calibrator_stats cstats;
    vitq_calibrator_stats_init(&cstats);
    size_t calib_peak = 0;
    if (!bad && wbits) {
        size_t ccount = 0, cper = 0;
        float *calib = o->calib ? read_npy_f32(o->calib, &ccount, &cper) : NULL;
        if (!calib || cper != per_image || ccount < (size_t)o->calib_n) {
            fprintf(stderr, "bench_vitq: --calib needs at least %ld images of the model's size\n", o->calib_n);
            bad = 1;
        } else {
            reset_peak();
            bad = calibrate(model, o->schemes, wbits, abits, nonlinear, calib, (size_t)o->calib_n, &run_model,
                            &cstats, &calib_wall);
            calib_peak = atomic_load(&peak_bytes);
        }
        free(calib);
        /* The quantized model stands alone: free the float one so that it is not counted below. */
        vitq_model_free(model);
        model = NULL;
        vitq_model *calibrated = run_model;
        run_model = NULL;
        /* Logits of the model as vitq_calibrator_run returns it: the deployed (saved and reloaded) model
         * should give the same. */
        sim_logits = bad ? NULL : malloc((size_t)o->batches[0] * (size_t)info.num_classes * sizeof(float));
        if (!bad && !sim_logits) bad = check(VITQ_ERR_OUT_OF_MEMORY, "logits buffer");
        if (!bad) bad = check(vitq_model_set_num_threads(calibrated, (int32_t)o->threads), "set_num_threads");
        if (!bad) bad = check(vitq_model_forward(calibrated, images, (size_t)o->batches[0], sim_logits), "forward (simulated)");
        if (!bad) bad = deployable_model(calibrated, o->exec, o, &run_model);
        vitq_model_free(calibrated);
        if (!bad) bad = check(vitq_model_get_info(run_model, &info), "get_info (quantized)");
        if (!bad) bad = check(vitq_model_set_num_threads(run_model, (int32_t)o->threads), "set_num_threads");
    } else if (!bad) {
        run_model = model;
        model = NULL;
        bad = check(vitq_model_set_num_threads(run_model, (int32_t)o->threads), "set_num_threads");
    }

    size_t model_bytes = atomic_load(&live_bytes);
    int rss_reset = reset_rss_peak();
    reset_peak();
    float *logits = NULL;
    if (!bad) {
        logits = malloc((size_t)max_batch * (size_t)info.num_classes * sizeof(float));
        if (!logits) bad = check(VITQ_ERR_OUT_OF_MEMORY, "logits buffer");
    }
    for (int bi = 0; !bad && bi < o->num_batches; bi++) {
        size_t batch = (size_t)o->batches[bi];
        for (long w = 0; !bad && w < o->warmup; w++)
            bad = check(vitq_model_forward(run_model, images, batch, logits), "forward (warm-up)");
        if (bad) break;
        double sim_diff = -1, sim_cos = -1;
        if (sim_logits && bi == 0) compare(sim_logits, logits, batch * (size_t)info.num_classes, &sim_diff, &sim_cos);
        if (o->logits && bi == 0 && write_npy_f32(o->logits, logits, batch, (size_t)info.num_classes) != 0) {
            fprintf(stderr, "bench_vitq: cannot write %s\n", o->logits);
            bad = 1;
            break;
        }
        double ms[1024], spent = 0;
        int runs = 0;
        while (runs < o->repeats && (runs < MIN_REPEATS || spent < o->max_seconds)) {
            double s0 = now_seconds();
            bad = check(vitq_model_forward(run_model, images, batch, logits), "forward");
            double dt = now_seconds() - s0;
            if (bad) break;
            spent += dt;
            ms[runs++] = 1e3 * dt / (double)batch;
        }
        if (bad) break;
        double med = median(ms, runs), best = ms[0];
        for (int i = 1; i < runs; i++)
            if (ms[i] < best) best = ms[i];
        printf("{\"engine\": \"vitq\", \"mode\": \"forward\", \"variant\": \"%s\", \"execution\": \"%s\", "
               "\"model\": \"%s\", \"batch\": %zu, \"threads\": %ld, \"warmup\": %ld, \"runs\": %d, "
               "\"ms_per_image\": %.4f, \"ms_per_image_min\": %.4f, \"gflop_per_image\": %.4f, "
               "\"params\": %llu, \"version\": \"%s\", \"load_seconds\": %.3f, \"load_peak_bytes\": %zu, \"float_model_bytes\": %zu, "
               "\"model_bytes\": %zu, \"lib_peak_bytes\": %zu, \"rss_peak_kb\": %ld, \"rss_peak_scope\": \"%s\"",
               o->quant, !wbits ? "float" : integer_only ? "integer-only" : integer_layers(&info) ? "integer" : "simulated", o->model, batch, o->threads, o->warmup, runs, med, best,
               info.gflops, (unsigned long long)info.num_params, vitq_version_string(), load_seconds, load_peak, float_model_bytes,
               model_bytes, atomic_load(&peak_bytes), rss_peak_kb(), rss_reset ? "model+forward" : "process");
        if (wbits)
            printf(", \"integer_layers\": %d, \"integer_attentions\": %d, \"integer_nonlinear\": %d, "
                   "\"nonlinear\": \"%s\", \"quantized_points\": %d",
                   integer_layers(&info), integer_attentions(&info), integer_nonlinear(&info), o->nonlinear,
                   (int)info.num_quantized_points);
        if (sim_diff >= 0)
            printf(", \"vs_calibrated_max_abs_diff\": %.6g, \"vs_calibrated_cosine\": %.8f", sim_diff, sim_cos);
        if (wbits)
            printf(", \"scheme\": \"%s\", \"wbits\": %ld, \"abits\": %ld, \"calib_images\": %ld, "
                   "\"calib_seconds\": %.3f, \"calib_run_seconds\": %.3f, \"calib_peak_bytes\": %zu, "
                   "\"calibrator_peak_bytes\": %llu",
                   o->schemes, wbits, abits, o->calib_n, calib_wall, cstats.seconds, calib_peak,
                   (unsigned long long)cstats.peak_bytes);
        print_samples(ms, runs);
        printf("}\n");
        fflush(stdout);
    }
    free(logits);
    free(sim_logits);
    vitq_model_free(run_model);
    vitq_model_free(model);
    free(images);
    return bad;
}

/* ---- calibration timing -------------------------------------------------------------------------- */

static int run_calib(options *o) {
    size_t count = 0, per_image = 0;
    float *images = read_npy_f32(o->images, &count, &per_image);
    if (!images) return 1;
    vitq_model_options mo;
    vitq_model_options_init(&mo);
    mo.allocator = &counting;
    mo.num_threads = (int32_t)o->threads;
    vitq_model *model = NULL;
    int bad = check(vitq_model_load_file(o->model, &mo, &model), "load");
    char *schemes[MAX_LIST];
    int num_schemes = split_list(o->schemes, schemes);
    for (int si = 0; !bad && si < num_schemes; si++)
        for (int ci = 0; !bad && ci < o->num_counts; ci++) {
            size_t n = (size_t)o->counts[ci];
            if (n > count) {
                fprintf(stderr, "bench_vitq: %s holds %zu images, %zu asked\n", o->images, count, n);
                bad = 1;
                break;
            }
            double wall[1024], run_s[1024];
            vitq_calibrator_stats stats;
            size_t peak = 0;
            int runs = 0;
            for (; !bad && runs < o->repeats; runs++) {
                vitq_model *q = NULL;
                reset_peak();
                size_t before = atomic_load(&live_bytes);
                bad = calibrate(model, schemes[si], o->wbits, o->abits, 0, images, n, &q, &stats, &wall[runs]);
                run_s[runs] = stats.seconds;
                if (atomic_load(&peak_bytes) - before > peak) peak = atomic_load(&peak_bytes) - before;
                vitq_model_free(q);
            }
            if (bad) break;
            printf("{\"engine\": \"vitq\", \"mode\": \"calib\", \"model\": \"%s\", \"scheme\": \"%s\", "
                   "\"wbits\": %ld, \"abits\": %ld, \"images\": %zu, \"threads\": %ld, \"runs\": %d, "
                   "\"seconds\": %.4f, \"run_seconds\": %.4f, \"peak_bytes\": %zu, \"calibrator_peak_bytes\": %llu}\n",
                   o->model, schemes[si], o->wbits, o->abits, n, o->threads, runs, median(wall, runs),
                   median(run_s, runs), peak, (unsigned long long)stats.peak_bytes);
            fflush(stdout);
        }
    vitq_model_free(model);
    free(images);
    return bad;
}

int main(int argc, char **argv) {
    options o;
    if (argc < 2 || parse_options(argc, argv, &o) != 0) {
        fprintf(stderr, "usage: bench_vitq forward MODEL IMAGES.npy [--quant fp32|w8a8|w4a8] [--calib CALIB.npy]\n"
                        "         [--calib-n 32] [--scheme minmax] [--batches 8[,16..]] [--threads 2] [--warmup 1]\n"
                        "         [--repeats 10] [--max-seconds 60] [--logits OUT.npy]\n"
                        "         [--exec auto|simulated|integer-only] [--nonlinear float|ibert|fqvit|ivit|mixed]\n"
                        "       bench_vitq calib MODEL CALIB.npy [--schemes minmax,percentile,omse] [--counts 32[,..]]\n"
                        "         [--wbits 8] [--abits 8] [--threads 2] [--repeats 1]\n");
        return 2;
    }
    if (vitq_version() != VITQ_VERSION_NUMBER) {
        fprintf(stderr, "bench_vitq: built against vitq %s, linked with %s\n", VITQ_VERSION_STRING,
                vitq_version_string());
        return 2;
    }
    if (!strcmp(argv[1], "forward")) return run_forward(&o);
    if (!strcmp(argv[1], "calib")) return run_calib(&o);
    fprintf(stderr, "bench_vitq: unknown mode '%s'\n", argv[1]);
    return 2;
}

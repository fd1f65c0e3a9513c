/* bench_threads: forward passes on an idle machine and beside a competing CPU load, for the library's
 * thread pool and for OpenMP (`make bench-threads`; docs/performance.md, "Threads on a busy machine").
 *
 *   bench_threads [--omp PATH] [--model DIR] [--batch 64] [--seconds 1] [--rounds 5] [--quick]
 *
 * The issue it answers: with OpenMP, whose idle threads spin at every barrier, a forward pass on a
 * machine where other processes want the cores ran several times slower than on one thread. The
 * rows are
 *   pool, default threads | pool, threads 1            (this binary: the pool build)
 *   OpenMP, default wait policy | OMP_WAIT_POLICY=passive   (PATH, the same program built OPENMP=1;
 *                                                            left out when it cannot be run)
 * each measured idle and beside N busy-loop processes that this program forks (N = the CPUs it may
 * run on) and kills afterwards. Every row is a fresh process (`--run`), so each runtime starts
 * cold and a spinning OpenMP pool cannot linger into the next row; rows alternate within a round
 * and the table shows the median over rounds of ms/image (wall clock over `seconds` of forward
 * passes of `batch` images, FP32 and W8A8 with integer kernels). The W8A8 model is calibrated once
 * (minmax, synthetic images) and saved beside this binary. Ratios: a row's time under load over its
 * idle time, and over the pool with one thread under load (below 1: the threads pay off there).
 * Uses only the public API. Linux (fork, /proc/stat). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_time.h"
#include "vitq.h"

extern char **environ;

#define MAX_ROUNDS 15
#define ROWS 4
#define LOADS 2

typedef struct row_def {
    const char *label;
    int omp;             /* run the OpenMP binary */
    int threads;         /* 0: default */
    const char *policy;  /* OMP_WAIT_POLICY, or NULL to leave it unset */
} row_def;

static const row_def rows[ROWS] = {
    {"pool, default threads", 0, 0, NULL},
    {"pool, threads 1", 0, 1, NULL},
    {"OpenMP, default wait policy", 1, 0, NULL},
    {"OpenMP, OMP_WAIT_POLICY=passive", 1, 0, "passive"},
};

static int cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void fill_images(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)sin(0.013 * (double)i) * 1.5f;
}

static int fail(const char *what, vitq_status st) {
    fprintf(stderr, "bench_threads: %s: %s (%s)\n", what, vitq_status_name(st), vitq_last_error());
    return 1;
}

/* ---- a row: one process measuring both models ------------------------------------------------- */

/* ms/image of forward passes of `batch` images for `seconds` (at least 3 passes), after one warm-up. */
static double time_forward(const vitq_model *m, const float *x, size_t batch, float *logits, double seconds) {
    if (vitq_model_forward(m, x, batch, logits) != VITQ_OK) return -1;
    double t0 = now(), t = t0;
    int passes = 0;
    while (passes < 3 || t - t0 < seconds) {
        if (vitq_model_forward(m, x, batch, logits) != VITQ_OK) return -1;
        passes++;
        t = now();
    }
    return 1e3 * (t - t0) / ((double)passes * (double)batch);
}

/* bench_threads --run MODEL W8A8 THREADS BATCH SECONDS: prints "fp32_ms w8a8_ms features". */
static int run_row(char **argv) {
    const char *model = argv[0], *w8a8 = argv[1];
    int threads = atoi(argv[2]);
    size_t batch = (size_t)atoi(argv[3]);
    double seconds = atof(argv[4]);
    vitq_model *fp = NULL, *q = NULL;
    vitq_status st = vitq_model_load_file(model, NULL, &fp);
    if (st) return fail(model, st);
    st = vitq_model_load_file(w8a8, NULL, &q);
    if (st) return fail(w8a8, st);
    vitq_model_info info;
    vitq_model_info_init(&info);
    vitq_model_get_info(fp, &info);
    size_t per = (size_t)info.in_channels * (size_t)info.image_size * (size_t)info.image_size;
    float *x = malloc(batch * per * sizeof(float)), *logits = malloc(batch * (size_t)info.num_classes * sizeof(float));
    if (!x || !logits) return fail("images", VITQ_ERR_OUT_OF_MEMORY);
    fill_images(x, batch * per);
    vitq_model_set_num_threads(fp, threads);
    vitq_model_set_num_threads(q, threads);
    double f = time_forward(fp, x, batch, logits, seconds), w = time_forward(q, x, batch, logits, seconds);
    printf("%.4f %.4f %u\n", f, w, (unsigned)vitq_build_features());
    free(x);
    free(logits);
    vitq_model_free(q);
    vitq_model_free(fp);
    return f > 0 && w > 0 ? 0 : 1;
}

/* ---- the W8A8 model -------------------------------------------------------------------------- */

static int make_w8a8(const char *model, const char *out) {
    vitq_model *fp = NULL, *q = NULL;
    vitq_calibrator *cal = NULL;
    vitq_status st = vitq_model_load_file(model, NULL, &fp);
    if (st) return fail(model, st);
    vitq_model_info info;
    vitq_model_info_init(&info);
    vitq_model_get_info(fp, &info);
    size_t per = (size_t)info.in_channels * (size_t)info.image_size * (size_t)info.image_size, n = 16;
    float *x = malloc(n * per * sizeof(float));
    if (!x) return fail("calibration images", VITQ_ERR_OUT_OF_MEMORY);
    fill_images(x, n * per);
    vitq_calibrator_options o;
    vitq_calibrator_options_init(&o);
    o.scheme = "minmax";
    st = vitq_calibrator_create(fp, &o, &cal);
    if (!st) st = vitq_calibrator_feed(cal, x, n);
    if (!st) st = vitq_calibrator_run(cal, &q);
    if (!st) st = vitq_model_save(q, out);
    vitq_model_free(q);
    vitq_calibrator_free(cal);
    vitq_model_free(fp);
    free(x);
    if (st) return fail("W8A8 calibration", st);
    q = NULL;
    st = vitq_model_load_file(out, NULL, &q); /* as deployed: integer kernels */
    if (st) return fail(out, st);
    vitq_model_info_init(&info);
    vitq_model_get_info(q, &info);
    printf("W8A8 model: %s (%d integer linear layers, %d integer attentions)\n", out, info.num_integer_layers,
           info.num_integer_attentions);
    vitq_model_free(q);
    return 0;
}

/* ---- the competing load ------------------------------------------------------------------------ */

static pid_t spinners[256];
static int nspinners;

static void start_load(int n) {
    nspinners = 0;
    for (int k = 0; k < n && k < 256; k++) {
        pid_t p = fork();
        if (p == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the benchmark */
            volatile unsigned long spin = 0;
            for (;;) spin++;
        }
        if (p > 0) spinners[nspinners++] = p;
    }
    struct timespec settle = {0, 100 * 1000000L};
    nanosleep(&settle, NULL);
}

static void stop_load(void) {
    for (int k = 0; k < nspinners; k++) kill(spinners[k], SIGKILL);
    for (int k = 0; k < nspinners; k++) waitpid(spinners[k], NULL, 0);
    nspinners = 0;
}

/* ---- running a row in a child process -------------------------------------------------------- */

/* Busy and total CPU seconds of the whole machine (/proc/stat), for the other load of idle rows. */
static int machine_cpu(double *busy, double *total) {
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    int got = f ? fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                         &v[6], &v[7])
                : 0;
    if (f) fclose(f);
    if (got < 5) return 0;
    double hz = (double)sysconf(_SC_CLK_TCK), all = 0;
    for (int k = 0; k < 8; k++) all += (double)v[k];
    *total = all / hz;
    *busy = (all - (double)v[3] - (double)v[4]) / hz;
    return 1;
}

static double children_cpu(void) {
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

/* The environment of a row: ours without OMP_WAIT_POLICY, plus `policy` when given. */
static char **row_env(const char *policy, char *slot, size_t slot_size) {
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + 2, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "OMP_WAIT_POLICY=", 16) != 0) env[k++] = environ[i];
    if (policy) {
        snprintf(slot, slot_size, "OMP_WAIT_POLICY=%s", policy);
        env[k++] = slot;
    }
    return env;
}

typedef struct settings {
    const char *self, *omp, *model, *w8a8;
    int batch, rounds;
    double seconds;
} settings;

/* Runs row r; ms[0], ms[1] = FP32, W8A8 ms/image. 0 on failure. */
static int run_child(const settings *s, const row_def *r, double ms[2], unsigned *features) {
    int fd[2];
    if (pipe(fd) != 0) return 0;
    char threads[16], batch[16], seconds[32], policy[64];
    snprintf(threads, sizeof threads, "%d", r->threads);
    snprintf(batch, sizeof batch, "%d", s->batch);
    snprintf(seconds, sizeof seconds, "%g", s->seconds);
    const char *bin = r->omp ? s->omp : s->self;
    char **env = row_env(r->policy, policy, sizeof policy);
    fflush(stdout);
    pid_t p = fork();
    if (p == 0) {
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        char *args[] = {(char *)bin, "--run", (char *)s->model, (char *)s->w8a8, threads, batch, seconds, NULL};
        execve(bin, args, env ? env : environ);
        _exit(127);
    }
    free(env);
    close(fd[1]);
    char line[256] = {0};
    size_t got = 0;
    ssize_t k;
    while (got + 1 < sizeof line && (k = read(fd[0], line + got, sizeof line - 1 - got)) != 0) {
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) break;
        got += (size_t)k;
    }
    close(fd[0]);
    int status = 0;
    if (p < 0 || waitpid(p, &status, 0) != p || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 0;
    return sscanf(line, "%lf %lf %u", &ms[0], &ms[1], features) == 3;
}

/* ---- the table --------------------------------------------------------------------------------- */

static double med(double *v, int n) { return n ? median(v, n) : NAN; }

static void cell(double v) {
    if (isnan(v))
        printf(" | -");
    else
        printf(" | %.2f", v);
}

static void ratio(double a, double b) {
    if (isnan(a) || isnan(b) || b <= 0)
        printf(" | -");
    else
        printf(" | %.2f", a / b);
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[1], "--run")) return run_row(argv + 2);
    settings s = {argv[0], NULL, "models/fmnist-vit", NULL, 64, 5, 1.0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--omp") && i + 1 < argc)
            s.omp = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            s.model = argv[++i];
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            s.batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            s.seconds = atof(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
            s.rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) {
            s.rounds = 1;
            s.seconds = 0.5;
        } else {
            fprintf(stderr, "usage: %s [--omp PATH] [--model DIR] [--batch 64] [--seconds 1] [--rounds 5] [--quick]\n",
                    argv[0]);
            return 2;
        }
    }
    if (s.rounds < 1) s.rounds = 1;
    if (s.rounds > MAX_ROUNDS) s.rounds = MAX_ROUNDS;
    if (s.batch < 1) s.batch = 1;
    if (vitq_build_features() & VITQ_FEATURE_OPENMP) {
        fprintf(stderr, "bench_threads: run the pool build (make bench-threads); --omp names the OpenMP one\n");
        return 2;
    }
    if (s.omp && access(s.omp, X_OK) != 0) {
        printf("no OpenMP build at %s: its rows are left out\n", s.omp);
        s.omp = NULL;
    }
    static char w8a8[4096];
    const char *slash = strrchr(argv[0], '/');
    snprintf(w8a8, sizeof w8a8, "%.*sbench_threads_w8a8.safetensors", slash ? (int)(slash - argv[0] + 1) : 0, argv[0]);
    s.w8a8 = w8a8;
    if (make_w8a8(s.model, s.w8a8)) return 1;

    int n = cpus();
    double samples[ROWS][LOADS][2][MAX_ROUNDS];
    int count[ROWS][LOADS] = {{0}}, failures = 0;
    unsigned features[ROWS] = {0};
    double other_busy = 0, other_span = 0;
    double t_start = now();
    for (int round = 0; round < s.rounds; round++) {
        for (int load = 0; load < LOADS; load++) {
            if (load) start_load(n);
            for (int k = 0; k < ROWS; k++) {
                int ri = (k + round) % ROWS; /* rotate the order: drift hits every row alike */
                const row_def *r = &rows[ri];
                if (r->omp && !s.omp) continue;
                double ms[2], busy0 = 0, total0 = 0, busy1 = 0, total1 = 0, c0 = children_cpu(), w0 = now();
                int have = !load && machine_cpu(&busy0, &total0);
                if (!run_child(&s, r, ms, &features[ri])) {
                    printf("row '%s' (%s) failed\n", r->label, load ? "busy" : "idle");
                    failures++;
                    continue;
                }
                if (have && machine_cpu(&busy1, &total1)) {
                    other_busy += (busy1 - busy0) - (children_cpu() - c0);
                    other_span += (now() - w0) * n;
                }
                samples[ri][load][0][count[ri][load]] = ms[0];
                samples[ri][load][1][count[ri][load]] = ms[1];
                count[ri][load]++;
            }
            if (load) stop_load();
        }
    }
    double elapsed = now() - t_start;

    time_t t = time(NULL);
    char date[32];
    strftime(date, sizeof date, "%Y-%m-%d", localtime(&t));
    printf("\n%s, %d CPUs, %s, batch %d, ms/image (median of %d rounds of %.1f s per model); busy: %d busy-loop "
           "processes beside it; other processes took %.0f %% of the machine during the idle rows\n\n",
           date, n, s.model, s.batch, s.rounds, s.seconds, n,
           other_span > 0 ? 100.0 * (other_busy > 0 ? other_busy : 0) / other_span : 0.0);
    printf("| threads | idle FP32 | idle W8A8 | busy FP32 | busy W8A8 | busy/idle FP32 | busy/idle W8A8 "
           "| busy vs threads 1, FP32 | busy vs threads 1, W8A8 |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double m[ROWS][LOADS][2];
    for (int r = 0; r < ROWS; r++)
        for (int l = 0; l < LOADS; l++)
            for (int q = 0; q < 2; q++) m[r][l][q] = med(samples[r][l][q], count[r][l]);
    for (int r = 0; r < ROWS; r++) {
        if (rows[r].omp && !s.omp) continue;
        printf("| %s", rows[r].label);
        cell(m[r][0][0]);
        cell(m[r][0][1]);
        cell(m[r][1][0]);
        cell(m[r][1][1]);
        ratio(m[r][1][0], m[r][0][0]);
        ratio(m[r][1][1], m[r][0][1]);
        ratio(m[r][1][0], m[1][1][0]);
        ratio(m[r][1][1], m[1][1][1]);
        printf(" |\n");
    }
    printf("\n%.0f s in all%s\n", elapsed, failures ? "; some rows failed (above)" : "");
    if (s.omp && (!(features[2] & VITQ_FEATURE_OPENMP) || !(features[3] & VITQ_FEATURE_OPENMP)))
        printf("note: %s does not report VITQ_FEATURE_OPENMP\n", s.omp);
    return failures ? 1 : 0;
}

/* Faults and hostile arguments through the public API:
 *  - allocation failures: an allocator that fails its k-th allocation, for k over every allocation of
 *    loading a float model, its forward pass, calibrating it (min-max and a PTQ method), the quantized
 *    model's integer forward pass, saving it to memory and to a file, and loading the file back. Each
 *    k must give VITQ_ERR_OUT_OF_MEMORY (with a message) or success with the results of a run without
 *    failures, bit for bit, and free every block it took;
 *  - saves that cannot complete (a full disk, a temporary name the file system refuses, a read-only
 *    folder) leave the previous file byte for byte and no temporary file;
 *  - counts and options at the edge of their types (calibration images, LayerNorm eps, image size).
 * A sweep fails the allocations up to a bound, some evenly spaced after it, the last ones, and, where
 * the C library can tell call stacks apart (glibc's backtrace), the first allocation of every call stack
 * no earlier sweep has failed: every allocation site fails at least once, however long the run, while
 * the sweeps stay fast (one thread, tiny fixtures, PTQ4ViT on its smallest grid).
 * `test_faults NAME` runs the tests whose names contain NAME. */
#include <dirent.h>
#include <float.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#if defined(__GLIBC__)
#include <execinfo.h>
#define HAVE_BACKTRACE 1
#endif

#define FIX "tests/fixtures/models/"

/* ---- an allocator that fails on request ------------------------------------------------------ */

typedef struct faulty {
    long total;   /* allocations so far */
    long live;    /* blocks not freed */
    long fail_at; /* index (in total) of the allocation that fails; -1: none */
    int hit;      /* fail_at was reached */
    int record;   /* keep each allocation's call stack signature in sites[] */
    uint64_t *sites;
    long nsites, cap;
} faulty;

/* A hash of the return addresses above the allocator: one value per distinct call stack. */
static uint64_t call_stack(void) {
#ifdef HAVE_BACKTRACE
    void *frames[8];
    int n = backtrace(frames, 8);
    uint64_t h = 1469598103934665603ull;
    for (int i = 1; i < n; i++) h = (h ^ (uint64_t)(uintptr_t)frames[i]) * 1099511628211ull;
    return h;
#else
    return 0;
#endif
}

static void *faulty_alloc(void *user, size_t size, size_t align) {
    faulty *f = user;
    if (f->fail_at >= 0 && f->total == f->fail_at) {
        f->hit = 1;
        f->total++;
        return NULL;
    }
    if (f->record) {
        if (f->nsites == f->cap) {
            f->cap = f->cap ? 2 * f->cap : 4096;
            f->sites = realloc(f->sites, (size_t)f->cap * sizeof *f->sites);
        }
        f->sites[f->nsites++] = call_stack();
    }
    f->total++;
    void *p = NULL;
    if (posix_memalign(&p, align < sizeof(void *) ? sizeof(void *) : align, size ? size : 1)) return NULL;
    f->live++;
    return p;
}

static void faulty_free(void *user, void *ptr) {
    faulty *f = user;
    f->live--;
    free(ptr);
}

/* ---- what a stage does, and what it must give ----------------------------------------------- */

typedef struct ctx {
    const char *fixture;            /* folder name under FIX */
    vitq_allocator alloc;           /* the faulty allocator */
    vitq_model_options opts;        /* with it */
    float *input;                   /* the fixture's images */
    size_t n;
    vitq_model *fp, *q;             /* float model and its quantized model (from the faulty allocator) */
    const char *scheme;             /* calibration: scheme or method, method options, images (2..n) */
    const char *const *method_opts;
    int num_method_opts;
    size_t calib_images;
    char dir[256], path[512];       /* where the quantized model is saved */
    uint8_t *ref;                   /* a run without failures: its logits or bytes */
    size_t ref_size;
    int wrong;                      /* successful runs whose result differed */
} ctx;

/* The first successful run of a sweep sets the reference; later ones must match it byte for byte. */
static void same_result(ctx *c, const char *what, const void *got, size_t size) {
    if (!c->ref) {
        c->ref = malloc(size ? size : 1);
        memcpy(c->ref, got, size);
        c->ref_size = size;
        return;
    }
    if (size != c->ref_size || memcmp(got, c->ref, size) != 0) {
        printf("    %s: a run that survived an allocation failure gave a different result\n", what);
        c->wrong++;
    }
}

static int classes(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    vitq_model_get_info(m, &i);
    return i.num_classes;
}

static vitq_status forward_checked(ctx *c, const vitq_model *m, const char *what) {
    size_t count = c->n * (size_t)classes(m);
    float *logits = malloc(count * sizeof(float));
    vitq_status st = vitq_model_forward(m, c->input, c->n, logits);
    if (!st) same_result(c, what, logits, count * sizeof(float));
    free(logits);
    return st;
}

static vitq_status stage_load_forward(ctx *c) {
    char path[512];
    snprintf(path, sizeof path, FIX "%s", c->fixture);
    vitq_model *m = NULL;
    vitq_status st = vitq_model_load_file(path, &c->opts, &m);
    if (!st) st = forward_checked(c, m, "float load + forward");
    vitq_model_free(m);
    return st;
}

static vitq_status calibrate(ctx *c, vitq_model **q) {
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.scheme = c->scheme;
    vitq_calibrator *cal = NULL;
    vitq_status st = vitq_calibrator_create(c->fp, &co, &cal);
    for (int k = 0; !st && k < c->num_method_opts; k++)
        st = vitq_calibrator_set_option(cal, c->method_opts[2 * k], c->method_opts[2 * k + 1]);
    vitq_model_info i;
    vitq_model_info_init(&i);
    vitq_model_get_info(c->fp, &i);
    size_t per_image = (size_t)i.in_channels * (size_t)i.image_size * (size_t)i.image_size;
    /* two feeds (the second grows the image buffer) of c->calib_images */
    if (!st) st = vitq_calibrator_feed(cal, c->input, 1);
    if (!st) st = vitq_calibrator_feed(cal, c->input + per_image, c->calib_images - 1);
    if (!st) st = vitq_calibrator_run(cal, q);
    vitq_calibrator_free(cal);
    return st;
}

static vitq_status stage_calibrate(ctx *c) {
    vitq_model *q = NULL;
    vitq_status st = calibrate(c, &q);
    if (!st) st = forward_checked(c, q, "calibration");
    vitq_model_free(q);
    return st;
}

static vitq_status stage_qforward(ctx *c) { return forward_checked(c, c->q, "integer forward"); }

static vitq_status stage_save_memory(ctx *c) {
    size_t size = 0;
    vitq_status st = vitq_model_save_memory(c->q, NULL, 0, &size);
    if (st) return st;
    uint8_t *bytes = malloc(size);
    st = vitq_model_save_memory(c->q, bytes, size, &size);
    if (!st) same_result(c, "save to memory", bytes, size);
    free(bytes);
    return st;
}

static uint8_t *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    uint8_t *b = malloc(cap);
    for (size_t got; (got = fread(b + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    *size = n;
    return b;
}

/* Entries of `dir` other than `keep` (a temporary file left behind); prints them. */
static int strays(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    int count = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || (keep && !strcmp(e->d_name, keep))) continue;
        printf("    %s: unexpected file %s\n", dir, e->d_name);
        count++;
    }
    if (d) closedir(d);
    return count;
}

static vitq_status stage_save_file(ctx *c) {
    vitq_status st = vitq_model_save(c->q, c->path);
    /* success or not, the file holds a whole model: the previous save's or this one's (the same) */
    size_t size = 0;
    uint8_t *bytes = read_all(c->path, &size);
    if (bytes) same_result(c, "save to a file", bytes, size);
    else if (!st) c->wrong++, printf("    save to a file: success but no file\n");
    free(bytes);
    if (strays(c->dir, strrchr(c->path, '/') + 1)) c->wrong++;
    return st;
}

static vitq_status stage_qload_forward(ctx *c) {
    vitq_model *m = NULL;
    vitq_status st = vitq_model_load_file(c->path, &c->opts, &m);
    if (!st) st = forward_checked(c, m, "quantized load + forward");
    vitq_model_free(m);
    return st;
}

/* Call stacks failed so far in this process (open addressing; 0 marks a free slot): a sweep fails the
 * first allocation of each call stack no earlier sweep has failed. */
static uint64_t *stacks_tried;
static size_t tried_cap, tried_count;

static int first_try(uint64_t h) {
    h |= 1;
    if (2 * (tried_count + 1) > tried_cap) { /* grow, keeping every entry */
        size_t old_cap = tried_cap;
        uint64_t *old = stacks_tried;
        tried_cap = tried_cap ? 2 * tried_cap : 1024;
        stacks_tried = calloc(tried_cap, sizeof *stacks_tried);
        tried_count = 0;
        for (size_t i = 0; i < old_cap; i++)
            if (old[i]) first_try(old[i]);
        free(old);
    }
    size_t at = (size_t)(h * 0x9E3779B97F4A7C15ull) & (tried_cap - 1);
    while (stacks_tried[at] && stacks_tried[at] != h) at = (at + 1) & (tried_cap - 1);
    if (stacks_tried[at]) return 0;
    stacks_tried[at] = h;
    tried_count++;
    return 1;
}

/* Indices of allocations a sweep fails: all below `dense`, the last 16, `spread` more evenly spaced, and
 * the first of every call stack not failed before. */
static unsigned char *choose(const faulty *f, long n, long dense, long spread) {
    unsigned char *pick = calloc((size_t)n + 1, 1);
    long stride = spread && n / spread > 1 ? n / spread : 1;
    for (long k = 0; k < n; k++) pick[k] = k < dense || k >= n - 16 || (spread && k % stride == 0);
    for (long k = 0; f->nsites == n && k < n; k++)
        if (first_try(f->sites[k])) pick[k] = 1;
    return pick;
}

/* Run `stage` once without failures (the reference), then once per chosen k with allocation k failing. */
static void sweep(ctx *c, faulty *f, const char *name, vitq_status (*stage)(ctx *), long dense, long spread) {
    free(c->ref);
    c->ref = NULL;
    c->wrong = 0;
    long live = f->live, start = f->total;
    f->fail_at = -1;
    f->record = 1;
    f->nsites = 0;
    vitq_status st = stage(c);
    f->record = 0;
    long n = f->total - start;
    if (st != VITQ_OK || f->live != live) {
        printf("    %s %s: the run without failures gave %s (%s), %ld blocks left\n", c->fixture, name,
               vitq_status_name(st), vitq_last_error(), f->live - live);
        harness_check_failures++;
        return;
    }
    unsigned char *pick = choose(f, n, dense, spread);
    long tried = 0, survived = 0;
    for (long k = 0; k < n; k++) {
        if (!pick[k]) continue;
        tried++;
        f->hit = 0;
        f->fail_at = f->total + k;
        vitq_i_error_clear();
        st = stage(c);
        f->fail_at = -1;
        int bad = 0;
        if (st == VITQ_OK) survived += f->hit;
        else if (st != VITQ_ERR_OUT_OF_MEMORY || !f->hit || !*vitq_last_error()) bad = 1;
        if (bad) {
            printf("    %s %s: allocation %ld of %ld failing gave %s (%s)\n", c->fixture, name, k, n,
                   vitq_status_name(st), vitq_last_error());
            harness_check_failures++;
        }
        if (f->live != live) {
            printf("    %s %s: allocation %ld of %ld failing left %ld blocks\n", c->fixture, name, k, n,
                   f->live - live);
            harness_check_failures++;
            live = f->live; /* report each leak once */
        }
    }
    if (c->wrong) harness_check_failures++;
    printf("    %s %s: %ld allocations, %ld failed one at a time, %ld of those survived with the same result\n",
           c->fixture, name, n, tried, survived);
    free(pick);
}

static void load_input(ctx *c) {
    char path[512];
    uint64_t rows = 0, cols = 0;
    snprintf(path, sizeof path, FIX "%s/input.npy", c->fixture);
    c->input = load_npy_f32(path, &rows, &cols);
    c->n = (size_t)rows;
    CHECK(c->input != NULL && c->n == 3);
}

static void setup(ctx *c, faulty *f, const char *fixture) {
    memset(c, 0, sizeof *c);
    memset(f, 0, sizeof *f);
    f->fail_at = -1;
    c->fixture = fixture;
    c->alloc = (vitq_allocator){sizeof c->alloc, faulty_alloc, faulty_free, f};
    vitq_model_options_init(&c->opts);
    c->opts.allocator = &c->alloc;
    c->opts.num_threads = 1; /* one order of allocations, and fast on a busy machine */
    c->scheme = "minmax";
    load_input(c);
    c->calib_images = c->n;
    snprintf(c->dir, sizeof c->dir, "%s/vitq-faults-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(c->dir) != NULL);
    snprintf(c->path, sizeof c->path, "%s/q.safetensors", c->dir);
}

static void teardown(ctx *c, faulty *f) {
    vitq_model_free(c->q);
    vitq_model_free(c->fp);
    c->q = c->fp = NULL;
    CHECK(f->live == 0);
    remove(c->path);
    CHECK(rmdir(c->dir) == 0);
    free(c->input), free(c->ref), free(f->sites);
}

/* Every stage of one fixture: float load and forward, min-max calibration, the quantized model's
 * forward, saving it to memory and to a file, loading that file. */
static void sweep_fixture(const char *fixture) {
    ctx c;
    faulty f;
    setup(&c, &f, fixture);
    if (!c.input) return;
    char path[512];
    snprintf(path, sizeof path, FIX "%s", fixture);
    sweep(&c, &f, "load + forward", stage_load_forward, 32, 32);
    CHECK_STATUS(vitq_model_load_file(path, &c.opts, &c.fp), VITQ_OK);
    if (c.fp) {
        sweep(&c, &f, "min-max W8A8 calibration", stage_calibrate, 16, 32);
        CHECK_STATUS(calibrate(&c, &c.q), VITQ_OK);
    }
    if (c.q) {
        vitq_model_info i;
        vitq_model_info_init(&i);
        vitq_model_get_info(c.q, &i);
        CHECK(i.num_integer_layers > 0 && i.num_integer_attentions > 0); /* the integer kernels are swept */
        sweep(&c, &f, "integer forward", stage_qforward, 32, 32);
        sweep(&c, &f, "save to memory", stage_save_memory, 32, 32);
        sweep(&c, &f, "save to a file", stage_save_file, 32, 32);
        sweep(&c, &f, "quantized load + forward", stage_qload_forward, 32, 32);
    }
    teardown(&c, &f);
}

static void test_allocation_failures_vit(void) { sweep_fixture("odd-vit-hf"); }
static void test_allocation_failures_swin(void) { sweep_fixture("odd-swin-timm-new"); }

/* A PTQ method's own passes (PTQ4ViT's search, on the smallest grid and one search image): the sites
 * min-max calibration shares with it are swept above, so only the first of each call stack here. */
static void test_allocation_failures_method(void) {
    static const char *const opts[] = {"grid", "2", "search_images", "1"};
    ctx c;
    faulty f;
    setup(&c, &f, "odd-vit-hf");
    if (!c.input) return;
    c.scheme = "ptq4vit";
    c.method_opts = opts;
    c.num_method_opts = 2;
    c.calib_images = 2;
    CHECK_STATUS(vitq_model_load_file(FIX "odd-vit-hf", &c.opts, &c.fp), VITQ_OK);
    if (c.fp) sweep(&c, &f, "ptq4vit calibration", stage_calibrate, 8, 0);
    teardown(&c, &f);
}

/* A forward pass carves its buffers from one block; a buffer it does not need (the attention
 * probabilities when nothing taps them) has 0 floats and must be NULL, so that a path writing scores
 * there fails cleanly (block.c checks for NULL) instead of writing past the block. */
static void test_empty_workspace_slots_are_null(void) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    float *x = NULL, *y = NULL, *z = NULL, *block = NULL;
    float probe;
    y = &probe; /* must be overwritten */
    size_t sizes[3] = {5, 0, 7};
    float **slots[3] = {&x, &y, &z};
    CHECK_STATUS(vitq_i_carve_workspace(&a, sizes, slots, 3, &block), VITQ_OK);
    CHECK(x != NULL && z != NULL && z >= x + 5);
    CHECK(y == NULL);
    size_t last[2] = {3, 0};
    float **tail[2] = {&x, &y};
    y = &probe;
    vitq_i_free(&a, block);
    CHECK_STATUS(vitq_i_carve_workspace(&a, last, tail, 2, &block), VITQ_OK);
    CHECK(y == NULL); /* the last slot: it would point one past the end of the block */
    vitq_i_free(&a, block);
}

/* ---- saves that cannot complete ------------------------------------------------------------- */

static vitq_model *quantized(const vitq_model *fp, const float *images, size_t n, int bits) {
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.weight_bits = co.activation_bits = bits;
    vitq_calibrator *cal = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &co, &cal), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed(cal, images, n), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_run(cal, &q), VITQ_OK);
    vitq_calibrator_free(cal);
    return q;
}

static int file_is(const char *path, const uint8_t *want, size_t size) {
    size_t got_size = 0;
    uint8_t *got = read_all(path, &got_size);
    int same = got && got_size == size && memcmp(got, want, size) == 0;
    free(got);
    return same;
}

static int write_file(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, size, f) == size;
    return (f && fclose(f) == 0) && ok;
}

typedef struct saves {
    vitq_model *fp, *old_model, *new_model;
    uint8_t *old_bytes;
    size_t old_size;
    char dir[256], path[512];
} saves;

static int saves_open(saves *s) {
    memset(s, 0, sizeof *s);
    uint64_t rows = 0, cols = 0;
    float *input = load_npy_f32(FIX "odd-vit-hf/input.npy", &rows, &cols);
    CHECK_STATUS(vitq_model_load_file(FIX "odd-vit-hf", NULL, &s->fp), VITQ_OK);
    if (!input || !s->fp) {
        free(input);
        return 0;
    }
    s->old_model = quantized(s->fp, input, rows, 8);
    s->new_model = quantized(s->fp, input, rows, 4);
    free(input);
    snprintf(s->dir, sizeof s->dir, "%s/vitq-saves-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CHECK(mkdtemp(s->dir) != NULL);
    snprintf(s->path, sizeof s->path, "%s/q.safetensors", s->dir);
    if (!s->old_model || !s->new_model) return 0;
    CHECK_STATUS(vitq_model_save(s->old_model, s->path), VITQ_OK);
    s->old_bytes = read_all(s->path, &s->old_size);
    CHECK(s->old_bytes && s->old_size > 8192);
    return s->old_bytes != NULL;
}

static void saves_close(saves *s) {
    remove(s->path);
    CHECK(rmdir(s->dir) == 0);
    free(s->old_bytes);
    vitq_model_free(s->new_model);
    vitq_model_free(s->old_model);
    vitq_model_free(s->fp);
}

/* The old model is still there, whole, and loads; nothing else is in the folder. */
static void old_model_intact(const saves *s, const char *when) {
    if (!file_is(s->path, s->old_bytes, s->old_size)) {
        printf("    %s: the previous model file was changed\n", when);
        harness_check_failures++;
    }
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(s->path, NULL, &m), VITQ_OK);
    vitq_model_free(m);
    CHECK(strays(s->dir, "q.safetensors") == 0);
}

/* A full disk mid-write (the file size limit makes writes fail with EFBIG as a full disk's do). */
static void test_save_full_disk_keeps_old_model(void) {
    saves s;
    if (!saves_open(&s)) {
        saves_close(&s);
        return;
    }
    struct rlimit before, small;
    CHECK(getrlimit(RLIMIT_FSIZE, &before) == 0);
    small = before;
    small.rlim_cur = 4096; /* far below a model's size */
    fflush(stdout);        /* nothing may be written to files while the limit holds */
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    int limited = setrlimit(RLIMIT_FSIZE, &small) == 0;
    vitq_status st = vitq_model_save(s.new_model, s.path);
    setrlimit(RLIMIT_FSIZE, &before);
    signal(SIGXFSZ, old_handler);
    CHECK(limited);
    CHECK(st == VITQ_ERR_IO && strstr(vitq_last_error(), s.path) != NULL);
    printf("    full disk: %s: %s\n", vitq_status_name(st), vitq_last_error());
    old_model_intact(&s, "full disk");
    /* and once the disk has room, the new model replaces the old one */
    CHECK_STATUS(vitq_model_save(s.new_model, s.path), VITQ_OK);
    size_t size = 0;
    CHECK_STATUS(vitq_model_save_memory(s.new_model, NULL, 0, &size), VITQ_OK);
    uint8_t *want = malloc(size);
    CHECK_STATUS(vitq_model_save_memory(s.new_model, want, size, &size), VITQ_OK);
    CHECK(file_is(s.path, want, size) && strays(s.dir, "q.safetensors") == 0);
    free(want);
    saves_close(&s);
}

/* A target whose temporary name beside it is too long for the file system: nothing is written at all.
 * And a folder in the target's place is refused. */
static void test_save_without_temporary_keeps_old_model(void) {
    saves s;
    if (!saves_open(&s)) {
        saves_close(&s);
        return;
    }
    long name_max = pathconf(s.dir, _PC_NAME_MAX);
    if (name_max > 16 && name_max < 400) {
        char name[512], path[1024];
        memset(name, 'q', (size_t)name_max - 3);
        memcpy(name + name_max - 3, ".st", 4);
        snprintf(path, sizeof path, "%s/%s", s.dir, name);
        CHECK(write_file(path, s.old_bytes, s.old_size));
        vitq_status st = vitq_model_save(s.new_model, path);
        CHECK(st == VITQ_ERR_IO && strstr(vitq_last_error(), name) != NULL);
        printf("    temporary name too long: %s: %.120s...\n", vitq_status_name(st), vitq_last_error());
        CHECK(file_is(path, s.old_bytes, s.old_size));
        remove(path);
    } else {
        printf("    (no NAME_MAX for %s: the long-name case is not tried)\n", s.dir);
    }
    char folder[600];
    snprintf(folder, sizeof folder, "%s/folder.safetensors", s.dir);
    CHECK(mkdir(folder, 0755) == 0);
    CHECK_STATUS(vitq_model_save(s.new_model, folder), VITQ_ERR_IO);
    CHECK(strays(folder, NULL) == 0);
    rmdir(folder);
    old_model_intact(&s, "no temporary file");
    saves_close(&s);
}

static void test_save_read_only_folder_keeps_old_model(void) {
    if (geteuid() == 0) {
        SKIP("running as root: a read-only folder does not stop root's writes (the other save tests cover the "
             "same failure)");
        return;
    }
    saves s;
    if (!saves_open(&s)) {
        saves_close(&s);
        return;
    }
    CHECK(chmod(s.dir, 0555) == 0);
    vitq_status st = vitq_model_save(s.new_model, s.path);
    CHECK(chmod(s.dir, 0755) == 0);
    CHECK(st == VITQ_ERR_IO && strstr(vitq_last_error(), s.path) != NULL);
    printf("    read-only folder: %s: %s\n", vitq_status_name(st), vitq_last_error());
    old_model_intact(&s, "read-only folder");
    saves_close(&s);
}

/* ---- counts and options at the edge of their types ----------------------------------------- */

/* A huge image count must fail at once (it used to wrap the capacity to 0 and loop for ever): the alarm
 * ends a hang as a failure. Feeding nothing to a fresh calibrator is fine (and copies nothing). */
static void test_feed_counts(void) {
    vitq_model *m = NULL;
    vitq_dataset *d = NULL;
    uint64_t rows = 0, cols = 0;
    float *input = load_npy_f32(FIX "odd-vit-hf/input.npy", &rows, &cols);
    CHECK_STATUS(vitq_model_load_file(FIX "odd-vit-hf", NULL, &m), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(FIX "odd-vit-hf/input_u8.npy", NULL, NULL, &d), VITQ_OK);
    if (!m || !d || !input) goto done;
    vitq_calibrator *c = NULL;
    CHECK_STATUS(vitq_calibrator_create(m, NULL, &c), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed(c, input, 0), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed(c, NULL, 0), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, d, 0, 0), VITQ_OK);
    alarm(30);
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX - 10, SIZE_MAX / 2 + 1, (size_t)1 << 54};
    for (size_t h = 0; h < sizeof huge / sizeof huge[0]; h++) {
        vitq_status st = vitq_calibrator_feed(c, input, huge[h]);
        CHECK(st == VITQ_ERR_OUT_OF_MEMORY || st == VITQ_ERR_INVALID_ARGUMENT);
        if (h == 0) printf("    feed of SIZE_MAX images: %s: %s\n", vitq_status_name(st), vitq_last_error());
        st = vitq_calibrator_feed_dataset(c, d, 0, huge[h]);
        CHECK(st == VITQ_ERR_OUT_OF_RANGE || st == VITQ_ERR_INVALID_ARGUMENT || st == VITQ_ERR_OUT_OF_MEMORY);
        if (h == 0) printf("    feed_dataset of SIZE_MAX images: %s: %s\n", vitq_status_name(st), vitq_last_error());
    }
    alarm(0);
    /* nothing was added by the refused calls: a run sees the three images fed here only */
    CHECK_STATUS(vitq_calibrator_feed(c, input, 2), VITQ_OK);
    CHECK_STATUS(vitq_calibrator_feed_dataset(c, d, 1, 1), VITQ_OK);
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    vitq_calibrator_stats s;
    vitq_calibrator_stats_init(&s);
    CHECK_STATUS(vitq_calibrator_get_stats(c, &s), VITQ_OK);
    CHECK(s.images == 3);
    vitq_model_free(q);
    vitq_calibrator_free(c);
done:
    free(input);
    vitq_dataset_free(d);
    vitq_model_free(m);
}

/* Options a caller fills in: out-of-range values are refused naming the member and its range. */
static void test_option_ranges(void) {
    static const struct {
        int member; /* 0 eps, 1 image size */
        double value;
        const char *needle;
    } bad[] = {
        {0, 1e-40, "layer_norm_eps"}, /* subnormal: what 1e-50 becomes in a double-to-float conversion */
        {0, -1e-6, "layer_norm_eps"},
        {0, INFINITY, "layer_norm_eps"},
        {0, NAN, "layer_norm_eps"},
        {0, 1.0, "layer_norm_eps"},
        {1, -28, "image_size"},
        {1, (double)INT32_MIN, "image_size"}, /* 2^31 through a 32-bit member */
        {1, 1 << 20, "image_size"},
    };
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
        vitq_model_options o;
        vitq_model_options_init(&o);
        if (bad[b].member == 0) o.layer_norm_eps = (float)bad[b].value;
        else o.image_size = (int32_t)bad[b].value;
        vitq_model *m = NULL;
        vitq_status st = vitq_model_load_file(FIX "odd-vit-hf", &o, &m);
        CHECK(m == NULL);
        if (st != VITQ_ERR_INVALID_ARGUMENT || !strstr(vitq_last_error(), bad[b].needle)) {
            printf("    %s = %g: %s (%s)\n", bad[b].needle, bad[b].value, vitq_status_name(st), vitq_last_error());
            harness_check_failures++;
        }
        vitq_model_free(m);
    }
    /* the smallest normal float is a valid eps */
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.layer_norm_eps = FLT_MIN;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(FIX "odd-vit-hf", &o, &m), VITQ_OK);
    vitq_model_free(m);
}

static const char *only; /* argv[1]: run only the tests whose names contain it */
#define RUN_SOME(fn) \
    do { \
        if (!only || strstr(#fn, only)) RUN(fn); \
    } while (0)

int main(int argc, char **argv) {
    only = argc > 1 ? argv[1] : NULL;
#ifdef HAVE_BACKTRACE
    void *warm[4];
    backtrace(warm, 4); /* the first call loads the unwinder: not inside a sweep */
#endif
    RUN_SOME(test_feed_counts);
    RUN_SOME(test_option_ranges);
    RUN_SOME(test_empty_workspace_slots_are_null);
    RUN_SOME(test_save_full_disk_keeps_old_model);
    RUN_SOME(test_save_without_temporary_keeps_old_model);
    RUN_SOME(test_save_read_only_folder_keeps_old_model);
    RUN_SOME(test_allocation_failures_vit);
    RUN_SOME(test_allocation_failures_swin);
    RUN_SOME(test_allocation_failures_method);
    free(stacks_tried);
    HARNESS_EXIT();
}

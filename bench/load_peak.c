/* load_peak: what loading a model costs in library memory (issue 19).
 *
 *   load_peak [--memory] [--integer-only] MODEL...
 *
 * Built against the static library (docs/performance.md, "Memory"):
 *   cc -std=c11 -O2 -D_POSIX_C_SOURCE=200809L -Iinclude bench/load_peak.c build/libvitq.a -lm -pthread -o load_peak
 *
 * For each MODEL (a folder or a weights file) prints one line: the file's size, the bytes the loaded
 * model holds ("resident": what the library has allocated once vitq_model_load_* returned) and the
 * high-water mark of the library's allocations during the load ("peak"), all through a counting
 * vitq_allocator. --memory reads the file first (with stdio, not counted) and loads it with
 * vitq_model_load_memory; --integer-only asks for integer-only execution (quantized files only).
 * Single-threaded on purpose: the numbers are exact and repeatable. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vitq.h"

#define HEADER 64 /* in front of each block: its size, keeping the caller's pointer 64-byte aligned */
static size_t live_bytes, peak_bytes;

static void *counting_alloc(void *user, size_t size, size_t align) {
    (void)user;
    (void)align; /* at most 64, which the header gives */
    if (size > SIZE_MAX - HEADER) return NULL;
    void *base = NULL;
    if (posix_memalign(&base, HEADER, size + HEADER) != 0) return NULL;
    memcpy(base, &size, sizeof size);
    live_bytes += size;
    if (live_bytes > peak_bytes) peak_bytes = live_bytes;
    return (char *)base + HEADER;
}

static void counting_free(void *user, void *ptr) {
    (void)user;
    char *base = (char *)ptr - HEADER;
    size_t size;
    memcpy(&size, base, sizeof size);
    live_bytes -= size;
    free(base);
}

static const vitq_allocator counting = {sizeof(vitq_allocator), counting_alloc, counting_free, NULL};

/* The weights file of MODEL: itself, or the first usual name inside a folder. */
static long long weights_size(const char *model, char *path, size_t cap) {
    static const char *const names[] = {"model.safetensors", "pytorch_model.bin", "model.pth"};
    struct stat s;
    if (stat(model, &s) != 0) return -1;
    snprintf(path, cap, "%s", model);
    if (!S_ISDIR(s.st_mode)) return (long long)s.st_size;
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        snprintf(path, cap, "%s/%s", model, names[k]);
        if (stat(path, &s) == 0) return (long long)s.st_size;
    }
    return -1;
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    if (fseek(f, 0, SEEK_END) == 0) {
        long n = ftell(f);
        if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)) != NULL) {
            *size = fread(buf, 1, (size_t)n, f);
            if (*size != (size_t)n) {
                free(buf);
                buf = NULL;
            }
        }
    }
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    int memory = 0, integer_only = 0, failures = 0;
    printf("%-48s %12s %12s %12s %12s\n", "model", "file", "resident", "peak", "peak-resident");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--memory") == 0) {
            memory = 1;
            continue;
        }
        if (strcmp(argv[i], "--integer-only") == 0) {
            integer_only = 1;
            continue;
        }
        char path[4096];
        long long file = weights_size(argv[i], path, sizeof path);
        vitq_model_options o;
        vitq_model_options_init(&o);
        o.allocator = &counting;
        o.num_threads = 1;
        if (integer_only) o.execution = VITQ_EXECUTION_INTEGER_ONLY;
        vitq_model *m = NULL;
        unsigned char *bytes = NULL;
        size_t size = 0;
        live_bytes = peak_bytes = 0;
        vitq_status st;
        char *config = NULL;
        if (memory) {
            char cfg[4200];
            size_t n = 0;
            snprintf(cfg, sizeof cfg, "%s/config.json", argv[i]); /* a folder's config, as load_file reads it */
            if (strcmp(path, argv[i]) != 0 && (config = (char *)read_all(cfg, &n)) != NULL) config[n] = '\0';
            o.config_json = config;
            bytes = read_all(path, &size);
            st = bytes ? vitq_model_load_memory(bytes, size, path, &o, &m) : VITQ_ERR_IO;
        } else {
            st = vitq_model_load_file(argv[i], &o, &m);
        }
        if (st) {
            fprintf(stderr, "load_peak: %s: %s\n", argv[i], bytes || !memory ? vitq_last_error() : "cannot read");
            failures++;
        } else {
            size_t resident = live_bytes;
            printf("%-48s %12lld %12zu %12zu %12zu\n", argv[i], file, resident, peak_bytes, peak_bytes - resident);
        }
        vitq_model_free(m);
        free(bytes);
        free(config);
    }
    return failures ? 1 : 0;
}

/* QAT checkpoints (qat_checkpoint.h). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib/qat_checkpoint.h"
#include "io/safetensors.h"
#include "io/st_writer.h"

#define FORMAT "vitq-qat-checkpoint-1"

static size_t moments(const vitq_i_adam *adam) {
    size_t all = 0;
    for (int i = 0; i < adam->count; i++) all += adam->params[i].n;
    return all;
}

static vitq_status meta_u64(vitq_i_st_writer *w, const char *key, uint64_t v) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, v);
    return vitq_i_stw_meta(w, key, buf);
}

static vitq_status add_f32(vitq_i_st_writer *w, const char *name, const float *x, size_t n) {
    uint64_t shape[1] = {n};
    return vitq_i_stw_add(w, name, "F32", 1, shape, x, n * sizeof(float));
}

vitq_status vitq_i_qat_checkpoint_save(const char *path, const vitq_allocator *a, const vitq_i_qat_shape *shape,
                                       int next_epoch, const vitq_i_adam *adam, const vitq_i_osc *osc, int num_osc,
                                       const vitq_i_qat_epoch *report) {
    vitq_i_st_writer w;
    vitq_i_stw_init(&w, a);
    char key[48], value[160];
    vitq_status st = vitq_i_stw_meta(&w, "format", FORMAT);
    if (!st) st = meta_u64(&w, "epochs", (uint64_t)shape->epochs);
    if (!st) st = meta_u64(&w, "batch", (uint64_t)shape->batch);
    if (!st) st = meta_u64(&w, "crops", (uint64_t)shape->crops);
    if (!st) st = meta_u64(&w, "images", shape->images);
    if (!st) st = meta_u64(&w, "seed", shape->seed);
    if (!st) st = meta_u64(&w, "next_epoch", (uint64_t)next_epoch);
    if (!st) st = meta_u64(&w, "adam_steps", (uint64_t)adam->steps);
    uint64_t updates = 0;
    for (int k = 0; k < num_osc; k++)
        if (osc[k].count) updates = (uint64_t)osc[k].updates;
    if (!st) st = meta_u64(&w, "osc_updates", updates);
    for (int e = 0; !st && e < next_epoch; e++) {
        const vitq_i_qat_epoch *r = &report[e];
        snprintf(key, sizeof key, "epoch.%d", e);
        snprintf(value, sizeof value, "%.17g,%.17g,%.17g,%.17g,%.17g,%.17g", r->loss, r->agreement, r->obr, r->flips,
                 r->oscillations, r->seconds);
        st = vitq_i_stw_meta(&w, key, value);
    }
    for (int i = 0; !st && i < adam->count; i++) {
        snprintf(key, sizeof key, "param.%d", i);
        st = add_f32(&w, key, adam->params[i].value, adam->params[i].n);
    }
    size_t all = moments(adam);
    if (!st) st = add_f32(&w, "adam.m", adam->m, all);
    if (!st) st = add_f32(&w, "adam.v", adam->v, all);
    for (int k = 0; !st && k < num_osc; k++) {
        if (!osc[k].count) continue;
        uint64_t n[1] = {osc[k].count};
        snprintf(key, sizeof key, "osc.%d.prev", k);
        st = vitq_i_stw_add(&w, key, "U8", 1, n, osc[k].prev, osc[k].count);
        snprintf(key, sizeof key, "osc.%d.prev2", k);
        if (!st) st = vitq_i_stw_add(&w, key, "U8", 1, n, osc[k].prev2, osc[k].count);
    }
    uint8_t *bytes = NULL;
    size_t size = 0;
    if (!st) st = vitq_i_stw_finish(&w, &bytes, &size);
    if (!st) st = vitq_i_write_file_atomic(path, bytes, size);
    vitq_i_free(&w.alloc, bytes);
    vitq_i_stw_free(&w);
    return st;
}

/* Metadata `key` as an unsigned integer into *v; VITQ_ERR_FORMAT naming it when absent or not a number. */
static vitq_status read_u64(const vitq_i_safetensors *f, const char *path, const char *key, uint64_t *v) {
    const char *s = vitq_i_st_meta(f, key);
    char *end = NULL;
    unsigned long long x = s ? strtoull(s, &end, 10) : 0;
    if (!s || end == s || *end)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: QAT checkpoint without a number for '%s'", path, key);
    *v = (uint64_t)x;
    return VITQ_OK;
}

/* The tensor `name` of `bytes` bytes, checked before anything is read. */
static vitq_status find(const vitq_i_safetensors *f, const char *path, const char *name, size_t bytes,
                        const vitq_i_st_tensor **t) {
    *t = vitq_i_st_find(f, name);
    if (!*t) return vitq_i_fail(VITQ_ERR_CONFIG, "%s: no '%s': a checkpoint of another run", path, name);
    if ((*t)->array.nbytes != bytes)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' has %zu bytes, this run's has %zu: a checkpoint of another run",
                           path, name, (*t)->array.nbytes, bytes);
    return VITQ_OK;
}

static vitq_status check_shape(const vitq_i_safetensors *f, const char *path, const vitq_i_qat_shape *shape) {
    const char *keys[5] = {"epochs", "batch", "crops", "images", "seed"};
    uint64_t want[5] = {(uint64_t)shape->epochs, (uint64_t)shape->batch, (uint64_t)shape->crops, shape->images,
                        shape->seed};
    for (int k = 0; k < 5; k++) {
        uint64_t v = 0;
        vitq_status st = read_u64(f, path, keys[k], &v);
        if (st) return st;
        if (v != want[k])
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: the checkpoint's run has %s %" PRIu64 ", this one %" PRIu64, path,
                               keys[k], v, want[k]);
    }
    return VITQ_OK;
}

vitq_status vitq_i_qat_checkpoint_load(const char *path, const vitq_allocator *a, const vitq_i_qat_shape *shape,
                                       vitq_i_adam *adam, vitq_i_osc *osc, int num_osc, vitq_i_qat_epoch *report,
                                       int *next_epoch) {
    vitq_i_safetensors f;
    vitq_status st = vitq_i_st_open(a, path, path, &f);
    if (st) return st;
    const char *format = vitq_i_st_meta(&f, "format");
    if (!format || strcmp(format, FORMAT))
        st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: not a QAT checkpoint (format '%s', want '%s')", path,
                         format ? format : "none", FORMAT);
    uint64_t next = 0, steps = 0, updates = 0;
    if (!st) st = check_shape(&f, path, shape);
    if (!st) st = read_u64(&f, path, "next_epoch", &next);
    if (!st) st = read_u64(&f, path, "adam_steps", &steps);
    if (!st) st = read_u64(&f, path, "osc_updates", &updates);
    if (!st && (next < 1 || next > (uint64_t)shape->epochs))
        st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: next epoch %" PRIu64 " of %d", path, next, shape->epochs);
    char key[48];
    /* every size first, so that a checkpoint of another run changes nothing */
    const vitq_i_st_tensor *t;
    for (int i = 0; !st && i < adam->count; i++) {
        snprintf(key, sizeof key, "param.%d", i);
        st = find(&f, path, key, adam->params[i].n * sizeof(float), &t);
    }
    snprintf(key, sizeof key, "param.%d", adam->count);
    if (!st && vitq_i_st_find(&f, key))
        st = vitq_i_fail(VITQ_ERR_CONFIG, "%s: more trained parameters than this run's %d", path, adam->count);
    size_t all = moments(adam);
    for (int k = 0; !st && k < num_osc; k++) {
        if (!osc[k].count) continue;
        snprintf(key, sizeof key, "osc.%d.prev", k);
        st = find(&f, path, key, osc[k].count, &t);
    }
    for (int i = 0; !st && i < adam->count; i++) {
        snprintf(key, sizeof key, "param.%d", i);
        t = vitq_i_st_find(&f, key);
        st = vitq_i_st_read(&f, t, adam->params[i].value);
    }
    if (!st && !(st = find(&f, path, "adam.m", all * sizeof(float), &t))) st = vitq_i_st_read(&f, t, adam->m);
    if (!st && !(st = find(&f, path, "adam.v", all * sizeof(float), &t))) st = vitq_i_st_read(&f, t, adam->v);
    for (int k = 0; !st && k < num_osc; k++) {
        if (!osc[k].count) continue;
        snprintf(key, sizeof key, "osc.%d.prev", k);
        if (!(st = find(&f, path, key, osc[k].count, &t))) st = vitq_i_st_read(&f, t, osc[k].prev);
        snprintf(key, sizeof key, "osc.%d.prev2", k);
        if (!st && !(st = find(&f, path, key, osc[k].count, &t))) st = vitq_i_st_read(&f, t, osc[k].prev2);
        osc[k].updates = (int64_t)updates;
    }
    for (uint64_t e = 0; !st && e < next; e++) {
        snprintf(key, sizeof key, "epoch.%d", (int)e);
        const char *s = vitq_i_st_meta(&f, key);
        vitq_i_qat_epoch *r = &report[e];
        if (!s || sscanf(s, "%lg,%lg,%lg,%lg,%lg,%lg", &r->loss, &r->agreement, &r->obr, &r->flips, &r->oscillations,
                         &r->seconds) != 6)
            st = vitq_i_fail(VITQ_ERR_FORMAT, "%s: no report of epoch %d", path, (int)e);
    }
    if (!st) adam->steps = (int64_t)steps, *next_epoch = (int)next;
    vitq_i_st_free(&f);
    return st;
}

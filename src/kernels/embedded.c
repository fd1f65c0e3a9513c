/* The firmware side of an embedded model (vitq.h, vitq_embedded_*): a blob read in place, its program's
 * structures and the run's activations carved from the caller's arena. No allocation, no file, no
 * thread and no floating point (tests/build/check_firmware.sh builds it into the firmware subset). */
#include <string.h>

#include "kernels/embedded.h"

static size_t a64(size_t v) { return (v + 63) / 64 * 64; }

static uint32_t read_u32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Loading from a blob: the stream cursor, the arrays' base, the arena's structure part. */
typedef struct loader {
    vitq_i_emb_io io;
    const uint8_t *blob;
    size_t bytes, next, stream_end, arrays;
    uint8_t *arena;
    size_t used, cap;
} loader;

static vitq_status load_word(vitq_i_emb_io *io, int32_t *v) {
    loader *l = (loader *)io;
    if (l->next + 4 > l->stream_end) return vitq_i_fail(VITQ_ERR_TRUNCATED, "embedded model: the stream ends early");
    uint32_t u = read_u32(l->blob + l->next);
    l->next += 4;
    *v = u <= INT32_MAX ? (int32_t)u : -(int32_t)(~u) - 1;
    return VITQ_OK;
}

static vitq_status load_array(vitq_i_emb_io *io, void **p, size_t bytes) {
    loader *l = (loader *)io;
    int32_t off = VITQ_I_EMB_NULL;
    vitq_status st = load_word(io, &off);
    if (st) return st;
    if (off == VITQ_I_EMB_NULL) {
        *p = NULL;
        return VITQ_OK;
    }
    if (off < 0 || off % 64 || (size_t)off > l->bytes - l->arrays || bytes > l->bytes - l->arrays - (size_t)off)
        return vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: an array of %zu bytes at offset %d lies outside the "
                           "blob", bytes, (int)off);
    /* the runtime reads the blob through these pointers and never writes to it */
    *p = (void *)(uintptr_t)(l->blob + l->arrays + (size_t)off);
    return VITQ_OK;
}

static void *load_carve(vitq_i_emb_io *io, size_t bytes) {
    loader *l = (loader *)io;
    bytes = a64(bytes);
    if (!l->arena || bytes > l->cap - l->used) return NULL;
    void *p = l->arena + l->used;
    memset(p, 0, bytes);
    l->used += bytes;
    return p;
}

/* The descriptor and the blob's header; the stream's first words (the dimensions) into *dims_at. */
static vitq_status check_model(const vitq_embedded_model *m, loader *l) {
    if (!m || !m->blob) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "embedded model: NULL model or blob");
    if (m->version != VITQ_EMBEDDED_VERSION)
        return vitq_i_fail(VITQ_ERR_ABI_MISMATCH, "embedded model: version %u, this library reads version %d "
                           "(export it again with this vitq)", (unsigned)m->version, VITQ_EMBEDDED_VERSION);
    if ((uintptr_t)m->blob % 64)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "embedded model: the blob is not 64-byte aligned");
    const uint8_t *b = (const uint8_t *)m->blob;
    size_t bytes = (size_t)m->words * 8;
    if (bytes < VITQ_I_EMB_HEADER) return vitq_i_fail(VITQ_ERR_TRUNCATED, "embedded model: %zu bytes", bytes);
    if (read_u32(b) != VITQ_I_EMB_MAGIC)
        return vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: no magic (not a blob of vitq export-c, or this "
                           "target is big-endian)");
    uint32_t version = read_u32(b + 4), stream = read_u32(b + 8), total = read_u32(b + 12);
    if (version != VITQ_EMBEDDED_VERSION || total != bytes || stream > (bytes - VITQ_I_EMB_HEADER) / 4 ||
        stream < VITQ_I_EMB_DIMS)
        return vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: header (version %u, %u stream words, %u bytes) does "
                           "not match the descriptor's %zu bytes", (unsigned)version, (unsigned)stream,
                           (unsigned)total, bytes);
    memset(l, 0, sizeof *l);
    l->io.loading = 1;
    l->io.word = load_word;
    l->io.array = load_array;
    l->io.carve = load_carve;
    l->blob = b;
    l->bytes = bytes;
    l->next = VITQ_I_EMB_HEADER;
    l->stream_end = VITQ_I_EMB_HEADER + (size_t)stream * 4;
    l->arrays = a64(l->stream_end);
    if (l->arrays > bytes) return vitq_i_fail(VITQ_ERR_TRUNCATED, "embedded model: no arrays");
    return VITQ_OK;
}

/* The dimensions and logit scales (the stream's first words and array), checked as the walk checks
 * them. */
static vitq_status read_dims(const vitq_embedded_model *m, vitq_i_intvit *p, int32_t *outputs, const uint32_t **scales) {
    loader l;
    vitq_status st = check_model(m, &l);
    if (st) return st;
    memset(p, 0, sizeof *p);
    uint32_t *bits = NULL;
    /* a walk with no arena stops at the first structure it needs, after the dimensions and the scales */
    st = vitq_i_emb_walk(&l.io, p, outputs, &bits);
    if (st == VITQ_ERR_BUFFER_TOO_SMALL && bits) st = VITQ_OK;
    if (!st && (m->channels != p->channels || m->image_size != p->image_size || m->classes != p->classes ||
                m->outputs != *outputs))
        st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: the descriptor's dimensions differ from its blob's");
    *scales = bits;
    return st;
}

/* The dimensions, and the arena's parts for `batch` images: the program's structures, the activations. */
static vitq_status sizes(const vitq_embedded_model *m, int32_t batch, vitq_i_intvit *p, int32_t *outputs,
                         size_t *structs, size_t *scratch) {
    if (batch < 1) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "embedded model: batch %d", (int)batch);
    const uint32_t *scales;
    vitq_status st = read_dims(m, p, outputs, &scales);
    if (st) return st;
    *scratch = vitq_i_intvit_scratch_bytes(p, (size_t)batch, 1);
    *structs = vitq_i_emb_struct_bytes(p->depth, *outputs);
    /* 64 bytes for aligning the arena's start */
    if (*scratch == SIZE_MAX || *scratch > SIZE_MAX - *structs - 64)
        return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "embedded model: batch %d needs more than the address space",
                           (int)batch);
    return VITQ_OK;
}

vitq_status vitq_embedded_arena_size(const vitq_embedded_model *model, int32_t batch, size_t *bytes) {
    if (!bytes) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_embedded_arena_size: NULL bytes");
    *bytes = 0;
    vitq_i_intvit p;
    int32_t outputs;
    size_t structs = 0, scratch = 0;
    vitq_status st = sizes(model, batch, &p, &outputs, &structs, &scratch);
    if (!st) *bytes = structs + scratch + 64;
    return st;
}

vitq_status vitq_embedded_run(const vitq_embedded_model *model, void *arena, size_t arena_bytes,
                              const uint8_t *pixels, int32_t batch, int32_t *logits) {
    vitq_i_intvit dims;
    int32_t outputs;
    size_t structs = 0, scratch = 0;
    vitq_status st = sizes(model, batch, &dims, &outputs, &structs, &scratch);
    if (st) return st;
    if (!arena || !pixels || !logits) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_embedded_run: NULL argument");
    if (arena_bytes < structs + scratch + 64)
        return vitq_i_fail(VITQ_ERR_BUFFER_TOO_SMALL, "vitq_embedded_run: arena of %zu bytes, batch %d needs %zu "
                           "(vitq_embedded_arena_size)", arena_bytes, (int)batch, structs + scratch + 64);
    loader l;
    if ((st = check_model(model, &l))) return st;
    l.arena = (uint8_t *)arena + (size_t)(-(uintptr_t)arena & 63);
    l.cap = structs;
    /* the program's structures, pointing into the blob, first; the activations after them */
    vitq_i_intvit *p = load_carve(&l.io, sizeof *p);
    uint32_t *scales;
    st = p ? vitq_i_emb_walk(&l.io, p, &outputs, &scales) : VITQ_ERR_BUFFER_TOO_SMALL;
    if (!st && l.next != l.stream_end)
        st = vitq_i_fail(VITQ_ERR_FORMAT, "embedded model: %zu stream bytes after the program", l.stream_end - l.next);
    if (st) return st;
    int32_t *dist = outputs == 2 ? logits + (size_t)batch * (size_t)p->classes : NULL;
    return vitq_i_intvit_run(p, pixels, (size_t)batch, logits, dist, l.arena + structs, 1);
}

vitq_status vitq_embedded_logit_scales(const vitq_embedded_model *model, float *scales) {
    vitq_i_intvit p;
    int32_t outputs;
    const uint32_t *bits;
    vitq_status st = read_dims(model, &p, &outputs, &bits);
    if (!st && !scales) st = vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_embedded_logit_scales: NULL scales");
    /* the float32 bits as they are: no floating-point operation */
    if (!st) memcpy(scales, bits, (size_t)outputs * (size_t)p.classes * sizeof *bits);
    return st;
}

/* ---- the predicted class without floating point ---- */

/* A logit's real value p 2^e: the int32 times its class scale's float32 bits (mantissa and exponent). */
typedef struct term {
    int64_t p;
    int32_t e;
} term;

static term term_of(int32_t logit, uint32_t bits) {
    int32_t ex = (int32_t)(bits >> 23 & 0xff);
    int64_t man = (int64_t)(bits & 0x7fffff);
    if (ex) man |= 0x800000;
    else ex = 1; /* subnormal */
    term t = {(int64_t)logit * (bits >> 31 ? -man : man), ex - 150};
    return t;
}

/* floor(v / 2^s) for s >= 0 without shifting a negative value. */
static int64_t floor_shr(int64_t v, int32_t s) {
    if (s >= 63) return v < 0 ? -1 : 0;
    return v >= 0 ? v >> s : -((-(v + 1)) >> s) - 1;
}

/* Sign of a - b, exactly (|p| < 2^55). */
static int compare(term a, term b) {
    int flip = a.e < b.e ? -1 : 1;
    if (flip < 0) {
        term t = a;
        a = b, b = t;
    }
    int32_t d = a.e - b.e; /* a.p 2^d against b.p: a.p 2^d > b.p exactly when a.p > floor(b.p / 2^d) */
    int64_t q = floor_shr(b.p, d);
    int r;
    if (a.p != q) r = a.p > q ? 1 : -1;
    else if (d >= 63) r = a.p == 0 && b.p == 0 ? 0 : -1;
    else r = ((uint64_t)b.p & (((uint64_t)1 << d) - 1)) ? -1 : 0;
    return r * flip;
}

vitq_status vitq_embedded_predict(const vitq_embedded_model *model, const int32_t *logits, int32_t batch,
                                  int32_t *classes) {
    vitq_i_intvit p;
    int32_t outputs;
    const uint32_t *bits;
    vitq_status st = read_dims(model, &p, &outputs, &bits);
    if (st) return st;
    if (!logits || !classes || batch < 0)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_embedded_predict: NULL argument or batch %d", (int)batch);
    size_t k = (size_t)p.classes, n = (size_t)batch;
    int32_t emax = -1000;
    for (size_t j = 0; j < (size_t)outputs * k; j++) {
        term t = term_of(0, bits[j]);
        if (t.e > emax) emax = t.e;
    }
    for (size_t i = 0; i < n; i++) {
        size_t best = 0;
        if (outputs == 1) { /* exact */
            for (size_t j = 1; j < k; j++)
                if (compare(term_of(logits[i * k + j], bits[j]), term_of(logits[i * k + best], bits[best])) > 0) best = j;
        } else { /* the two heads' sum in units of 2^(emax - 7): |value| < 2^62 each */
            int64_t top = 0;
            for (size_t j = 0; j < k; j++) {
                int64_t v = 0;
                for (int32_t o = 0; o < 2; o++) {
                    term t = term_of(logits[(o * n + i) * k + j], bits[o * k + j]);
                    int32_t s = emax - 7 - t.e;
                    v += s >= 0 ? floor_shr(t.p, s) : t.p * ((int64_t)1 << -s);
                }
                if (j == 0 || v > top) top = v, best = j;
            }
        }
        classes[i] = (int32_t)best;
    }
    return VITQ_OK;
}

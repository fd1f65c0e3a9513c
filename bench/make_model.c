/* make_model: random timm-layout ViT checkpoints and random images for the benchmark, no download.
 *
 *   make_model model OUT_DIR ARCH [SEED]   ARCH: deit_tiny_patch16_224, deit_small_patch16_224,
 *                                          vit_base_patch16_224 -> OUT_DIR/model.safetensors + config.json
 *   make_model images OUT.npy N [SEED]     N random normalised images, float32 [N,3,224,224]
 *
 * Speed does not depend on the weights' values, but the logit checks between engines and the
 * quantizers' ranges want a network that behaves like a trained one numerically: weights ~N(0, 0.02)
 * (timm's init), LayerNorm gains 1, small biases, so activations stay O(1) through all 12 blocks.
 * Everything is written with stdio only, the safetensors and .npy headers by hand. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE_SIZE 224
#define PATCH 16
#define CHANNELS 3
#define CLASSES 1000
#define DEPTH 12
#define MLP_RATIO 4

typedef struct {
    const char *name;
    int dim, heads;
} arch_desc;

static const arch_desc archs[] = {
    {"deit_tiny_patch16_224", 192, 3},
    {"deit_small_patch16_224", 384, 6},
    {"vit_base_patch16_224", 768, 12},
};

/* ImageNet statistics; config.json states them because vitq's arch table leaves ViT's open. */
static const float mean_rgb[3] = {0.485f, 0.456f, 0.406f};
static const float std_rgb[3] = {0.229f, 0.224f, 0.225f};

/* ---- xorshift64* and an approximately normal draw ------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng_next(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

static float rng_uniform(void) { /* [0, 1) with 24 random bits */
    return (float)(rng_next() >> 40) * (1.0f / 16777216.0f);
}

/* Irwin-Hall with 4 terms: mean 2, variance 1/3, so (s - 2) * sqrt(3) has unit variance and is
 * bounded by +-3.46 like timm's truncated normal (cut at +-2 std of 0.02 there, a detail that does
 * not matter here). Four uniforms are far cheaper than Box-Muller for 86M ViT-B weights. */
static float rng_normal(void) {
    float s = rng_uniform() + rng_uniform() + rng_uniform() + rng_uniform();
    return (s - 2.0f) * 1.7320508f;
}

/* ---- tensor list ------------------------------------------------------------------------------ */

enum fill { FILL_NORMAL, FILL_ONES, FILL_SMALL };

typedef struct {
    char name[64];
    int rank;
    int64_t shape[4];
    enum fill fill;
} tensor_desc;

#define MAX_TENSORS (8 + DEPTH * 12)
static tensor_desc tensors[MAX_TENSORS];
static int num_tensors;

static void add(const char *name, enum fill fill, int rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    tensor_desc *t = &tensors[num_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->rank = rank;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->shape[2] = d2;
    t->shape[3] = d3;
    t->fill = fill;
}

static int64_t numel(const tensor_desc *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

/* timm's names and shapes of a ViT with a class token and a linear head. */
static void list_tensors(int dim) {
    const int64_t d = dim;
    const int64_t tokens = (IMAGE_SIZE / PATCH) * (IMAGE_SIZE / PATCH) + 1;
    char name[64];
    num_tensors = 0;
    add("cls_token", FILL_NORMAL, 3, 1, 1, d, 0);
    add("pos_embed", FILL_NORMAL, 3, 1, tokens, d, 0);
    add("patch_embed.proj.weight", FILL_NORMAL, 4, d, CHANNELS, PATCH, PATCH);
    add("patch_embed.proj.bias", FILL_SMALL, 1, d, 0, 0, 0);
    for (int b = 0; b < DEPTH; b++) {
        static const struct {
            const char *suffix;
            enum fill fill;
            int rank;
            int rows_mult, cols_mult; /* in units of dim; 0 = unused */
        } parts[] = {
            {"norm1.weight", FILL_ONES, 1, 1, 0},      {"norm1.bias", FILL_SMALL, 1, 1, 0},
            {"attn.qkv.weight", FILL_NORMAL, 2, 3, 1}, {"attn.qkv.bias", FILL_SMALL, 1, 3, 0},
            {"attn.proj.weight", FILL_NORMAL, 2, 1, 1}, {"attn.proj.bias", FILL_SMALL, 1, 1, 0},
            {"norm2.weight", FILL_ONES, 1, 1, 0},      {"norm2.bias", FILL_SMALL, 1, 1, 0},
            {"mlp.fc1.weight", FILL_NORMAL, 2, MLP_RATIO, 1},  {"mlp.fc1.bias", FILL_SMALL, 1, MLP_RATIO, 0},
            {"mlp.fc2.weight", FILL_NORMAL, 2, 1, MLP_RATIO},  {"mlp.fc2.bias", FILL_SMALL, 1, 1, 0},
        };
        for (size_t p = 0; p < sizeof parts / sizeof parts[0]; p++) {
            snprintf(name, sizeof name, "blocks.%d.%s", b, parts[p].suffix);
            add(name, parts[p].fill, parts[p].rank, d * parts[p].rows_mult, d * parts[p].cols_mult, 0, 0);
        }
    }
    add("norm.weight", FILL_ONES, 1, d, 0, 0, 0);
    add("norm.bias", FILL_SMALL, 1, d, 0, 0, 0);
    add("head.weight", FILL_NORMAL, 2, CLASSES, d, 0, 0);
    add("head.bias", FILL_SMALL, 1, CLASSES, 0, 0, 0);
}

/* ---- writers ---------------------------------------------------------------------------------- */

static int write_floats(FILE *f, const tensor_desc *t) {
    enum { CHUNK = 4096 };
    float buf[CHUNK];
    int64_t left = numel(t);
    while (left > 0) {
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        for (size_t i = 0; i < n; i++) {
            switch (t->fill) {
            case FILL_ONES: buf[i] = 1.0f; break;
            case FILL_SMALL: buf[i] = 0.01f * rng_normal(); break;
            default: buf[i] = 0.02f * rng_normal(); break;
            }
        }
        if (fwrite(buf, sizeof(float), n, f) != n) return -1;
        left -= (int64_t)n;
    }
    return 0;
}

/* JSON header: every tensor F32, data_offsets relative to the end of the header, in list order. */
static char *safetensors_header(const char *arch, size_t *len) {
    size_t cap = 64 * 1024, used = 0;
    char *h = malloc(cap);
    if (!h) return NULL;
    used += (size_t)snprintf(h + used, cap - used, "{\"__metadata__\":{\"format\":\"pt\",\"generator\":\"vitq bench/make_model %s\"}", arch);
    uint64_t offset = 0;
    for (int i = 0; i < num_tensors; i++) {
        const tensor_desc *t = &tensors[i];
        uint64_t bytes = (uint64_t)numel(t) * 4u;
        used += (size_t)snprintf(h + used, cap - used, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[", t->name);
        for (int r = 0; r < t->rank; r++)
            used += (size_t)snprintf(h + used, cap - used, "%s%lld", r ? "," : "", (long long)t->shape[r]);
        used += (size_t)snprintf(h + used, cap - used, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
                                 (unsigned long long)(offset + bytes));
        offset += bytes;
        if (used + 256 > cap) {
            free(h);
            return NULL; /* cannot happen for these architectures; refuse rather than truncate */
        }
    }
    used += (size_t)snprintf(h + used, cap - used, "}");
    while (used % 8) h[used++] = ' '; /* keep the data 8-byte aligned, as the reference writer does */
    *len = used;
    return h;
}

static int write_le64(FILE *f, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    return fwrite(b, 1, 8, f) == 8 ? 0 : -1;
}

static int write_config(const char *dir, const arch_desc *a) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "{\n \"architecture\": \"%s\",\n \"num_classes\": %d,\n \"num_features\": %d,\n"
            " \"global_pool\": \"token\",\n"
            " \"model_args\": {\"embed_dim\": %d, \"depth\": %d, \"num_heads\": %d, \"patch_size\": %d,"
            " \"img_size\": %d, \"in_chans\": %d, \"mlp_ratio\": %d.0},\n"
            " \"pretrained_cfg\": {\n  \"input_size\": [%d, %d, %d],\n"
            "  \"mean\": [%.3f, %.3f, %.3f],\n  \"std\": [%.3f, %.3f, %.3f],\n"
            "  \"crop_pct\": 0.875,\n  \"interpolation\": \"bicubic\",\n  \"num_classes\": %d\n }\n}\n",
            a->name, CLASSES, a->dim, a->dim, DEPTH, a->heads, PATCH, IMAGE_SIZE, CHANNELS, MLP_RATIO, CHANNELS,
            IMAGE_SIZE, IMAGE_SIZE, (double)mean_rgb[0], (double)mean_rgb[1], (double)mean_rgb[2],
            (double)std_rgb[0], (double)std_rgb[1], (double)std_rgb[2], CLASSES);
    return fclose(f) == 0 ? 0 : -1;
}

static int make_model(const char *dir, const char *arch_name) {
    const arch_desc *a = NULL;
    for (size_t i = 0; i < sizeof archs / sizeof archs[0]; i++)
        if (strcmp(archs[i].name, arch_name) == 0) a = &archs[i];
    if (!a) {
        fprintf(stderr, "make_model: unknown architecture '%s'\n", arch_name);
        return 2;
    }
    list_tensors(a->dim);
    size_t hlen = 0;
    char *header = safetensors_header(a->name, &hlen);
    if (!header) {
        fprintf(stderr, "make_model: out of memory\n");
        return 1;
    }
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path); /* a rename, so an interrupted run leaves no half model */
    FILE *f = fopen(tmp, "wb");
    int bad = !f;
    if (!bad) bad = write_le64(f, hlen) || fwrite(header, 1, hlen, f) != hlen;
    for (int i = 0; !bad && i < num_tensors; i++) bad = write_floats(f, &tensors[i]) != 0;
    if (f && fclose(f) != 0) bad = 1;
    free(header);
    if (bad || rename(tmp, path) != 0 || write_config(dir, a) != 0) {
        perror(path);
        return 1;
    }
    return 0;
}

/* Uniform pixels in [0,1], normalised with the ImageNet statistics as a loader would: the values
 * span the same range as real inputs. */
static int make_images(const char *path, long n) {
    char header[128];
    int len = snprintf(header, sizeof header, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %d, %d, %d), }",
                       n, CHANNELS, IMAGE_SIZE, IMAGE_SIZE);
    while ((len + 10 + 1) % 64) header[len++] = ' ';
    header[len++] = '\n';
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return 1;
    }
    const unsigned char magic[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(len & 0xff),
                                     (unsigned char)(len >> 8)};
    int bad = fwrite(magic, 1, 10, f) != 10 || fwrite(header, 1, (size_t)len, f) != (size_t)len;
    enum { PLANE = IMAGE_SIZE * IMAGE_SIZE };
    static float plane[PLANE];
    for (long i = 0; !bad && i < n; i++)
        for (int c = 0; !bad && c < CHANNELS; c++) {
            for (int p = 0; p < PLANE; p++) plane[p] = (rng_uniform() - mean_rgb[c]) / std_rgb[c];
            bad = fwrite(plane, sizeof(float), PLANE, f) != PLANE;
        }
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        perror(path);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: make_model model OUT_DIR ARCH [SEED] | make_model images OUT.npy N [SEED]\n");
        return 2;
    }
    rng_state = argc > 4 ? strtoull(argv[4], NULL, 0) : 0;
    rng_state = rng_state * 0x9E3779B97F4A7C15ULL + 0x1234567ULL; /* never zero, seeds spread apart */
    if (strcmp(argv[1], "model") == 0) return make_model(argv[2], argv[3]);
    if (strcmp(argv[1], "images") == 0) {
        long n = strtol(argv[3], NULL, 10);
        if (n <= 0) {
            fprintf(stderr, "make_model: bad image count '%s'\n", argv[3]);
            return 2;
        }
        return make_images(argv[2], n);
    }
    fprintf(stderr, "make_model: unknown command '%s'\n", argv[1]);
    return 2;
}

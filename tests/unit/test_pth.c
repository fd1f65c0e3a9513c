/* PyTorch checkpoints (io/pth.h, io/pickle.h, io/zip.h): every model fixture's model.pth gives logits
 * bit-identical to its model.safetensors, nested and training checkpoints load, strided / F16 / BF16 /
 * shared-storage tensors read back exactly, and every hostile file of tests/fixtures/pth is refused
 * with its exact status and message. Fixtures: tests/reference/make_pth_fixtures.py. */
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "harness.h"
#include "io/pth.h"
#include "model_fixtures.h"

#define PTH "tests/fixtures/pth/"

static const char *const model_fixtures[] = {"odd-vit-hf",        "odd-deit-timm-meta", "odd-vit-timm-tanh-bf16",
                                             "odd-deit-hf",       "odd-swin-hf",        "odd-swin-timm-new",
                                             "odd-swin-timm-old"};

static uint8_t *read_all(const char *path, size_t *n) {
    vitq_allocator a;
    uint8_t *buf = NULL;
    vitq_i_allocator_resolve(NULL, &a);
    if (vitq_i_read_file(&a, path, &buf, n) != VITQ_OK) return NULL;
    return buf;
}

static char *read_text(const char *path) {
    size_t n;
    uint8_t *buf = read_all(path, &n);
    if (!buf) return NULL;
    char *s = malloc(n + 1);
    memcpy(s, buf, n);
    s[n] = '\0';
    free(buf); /* vitq_i_read_file's default allocator is malloc-compatible (posix_memalign) */
    return s;
}

static void expect_message(const char *needle) {
    if (!strstr(vitq_last_error(), needle)) {
        printf("    message '%s' does not contain '%s'\n", vitq_last_error(), needle);
        harness_check_failures++;
    }
}

/* Logits of `path` (options `o`, may be NULL) on fixture `fixture`'s input.npy; NULL if it fails. */
static float *logits_of(const char *path, const vitq_model_options *o, const char *fixture, size_t *count) {
    char in[256];
    uint64_t rows = 0, cols = 0;
    snprintf(in, sizeof in, FIXTURES "%s/input.npy", fixture);
    float *input = load_npy_f32(in, &rows, &cols);
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(path, o, &m), VITQ_OK);
    float *out = NULL;
    if (m && input) {
        vitq_model_info info;
        vitq_model_info_init(&info);
        CHECK_STATUS(vitq_model_get_info(m, &info), VITQ_OK);
        *count = (size_t)rows * (size_t)info.num_classes;
        out = malloc(*count * sizeof *out);
        CHECK_STATUS(vitq_model_forward(m, input, rows, out), VITQ_OK);
    }
    vitq_model_free(m);
    free(input);
    return out;
}

/* The same network from `pth` (options o) and from the folder's model.safetensors: identical bits. */
static void expect_same_logits(const char *fixture, const char *pth, const vitq_model_options *o) {
    char folder[256];
    size_t n1 = 0, n2 = 0;
    snprintf(folder, sizeof folder, FIXTURES "%s", fixture);
    float *want = logits_of(folder, NULL, fixture, &n1);
    float *got = logits_of(pth, o, fixture, &n2);
    CHECK(want && got && n1 == n2 && n1 > 0);
    if (want && got && n1 == n2 && memcmp(want, got, n1 * sizeof *got) != 0) {
        printf("    %s: logits differ from %s's model.safetensors\n", pth, fixture);
        harness_check_failures++;
    }
    free(want), free(got);
}

/* odd-deit-timm-meta keeps its hyper-parameters in the safetensors __metadata__, which a .pth has
 * not: the same values as options. */
static void meta_options(vitq_model_options *o) {
    vitq_model_options_init(o);
    o->num_heads = 5;
    o->layer_norm_eps = 1e-6f;
    o->gelu = VITQ_GELU_ERF;
    o->num_mean = o->num_std = 3;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(o->mean, mean, sizeof mean);
    memcpy(o->std, std, sizeof std);
}

static void test_model_fixtures(void) {
    for (size_t i = 0; i < sizeof model_fixtures / sizeof model_fixtures[0]; i++) {
        char pth[256];
        snprintf(pth, sizeof pth, FIXTURES "%s/model.pth", model_fixtures[i]);
        vitq_model_options o;
        meta_options(&o);
        int meta = strcmp(model_fixtures[i], "odd-deit-timm-meta") == 0;
        expect_same_logits(model_fixtures[i], pth, meta ? &o : NULL);
    }
}

/* Checkpoints around a state dict ({"model": sd, ...}, a training checkpoint with optimizer state and
 * argparse args) in a folder without config: the fixture's config.json given as an option. */
static void test_nested_checkpoints(void) {
    const char *files[] = {PTH "nested_model.pth", PTH "train_state_dict.pth"};
    char *config = read_text(FIXTURES "odd-vit-timm-tanh-bf16/config.json");
    CHECK(config != NULL);
    for (size_t i = 0; config && i < 2; i++) {
        vitq_model_options o;
        vitq_model_options_init(&o);
        o.config_json = config;
        expect_same_logits("odd-vit-timm-tanh-bf16", files[i], &o);
    }
    free(config);
}

static int copy_file(const char *from, const char *to) {
    size_t n;
    uint8_t *buf = read_all(from, &n);
    if (!buf) return 0;
    FILE *f = fopen(to, "wb");
    int ok = f && fwrite(buf, 1, n, f) == n;
    if (f) ok &= fclose(f) == 0;
    free(buf);
    return ok;
}

/* A folder holding only pytorch_model.bin (then only model.pth) and the config files loads. */
static void test_folder_names(void) {
    char dir[] = "/tmp/vitq_pth_XXXXXX", path[256], bin[256], cfg[256], pre[256];
    if (!mkdtemp(dir)) {
        CHECK(!"mkdtemp failed");
        return;
    }
    snprintf(bin, sizeof bin, "%s/pytorch_model.bin", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    snprintf(pre, sizeof pre, "%s/preprocessor_config.json", dir);
    CHECK(copy_file(FIXTURES "odd-vit-hf/model.pth", bin));
    CHECK(copy_file(FIXTURES "odd-vit-hf/config.json", cfg));
    CHECK(copy_file(FIXTURES "odd-vit-hf/preprocessor_config.json", pre));
    expect_same_logits("odd-vit-hf", dir, NULL);
    snprintf(path, sizeof path, "%s/model.pth", dir);
    CHECK(rename(bin, path) == 0);
    expect_same_logits("odd-vit-hf", dir, NULL);
    unlink(path), unlink(cfg), unlink(pre);
    /* An empty folder names the file it looked for first. */
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(dir, NULL, &m), VITQ_ERR_IO);
    expect_message("model.safetensors");
    CHECK(rmdir(dir) == 0);
}

static const vitq_i_st_tensor *find(const vitq_i_safetensors *st, const char *name, vitq_i_elem elem,
                                    const char *shape) {
    const vitq_i_st_tensor *t = vitq_i_st_find(st, name);
    char got[64];
    if (!t) {
        printf("    no tensor '%s'\n", name);
        harness_check_failures++;
        return NULL;
    }
    vitq_i_shape_str(&t->array, got, sizeof got);
    if (t->array.elem != elem || strcmp(got, shape) != 0) {
        printf("    '%s': %s %s, expected %s %s\n", name, vitq_i_elem_name(t->array.elem), got,
               vitq_i_elem_name(elem), shape);
        harness_check_failures++;
        return NULL;
    }
    return t;
}

static void check_floats(const vitq_i_safetensors *st, const char *name, vitq_i_elem elem, const char *shape,
                         const float *want, size_t n) {
    const vitq_i_st_tensor *t = find(st, name, elem, shape);
    if (!t) return;
    float got[16];
    CHECK(vitq_i_array_count(&t->array) == n && n <= 16);
    CHECK_STATUS(vitq_i_st_to_f32(st, t, got), VITQ_OK);
    if (memcmp(got, want, n * sizeof *got) != 0) {
        printf("    '%s': values differ\n", name);
        harness_check_failures++;
    }
}

/* Strided, F16, BF16, shared-storage, tied, Parameter, I64, expanded, rank-0 and empty tensors. */
static void check_strided(const char *file) {
    size_t n;
    uint8_t *buf = read_all(file, &n);
    CHECK(buf != NULL);
    if (!buf) return;
    vitq_i_safetensors st;
    CHECK(vitq_i_pth_detect(buf, n) == 1);
    CHECK_STATUS(vitq_i_pth_parse(NULL, buf, n, file, &st), VITQ_OK);
    CHECK(st.count == 13 && vitq_i_st_find(&st, "steps") == NULL && st.meta_count == 0);
    const float transposed[12] = {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11};
    check_floats(&st, "transposed", VITQ_I_ELEM_F32, "[4,3]", transposed, 12);
    check_floats(&st, "half", VITQ_I_ELEM_F16, "[3]", (const float[]){1, -2, 0.5f}, 3);
    check_floats(&st, "bf16", VITQ_I_ELEM_BF16, "[4]", (const float[]){1, -3, 0.25f, 7}, 4);
    check_floats(&st, "view_a", VITQ_I_ELEM_F32, "[3]", (const float[]){2, 3, 4}, 3);
    check_floats(&st, "view_b", VITQ_I_ELEM_F32, "[4]", (const float[]){6, 7, 8, 9}, 4);
    check_floats(&st, "param", VITQ_I_ELEM_F32, "[1,2]", (const float[]){4, 5}, 2);
    check_floats(&st, "tied_a", VITQ_I_ELEM_F32, "[2]", (const float[]){1.5f, -2.5f}, 2);
    check_floats(&st, "tied_b", VITQ_I_ELEM_F32, "[2]", (const float[]){1.5f, -2.5f}, 2);
    check_floats(&st, "expanded", VITQ_I_ELEM_F32, "[4]", (const float[]){9, 9, 9, 9}, 4);
    check_floats(&st, "scalar", VITQ_I_ELEM_F32, "[]", (const float[]){2}, 1);
    check_floats(&st, "every_other", VITQ_I_ELEM_F32, "[4]", (const float[]){0, 3, 6, 9}, 4);
    const vitq_i_st_tensor *e = find(&st, "empty", VITQ_I_ELEM_F32, "[0,3]");
    CHECK(e && e->array.nbytes == 0);
    const vitq_i_st_tensor *idx = find(&st, "index", VITQ_I_ELEM_I64, "[2,2]");
    if (idx) {
        int64_t v[4];
        memcpy(v, idx->array.data, sizeof v);
        CHECK(v[0] == 0 && v[1] == 3 && v[2] == 2 && v[3] == 1);
    }
    /* Contiguous tensors are views into the file; strided ones copies in the owned block. */
    const vitq_i_st_tensor *a = vitq_i_st_find(&st, "view_a"), *b = vitq_i_st_find(&st, "view_b"),
                           *t = vitq_i_st_find(&st, "transposed");
    CHECK(a && a->array.data > buf && a->array.data < buf + n);
    CHECK(a && b && b->array.data == a->array.data + 4 * sizeof(float)); /* one storage, offsets 2 and 6 */
    CHECK(t && st.owned && t->array.data >= st.owned);
    vitq_i_st_free(&st);
    CHECK(st.tensors == NULL && st.owned == NULL);
    free(buf);
}

static void test_strided_tensors(void) {
    check_strided(PTH "strided.pth");
    check_strided(PTH "strided_p4.pth"); /* pickle protocol 4: FRAME, MEMOIZE, SHORT_BINUNICODE */
}

/* Hand-made archives torch 1.13 reads: plain and zip64 records. */
static void test_handmade_archives(void) {
    const char *files[] = {PTH "ok_handmade.pth", PTH "zip64.pth"};
    for (int i = 0; i < 2; i++) {
        size_t n;
        uint8_t *buf = read_all(files[i], &n);
        vitq_i_safetensors st;
        CHECK(buf != NULL);
        if (!buf) continue;
        CHECK_STATUS(vitq_i_pth_parse(NULL, buf, n, files[i], &st), VITQ_OK);
        check_floats(&st, "w", VITQ_I_ELEM_F32, "[4]", (const float[]){1, 2, 3, 4}, 4);
        vitq_i_st_free(&st);
        free(buf);
    }
}

/* One dict object under two keys ({"model": sd, "model_ema": sd}): the first state-dict key wins. */
static void test_shared_dict(void) {
    size_t n;
    uint8_t *buf = read_all(PTH "shared_dict.pth", &n);
    vitq_i_safetensors st;
    CHECK(buf != NULL);
    if (!buf) return;
    CHECK_STATUS(vitq_i_pth_parse(NULL, buf, n, "shared_dict.pth", &st), VITQ_OK);
    CHECK(st.count == 2);
    check_floats(&st, "a", VITQ_I_ELEM_F32, "[2]", (const float[]){1, 2}, 2);
    CHECK(find(&st, "b", VITQ_I_ELEM_I64, "[1]") != NULL);
    vitq_i_st_free(&st);
    free(buf);
}

/* What torch 2.x writes beyond 1.13: .format_version, .storage_alignment, .data/serialization_id
 * records; an UntypedStorage read through _rebuild_tensor_v3 with a dtype (uint16, PyTorch >= 2.3);
 * _rebuild_tensor_v2's 7th argument, an empty metadata dict. */
static void test_torch2_layout(void) {
    size_t n;
    uint8_t *buf = read_all(PTH "torch2_layout.pth", &n);
    vitq_i_safetensors st;
    CHECK(buf != NULL);
    if (!buf) return;
    CHECK_STATUS(vitq_i_pth_parse(NULL, buf, n, "torch2_layout.pth", &st), VITQ_OK);
    check_floats(&st, "w", VITQ_I_ELEM_F32, "[2]", (const float[]){1, 2}, 2);
    const vitq_i_st_tensor *t = find(&st, "u16", VITQ_I_ELEM_U16, "[3]");
    if (t) {
        uint16_t v[3];
        memcpy(v, t->array.data, sizeof v); /* storage offset 1 of [10, 20, 30, 40] */
        CHECK(v[0] == 20 && v[1] == 30 && v[2] == 40);
    }
    vitq_i_st_free(&st);
    free(buf);
}

typedef struct {
    const char *file;
    vitq_status status;
    const char *needle;
} hostile;

static const hostile hostiles[] = {
    /* code execution and objects outside a state dict */
    {"os_system.pth", VITQ_ERR_UNSAFE,
     "pickle global 'os.system' is not allowed in a state dict: vitq never executes code from a file"},
    {"builtins_eval.pth", VITQ_ERR_UNSAFE, "pickle global 'builtins.eval' is not allowed"},
    {"torch_load.pth", VITQ_ERR_UNSAFE, "pickle global 'torch.load' is not allowed"},
    {"reduce_storage.pth", VITQ_ERR_UNSAFE, "REDUCE of 'torch.FloatStorage' is not allowed"},
    {"inst.pth", VITQ_ERR_UNSAFE, "opcode INST (0x69): builds an arbitrary object"},
    /* the pickle's structure */
    {"self_append.pth", VITQ_ERR_FORMAT,
     "offset 7: opcode APPEND (0x61): recursive reference: a list would contain itself"},
    {"tuple_cycle.pth", VITQ_ERR_FORMAT, "opcode APPEND (0x61): recursive reference: a list already placed in"},
    {"late_append.pth", VITQ_ERR_FORMAT, "offset 17: opcode APPEND (0x61): recursive reference: a list already "
                                         "placed in another container receives items"},
    {"unset_memo.pth", VITQ_ERR_FORMAT, "offset 3: opcode BINGET (0x68): memo entry 5 is not set"},
    {"huge_memo.pth", VITQ_ERR_FORMAT, "memo index 4294967280 is out of range"},
    {"deep_marks.pth", VITQ_ERR_FORMAT, "MARKs nested deeper than 256"},
    {"deep_tuples.pth", VITQ_ERR_FORMAT, "containers nested deeper than 64"},
    {"stack_underflow.pth", VITQ_ERR_FORMAT, "offset 2: opcode APPEND (0x61): stack underflow"},
    {"no_stop.pth", VITQ_ERR_TRUNCATED, "without STOP"},
    {"bad_opcode.pth", VITQ_ERR_FORMAT, "offset 3: opcode unknown (0xff): not an opcode a torch.save state dict uses"},
    /* tensors and storages */
    {"storage_offset.pth", VITQ_ERR_FORMAT, "tensor 'w' (data.pkl offset 134): size and stride at storage offset 100"},
    {"stride_oob.pth", VITQ_ERR_FORMAT, "reach element 4 of a storage of 4 elements (F32): outside the storage"},
    {"storage_size.pth", VITQ_ERR_FORMAT,
     "storage '0' declares 5 elements of F32, its zip entry archive/data/0 holds 16"},
    {"missing_storage.pth", VITQ_ERR_FORMAT, "storage '7' has no zip entry archive/data/7"},
    {"expand_bomb.pth", VITQ_ERR_FORMAT, "copied into more bytes than the file holds"},
    /* which dict */
    {"dup_key.pth", VITQ_ERR_FORMAT, "state dict key 'w' appears twice"},
    {"int_key.pth", VITQ_ERR_FORMAT, "state dict key 1 is not a string (int)"},
    {"nested_sd.pth", VITQ_ERR_FORMAT, "key 'sub' holds a dict of tensors: nested state dicts are not flattened"},
    {"not_dict.pth", VITQ_ERR_FORMAT, "the saved object is a list, not a dict of tensors"},
    {"no_state_dict.pth", VITQ_ERR_FORMAT, "(top-level keys: 'epoch', 'note', 'optimizer')"},
    /* the archive */
    {"legacy.pth", VITQ_ERR_UNSUPPORTED,
     "torch.save legacy format (PyTorch < 1.6 or _use_new_zipfile_serialization=False): re-save it with a "
     "current torch.save, or convert to safetensors"},
    {"truncated.pth", VITQ_ERR_TRUNCATED, "no zip end-of-central-directory record"},
    {"deflate_pkl.pth", VITQ_ERR_UNSUPPORTED, "zip entry 'archive/data.pkl' is compressed (method 8, deflate)"},
    {"zip_bomb.pth", VITQ_ERR_FORMAT, "zip entry 'archive/data/0': declared size runs past the start of the central"},
    {"zip64_bomb.pth", VITQ_ERR_FORMAT,
     "zip entry 'archive/data/0': declared size runs past the start of the central directory (size, data offset) "
     "(4611686018427387904"},
    {"big_endian.pth", VITQ_ERR_UNSUPPORTED, "big-endian (byteorder entry 'big')"},
    {"neg_bit.pth", VITQ_ERR_UNSUPPORTED, "tensor metadata sets a flag (a conj or neg bit)"},
    {"many_flags.pth", VITQ_ERR_FORMAT, "tensor metadata has 9 entries (at most 8)"},
    {"repeated_key.pth", VITQ_ERR_FORMAT, "state dict keys repeat: one key string ('kkkk"},
    {"torchscript.pth", VITQ_ERR_UNSUPPORTED, "a TorchScript archive (torch.jit.save), not a torch.save state dict"},
};

static void test_hostile_files(void) {
    for (size_t i = 0; i < sizeof hostiles / sizeof hostiles[0]; i++) {
        char path[256];
        size_t n;
        snprintf(path, sizeof path, PTH "%s", hostiles[i].file);
        uint8_t *buf = read_all(path, &n);
        if (!buf) {
            printf("    missing fixture %s\n", path);
            harness_check_failures++;
            continue;
        }
        vitq_i_safetensors st;
        memset(&st, 0x5A, sizeof st);
        vitq_status got = vitq_i_pth_parse(NULL, buf, n, path, &st);
        if (got != hostiles[i].status) {
            printf("    %s: %s, expected %s (%s)\n", path, vitq_status_name(got), vitq_status_name(hostiles[i].status),
                   vitq_last_error());
            harness_check_failures++;
        }
        expect_message(hostiles[i].needle);
        expect_message(path); /* every message names the file */
        CHECK(got == VITQ_OK || (st.tensors == NULL && st.strings == NULL && st.owned == NULL));
        vitq_i_st_free(&st);
        free(buf);
    }
}

/* The public API gives the same answers, whatever the file is called. */
static void test_through_api(void) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(PTH "os_system.pth", NULL, &m), VITQ_ERR_UNSAFE);
    expect_message("'os.system'");
    CHECK(m == NULL);
    CHECK(strcmp(vitq_status_name(VITQ_ERR_UNSAFE), "VITQ_ERR_UNSAFE") == 0);
    CHECK(strstr(vitq_status_string(VITQ_ERR_UNSAFE), "code execution") != NULL);
    CHECK_STATUS(vitq_model_load_file(PTH "legacy.pth", NULL, &m), VITQ_ERR_UNSUPPORTED);
    expect_message("legacy format");
    size_t n;
    uint8_t *buf = read_all(FIXTURES "odd-vit-hf/model.pth", &n);
    char *config = read_text(FIXTURES "odd-vit-hf/config.json");
    CHECK(buf && config);
    if (buf && config) {
        vitq_model_options o;
        vitq_model_options_init(&o);
        o.config_json = config;
        CHECK_STATUS(vitq_model_load_memory(buf, n, "weights.bin", &o, &m), VITQ_OK);
        vitq_model_free(m);
    }
    free(buf), free(config);
}

static void test_detect(void) {
    uint8_t tar[512];
    memset(tar, 0, sizeof tar);
    memcpy(tar, "sys_info", 8);
    memcpy(tar + 257, "ustar", 5);
    CHECK(vitq_i_pth_detect(tar, sizeof tar) == 2);
    vitq_i_safetensors st;
    CHECK_STATUS(vitq_i_pth_parse(NULL, tar, sizeof tar, "old.tar", &st), VITQ_ERR_UNSUPPORTED);
    expect_message("legacy format");
    CHECK(vitq_i_pth_detect((const uint8_t *)"PK\3\4", 4) == 1);
    CHECK(vitq_i_pth_detect((const uint8_t *)"PK\3", 3) == 0);
    CHECK(vitq_i_pth_detect((const uint8_t *)"\x80\x02\x8a\x0a", 4) == 0); /* magic cut short */
    CHECK(vitq_i_pth_detect(NULL, 0) == 0);
    size_t n;
    uint8_t *safetensors = read_all(FIXTURES "odd-vit-hf/model.safetensors", &n);
    CHECK(safetensors && vitq_i_pth_detect(safetensors, n) == 0);
    free(safetensors);
    CHECK_STATUS(vitq_i_pth_parse(NULL, (const uint8_t *)"{}", 2, "x.pth", &st), VITQ_ERR_FORMAT);
    expect_message("not a torch.save zip archive");
}

/* Every proper prefix of a valid archive fails cleanly (no crash, no leak under ASan). */
static void test_every_truncation(void) {
    size_t n;
    uint8_t *buf = read_all(PTH "ok_handmade.pth", &n);
    CHECK(buf != NULL);
    int accepted = 0;
    for (size_t k = 0; buf && k < n; k++) {
        uint8_t *cut = malloc(k ? k : 1);
        memcpy(cut, buf, k);
        vitq_i_safetensors st;
        vitq_status got = vitq_i_pth_parse(NULL, cut, k, "cut.pth", &st);
        accepted += got == VITQ_OK;
        vitq_i_st_free(&st);
        free(cut);
    }
    CHECK(accepted == 0);
    free(buf);
}

/* With the k-th allocation failing, for every k: VITQ_ERR_OUT_OF_MEMORY and nothing leaked. */
static void oom_sweep(const char *file) {
    size_t n;
    uint8_t *buf = read_all(file, &n);
    CHECK(buf != NULL);
    if (!buf) return;
    counting c = {0, 0, -1, NULL, 0, 0};
    vitq_allocator a = {sizeof a, count_alloc, count_free, &c};
    vitq_i_safetensors st;
    CHECK_STATUS(vitq_i_pth_parse(&a, buf, n, file, &st), VITQ_OK);
    vitq_i_st_free(&st);
    long total = c.total;
    CHECK(total > 3 && c.live == 0);
    for (long k = 0; k < total; k++) {
        counting f = {0, 0, k, NULL, 0, 0};
        vitq_allocator fa = {sizeof fa, count_alloc, count_free, &f};
        vitq_status got = vitq_i_pth_parse(&fa, buf, n, file, &st);
        if (got != VITQ_ERR_OUT_OF_MEMORY || f.live != 0) {
            printf("    %s: allocation %ld failing gave %s, %ld blocks live\n", file, k, vitq_status_name(got), f.live);
            harness_check_failures++;
        }
        vitq_i_st_free(&st);
    }
    free(buf);
}

static void test_allocation_failures(void) {
    oom_sweep(PTH "strided.pth");
    oom_sweep(PTH "train_state_dict.pth");
}

int main(void) {
    RUN(test_model_fixtures);
    RUN(test_nested_checkpoints);
    RUN(test_folder_names);
    RUN(test_strided_tensors);
    RUN(test_handmade_archives);
    RUN(test_torch2_layout);
    RUN(test_shared_dict);
    RUN(test_hostile_files);
    RUN(test_through_api);
    RUN(test_detect);
    RUN(test_every_truncation);
    RUN(test_allocation_failures);
    HARNESS_EXIT();
}

/* torchvision checkpoints (tests/fixtures/models/tv-*, made by tests/reference/make_torchvision_fixtures.py
 * from real torchvision modules): golden logits of VisionTransformer with and without its
 * representation layer (pre_logits) and of SwinTransformer; the representation layer as a layer of
 * the network (backward against finite differences, calibration, save, reload, integer execution);
 * and the loader's messages for files that almost load: renamed tensors, lucidrains-style attention,
 * flattened relative position indices, missing biases, non-finite weights. */
#include <stdint.h>

#include "api/model.h"
#include "grad/backward.h"
#include "model/weights.h"
#include "model_fixtures.h"
#include "quant/points.h"

static const float imagenet_mean[3] = {0.485f, 0.456f, 0.406f}, imagenet_std[3] = {0.229f, 0.224f, 0.225f};

/* A state dict states neither heads, image size nor normalisation: the options do. */
static vitq_model_options tv_options(int heads, int image_size) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.num_heads = heads;
    o.image_size = image_size;
    o.num_mean = o.num_std = 3;
    memcpy(o.mean, imagenet_mean, sizeof imagenet_mean);
    memcpy(o.std, imagenet_std, sizeof imagenet_std);
    return o;
}

static vitq_model_options options_for(const char *fixture) {
    return strstr(fixture, "swin") ? tv_options(0, 32) : tv_options(3, 0);
}

/* ---- golden logits: check_model_golden (model_fixtures.h) ------------------------------------- */

static vitq_model *load_fixture(const char *fixture, const char *file) {
    char path[256];
    vitq_model_options o = options_for(fixture);
    vitq_model *m = NULL;
    snprintf(path, sizeof path, FIXTURES "%s/%s", fixture, file);
    CHECK_STATUS(vitq_model_load_file(path, &o, &m), VITQ_OK);
    return m;
}

static vitq_model_info info_of(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    return i;
}

static void test_vit(void) {
    vitq_model *m = load_fixture("tv-vit", "model.safetensors");
    if (!m) return;
    check_model_golden("tv-vit", m);
    vitq_model_info i = info_of(m);
    CHECK(i.layout == VITQ_LAYOUT_TORCHVISION && i.arch == VITQ_ARCH_VIT);
    CHECK(i.representation_size == 0);
    CHECK(i.embed_dim == 48 && i.depth == 2 && i.num_heads == 3 && i.mlp_dim == 96 && i.num_classes == 5);
    CHECK(i.num_tokens == 17 && i.image_size == 32 && i.patch_size == 8);
    CHECK(i.num_params == 48389); /* every value of torchvision's state dict */
    vitq_source src;
    CHECK_STATUS(vitq_model_hparam_source(m, VITQ_HPARAM_LAYER_NORM_EPS, &src), VITQ_OK);
    CHECK(src == VITQ_SOURCE_LAYOUT && i.layer_norm_eps == 1e-6f); /* partial(nn.LayerNorm, eps=1e-6) */
    CHECK(i.gelu == VITQ_GELU_ERF);
    vitq_model_free(m);
}

static void test_vit_pre_logits(void) {
    vitq_model *m = load_fixture("tv-vit-prelogits", "model.safetensors");
    if (!m) return;
    check_model_golden("tv-vit-prelogits", m);
    vitq_model_info i = info_of(m);
    CHECK(i.layout == VITQ_LAYOUT_TORCHVISION && i.representation_size == 40 && i.num_classes == 5);
    CHECK(i.num_params == 50309);
    vitq_model_free(m);
}

static void test_swin(void) {
    vitq_model *m = load_fixture("tv-swin", "model.safetensors");
    if (!m) return;
    check_model_golden("tv-swin", m);
    vitq_model_info i = info_of(m);
    CHECK(i.layout == VITQ_LAYOUT_TORCHVISION && i.arch == VITQ_ARCH_SWIN && i.representation_size == 0);
    CHECK(i.num_stages == 2 && i.stage_grid[0] == 8 && i.stage_grid[1] == 4 && i.stage_window[0] == 4 &&
          i.stage_window[1] == 4 && i.stage_heads[0] == 2 && i.stage_heads[1] == 4 && i.stage_dim[1] == 48);
    CHECK(i.num_params == 55641 - 4 * 256); /* the state dict but its 4 relative position index buffers */
    CHECK(i.layer_norm_eps == 1e-5f);
    vitq_model_free(m);
}

/* torchvision's state dicts as torch.save writes them (io/pth.c). */
static void test_pth(void) {
    static const char *const fixtures[] = {"tv-vit", "tv-vit-prelogits", "tv-swin"};
    for (int k = 0; k < 3; k++) {
        vitq_model *m = load_fixture(fixtures[k], "model.pth");
        if (!m) continue;
        check_model_golden(fixtures[k], m);
        CHECK(info_of(m).layout == VITQ_LAYOUT_TORCHVISION);
        vitq_model_free(m);
    }
}

/* ---- a fixture's safetensors rebuilt with edits -------------------------------------------------- */

typedef struct edit {
    const char *name;      /* tensor (after renaming); NULL ends a list */
    int drop;
    const char *shape;     /* same bytes, another shape ("[625]") */
    long element;          /* >= 0: F32 element set to `value` */
    float value;
    uint64_t rows, cols;   /* > 0: replaced by an F32 [rows, cols] tensor of small deterministic values */
} edit;

typedef struct rebuild_spec {
    const char *prefix;          /* prepended to every name */
    const char *from, *to;       /* every name containing `from` has it replaced by `to` */
    const char *from2, *to2;
    const edit *edits;
    const char *add;             /* an extra F32 [4] tensor */
} rebuild_spec;

static void rename_tensor(const rebuild_spec *r, const char *in, char *out, size_t cap) {
    char tmp[256];
    snprintf(out, cap, "%s%s", r->prefix ? r->prefix : "", in);
    const char *from[2] = {r->from, r->from2}, *to[2] = {r->to, r->to2};
    for (int k = 0; k < 2; k++) {
        char *at = from[k] ? strstr(out, from[k]) : NULL;
        if (!at) continue;
        snprintf(tmp, sizeof tmp, "%.*s%s%s", (int)(at - out), out, to[k], at + strlen(from[k]));
        snprintf(out, cap, "%s", tmp);
    }
}

/* Bytes of fixture `name`'s model.safetensors with the edits; NULL when the fixture is missing. */
static uint8_t *rebuild_file(const char *name, const rebuild_spec *r, size_t *size) {
    char path[256];
    vitq_allocator a;
    uint8_t *file;
    size_t n;
    vitq_i_safetensors st;
    vitq_i_allocator_resolve(NULL, &a);
    snprintf(path, sizeof path, FIXTURES "%s/model.safetensors", name);
    if (vitq_i_read_file(&a, path, &file, &n) != VITQ_OK || vitq_i_st_parse(&a, file, n, path, &st) != VITQ_OK) {
        CHECK(0);
        return NULL;
    }
    char *header = malloc(1 << 20);
    uint8_t **blobs = calloc(st.count + 1, sizeof *blobs);
    size_t *lens = calloc(st.count + 1, sizeof *lens);
    size_t hl = (size_t)sprintf(header, "{"), offset = 0;
    for (size_t i = 0; i < st.count; i++) {
        const vitq_i_st_tensor *t = &st.tensors[i];
        char tname[256], shape[128];
        rename_tensor(r, t->name, tname, sizeof tname);
        const edit *e = NULL;
        for (const edit *x = r->edits; x && x->name; x++)
            if (!strcmp(x->name, tname)) e = x;
        if (e && e->drop) continue;
        const char *dtype = vitq_i_elem_name(t->array.elem);
        vitq_i_shape_str(&t->array, shape, sizeof shape);
        lens[i] = t->array.nbytes;
        blobs[i] = malloc(lens[i] + 1);
        memcpy(blobs[i], t->array.data, lens[i]);
        if (e && e->shape) snprintf(shape, sizeof shape, "%s", e->shape);
        if (e && e->element >= 0 && !e->rows) memcpy(blobs[i] + e->element * 4, &e->value, 4);
        if (e && e->rows) {
            free(blobs[i]);
            lens[i] = e->rows * e->cols * 4;
            blobs[i] = malloc(lens[i]);
            for (size_t k = 0; k < e->rows * e->cols; k++) {
                float v = (float)((double)((k * 7919) % 101) / 500.0 - 0.1);
                memcpy(blobs[i] + 4 * k, &v, 4);
            }
            dtype = "F32";
            snprintf(shape, sizeof shape, "[%llu,%llu]", (unsigned long long)e->rows, (unsigned long long)e->cols);
        }
        hl += (size_t)sprintf(header + hl, "\"%s\":{\"dtype\":\"%s\",\"shape\":%s,\"data_offsets\":[%zu,%zu]},", tname,
                              dtype, shape, offset, offset + lens[i]);
        offset += lens[i];
    }
    if (r->add) {
        hl += (size_t)sprintf(header + hl, "\"%s\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[%zu,%zu]},", r->add,
                              offset, offset + 16);
        offset += 16;
    }
    header[hl - 1] = '}';
    uint8_t *out = calloc(1, 8 + hl + offset);
    uint64_t h = hl;
    memcpy(out, &h, 8);
    memcpy(out + 8, header, hl);
    size_t pos = 8 + hl;
    for (size_t i = 0; i < st.count; i++) {
        if (blobs[i]) memcpy(out + pos, blobs[i], lens[i]);
        pos += blobs[i] ? lens[i] : 0;
        free(blobs[i]);
    }
    *size = 8 + hl + offset; /* an added tensor: zeros after the others */
    free(blobs), free(lens), free(header);
    vitq_i_st_free(&st);
    vitq_i_free(&a, file);
    return out;
}

/* Load fixture `name` rebuilt by r with options o: status `want` and each needle in the message.
 * Returns the model when it loaded (the caller frees it). */
static vitq_model *expect(const char *name, const rebuild_spec *r, const vitq_model_options *o, vitq_status want,
                          const char *const *needles) {
    size_t size = 0;
    uint8_t *bytes = rebuild_file(name, r, &size);
    if (!bytes) return NULL;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_memory(bytes, size, name, o, &m), want);
    free(bytes);
    for (int k = 0; needles && needles[k]; k++)
        if (!strstr(vitq_last_error(), needles[k])) {
            printf("    message '%s' does not contain '%s'\n", vitq_last_error(), needles[k]);
            harness_check_failures++;
        }
    return m;
}

/* ---- variants of torchvision files that load --------------------------------------------------- */

/* Files saved before torchvision's version-2 MLPBlock name the MLP layers linear_1 / linear_2. */
static void test_vit_legacy_mlp_names(void) {
    rebuild_spec r = {.from = ".mlp.0.", .to = ".mlp.linear_1.", .from2 = ".mlp.3.", .to2 = ".mlp.linear_2."};
    vitq_model_options o = options_for("tv-vit");
    vitq_model *m = expect("tv-vit", &r, &o, VITQ_OK, NULL);
    if (m) check_model_golden("tv-vit", m);
    vitq_model_free(m);
}

/* DataParallel's module. prefix, on both families. */
static void test_module_prefix(void) {
    static const char *const fixtures[] = {"tv-vit-prelogits", "tv-swin"};
    for (int k = 0; k < 2; k++) {
        rebuild_spec r = {.prefix = "module."};
        vitq_model_options o = options_for(fixtures[k]);
        vitq_model *m = expect(fixtures[k], &r, &o, VITQ_OK, NULL);
        if (m) {
            check_model_golden(fixtures[k], m);
            CHECK(info_of(m).layout == VITQ_LAYOUT_TORCHVISION);
        }
        vitq_model_free(m);
    }
}

/* ---- torchvision semantics vitq does not implement ---------------------------------------------- */

static void test_swin_padding_refused(void) {
    /* torchvision pads a 10x10 map to 12x12 for window 4 (timm and HF would not run it as such) */
    vitq_model_options o = tv_options(0, 40);
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(FIXTURES "tv-swin", &o, &m), VITQ_ERR_UNSUPPORTED);
    CHECK(strstr(vitq_last_error(), "padding") != NULL);
    vitq_model_free(m);
    /* Swin V2 blocks (cosine attention) and the convolutional ViT stem are named */
    vitq_model_options so = options_for("tv-swin"), vo = options_for("tv-vit");
    rebuild_spec v2 = {.add = "features.1.0.attn.logit_scale"};
    const char *const v2_needles[] = {"features.1.0.attn.logit_scale", "Swin V2", NULL};
    vitq_model_free(expect("tv-swin", &v2, &so, VITQ_ERR_UNSUPPORTED, v2_needles));
    rebuild_spec stem = {.add = "conv_proj.conv_bn_relu_0.weight"};
    const char *const stem_needles[] = {"conv_proj.conv_bn_relu_0.weight", "convolutional stem", NULL};
    vitq_model_free(expect("tv-vit", &stem, &vo, VITQ_ERR_UNSUPPORTED, stem_needles));
}

/* ---- messages for files that almost load ------------------------------------------------------ */

static void test_renamed_tensors(void) {
    /* a timm ViT whose pos_embed is called pos_embedding: name what was not recognised */
    vitq_model_options timm;
    vitq_model_options_init(&timm);
    timm.config_json = "{\"architecture\":\"vit_custom_fixture\",\"model_args\":{\"num_heads\":2,\"act_layer\":\"gelu_tanh\"}}";
    rebuild_spec pos = {.from = "pos_embed", .to = "pos_embedding"};
    const char *const pos_needles[] = {"'pos_embed'", "1 of the file's 30 tensors are not names of a timm ViT/DeiT",
                                       "'pos_embedding'", "Closest known layout: timm ViT/DeiT", NULL};
    vitq_model_free(expect("odd-vit-timm-tanh-bf16", &pos, &timm, VITQ_ERR_MISSING_TENSOR, pos_needles));
    /* every block renamed: the first 8 of 22 and a count */
    rebuild_spec blocks = {.from = "blocks.", .to = "layers."};
    const char *const block_needles[] = {"22 of the file's 30 tensors", "'layers.0.", "(and 14 more)", NULL};
    vitq_model_free(expect("odd-vit-timm-tanh-bf16", &blocks, &timm, VITQ_ERR_MISSING_TENSOR, block_needles));
    /* torchvision: the same with its own names */
    vitq_model_options o = options_for("tv-vit");
    rebuild_spec tv = {.from = "encoder.ln.", .to = "encoder.norm."};
    const char *const tv_needles[] = {"'encoder.ln.weight'", "'encoder.norm.weight'", "'encoder.norm.bias'",
                                      "torchvision ViT", NULL};
    vitq_model_free(expect("tv-vit", &tv, &o, VITQ_ERR_MISSING_TENSOR, tv_needles));
    /* a probe key renamed: no layout detected, the closest one named */
    rebuild_spec stem = {.from = "conv_proj.", .to = "patch_proj."};
    const char *const stem_needles[] = {"unknown checkpoint layout", "Closest known layout: torchvision ViT",
                                        "'patch_proj.weight'", NULL};
    vitq_model_free(expect("tv-vit", &stem, &o, VITQ_ERR_UNSUPPORTED, stem_needles));
}

/* qkv of 3 x 64 rows in a 32-wide timm ViT: heads x head size != width */
static void test_attention_width(void) {
    vitq_model_options timm;
    vitq_model_options_init(&timm);
    timm.config_json = "{\"architecture\":\"vit_custom_fixture\",\"model_args\":{\"num_heads\":2,\"act_layer\":\"gelu_tanh\"}}";
    edit e[] = {{.name = "blocks.1.attn.qkv.weight", .rows = 192, .cols = 32, .element = -1}, {0}};
    rebuild_spec r = {.edits = e};
    const char *const needles[] = {"'blocks.1.attn.qkv.weight'", "inner width 64", "lucidrains", NULL};
    vitq_model_free(expect("odd-vit-timm-tanh-bf16", &r, &timm, VITQ_ERR_UNSUPPORTED, needles));
}

/* HF Swin with its relative position index flattened as torchvision stores it: right values load,
 * a wrong one is named. */
static void test_flattened_index(void) {
    char path[256];
    vitq_allocator a;
    uint8_t *text = NULL;
    size_t n = 0;
    vitq_i_allocator_resolve(NULL, &a);
    snprintf(path, sizeof path, FIXTURES "odd-swin-hf/config.json");
    CHECK_STATUS(vitq_i_read_file(&a, path, &text, &n), VITQ_OK);
    if (!text) return;
    char *config = malloc(n + 1);
    memcpy(config, text, n);
    config[n] = '\0';
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.config_json = config;
    o.num_mean = o.num_std = 1;
    o.mean[0] = 0.5f, o.std[0] = 0.25f;
    const char *idx = "swin.encoder.layers.0.blocks.1.attention.self.relative_position_index";
    edit flat[] = {{.name = idx, .shape = "[625]", .element = -1}, {0}};
    rebuild_spec r = {.edits = flat};
    vitq_model *m = expect("odd-swin-hf", &r, &o, VITQ_OK, NULL);
    if (m) { /* the float golden logits (the uint8 ones need the fixture's own mean/std) */
        uint64_t rows = 0, cols = 0, gr = 0, gc = 0;
        float *in = load_npy_f32(FIXTURES "odd-swin-hf/input.npy", &rows, &cols);
        float *want = load_npy_f32(FIXTURES "odd-swin-hf/golden_logits.npy", &gr, &gc);
        float *got = malloc(gr * gc * sizeof(float));
        CHECK_STATUS(vitq_model_forward(m, in, rows, got), VITQ_OK);
        golden_match("HF Swin, flattened index", got, want, gr, gc);
        free(in), free(want), free(got);
    }
    vitq_model_free(m);
    /* element 30 of the flattened index changed: I64, so the low word of entry 30 */
    int64_t bad = 3;
    float as_float;
    memcpy(&as_float, &bad, 4);
    edit wrong[] = {{.name = idx, .shape = "[625]", .element = 60, .value = as_float}, {0}};
    rebuild_spec rw = {.edits = wrong};
    const char *const needles[] = {"relative_position_index", "[1][5]", NULL};
    vitq_model_free(expect("odd-swin-hf", &rw, &o, VITQ_ERR_UNSUPPORTED, needles));
    /* the same on torchvision's own flattened index */
    vitq_model_options tv = options_for("tv-swin");
    edit tv_wrong[] = {{.name = "features.3.1.attn.relative_position_index", .element = 2, .value = as_float}, {0}};
    rebuild_spec rt = {.edits = tv_wrong};
    const char *const tv_needles[] = {"features.3.1.attn.relative_position_index", "[0][1]", NULL};
    vitq_model_free(expect("tv-swin", &rt, &tv, VITQ_ERR_UNSUPPORTED, tv_needles));
    free(config);
    vitq_i_free(&a, text);
}

static void test_missing_bias(void) {
    vitq_model_options o = options_for("tv-vit");
    static const char *const biases[] = {"encoder.layers.encoder_layer_1.self_attention.out_proj.bias",
                                         "encoder.layers.encoder_layer_0.mlp.3.bias", "heads.head.bias",
                                         "conv_proj.bias"};
    for (int k = 0; k < 4; k++) {
        edit e[] = {{.name = biases[k], .drop = 1, .element = -1}, {0}};
        rebuild_spec r = {.edits = e};
        const char *const needles[] = {biases[k], NULL};
        vitq_model_free(expect("tv-vit", &r, &o, VITQ_ERR_MISSING_TENSOR, needles));
    }
    /* the qkv bias may be absent (qkv_bias=False); so may the Swin patch merging's, which has none */
    edit qkv[] = {{.name = "encoder.layers.encoder_layer_0.self_attention.in_proj_bias", .drop = 1, .element = -1},
                  {0}};
    rebuild_spec rq = {.edits = qkv};
    vitq_model_free(expect("tv-vit", &rq, &o, VITQ_OK, NULL));
    vitq_model_options so = options_for("tv-swin");
    edit swin[] = {{.name = "features.3.0.mlp.0.bias", .drop = 1, .element = -1}, {0}};
    rebuild_spec rs = {.edits = swin};
    const char *const swin_needles[] = {"features.3.0.mlp.0.bias", NULL};
    vitq_model_free(expect("tv-swin", &rs, &so, VITQ_ERR_MISSING_TENSOR, swin_needles));
    /* without its representation layer, the classifier's input width is explained */
    edit pre[] = {{.name = "heads.pre_logits.weight", .drop = 1, .element = -1},
                  {.name = "heads.pre_logits.bias", .drop = 1, .element = -1}, {0}};
    rebuild_spec rp = {.edits = pre};
    const char *const pre_needles[] = {"'heads.head.weight'", "pre_logits", NULL};
    vitq_model_free(expect("tv-vit-prelogits", &rp, &o, VITQ_ERR_SHAPE, pre_needles));
}

static void test_non_finite_weights(void) {
    vitq_model_options o = options_for("tv-vit");
    const char *name = "encoder.layers.encoder_layer_1.mlp.3.weight"; /* [48, 96] */
    edit e[] = {{.name = name, .element = 2 * 96 + 5, .value = NAN}, {0}};
    rebuild_spec r = {.edits = e};
    const char *const needles[] = {name, "NaN", "[2][5]", "element 197", NULL};
    vitq_model_free(expect("tv-vit", &r, &o, VITQ_ERR_NON_FINITE, needles));
    edit inf[] = {{.name = "encoder.pos_embedding", .element = 100, .value = -INFINITY}, {0}};
    rebuild_spec ri = {.edits = inf};
    const char *const inf_needles[] = {"encoder.pos_embedding", "-infinity", "[0][2][4]", NULL};
    vitq_model_free(expect("tv-vit", &ri, &o, VITQ_ERR_NON_FINITE, inf_needles));
    /* asked for: loaded as it is, and the NaN reaches the logits */
    o.allow_non_finite = 1;
    vitq_model *m = expect("tv-vit", &r, &o, VITQ_OK, NULL);
    if (m) {
        uint64_t rows = 0, cols = 0;
        float *in = load_npy_f32(FIXTURES "tv-vit/input.npy", &rows, &cols), logits[15];
        CHECK_STATUS(vitq_model_forward(m, in, 3, logits), VITQ_OK);
        CHECK(isnan(logits[0]));
        free(in);
    }
    vitq_model_free(m);
}

/* ---- the representation layer as a layer of the network ---------------------------------------- */

static double cross_entropy(const float *logits, size_t k, int32_t target) {
    double max = logits[top_class(logits, k)], sum = 0;
    for (size_t c = 0; c < k; c++) sum += exp(logits[c] - max);
    return max + log(sum) - logits[target];
}

typedef struct nudge {
    int point;
    size_t element;
    float delta;
} nudge;

static vitq_status nudge_apply(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    nudge *p = t->ctx;
    if (point == p->point) v->data[p->element] += p->delta;
    return VITQ_OK;
}

/* The loss of the forward with element e of the final norm's input (class-token rows) moved by delta. */
static double nudged_loss(const vitq_i_net *net, const vitq_i_sites *sites, int point, const float *images, size_t n,
                          const int32_t *targets, size_t e, float delta) {
    nudge p = {point, e, delta};
    vitq_i_taps taps = {.sites = sites, .apply = nudge_apply, .ctx = &p};
    size_t k = (size_t)net->info.num_classes;
    float *logits = malloc(n * k * sizeof(float));
    CHECK_STATUS(vitq_i_net_forward(net, images, n, logits, &taps), VITQ_OK);
    double loss = 0;
    for (size_t b = 0; b < n; b++) loss += cross_entropy(logits + b * k, k, targets[b]);
    free(logits);
    return loss;
}

typedef struct last_grad {
    int block;
    size_t tokens, d;
    float *cls; /* [n][d]: d loss / d (last block's output) at the class token */
} last_grad;

static int keep_last(void *ctx, int block, size_t first, size_t n, const float *x_in, const float *d_out) {
    last_grad *g = ctx;
    (void)x_in;
    if (block == g->block) /* d_out: [n][tokens][d] of this chunk; the class token is row 0 of each image */
        for (size_t b = 0; b < n; b++) memcpy(g->cls + (first + b) * g->d, d_out + b * g->tokens * g->d, g->d * sizeof(float));
    return 0;
}

/* The backward through head, tanh and pre_logits against central differences at the final norm's
 * input (the last block's output at the class token). */
static void test_pre_logits_backward(void) {
    vitq_model *h = load_fixture("tv-vit-prelogits", "model.safetensors");
    if (!h) return;
    vitq_i_net *net = h->net;
    vitq_model_set_num_threads(h, 1);
    CHECK_STATUS(vitq_i_model_attach_rows(net), VITQ_OK);
    uint64_t rows = 0, cols = 0;
    float *images = load_npy_f32(FIXTURES "tv-vit-prelogits/input.npy", &rows, &cols);
    const size_t n = 2, d = (size_t)net->info.embed_dim;
    const int32_t targets[2] = {1, 3};
    last_grad g = {net->info.depth - 1, (size_t)net->info.num_tokens, d, calloc(n * d, sizeof(float))};
    double loss = 0;
    CHECK_STATUS(vitq_i_model_backward(net, images, n, targets, &loss, keep_last, &g), VITQ_OK);
    vitq_i_point_list list;
    CHECK_STATUS(vitq_i_points_build(&net->alloc, net, &list), VITQ_OK);
    int point = vitq_i_points_find(&list, "norm.input");
    CHECK(point >= 0 && vitq_i_points_find(&list, "pre_logits.fc.input") == point + 1);
    unsigned char *active = calloc((size_t)list.count, 1);
    active[point] = 1;
    vitq_i_sites sites;
    CHECK_STATUS(vitq_i_sites_filter(&net->alloc, net, &list, active, &sites), VITQ_OK);
    CHECK_NEAR(loss, nudged_loss(net, &sites, point, images, n, targets, 0, 0.0f), 1e-6 * (1 + fabs(loss)));
    /* the three largest gradients and three others */
    size_t picks[6] = {0}, count = 0;
    for (int t = 0; t < 3; t++) {
        size_t best = 0;
        for (size_t e = 1; e < n * d; e++) {
            int taken = 0;
            for (size_t j = 0; j < count; j++) taken |= picks[j] == e;
            if (!taken && fabsf(g.cls[e]) > fabsf(g.cls[best])) best = e;
        }
        picks[count++] = best;
    }
    picks[count++] = 7, picks[count++] = d + 11, picks[count++] = 2 * d - 1;
    double largest = 0;
    for (size_t e = 0; e < n * d; e++) largest = fmax(largest, fabs(g.cls[e]));
    for (size_t j = 0; j < count; j++) {
        const float h1 = 1e-2f;
        double up = nudged_loss(net, &sites, point, images, n, targets, picks[j], h1);
        double down = nudged_loss(net, &sites, point, images, n, targets, picks[j], -h1);
        double fd = (up - down) / (2.0 * h1), an = g.cls[picks[j]];
        if (!(fabs(fd - an) <= 3e-2 * fabs(fd) + 3e-3 * largest)) {
            printf("    norm.input element %zu: backward %.6g, finite differences %.6g\n", picks[j], an, fd);
            harness_check_failures++;
        }
    }
    CHECK(largest > 1e-3); /* the probes are not all near zero */
    vitq_i_sites_free(&net->alloc, &sites);
    vitq_i_points_free(&net->alloc, &list);
    free(active), free(images), free(g.cls);
    vitq_model_free(h);
}

/* Min-max W8A8 through the public API: the representation layer has its points, the quantized model
 * stays close to the float one, saves and reloads to the same logits, and runs pre_logits and the
 * head on integer kernels with the same predictions. */
static void test_pre_logits_quantized(void) {
    vitq_model *fp = load_fixture("tv-vit-prelogits", "model.safetensors");
    if (!fp) return;
    const size_t calib = 24, per = 3 * 32 * 32;
    float *images = malloc(calib * per * sizeof(float));
    uint64_t state = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < calib * per; i++) { /* roughly standard normal: sum of 4 uniforms */
        double s = 0;
        for (int k = 0; k < 4; k++) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            s += (double)(state >> 11) / 9007199254740992.0;
        }
        images[i] = (float)((s - 2.0) * 1.732);
    }
    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.scheme = "minmax";
    co.weight_bits = 8;
    co.activation_bits = 8;
    vitq_calibrator *c = NULL;
    vitq_model *q = NULL;
    CHECK_STATUS(vitq_calibrator_create(fp, &co, &c), VITQ_OK);
    if (c) {
        int found = 0;
        for (int32_t p = 0; p < vitq_calibrator_num_points(c); p++) {
            vitq_point_info pi;
            vitq_point_info_init(&pi);
            CHECK_STATUS(vitq_calibrator_point_info(c, p, &pi), VITQ_OK);
            if (!strcmp(pi.name, "pre_logits.fc.weight") && pi.channels == 40 && pi.bits == 8) found |= 1;
            if (!strcmp(pi.name, "pre_logits.fc.input") && pi.role == VITQ_ROLE_POST_LAYERNORM) found |= 2;
            if (!strcmp(pi.name, "head.input") && pi.role == VITQ_ROLE_LINEAR_INPUT && pi.channels == 40) found |= 4;
        }
        CHECK(found == 7);
        CHECK_STATUS(vitq_calibrator_feed(c, images, calib), VITQ_OK);
        CHECK_STATUS(vitq_calibrator_run(c, &q), VITQ_OK);
    }
    vitq_calibrator_free(c);
    if (q) {
        uint64_t rows = 0, cols = 0;
        float *in = load_npy_f32(FIXTURES "tv-vit-prelogits/input.npy", &rows, &cols);
        size_t n = (size_t)rows, k = 5;
        float *ref = malloc(n * k * sizeof(float)), *calibrated = malloc(n * k * sizeof(float));
        float *sim = malloc(n * k * sizeof(float)), *ints = malloc(n * k * sizeof(float));
        CHECK_STATUS(vitq_model_forward(fp, in, n, ref), VITQ_OK);
        CHECK_STATUS(vitq_model_forward(q, in, n, calibrated), VITQ_OK);
        vitq_model *simulated = reload_quantized(q, VITQ_EXECUTION_SIMULATED), *integer = reload_quantized(q, VITQ_EXECUTION_AUTO);
        if (simulated && integer) {
            CHECK_STATUS(vitq_model_forward(simulated, in, n, sim), VITQ_OK);
            double largest = 0, worst = 0;
            for (size_t i = 0; i < n * k; i++) largest = fmax(largest, fabs(ref[i]));
            for (size_t i = 0; i < n * k; i++) worst = fmax(worst, fabs((double)sim[i] - ref[i]));
            printf("    W8A8 min-max: max |quantized - float| = %.3g of the largest logit %.3g\n", worst / largest,
                   largest);
            CHECK(worst <= 0.05 * largest && worst > 0);
            vitq_model_info ii = info_of(integer), si = info_of(simulated);
            CHECK(si.representation_size == 40 && ii.representation_size == 40);
            printf("    integer execution: %d integer layers (4 per block + pre_logits + head = 10), %d attentions\n",
                   (int)ii.num_integer_layers, (int)ii.num_integer_attentions);
            CHECK(ii.num_integer_layers == 10 && ii.num_integer_attentions == 2);
            CHECK_STATUS(vitq_model_forward(integer, in, n, ints), VITQ_OK);
            CHECK(memcmp(ints, calibrated, n * k * sizeof(float)) == 0); /* saving loses nothing */
            double diff = 0;
            for (size_t i = 0; i < n * k; i++) diff = fmax(diff, fabs((double)ints[i] - sim[i]));
            printf("    integer - simulated: max |difference| %.3g\n", diff);
            CHECK(diff <= 1e-2 * largest);
            for (size_t r = 0; r < n; r++) CHECK(top_class(ints + r * k, k) == top_class(sim + r * k, k));
        }
        vitq_model_free(simulated);
        vitq_model_free(integer);
        free(in), free(ref), free(sim), free(calibrated), free(ints);
    }
    vitq_model_free(q);
    vitq_model_free(fp);
    free(images);
}

int main(void) {
    RUN(test_vit);
    RUN(test_vit_pre_logits);
    RUN(test_swin);
    RUN(test_pth);
    RUN(test_vit_legacy_mlp_names);
    RUN(test_module_prefix);
    RUN(test_swin_padding_refused);
    RUN(test_renamed_tensors);
    RUN(test_attention_width);
    RUN(test_flattened_index);
    RUN(test_missing_bias);
    RUN(test_non_finite_weights);
    RUN(test_pre_logits_backward);
    RUN(test_pre_logits_quantized);
    HARNESS_EXIT();
}

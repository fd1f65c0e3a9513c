/* The quantized training block (src/train/block_train.h) on Swin blocks of the bundled fmnist-swin (two stages
 * of two blocks: 14 x 14 tokens of width 48 in 7 x 7 windows, block 1 shifted; then 7 x 7 tokens of width 96 in
 * one window).
 *
 * - With no quantizer every block equals the model's own block forward (vitq_i_net_block_forward) bit for bit.
 * - With activation quantizers the training block equals the model's block run with taps applying the same
 *   quantizers, and every point sees, element for element and in the same order, the input the model's tap
 *   sees (window order from LN1's output to proj's input).
 * - On the shifted block, AdaRound's V gradients and the learned steps' gradients agree with central
 *   differences of the straight-through surrogate (as tests/unit/test_reconstruct.c does for ViT), with and
 *   without QDrop; a training step gives the same bits with 1 and 2 threads. */
#include "api/model.h"
#include "block_train_fd.h"
#include "harness.h"
#include "model/block.h"
#include "model/weights.h"
#include "quant/registry.h"
#include "quant/schemes.h"
#include "test_random.h"
#include "train/block_train.h"

#define MODEL "models/fmnist-swin"
#define SHIFTED_BLOCK 1

static vitq_allocator alloc;

static vitq_model *load_model(void) {
    vitq_model *h = NULL;
    CHECK_STATUS(vitq_model_load_file(MODEL, NULL, &h), VITQ_OK);
    if (!h) return NULL;
    CHECK_STATUS(vitq_i_model_attach_rows(h->net), VITQ_OK);
    vitq_model_set_num_threads(h, 1);
    return h;
}

/* The float weights of block b. */
static void block_config(const vitq_i_net *m, int b, size_t images, vitq_i_bt_config *cfg) {
    const vitq_i_block *blk = &m->blocks[b];
    memset(cfg, 0, sizeof *cfg);
    cfg->weight[VITQ_I_BT_QKV] = blk->qkv.weight, cfg->weight[VITQ_I_BT_PROJ] = blk->proj.weight;
    cfg->weight[VITQ_I_BT_FC1] = blk->fc1.weight, cfg->weight[VITQ_I_BT_FC2] = blk->fc2.weight;
    cfg->max_images = images;
}

static float *random_stream(size_t count) {
    float *x = malloc(count * sizeof(float));
    for (size_t i = 0; i < count; i++) x[i] = (float)gauss();
    return x;
}

/* The view of site s's input in a training block's buffers after a forward on n images (the shape the model's
 * tap gives it). */
static vitq_tensor_view site_view(const vitq_i_block_train *bt, int s, size_t n) {
    size_t rows = n * bt->tokens, d = bt->d, hid = bt->hidden;
    int64_t h = (int64_t)bt->heads, tt = (int64_t)(bt->seq * bt->seq), seqs = (int64_t)(n * bt->windows);
    float *base[VITQ_I_BT_SITES] = {bt->x_in, bt->ln1, bt->qkv, bt->qkv + d, bt->qkv + 2 * d, bt->s, bt->p,
                                    bt->att, bt->xm, bt->ln2, bt->h, bt->g};
    vitq_tensor_view v = {sizeof v, base[s], (int64_t)rows, (int64_t)d, 1, (int64_t)d};
    if (s >= VITQ_I_BT_Q && s <= VITQ_I_BT_V) v.outer_stride = (int64_t)(3 * d);
    if (s == VITQ_I_BT_SCORES || s == VITQ_I_BT_PROBS) v = (vitq_tensor_view){sizeof v, base[s], seqs, h, tt, h * tt};
    if (s == VITQ_I_BT_GELU_IN || s == VITQ_I_BT_FC2_IN) v.channels = v.outer_stride = (int64_t)hid;
    return v;
}

/* The elements of a view, densely in view order. */
static float *dense_copy(const vitq_tensor_view *v) {
    size_t width = (size_t)(v->channels * v->inner);
    float *out = malloc((size_t)v->outer * width * sizeof(float));
    for (int64_t o = 0; o < v->outer; o++) memcpy(out + (size_t)o * width, v->data + o * v->outer_stride, width * sizeof(float));
    return out;
}

/* ---- without quantizers: the model's block -------------------------------------------------------- */

static void test_float_blocks_equal_model(void) {
    vitq_model *h = load_model();
    if (!h) return;
    const vitq_i_net *m = h->net;
    size_t n = 2, d0 = 0;
    int shifted = 0, widths = 0;
    for (int b = 0; b < m->info.depth; b++) {
        vitq_i_bt_config cfg;
        block_config(m, b, n, &cfg);
        vitq_i_block_train bt;
        CHECK_STATUS(vitq_i_block_train_create(&bt, &alloc, m, b, &cfg), VITQ_OK);
        if (!bt.block) continue;
        size_t rd = n * bt.tokens * bt.d;
        float *x = random_stream(rd), *ref = malloc(rd * sizeof(float)), *out = malloc(rd * sizeof(float));
        memcpy(ref, x, rd * sizeof(float));
        CHECK_STATUS(vitq_i_net_block_forward(m, b, ref, n, NULL), VITQ_OK);
        CHECK_STATUS(vitq_i_block_train_forward(&bt, x, n, VITQ_I_BT_SOFT, 0, out), VITQ_OK);
        int same = memcmp(ref, out, rd * sizeof(float)) == 0;
        printf("    block %d: %zu tokens of %zu, %zu windows, shift %d: %s\n", b, bt.tokens, bt.d, bt.windows, bt.shift,
               same ? "bit for bit" : "DIFFERENT");
        CHECK(same);
        CHECK(bt.swin && bt.windows * bt.seq == bt.tokens);
        shifted += bt.shift != 0;
        if (b == 0) d0 = bt.d;
        widths += bt.d != d0;
        free(x), free(ref), free(out);
        vitq_i_block_train_free(&bt);
    }
    CHECK(shifted >= 1 && widths >= 1); /* a shifted block, and blocks of a later stage's width */
    vitq_model_free(h);
}

/* ---- with activation quantizers: the model's taps ----------------------------------------------------- */

typedef struct quantizers {
    vitq_i_instance act[VITQ_I_BT_SITES], w[VITQ_I_BT_LAYERS];
} quantizers;

static vitq_status make_instance(vitq_i_instance *inst, const char *name, vitq_point_kind kind, int bits,
                                 int granularity, int symmetric, int64_t channels, int64_t heads) {
    vitq_point_config c = {.struct_size = sizeof c, .name = name, .kind = kind, .role = 0, .bits = bits,
                           .granularity = granularity, .symmetric = symmetric, .channels = channels, .seed = 1};
    vitq_status st = vitq_i_config_groups(&c, heads);
    return st ? st : vitq_i_instance_create(inst, &alloc, &vitq_i_scheme_minmax, &c);
}

/* min-max quantizers at `bits` of block b, observed on a float forward of bt0 (which has none): per tensor,
 * per head for the scores and probabilities, per channel for the weights. */
static void observe(quantizers *q, const vitq_i_block_train *bt0, size_t n, int bits) {
    const vitq_i_block *blk = &bt0->m->blocks[bt0->b];
    const vitq_i_linear *layers[4] = {&blk->qkv, &blk->proj, &blk->fc1, &blk->fc2};
    for (int s = 0; s < VITQ_I_BT_SITES; s++) {
        vitq_tensor_view v = site_view(bt0, s, n);
        int attn = s == VITQ_I_BT_SCORES || s == VITQ_I_BT_PROBS;
        CHECK_STATUS(make_instance(&q->act[s], "act", VITQ_POINT_ACTIVATION, bits,
                                   attn ? VITQ_GRAN_HEAD : VITQ_GRAN_TENSOR, 0, v.channels, attn ? v.channels : 0),
                     VITQ_OK);
        CHECK_STATUS(q->act[s].scheme.observe(q->act[s].state, 0, &v), VITQ_OK);
        CHECK_STATUS(q->act[s].scheme.finalize(q->act[s].state), VITQ_OK);
    }
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) {
        vitq_tensor_view v = {sizeof v, layers[k]->weight, 1, (int64_t)layers[k]->out, (int64_t)layers[k]->in,
                              (int64_t)(layers[k]->out * layers[k]->in)};
        CHECK_STATUS(make_instance(&q->w[k], "w", VITQ_POINT_WEIGHT, bits, VITQ_GRAN_CHANNEL, 1, v.channels, 0),
                     VITQ_OK);
        CHECK_STATUS(q->w[k].scheme.observe(q->w[k].state, 0, &v), VITQ_OK);
        CHECK_STATUS(q->w[k].scheme.finalize(q->w[k].state), VITQ_OK);
    }
}

static void destroy_quantizers(quantizers *q) {
    for (int s = 0; s < VITQ_I_BT_SITES; s++) vitq_i_instance_destroy(&q->act[s]);
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) vitq_i_instance_destroy(&q->w[k]);
}

/* Taps that keep a copy of what each point sees, then apply its quantizer (point index = training site). */
typedef struct recorder {
    const quantizers *q;
    vitq_tensor_view seen_shape[VITQ_I_BT_SITES];
    float *seen[VITQ_I_BT_SITES];
} recorder;

static vitq_status record_and_quantize(vitq_i_taps *t, int point, const vitq_tensor_view *v) {
    recorder *r = t->ctx;
    if (point < 0 || point >= VITQ_I_BT_SITES || r->seen[point]) return VITQ_ERR_BAD_STATE; /* tapped once */
    r->seen[point] = dense_copy(v);
    r->seen_shape[point] = *v;
    const vitq_i_instance *inst = &r->q->act[point];
    return inst->scheme.fake_quant(inst->state, v);
}

static int same_view(const vitq_tensor_view *a, const vitq_tensor_view *b) {
    return a->outer == b->outer && a->channels == b->channels && a->inner == b->inner &&
           a->outer_stride == b->outer_stride;
}

static void taps_equal_model(int b) {
    vitq_model *h = load_model();
    if (!h) return;
    const vitq_i_net *m = h->net;
    size_t n = 2;
    vitq_i_bt_config cfg;
    block_config(m, b, n, &cfg);
    vitq_i_block_train bt0, bt;
    CHECK_STATUS(vitq_i_block_train_create(&bt0, &alloc, m, b, &cfg), VITQ_OK);
    size_t rd = n * bt0.tokens * bt0.d;
    float *x = random_stream(rd), *ref = malloc(rd * sizeof(float)), *out = malloc(rd * sizeof(float));
    CHECK_STATUS(vitq_i_block_train_forward(&bt0, x, n, VITQ_I_BT_SOFT, 0, out), VITQ_OK);
    quantizers q;
    observe(&q, &bt0, n, 6);
    for (int s = 0; s < VITQ_I_BT_SITES; s++) cfg.act[s] = &q.act[s];
    /* the model's sites: block b's points are the training sites, everything else untapped */
    vitq_i_block_sites *blocks = malloc((size_t)m->info.depth * sizeof *blocks);
    vitq_i_stage_sites stages[8];
    memset(blocks, 0xff, (size_t)m->info.depth * sizeof *blocks); /* every int -1 */
    memset(stages, 0xff, sizeof stages);
    blocks[b] = (vitq_i_block_sites){VITQ_I_BT_NORM1_IN, VITQ_I_BT_QKV_IN, VITQ_I_BT_Q,       VITQ_I_BT_K,
                                     VITQ_I_BT_V,        VITQ_I_BT_SCORES, VITQ_I_BT_PROBS,   VITQ_I_BT_PROJ_IN,
                                     VITQ_I_BT_NORM2_IN, VITQ_I_BT_FC1_IN, VITQ_I_BT_GELU_IN, VITQ_I_BT_FC2_IN};
    vitq_i_sites sites = {-1, -1, -1, -1, -1, -1, blocks, stages};
    /* fixed quantizers (the instances' own fake_quant), then learned steps at their start */
    for (int learn = 0; learn < 2; learn++) {
        recorder r;
        memset(&r, 0, sizeof r);
        r.q = &q;
        vitq_i_taps taps = {&sites, record_and_quantize, NULL, &r, VITQ_OK};
        memcpy(ref, x, rd * sizeof(float));
        CHECK_STATUS(vitq_i_net_block_forward(m, b, ref, n, &taps), VITQ_OK);
        cfg.learn_steps = learn;
        CHECK_STATUS(vitq_i_block_train_create(&bt, &alloc, m, b, &cfg), VITQ_OK);
        CHECK_STATUS(vitq_i_block_train_forward(&bt, x, n, VITQ_I_BT_START, 0, out), VITQ_OK);
        int learned = 0, points = 0;
        for (int s = 0; s < VITQ_I_BT_SITES; s++) {
            learned += bt.pt[s].learned;
            vitq_tensor_view v = site_view(&bt, s, n);
            float *mine = dense_copy(&v);
            size_t count = (size_t)(v.outer * v.channels * v.inner);
            int same = r.seen[s] && same_view(&v, &r.seen_shape[s]) && memcmp(mine, r.seen[s], count * sizeof(float)) == 0;
            if (!same) printf("    block %d, site %d (learned %d): the point's input differs from the model's\n", b, s, learn);
            points += same;
            free(mine);
            free(r.seen[s]);
        }
        CHECK(points == VITQ_I_BT_SITES);
        CHECK(learn ? learned >= 6 : learned == 0);
        double worst = 0.0;
        for (size_t i = 0; i < rd; i++) worst = fmax(worst, fabs((double)out[i] - ref[i]));
        printf("    block %d, %s steps: %d points equal, output max |diff| %.3g\n", b, learn ? "learned" : "fixed", points,
               worst);
        CHECK(memcmp(ref, out, rd * sizeof(float)) == 0);
        vitq_i_block_train_free(&bt);
    }
    destroy_quantizers(&q);
    vitq_i_block_train_free(&bt0);
    free(blocks);
    free(x), free(ref), free(out);
    vitq_model_free(h);
}

static void test_taps_equal_model_shifted(void) { taps_equal_model(SHIFTED_BLOCK); }
static void test_taps_equal_model_stage1(void) { taps_equal_model(3); }

/* ---- gradients against finite differences of the surrogate -------------------------------------------- */

static void shifted_block_gradients(double drop) {
    vitq_model *h = load_model();
    if (!h) return;
    const vitq_i_net *m = h->net;
    int b = SHIFTED_BLOCK;
    size_t n = 1;
    vitq_i_bt_config cfg;
    block_config(m, b, n, &cfg);
    vitq_i_block_train bt0, bt;
    CHECK_STATUS(vitq_i_block_train_create(&bt0, &alloc, m, b, &cfg), VITQ_OK);
    CHECK(bt0.shift != 0 && bt0.windows > 1 && bt0.bias.mask != NULL);
    size_t rd = n * bt0.tokens * bt0.d;
    float *x = random_stream(rd), *ref = malloc(rd * sizeof(float)), *out = malloc(rd * sizeof(float));
    float *t = malloc(rd * sizeof(float)), *dy = malloc(rd * sizeof(float));
    CHECK_STATUS(vitq_i_block_train_forward(&bt0, x, n, VITQ_I_BT_SOFT, 0, ref), VITQ_OK);
    quantizers q;
    observe(&q, &bt0, n, 4);
    for (int s = 0; s < VITQ_I_BT_SITES; s++) cfg.act[s] = &q.act[s];
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) cfg.wq[k] = &q.w[k];
    cfg.act[VITQ_I_BT_GELU_IN] = NULL; /* a float point among quantized ones */
    cfg.adaround = 1, cfg.learn_steps = 1, cfg.drop = drop, cfg.seed = 11;
    CHECK_STATUS(vitq_i_block_train_create(&bt, &alloc, m, b, &cfg), VITQ_OK);
    /* LN1's point learned: the gradient also goes back through the window partition and LN1 */
    CHECK(bt.pt[VITQ_I_BT_NORM1_IN].learned && bt.pt[VITQ_I_BT_QKV_IN].learned && bt.layer[VITQ_I_BT_QKV].mode == 2);
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++)
        for (size_t i = 0; i < bt.layer[k].ar.count; i++) bt.layer[k].ar.v[i] += (float)(0.5 * gauss());
    for (size_t i = 0; i < rd; i++) t[i] = ref[i] + (float)(0.3 * gauss());
    fd_counts c = fd_check_block(&bt, x, t, n, out, dy, rd, 3, 2, site_view);
    printf("    shifted block %d, QDrop %.1f: gradient checks %d of %d agree (%d learned steps)\n", b, drop, c.ok, c.total,
           c.steps);
    CHECK(c.steps >= 6);
    /* as for ViT: with QDrop's mix of float and quantized elements a check of a small gradient may miss by noise */
    CHECK(c.ok >= c.total - (drop > 0.0 ? 2 : 0));
    vitq_i_block_train_free(&bt);
    vitq_i_block_train_free(&bt0);
    destroy_quantizers(&q);
    free(x), free(ref), free(out), free(t), free(dy);
    vitq_model_free(h);
}

/* The same training step (QDrop, learned steps, AdaRound) with 1 and 2 threads: the same output and gradients,
 * bit for bit. */
static void test_thread_count_independent(void) {
    vitq_model *h = load_model();
    if (!h) return;
    const vitq_i_net *m = h->net;
    size_t n = 2;
    vitq_i_bt_config cfg;
    block_config(m, SHIFTED_BLOCK, n, &cfg);
    vitq_i_block_train bt0, bt[2];
    CHECK_STATUS(vitq_i_block_train_create(&bt0, &alloc, m, SHIFTED_BLOCK, &cfg), VITQ_OK);
    size_t rd = n * bt0.tokens * bt0.d;
    float *x = random_stream(rd), *out[2] = {malloc(rd * sizeof(float)), malloc(rd * sizeof(float))};
    float *dy = random_stream(rd);
    CHECK_STATUS(vitq_i_block_train_forward(&bt0, x, n, VITQ_I_BT_SOFT, 0, out[0]), VITQ_OK);
    quantizers q;
    observe(&q, &bt0, n, 4);
    for (int s = 0; s < VITQ_I_BT_SITES; s++) cfg.act[s] = &q.act[s];
    for (int k = 0; k < VITQ_I_BT_LAYERS; k++) cfg.wq[k] = &q.w[k];
    cfg.adaround = 1, cfg.learn_steps = 1, cfg.drop = 0.5, cfg.seed = 5;
    for (int i = 0; i < 2; i++) {
        vitq_model_set_num_threads(h, i + 1);
        CHECK_STATUS(vitq_i_block_train_create(&bt[i], &alloc, m, SHIFTED_BLOCK, &cfg), VITQ_OK);
        vitq_i_block_train_zero_grad(&bt[i]);
        CHECK_STATUS(vitq_i_block_train_forward(&bt[i], x, n, VITQ_I_BT_SOFT, 1, out[i]), VITQ_OK);
        CHECK_STATUS(vitq_i_block_train_backward(&bt[i], dy), VITQ_OK);
    }
    CHECK(bt[0].nthreads == 1 && bt[1].nthreads == 2);
    CHECK(memcmp(out[0], out[1], rd * sizeof(float)) == 0);
    vitq_i_param p0[16], p1[16];
    int count = vitq_i_block_train_params(&bt[0], p0, 16, 0, 1);
    CHECK(count == vitq_i_block_train_params(&bt[1], p1, 16, 0, 1) && count >= 10 && count <= 16);
    int same = 0;
    for (int i = 0; i < count && i < 16; i++) same += memcmp(p0[i].grad, p1[i].grad, p0[i].n * sizeof(float)) == 0;
    CHECK(same == count);
    for (int i = 0; i < 2; i++) vitq_i_block_train_free(&bt[i]);
    vitq_i_block_train_free(&bt0);
    destroy_quantizers(&q);
    free(x), free(dy), free(out[0]), free(out[1]);
    vitq_model_free(h);
}

static void test_shifted_block_gradients(void) { shifted_block_gradients(0.0); }
static void test_shifted_block_gradients_qdrop(void) { shifted_block_gradients(0.5); }

int main(void) {
    if (vitq_i_allocator_resolve(NULL, &alloc) != VITQ_OK) return 1;
    RUN(test_float_blocks_equal_model);
    RUN(test_taps_equal_model_shifted);
    RUN(test_taps_equal_model_stage1);
    RUN(test_shifted_block_gradients);
    RUN(test_shifted_block_gradients_qdrop);
    RUN(test_thread_count_independent);
    HARNESS_EXIT();
}

/* MPTQ-ViT's OPT-m (search_point.h, options ratios_only): the ratio search of a twin quantizer against
 * brute force. A post-GELU point alone, scored on its own fake-quantized values against the float
 * ones with gradient weights: the search must keep the power-of-two ratio 2^m of least weighted error
 * over every m, which the test computes itself with the scheme's own fake quantization. Then mptq-vit
 * end to end with and without OPT-m on Fashion-MNIST: the post-GELU grids keep the format. */
#include <math.h>

#include "calib/search_point.h"
#include "calib_util.h"
#include "quant/schemes.h"

#define N 4096
#define GELU_MIN 0.16997124f

typedef struct one_point {
    const float *x;
    float *out;
    vitq_i_qpoint *qp;
} one_point;

/* The "layer" reading the point is the identity: its output is the fake-quantized input. */
static vitq_status run_identity(void *ctx, const float **out) {
    one_point *o = ctx;
    memcpy(o->out, o->x, N * sizeof(float));
    vitq_tensor_view v = {sizeof v, o->out, N, 1, 1, 1};
    *out = o->out;
    return o->qp->inst.scheme.fake_quant(o->qp->inst.state, &v);
}

/* GELU outputs of a heavy-tailed input at `bits`, weighted by a gradient that makes some values matter
 * far more than others: OPT-m's choice equals the brute-force argmin. */
static void check_ratio_search(int bits, double spread, unsigned seed) {
    vitq_allocator a;
    vitq_i_allocator_resolve(NULL, &a);
    static float x[N], g[N], out[N], probe[N];
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        double u = ((seed >> 8) & 0xFFFF) / 65536.0 - 0.5;
        double z = spread * u * u * u * 8.0; /* heavy tails */
        x[i] = (float)(0.5 * z * (1.0 + erf(z / sqrt(2.0))));
        g[i] = (float)(1.0 + 4.0 * ((seed >> 4) & 7));
    }
    vitq_i_point_desc desc;
    memset(&desc, 0, sizeof desc);
    snprintf(desc.name, sizeof desc.name, "blocks.0.mlp.fc2.input");
    desc.kind = VITQ_POINT_ACTIVATION, desc.role = VITQ_ROLE_POST_GELU, desc.channels = 1, desc.inner = 1;
    vitq_i_point_list list;
    memset(&list, 0, sizeof list);
    list.points = &desc, list.count = 1;
    vitq_i_point_cfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.scheme = &vitq_i_scheme_twin_gelu, cfg.bits = bits, cfg.symmetric = 1, cfg.options[0] = 1; /* pow2 */
    vitq_i_qpoint qp;
    memset(&qp, 0, sizeof qp);
    int of_point = 0;
    vitq_i_qmodel q;
    memset(&q, 0, sizeof q);
    q.qpoints = &qp, q.count = 1, q.of_point = &of_point;
    vitq_point_config pc = {.struct_size = sizeof pc, .name = desc.name, .kind = desc.kind, .role = desc.role,
                            .bits = bits, .granularity = VITQ_GRAN_TENSOR, .symmetric = 1, .channels = 1,
                            .options = cfg.options};
    CHECK_STATUS(vitq_i_config_groups(&pc, 0), VITQ_OK);
    CHECK_STATUS(vitq_i_instance_create(&qp.inst, &a, &vitq_i_scheme_twin_gelu, &pc), VITQ_OK);
    vitq_tensor_view v = {sizeof v, x, N, 1, 1, 1};
    for (int pass = 0; pass < qp.inst.scheme.num_passes; pass++)
        CHECK_STATUS(qp.inst.scheme.observe(qp.inst.state, pass, &v), VITQ_OK);
    CHECK_STATUS(qp.inst.scheme.finalize(qp.inst.state), VITQ_OK);
    vitq_i_run r;
    memset(&r, 0, sizeof r);
    r.alloc = &a, r.list = &list, r.cfg = &cfg, r.q = &q;
    vitq_i_block_search_options o = {0};
    o.rounds = 1, o.ratios_only = 1;
    vitq_i_metric m = {x, g, N, 0, 0.0f};
    one_point ctx = {x, out, &qp};
    /* brute force over m with the scheme's own grid */
    float dneg = GELU_MIN / (float)(1 << (bits - 1)), best_scale = 0;
    double best = INFINITY;
    for (int e = 0; e < 16; e++) {
        float scale = ldexpf(dneg, e);
        CHECK_STATUS(qp.inst.scheme.set_param(qp.inst.state, "scale", &scale, 1), VITQ_OK);
        memcpy(probe, x, sizeof probe);
        vitq_tensor_view pv = {sizeof pv, probe, N, 1, 1, 1};
        CHECK_STATUS(qp.inst.scheme.fake_quant(qp.inst.state, &pv), VITQ_OK);
        double err = vitq_i_metric_score(&m, probe);
        if (err < best) best = err, best_scale = scale;
    }
    CHECK_STATUS(vitq_i_search_point(&r, 0, &o, &m, 0, run_identity, &ctx), VITQ_OK);
    const char *name;
    const float *values;
    int64_t count;
    float chosen = 0;
    for (int32_t k = 0; k < qp.inst.scheme.param_count(qp.inst.state); k++)
        if (!qp.inst.scheme.get_param(qp.inst.state, k, &name, &values, &count) && !strcmp(name, "scale"))
            chosen = values[0];
    printf("    %d bits, spread %.1f: OPT-m step %g = brute-force argmin %g (m = %d)\n", bits, spread,
           (double)chosen, (double)best_scale, (int)lround(log2((double)chosen / (double)dneg)));
    CHECK(chosen == best_scale && best_scale > dneg); /* found, and not the trivial first candidate */
    vitq_i_instance_destroy(&qp.inst);
}

static void test_ratio_search_brute_force(void) {
    check_ratio_search(4, 2.0, 1u);
    check_ratio_search(4, 6.0, 7u);
    check_ratio_search(6, 3.0, 11u);
    check_ratio_search(8, 10.0, 5u);
}

/* mptq-vit with OPT-m on: every post-GELU step is a power of two times the negative one, and the model
 * keeps its accuracy at W4A4. */
static void test_mptq_opt_m(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    static const char *const on[] = {"opt_m", "1"};
    vitq_model *q = quantize_with(fp, NULL, "mptq-vit", 4, 4, NULL, 0, on, 1, 16);
    if (q) {
        vitq_model_info i;
        vitq_model_info_init(&i);
        vitq_model_get_info(q, &i);
        int checked = 0;
        for (int32_t p = 0; p < i.num_quantized_points; p++) {
            vitq_point_info pi;
            vitq_point_info_init(&pi);
            CHECK_STATUS(vitq_model_point_info(q, p, &pi), VITQ_OK);
            checked += pi.role == VITQ_ROLE_POST_GELU && !strcmp(pi.scheme, "twin-gelu");
        }
        CHECK(checked == 6);
        size_t n = eval_count();
        double acc = top1(q, n), base = top1(fp, n);
        printf("    fmnist-vit mptq-vit W4A4 with OPT-m: %.4f (FP32 %.4f, %zu images)\n", acc, base, n);
        CHECK(acc > base - 0.05);
        vitq_model_free(q);
    }
    vitq_model_free(fp);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    if (!calib_set || !test_set) return 1;
    RUN(test_ratio_search_brute_force);
    RUN(test_mptq_opt_m);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}

/* The struct_size rules of vitq.h ("Contract"), through the public API only: every struct is accepted
 * from its first release's size up, a caller's older (smaller) struct gets defaults for the rest, a
 * caller's newer (larger) struct is read for what this library knows and written only where it fits,
 * and a struct_size below the first release is VITQ_ERR_ABI_MISMATCH everywhere. A plugin scheme
 * gets its registration context and may declare its options with a larger entry size. */
#include <stddef.h>
#include <string.h>

#include "harness.h"
#include "vitq.h"

#define MODEL "tests/fixtures/models/odd-vit-hf"
#define V1(type, last) (offsetof(type, last) + sizeof(((type *)0)->last))

static void test_model_options_sizes(void) {
    vitq_model *m = NULL;
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.struct_size = (uint32_t)V1(vitq_model_options, num_threads); /* a 0.1 caller: no registry, no execution */
    CHECK_STATUS(vitq_model_load_file(MODEL, &o, &m), VITQ_OK);
    vitq_model_free(m);
    m = NULL;
    o.struct_size = (uint32_t)V1(vitq_model_options, num_threads) - 4;
    CHECK_STATUS(vitq_model_load_file(MODEL, &o, &m), VITQ_ERR_ABI_MISMATCH);
    CHECK(m == NULL && strstr(vitq_last_error(), "vitq_model_options") != NULL);
    /* a caller built against a later header: a larger struct whose unknown tail is zero */
    struct {
        vitq_model_options o;
        char later[64];
    } big;
    memset(&big, 0, sizeof big);
    vitq_model_options_init(&big.o);
    big.o.struct_size = sizeof big;
    CHECK_STATUS(vitq_model_load_file(MODEL, &big.o, &m), VITQ_OK);
    vitq_model_free(m);
    m = NULL;
    o.struct_size = 1u << 30; /* garbage */
    CHECK_STATUS(vitq_model_load_file(MODEL, &o, &m), VITQ_ERR_ABI_MISMATCH);
}

static void test_info_written_only_where_it_fits(void) {
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file(MODEL, NULL, &m), VITQ_OK);
    if (!m) return;
    vitq_model_info full;
    vitq_model_info_init(&full);
    CHECK_STATUS(vitq_model_get_info(m, &full), VITQ_OK);
    /* a 0.1 caller's info: everything up to gflops, nothing after it */
    size_t v1 = V1(vitq_model_info, gflops);
    unsigned char buf[sizeof(vitq_model_info) + 16];
    memset(buf, 0xA5, sizeof buf);
    uint32_t size = (uint32_t)v1;
    memcpy(buf, &size, sizeof size);
    CHECK_STATUS(vitq_model_get_info(m, (vitq_model_info *)(void *)buf), VITQ_OK);
    vitq_model_info got;
    memcpy(&got, buf, sizeof got);
    CHECK(got.struct_size == v1 && got.embed_dim == full.embed_dim && got.gflops == full.gflops);
    int untouched = 1;
    for (size_t k = v1; k < sizeof buf; k++) untouched &= buf[k] == 0xA5;
    CHECK(untouched);
    size = (uint32_t)v1 - 8;
    memcpy(buf, &size, sizeof size);
    CHECK_STATUS(vitq_model_get_info(m, (vitq_model_info *)(void *)buf), VITQ_ERR_ABI_MISMATCH);
    vitq_model_free(m);
}

static void test_allocator_sizes(void) {
    vitq_allocator a = {0};
    a.struct_size = sizeof a - 1;
    vitq_model *m = NULL;
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.allocator = &a;
    CHECK_STATUS(vitq_model_load_file(MODEL, &o, &m), VITQ_ERR_ABI_MISMATCH);
    CHECK(strstr(vitq_last_error(), "vitq_allocator") != NULL);
}

/* ---- a plugin scheme: its context, an option declared with a larger entry, an old-size table ---- */

typedef struct plugin_ctx {
    int creates;
    double last_option;
} plugin_ctx;

typedef struct big_option {
    vitq_scheme_option base;
    double a_later_member; /* what a later header's vitq_scheme_option might add */
} big_option;

typedef struct plugin_state {
    plugin_ctx *ctx;
    const vitq_scheme_host *host; /* lives as long as the quantizer */
} plugin_state;

static vitq_status p_create(const vitq_point_config *c, const vitq_scheme_host *h, void **state) {
    plugin_ctx *ctx = c->scheme_user;
    if (!ctx) return h->fail(h, VITQ_ERR_GENERIC, "plugin: no context");
    plugin_state *s = h->alloc(h, sizeof *s);
    if (!s) return h->fail(h, VITQ_ERR_OUT_OF_MEMORY, "plugin: state");
    s->ctx = ctx;
    s->host = h;
    ctx->creates++;
    ctx->last_option = c->options ? c->options[0] : -1.0;
    *state = s;
    return VITQ_OK;
}
static void p_destroy(void *state) {
    plugin_state *s = state;
    s->host->free(s->host, s);
}
static vitq_status p_observe(void *s, int32_t pass, const vitq_tensor_view *x) { return (void)s, (void)pass, (void)x, VITQ_OK; }
static vitq_status p_finalize(void *s) { return (void)s, VITQ_OK; }
static vitq_status p_fake(void *s, const vitq_tensor_view *x) { return (void)s, (void)x, VITQ_OK; }
static vitq_status p_quantize(void *s, const vitq_tensor_view *x, int32_t *codes) {
    (void)s;
    for (int64_t i = 0; i < x->outer * x->channels * x->inner; i++) codes[i] = 0;
    return VITQ_OK;
}
static vitq_status p_dequantize(void *s, const int32_t *codes, const vitq_tensor_view *out) {
    return (void)s, (void)codes, (void)out, VITQ_OK;
}
static int32_t p_count(void *s) { return (void)s, 0; }
static vitq_status p_get(void *s, int32_t i, const char **n, const float **v, int64_t *c) {
    return (void)s, (void)i, (void)n, (void)v, (void)c, VITQ_ERR_INVALID_ARGUMENT;
}
static vitq_status p_set(void *s, const char *n, const float *v, int64_t c) {
    return (void)s, (void)n, (void)v, (void)c, VITQ_ERR_UNKNOWN_NAME;
}

static const big_option plugin_options[2] = {
    {{"alpha", "a plugin option", 0.0, 10.0, 2.5, 0}, 123.0},
    {{"steps", "a second one", 1.0, 8.0, 4.0, 1}, 456.0},
};

static vitq_scheme plugin_scheme(plugin_ctx *ctx) {
    vitq_scheme s;
    memset(&s, 0, sizeof s);
    s.struct_size = sizeof s;
    s.abi_version = VITQ_SCHEME_ABI_VERSION;
    s.name = "plugin";
    s.description = "probe of the plugin ABI";
    s.num_passes = 1;
    s.min_bits = 2;
    s.max_bits = 8;
    s.num_options = 2;
    s.options = &plugin_options[0].base;
    s.option_size = sizeof(big_option);
    s.create = p_create;
    s.destroy = p_destroy;
    s.observe = p_observe;
    s.finalize = p_finalize;
    s.fake_quant = p_fake;
    s.quantize = p_quantize;
    s.dequantize = p_dequantize;
    s.param_count = p_count;
    s.get_param = p_get;
    s.set_param = p_set;
    s.user = ctx;
    return s;
}

static void test_plugin_context_and_option_stride(void) {
    plugin_ctx ctx = {0, 0.0};
    vitq_registry *reg = NULL;
    CHECK_STATUS(vitq_registry_create(NULL, &reg), VITQ_OK);
    if (!reg) return;
    vitq_scheme s = plugin_scheme(&ctx);
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_OK);
    const vitq_scheme *listed = vitq_registry_get(reg, vitq_registry_count(reg) - 1);
    CHECK(listed && strcmp(listed->name, "plugin") == 0 && listed->num_options == 2);
    vitq_quantizer *q = NULL;
    CHECK_STATUS(vitq_quantizer_create(reg, "plugin", NULL, &q), VITQ_OK);
    /* the second option sits sizeof(big_option) bytes after the first: read with the stride */
    CHECK_STATUS(vitq_quantizer_set(q, "steps", "6"), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set(q, "steps", "9"), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_quantizer_set(q, "alpha", "7.5"), VITQ_OK);
    float data[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    vitq_tensor_view v = {sizeof v, data, 1, 8, 1, 8};
    CHECK_STATUS(vitq_quantizer_observe(q, 0, &v), VITQ_OK);
    CHECK(ctx.creates == 1);
    CHECK(ctx.last_option == 7.5);
    vitq_quantizer_free(q);
    vitq_registry_free(reg);
}

static void test_old_scheme_table(void) {
    plugin_ctx ctx = {0, 0.0};
    vitq_registry *reg = NULL;
    CHECK_STATUS(vitq_registry_create(NULL, &reg), VITQ_OK);
    if (!reg) return;
    /* a table from before option_size: its options are plain vitq_scheme_option entries */
    static const vitq_scheme_option plain[1] = {{"alpha", "plain entry", 0.0, 10.0, 1.0, 0}};
    vitq_scheme s = plugin_scheme(&ctx);
    s.name = "plugin-old";
    s.num_options = 1;
    s.options = plain;
    s.struct_size = (uint32_t)V1(vitq_scheme, user);
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_OK);
    vitq_quantizer *q = NULL;
    CHECK_STATUS(vitq_quantizer_create(reg, "plugin-old", NULL, &q), VITQ_OK);
    CHECK_STATUS(vitq_quantizer_set(q, "alpha", "3"), VITQ_OK);
    float data[4] = {0, 1, 2, 3};
    vitq_tensor_view v = {sizeof v, data, 1, 4, 1, 4};
    CHECK_STATUS(vitq_quantizer_observe(q, 0, &v), VITQ_OK);
    CHECK(ctx.creates == 1 && ctx.last_option == 3.0);
    vitq_quantizer_free(q);
    s.name = "plugin-too-old";
    s.struct_size = (uint32_t)V1(vitq_scheme, user) - 8;
    CHECK_STATUS(vitq_registry_add(reg, &s), VITQ_ERR_ABI_MISMATCH);
    vitq_registry_free(reg);
}

static void test_tensor_view_sizes(void) {
    vitq_quantizer *q = NULL;
    CHECK_STATUS(vitq_quantizer_create(NULL, "minmax", NULL, &q), VITQ_OK);
    if (!q) return;
    float data[4] = {-1, 0, 1, 2};
    struct {
        vitq_tensor_view v;
        int64_t later;
    } big = {{sizeof big, data, 1, 4, 1, 4}, 0};
    CHECK_STATUS(vitq_quantizer_observe(q, 0, &big.v), VITQ_OK);
    vitq_tensor_view small = {(uint32_t)V1(vitq_tensor_view, outer_stride) - 8, data, 1, 4, 1, 4};
    CHECK_STATUS(vitq_quantizer_observe(q, 0, &small), VITQ_ERR_ABI_MISMATCH);
    vitq_quantizer_free(q);
}

/* `call` refuses obj one member short of its first release, and takes it at that size. */
#define CHECK_V1(obj, v1, call)                                                                    \
    do {                                                                                           \
        (obj).struct_size = (uint32_t)(v1) - 4;                                                      \
        CHECK_STATUS(call, VITQ_ERR_ABI_MISMATCH);                                                 \
        (obj).struct_size = (uint32_t)(v1);                                                        \
        CHECK_STATUS(call, VITQ_OK);                                                               \
    } while (0)

/* Every other public struct: below its first release's size it is VITQ_ERR_ABI_MISMATCH, at that size it
 * works (the same helper decides for all of them). */
static void test_every_struct_same_status(void) {
    vitq_model *m = NULL;
    vitq_dataset *ds = NULL;
    vitq_calibrator *cal = NULL;
    CHECK_STATUS(vitq_model_load_file(MODEL, NULL, &m), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(MODEL "/input_u8.npy", NULL, NULL, &ds), VITQ_OK);
    if (!m || !ds) {
        vitq_model_free(m);
        vitq_dataset_free(ds);
        return;
    }
    vitq_dataset_info di;
    vitq_dataset_info_init(&di);
    CHECK_V1(di, V1(vitq_dataset_info, has_labels), vitq_dataset_get_info(ds, &di));

    vitq_calibrator_options co;
    vitq_calibrator_options_init(&co);
    co.struct_size = (uint32_t)V1(vitq_calibrator_options, progress_user) - 8;
    CHECK_STATUS(vitq_calibrator_create(m, &co, &cal), VITQ_ERR_ABI_MISMATCH);
    co.struct_size = (uint32_t)V1(vitq_calibrator_options, progress_user);
    CHECK_STATUS(vitq_calibrator_create(m, &co, &cal), VITQ_OK);
    if (cal) {
        vitq_point_info pi;
        vitq_point_info_init(&pi);
        CHECK_V1(pi, V1(vitq_point_info, observed_max), vitq_calibrator_point_info(cal, 0, &pi));
        vitq_calibrator_stats cs;
        vitq_calibrator_stats_init(&cs);
        CHECK_V1(cs, V1(vitq_calibrator_stats, peak_bytes), vitq_calibrator_get_stats(cal, &cs));
    }
    vitq_method_info mi;
    vitq_method_info_init(&mi);
    CHECK_V1(mi, V1(vitq_method_info, option_size), vitq_method_get_info(0, &mi));
    vitq_calibrator_free(cal);
    vitq_dataset_free(ds);
    vitq_model_free(m);
}

int main(void) {
    RUN(test_model_options_sizes);
    RUN(test_info_written_only_where_it_fits);
    RUN(test_allocator_sizes);
    RUN(test_plugin_context_and_option_stride);
    RUN(test_old_scheme_table);
    RUN(test_tensor_view_sizes);
    RUN(test_every_struct_same_status);
    HARNESS_EXIT();
}

/* Integer execution of quantized models (vitq_execution) through the public API: the same quantized
 * file run on the integer kernels and in simulation gives the same predictions and nearly the same
 * logits on ViT, DeiT and Swin, at 8- and 4-bit weights, for a method that mixes integer and simulated
 * layers; the counts of integer layers and integer attentions are what the quantizers allow; files reload bit for bit; each weight is held once. */
#include "calib_util.h"
#include "test_util.h"
#include "kernels/cpu.h"

static int32_t integer_layers(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    return i.num_integer_layers;
}

static int32_t integer_attentions(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    return i.num_integer_attentions;
}

/* Linear layers of the model but the patch embedding (whose image input stays float by default). */
static int32_t linear_layers(const vitq_model *m) {
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(m, &i), VITQ_OK);
    int32_t heads = i.num_prefix_tokens == 2 ? 2 : 1, merges = i.num_stages > 1 ? i.num_stages - 1 : 0;
    return 4 * i.depth + heads + merges;
}

/* Integer vs simulated logits of q on n test images. The integer GEMM sums exactly where the simulation
 * rounds float sums, so a value that sits on a rounding boundary of a later activation quantizer may
 * take the neighbouring code: differences are a few quantization steps on rare elements, never a
 * systematic drift. Bounds: mean |difference| below 0.1 % of the largest logit, top-1 agreement >= 98 %. */
/* Logits a of n images against b (k classes each), within the bound of integer execution: mean
 * |a - b| below 0.1 % of b's largest logit, top-1 agreement >= 98 %. */
static void check_close(const char *what, const float *a, const float *b, size_t n, size_t k) {
    double sum = 0, largest = 0;
    size_t same = 0;
    for (size_t i = 0; i < n; i++) {
        size_t ta = 0, tb = 0;
        for (size_t c = 0; c < k; c++) {
            sum += fabs((double)a[i * k + c] - b[i * k + c]);
            if (fabs(b[i * k + c]) > largest) largest = fabs(b[i * k + c]);
            if (a[i * k + c] > a[i * k + ta]) ta = c;
            if (b[i * k + c] > b[i * k + tb]) tb = c;
        }
        same += ta == tb;
    }
    double mean = sum / (double)(n * k);
    printf("    %s: mean |difference| %.3g (largest logit %.3g), %zu/%zu same top-1\n", what, mean, largest, same, n);
    CHECK(mean < 1e-3 * largest);
    CHECK(same * 100 >= n * 98);
}

static void check_agreement(const vitq_model *q, const char *what, int32_t want_layers, int want_attentions) {
    vitq_model *integer = reload_quantized(q, VITQ_EXECUTION_AUTO);
    vitq_model *simulated = reload_quantized(q, VITQ_EXECUTION_SIMULATED);
    if (!integer || !simulated) goto done;
    CHECK(integer_layers(simulated) == 0 && integer_attentions(simulated) == 0);
    int32_t got = integer_layers(integer);
    int attns = integer_attentions(integer);
    printf("    %s: %d integer layers (%d expected), %d integer attentions (%d expected)\n", what, (int)got,
           (int)want_layers, attns, want_attentions);
    CHECK(got == want_layers);
    CHECK(attns == want_attentions);
    size_t n = harness_quick() ? 100 : 500, k = (size_t)classes_of(q);
    float *a = logits_of(integer, n), *b = logits_of(simulated, n);
    char label[200];
    snprintf(label, sizeof label, "%s: integer - simulated", what);
    check_close(label, a, b, n, k);
    free(a);
    free(b);
done:
    vitq_model_free(integer);
    vitq_model_free(simulated);
}

static void check_model(const char *path) {
    vitq_model *fp = load(path);
    if (!fp) return;
    int32_t all = linear_layers(fp);
    vitq_model_info info;
    vitq_model_info_init(&info);
    CHECK_STATUS(vitq_model_get_info(fp, &info), VITQ_OK);
    int blocks = info.depth;
    char what[160];
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, NULL, 0);
    snprintf(what, sizeof what, "%s minmax W8A8", path);
    if (q) check_agreement(q, what, all, blocks); /* uniform q, k, v and probabilities: integer attention */
    vitq_model_free(q);
    q = quantize(fp, NULL, "minmax", 4, 8, NULL, 0); /* int4 storage, two codes per byte */
    snprintf(what, sizeof what, "%s minmax W4A8", path);
    if (q) check_agreement(q, what, all, blocks);
    vitq_model_free(q);
    /* RepQ-ViT at W4A4: per-tensor uniform inputs after the fold run in integers; the log-sqrt2
     * probabilities are not a linear input, so every linear layer qualifies */
    q = quantize(fp, NULL, "repq-vit", 4, 4, NULL, 0);
    snprintf(what, sizeof what, "%s repq-vit W4A4", path);
    if (q) check_agreement(q, what, all, 0); /* log-sqrt2 probabilities: the attention stays simulated */
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_integer_vit(void) { check_model("models/fmnist-vit"); }
static void test_integer_deit(void) { check_model("models/fmnist-deit-distilled"); }
static void test_integer_swin(void) { check_model("models/fmnist-swin"); }

/* Layers whose input quantizer is not one uniform grid stay simulated: twin-gelu on every fc2 input
 * and noise on every proj input leave 2 layers per block to the simulation. */
static void test_other_quantizers_stay_simulated(void) {
    static const char *const sets[] = {"*.fc2.input", "scheme", "twin-gelu", "*.fc2.input", "symmetric", "1",
                                       "*.attn.proj.input", "noisy", "1"};
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_model *q = quantize(fp, NULL, "minmax", 8, 8, sets, 3);
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(fp, &i), VITQ_OK);
    if (q) check_agreement(q, "fmnist-vit twin-gelu fc2, noisy proj", linear_layers(fp) - 2 * i.depth, i.depth);
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void *saved(const vitq_model *m, size_t *size) {
    *size = 0;
    CHECK_STATUS(vitq_model_save_memory(m, NULL, 0, size), VITQ_OK);
    void *bytes = malloc(*size);
    CHECK_STATUS(vitq_model_save_memory(m, bytes, *size, size), VITQ_OK);
    return bytes;
}

/* An integer model saves the file it was loaded from (its codes exist only in the kernels' panels and
 * are read back from there): the same bytes as the simulated model's save, and reloading gives the
 * same logits bit for bit. 8-bit codes and 4-bit codes stored two per byte. */
static void test_integer_reload(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    for (int wbits = 8; wbits >= 4; wbits -= 4) {
        vitq_model *q = quantize(fp, NULL, "minmax", wbits, 8, NULL, 0);
        vitq_model *a = q ? reload_quantized(q, VITQ_EXECUTION_AUTO) : NULL, *b = a ? reload_quantized(a, VITQ_EXECUTION_AUTO) : NULL;
        vitq_model *sim = q ? reload_quantized(q, VITQ_EXECUTION_SIMULATED) : NULL;
        if (a && b && sim) {
            CHECK(integer_layers(a) == linear_layers(a));
            size_t n = 32, size_a, size_sim;
            float *la = logits_of(a, n), *lb = logits_of(b, n);
            CHECK(memcmp(la, lb, n * (size_t)classes_of(a) * sizeof(float)) == 0);
            void *bytes_a = saved(a, &size_a), *bytes_sim = saved(sim, &size_sim);
            CHECK(size_a == size_sim && memcmp(bytes_a, bytes_sim, size_a) == 0);
            free(la), free(lb), free(bytes_a), free(bytes_sim);
        }
        vitq_model_free(a);
        vitq_model_free(b);
        vitq_model_free(sim);
        vitq_model_free(q);
    }
    vitq_model_free(fp);
}

/* ---- memory: each weight is kept once, in the form its kernel reads ---------------------------- */

static size_t live_bytes;

static void *counting_alloc(void *user, size_t size, size_t align) {
    (void)user;
    void *p = NULL;
    if (posix_memalign(&p, align < 64 ? 64 : align, size + 64) != 0) return NULL;
    *(size_t *)p = size; /* the size in front of the block (the alignment keeps the block aligned) */
    live_bytes += size;
    return (char *)p + 64;
}

static void counting_free(void *user, void *p) {
    (void)user;
    if (!p) return;
    char *base = (char *)p - 64;
    live_bytes -= *(size_t *)base;
    free(base);
}

/* Bytes a model holds once loaded from `bytes` (NULL: from the folder `path`) with `execution`. */
static size_t model_bytes(const char *path, const void *bytes, size_t size, int32_t execution) {
    vitq_allocator a = {sizeof a, counting_alloc, counting_free, NULL};
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.allocator = &a;
    o.execution = execution;
    vitq_model *m = NULL;
    size_t before = live_bytes;
    CHECK_STATUS(bytes ? vitq_model_load_memory(bytes, size, "model", &o, &m) : vitq_model_load_file(path, &o, &m),
                 VITQ_OK);
    size_t held = live_bytes - before;
    vitq_model_free(m);
    CHECK(live_bytes == before);
    return held;
}

/* A float model holds its weights once, as float panels: 4 bytes per parameter plus the panels'
 * padding to 32 outputs (none at this model's widths, 64 to 256). An integer W8A8 model holds int8
 * panels (padded to 48 outputs: 25 % more here), float biases, norms and embeddings, and per output
 * channel about 36 bytes of quantizer state and kernel scales, which on this narrow model (64-wide)
 * is 0.3 bytes per parameter; W4A8 halves the panels. Before the weights were stored once, the float
 * model held 8 bytes per weight and the integer model 6 (float rows, codes and panels). */
static void test_weights_stored_once(void) {
    vitq_model *fp = load("models/fmnist-vit");
    if (!fp) return;
    vitq_model_info i;
    vitq_model_info_init(&i);
    CHECK_STATUS(vitq_model_get_info(fp, &i), VITQ_OK);
    vitq_model *q8 = quantize(fp, NULL, "minmax", 8, 8, NULL, 0), *q4 = quantize(fp, NULL, "minmax", 4, 8, NULL, 0);
    size_t size8, size4;
    void *bytes8 = q8 ? saved(q8, &size8) : NULL, *bytes4 = q4 ? saved(q4, &size4) : NULL;
    if (bytes8 && bytes4) {
        double params = (double)i.num_params;
        size_t fl = model_bytes("models/fmnist-vit", NULL, 0, VITQ_EXECUTION_AUTO);
        size_t sim = model_bytes(NULL, bytes8, size8, VITQ_EXECUTION_SIMULATED);
        size_t int8 = model_bytes(NULL, bytes8, size8, VITQ_EXECUTION_AUTO);
        size_t int4 = model_bytes(NULL, bytes4, size4, VITQ_EXECUTION_AUTO);
        printf("    %.0f parameters: float %zu B (%.2f B/param), W8A8 simulated %zu, integer %zu (%.2f), W4A8 integer %zu "
               "(%.2f)\n", params, fl, fl / params, sim, int8, int8 / params, int4, int4 / params);
        CHECK(fl < 4.1 * params);
        CHECK(int8 < 2.2 * params);
        CHECK(int4 < int8 - 0.5 * 0.9 * params); /* at least half of the weights' byte each */
    }
    free(bytes8), free(bytes4);
    vitq_model_free(q8);
    vitq_model_free(q4);
    vitq_model_free(fp);
}

/* Every instruction-set path the CPU has (portable C, AVX2, AVX-512; their integer kernels follow)
 * runs the same integer model: the integer sums are exact on every path, the float parts (LayerNorm,
 * softmax, GELU, the float GEMM of the patch embedding) agree bit for bit except that the portable
 * GEMM rounds products where the others fuse them, so the logits agree within the integer-vs-
 * simulated bound, and the two FMA paths agree bit for bit. */
static void test_integer_isa_paths(void) {
    vitq_model *fp = load("models/fmnist-vit");
    vitq_model *q = fp ? quantize(fp, NULL, "minmax", 8, 8, NULL, 0) : NULL;
    vitq_model *m = q ? reload_quantized(q, VITQ_EXECUTION_AUTO) : NULL;
    if (m) {
        size_t n = harness_quick() ? 100 : 300, k = (size_t)classes_of(m);
        float *ref = logits_of(m, n), *fma_ref = NULL;
        for (int isa = VITQ_I_ISA_GENERIC; isa <= (int)VITQ_I_ISA_AVX512; isa++) {
            vitq_i_isa_force(isa);
            if ((int)vitq_i_isa_active() != isa) continue; /* not on this CPU */
            float *got = logits_of(m, n);
            char label[64];
            snprintf(label, sizeof label, "%s against the default path", vitq_i_isa_name((vitq_i_isa)isa));
            check_close(label, got, ref, n, k);
            if (isa != VITQ_I_ISA_GENERIC && fma_ref) CHECK(memcmp(got, fma_ref, n * k * sizeof(float)) == 0);
            if (isa != VITQ_I_ISA_GENERIC && !fma_ref) fma_ref = got;
            else free(got);
        }
        vitq_i_isa_force(-1);
        free(ref), free(fma_ref);
    }
    vitq_model_free(m);
    vitq_model_free(q);
    vitq_model_free(fp);
}

static void test_bad_execution(void) {
    vitq_model_options o;
    vitq_model_options_init(&o);
    o.execution = 7;
    vitq_model *m = NULL;
    CHECK_STATUS(vitq_model_load_file("models/fmnist-vit", &o, &m), VITQ_ERR_INVALID_ARGUMENT);
    CHECK(strstr(vitq_last_error(), "execution") != NULL);
    CHECK(m == NULL);
}

int main(void) {
    CHECK_STATUS(vitq_dataset_load_file(CALIB, NULL, NULL, &calib_set), VITQ_OK);
    CHECK_STATUS(vitq_dataset_load_file(TEST_IMAGES, TEST_LABELS, NULL, &test_set), VITQ_OK);
    RUN(test_bad_execution);
    RUN(test_integer_reload);
    RUN(test_weights_stored_once);
    RUN(test_integer_isa_paths);
    RUN(test_other_quantizers_stay_simulated);
    RUN(test_integer_vit);
    RUN(test_integer_deit);
    RUN(test_integer_swin);
    vitq_dataset_free(calib_set);
    vitq_dataset_free(test_set);
    HARNESS_EXIT();
}

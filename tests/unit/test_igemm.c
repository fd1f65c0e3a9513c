/* Integer GEMM and activation quantization against plain references.
 *
 * The integer part of vitq_i_qgemm is exact and its float epilogue is a fixed sequence of IEEE
 * operations, so the reference below (int64 sums, then the same float steps in the same order) must
 * match every kernel and thread count bit for bit: all comparisons are exact, no tolerance. One
 * additional check compares with dequantized values in double to pin down what the codes mean. */
#include <float.h>
#include <stdint.h>

#include "harness.h"
#include "kernels/cpu.h"
#include "kernels/igemm.h"
#include "kernels/igemm_int_sink.h"
#include "kernels/uniform.h"

static vitq_allocator alloc;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t next_u64(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static int32_t irand(int32_t lo, int32_t hi) { return lo + (int32_t)(next_u64() % (uint64_t)(hi - lo + 1)); }
static float frand(float lo, float hi) { return lo + (hi - lo) * (float)((next_u64() >> 11) / 9007199254740992.0); }

/* Every kernel this CPU runs, then the generic one again through vitq_i_isa_force (the automatic
 * choice must follow the forced instruction set). */
static int kernels[VITQ_I_QK_COUNT], nkernels;
static void list_kernels(void) {
    nkernels = 0;
    for (int k = 0; k < VITQ_I_QK_COUNT; k++)
        if (vitq_i_qkernel_available((vitq_i_qkernel)k)) kernels[nkernels++] = k;
}

/* ---- activation quantization ---- */

/* The bytes come from the instruction-set table (kernels/isa.h uniform_u8): every path is checked. */
static void check_quantize_case(const vitq_i_qact *q, const float *x, size_t rows, size_t cols, int threads) {
    vitq_i_uniform grid = {8, q->qmin < 0, q->qmin, q->qmax};
    int32_t off = vitq_i_qact_offset(q);
    size_t ldx = cols + 3, ldo = cols + 5;
    uint8_t *out = malloc(rows * ldo + 1);
    for (int isa = VITQ_I_ISA_GENERIC; isa <= VITQ_I_ISA_AVX512; isa++) {
        vitq_i_isa_force(isa); /* clamped to this CPU: the best path may run more than once */
        memset(out, 0xA5, rows * ldo);
        vitq_i_quantize_u8(x, ldx, rows, cols, q, out, ldo, threads);
        int bad = 0;
        for (size_t r = 0; r < rows; r++) {
            for (size_t c = 0; c < cols; c++) {
                int32_t want = vitq_i_uniform_code(&grid, x[r * ldx + c], q->scale, (float)q->zero) + off;
                if (out[r * ldo + c] != want && bad++ < 3)
                    printf("    %s: x = %.9g scale %g zero %d [%d, %d]: byte %d, want %d\n",
                           vitq_i_isa_name(vitq_i_isa_active()), (double)x[r * ldx + c], (double)q->scale,
                           (int)q->zero, (int)q->qmin, (int)q->qmax, out[r * ldo + c], (int)want);
            }
            for (size_t c = cols; c < ldo; c++) bad += out[r * ldo + c] != 0xA5; /* nothing written past cols */
        }
        if (bad) harness_check_failures++;
    }
    vitq_i_isa_force(-1);
    free(out);
}

/* Values that probe every branch of the code function: ties at x / scale = q + 0.5 (round half to
 * even), NaN, infinities, huge values past the +-2^22 pre-clamp, signed zeros, subnormals. */
static float edge_value(size_t i, float scale) {
    switch (i % 16) {
    case 0: return NAN;
    case 1: return INFINITY;
    case 2: return -INFINITY;
    case 3: return FLT_MAX;
    case 4: return -FLT_MAX;
    case 5: return -0.0f;
    case 6: return 1e-45f;
    case 7: return 5e30f;
    case 8: return -3e9f;
    case 9: return ((float)irand(-300, 300) + 0.5f) * scale; /* exact tie when scale is a power of 2 */
    case 10: return (float)irand(-300, 300) * scale;
    case 11: return 4194304.0f * scale * frand(0.99f, 1.01f);
    case 12: return -NAN;
    case 13: /* within an ulp of a tie for any scale: x / scale must be the one correctly rounded division */
    case 14: {
        float tie = ((float)irand(-300, 300) + 0.5f) * scale;
        int step = irand(-2, 2);
        for (; step > 0; step--) tie = nextafterf(tie, INFINITY);
        for (; step < 0; step++) tie = nextafterf(tie, -INFINITY);
        return tie;
    }
    default: return frand(-200.0f, 200.0f) * scale;
    }
}

static void test_quantize_matches_uniform_code(void) {
    const vitq_i_qact grids[] = {
        {0.0625f, 0, -128, 127}, {0.0625f, 37, 0, 255}, {0.013f, 0, -8, 7},   {0.5f, 3, 0, 15},
        {1.0f, 0, -2, 1},        {0.1f, 255, 0, 255},   {0.25f, 0, 0, 255},   {3e-4f, 100, 0, 127},
        {0.0123f, 0, -128, 127}, {0.37f, 128, 0, 255},  {0.7f, 0, -128, 127}, {0.029f, 9, 0, 255},
    };
    const size_t cols_list[] = {1, 7, 8, 15, 16, 17, 33, 1000};
    for (size_t g = 0; g < sizeof grids / sizeof grids[0]; g++) {
        CHECK_STATUS(vitq_i_qact_check(&grids[g]), VITQ_OK);
        for (size_t ci = 0; ci < 8; ci++) {
            size_t cols = cols_list[ci], rows = 1 + ci % 3 * 9, ldx = cols + 3;
            float *x = malloc(rows * ldx * sizeof(float));
            for (size_t i = 0; i < rows * ldx; i++)
                x[i] = (i + g) % 3 ? edge_value(i, grids[g].scale) : frand(-300.0f, 300.0f) * grids[g].scale;
            check_quantize_case(&grids[g], x, rows, cols, 1 + (int)(ci % 2));
            free(x);
        }
    }
}

static void test_qact_check(void) {
    vitq_i_qact ok = {0.1f, 0, -128, 127};
    CHECK(vitq_i_qact_offset(&ok) == 128);
    vitq_i_qact bad[] = {{0.0f, 0, 0, 255},    {NAN, 0, 0, 255},  {INFINITY, 0, 0, 255},
                         {0.1f, 0, -129, 127}, {0.1f, 0, 0, 256}, {0.1f, 256, 0, 255},
                         {0.1f, -1, 0, 255},   {0.1f, 0, 5, 4},   {0.1f, -129, -128, 127}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_STATUS(vitq_i_qact_check(&bad[i]), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_qact_check(NULL), VITQ_ERR_INVALID_ARGUMENT);
}

/* ---- the GEMM ---- */

typedef struct layer {
    size_t n, k;
    int bits, symmetric, store_bits;
    size_t groups;
    int32_t *codes, *zero;
    float *scale, *bias;
    vitq_i_qpacked packed;
} layer;

/* Random weight codes of a grid; `extreme` puts every code at qmin (-1), qmax (+1) or random (0). */
static void make_layer(layer *L, size_t n, size_t k, int bits, int symmetric, int store_bits, int per_channel,
                       int extreme, int32_t fixed_zero) {
    memset(L, 0, sizeof *L);
    L->n = n, L->k = k, L->bits = bits, L->symmetric = symmetric, L->store_bits = store_bits;
    L->groups = per_channel ? n : 1;
    vitq_i_uniform g = vitq_i_uniform_grid(bits, symmetric);
    L->codes = malloc(n * k * sizeof(int32_t) + 4);
    L->zero = malloc(L->groups * sizeof(int32_t));
    L->scale = malloc(L->groups * sizeof(float));
    L->bias = malloc(n * sizeof(float) + 4);
    for (size_t i = 0; i < n * k; i++)
        L->codes[i] = extreme < 0 ? g.qmin : extreme > 0 ? g.qmax : irand(g.qmin, g.qmax);
    for (size_t j = 0; j < L->groups; j++) {
        L->scale[j] = frand(0.001f, 0.05f);
        L->zero[j] = fixed_zero != INT32_MIN ? fixed_zero
                     : symmetric             ? (j % 3 == 2 ? irand(-2, 2) : 0)
                                             : irand(g.qmin, g.qmax);
    }
    for (size_t j = 0; j < n; j++) L->bias[j] = frand(-1.0f, 1.0f);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, L->codes, n, k, bits, symmetric, L->scale, L->zero, L->groups, store_bits,
                                   &L->packed),
                 VITQ_OK);
    /* the panels give back the codes exactly (saving an integer model reads them from there) */
    int32_t *back = malloc(n * k * sizeof(int32_t) + 4);
    vitq_i_qgemm_unpack_codes(&L->packed, back);
    CHECK(n * k == 0 || memcmp(back, L->codes, n * k * sizeof(int32_t)) == 0);
    free(back);
}

static void free_layer(layer *L) {
    vitq_i_qpacked_free(&alloc, &L->packed);
    free(L->codes), free(L->zero), free(L->scale), free(L->bias);
}

/* The reference: int64 sums of code differences ... */
static int64_t ref_acc(const layer *L, const uint8_t *a, size_t lda, size_t i, size_t j, int32_t a_zero) {
    size_t g = L->groups == 1 ? 0 : j;
    int64_t acc = 0;
    for (size_t kk = 0; kk < L->k; kk++)
        acc += (int64_t)((int32_t)a[i * lda + kk] - a_zero) * (L->codes[j * L->k + kk] - L->zero[g]);
    return acc;
}

/* ... then the float steps of igemm.h in their order. */
static float ref_epilogue(const layer *L, int64_t acc, size_t j, float a_scale, int with_bias, vitq_i_epilogue e,
                          float old) {
    float s = a_scale * L->scale[L->groups == 1 ? 0 : j];
    float p = (float)acc * s;
    float v = p + (with_bias ? L->bias[j] : 0.0f);
    switch (e) {
    case VITQ_I_EPI_GELU_ERF: return vitq_i_gelu_erf(v);
    case VITQ_I_EPI_GELU_TANH: return vitq_i_gelu_tanh(v);
    case VITQ_I_EPI_RESIDUAL: return old + v;
    default: return v;
    }
}

static int same_float(float x, float y) { return memcmp(&x, &y, sizeof x) == 0; }

/* Every kernel, 1 and 2 threads, every epilogue: bit-identical to the reference, nothing written
 * outside the m x n block of c. */
static void check_gemm(const layer *L, const uint8_t *a, size_t lda, size_t m, float a_scale, int32_t a_zero,
                       int with_bias, const char *what) {
    size_t n = L->n, ldc = n + 3;
    float *c = malloc(m * ldc * sizeof(float) + 4), *base = malloc(m * ldc * sizeof(float) + 4);
    float *want = malloc(m * n * sizeof(float) + 4);
    int64_t *acc = malloc(m * n * sizeof(int64_t) + 8), worst = 0;
    for (size_t i = 0; i < m * ldc; i++) base[i] = frand(-2.0f, 2.0f);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            acc[i * n + j] = ref_acc(L, a, lda, i, j, a_zero);
            worst = llabs(acc[i * n + j]) > worst ? llabs(acc[i * n + j]) : worst;
        }
    CHECK(worst <= INT32_MAX);
    for (int e = 0; e < 4; e++) {
        for (size_t i = 0; i < m; i++)
            for (size_t j = 0; j < n; j++)
                want[i * n + j] =
                    ref_epilogue(L, acc[i * n + j], j, a_scale, with_bias, (vitq_i_epilogue)e, base[i * ldc + j]);
        for (int ki = 0; ki < nkernels; ki++)
            for (int threads = 1; threads <= 2; threads++) {
                vitq_i_qkernel_force(kernels[ki]);
                memcpy(c, base, m * ldc * sizeof(float));
                CHECK_STATUS(vitq_i_qgemm(a, lda, m, a_scale, a_zero, &L->packed, with_bias ? L->bias : NULL, c, ldc,
                                          (vitq_i_epilogue)e, threads),
                             VITQ_OK);
                size_t bad = 0, first = SIZE_MAX;
                for (size_t i = 0; i < m; i++)
                    for (size_t j = 0; j < ldc; j++) {
                        int ok = j < n ? same_float(c[i * ldc + j], want[i * n + j])
                                       : same_float(c[i * ldc + j], base[i * ldc + j]);
                        if (!ok && bad++ == 0) first = i * ldc + j;
                    }
                if (bad) {
                    size_t i = first / ldc, j = first % ldc;
                    printf("    %s %s, %d thread(s), epilogue %d, m %zu n %zu k %zu: %zu mismatches, first [%zu][%zu] "
                           "%.9g want %.9g\n",
                           what, vitq_i_qkernel_name((vitq_i_qkernel)kernels[ki]), threads, e, m, n, L->k, bad, i, j,
                           (double)c[first], j < n ? (double)want[i * n + j] : (double)base[first]);
                    harness_check_failures++;
                }
            }
    }
    vitq_i_qkernel_force(-1);
    free(c), free(base), free(want), free(acc);
}

/* Activation bytes of a grid: codes in [qmin, qmax] shifted by the offset, sometimes all at one end. */
static uint8_t *make_acts(size_t m, size_t k, size_t lda, int32_t lo, int32_t hi, int extreme) {
    uint8_t *a = malloc(m * lda + 1);
    for (size_t i = 0; i < m * lda; i++) a[i] = (uint8_t)(extreme < 0 ? lo : extreme > 0 ? hi : irand(lo, hi));
    (void)k;
    return a;
}

static void test_qgemm_odd_sizes(void) {
    static const size_t sizes[][3] = {{1, 1, 1},     {3, 7, 16},   {7, 17, 63},   {16, 63, 3},   {17, 385, 7},
                                      {63, 49, 197}, {1, 48, 385}, {197, 96, 17}, {65, 200, 64}, {2, 3, 1536}};
    static const int bits_list[] = {8, 6, 4, 3, 2};
    size_t cases = sizeof sizes / sizeof sizes[0];
    if (harness_quick()) cases = 6;
    int idx = 0;
    for (size_t s = 0; s < cases; s++)
        for (int bi = 0; bi < 5; bi++)
            for (int sym = 0; sym <= 1; sym++) {
                int bits = bits_list[bi];
                for (int store = 8; store >= 4; store -= 4) {
                    if (store == 4 && bits > 4) continue;
                    idx++;
                    size_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2], lda = k + (size_t)(idx % 3);
                    layer L;
                    make_layer(&L, n, k, bits, sym, store, idx % 4 != 0, 0, INT32_MIN);
                    /* Activations: alternate signed 8-bit (zero 128), unsigned with a random zero, narrow grids. */
                    int kind = idx % 3;
                    int32_t lo = kind == 2 ? 128 - 8 : 0, hi = kind == 2 ? 128 + 7 : 255;
                    int32_t a_zero = kind == 0 ? 128 : kind == 1 ? irand(0, 255) : 128;
                    uint8_t *a = make_acts(m, k, lda, lo, hi, 0);
                    char what[64];
                    snprintf(what, sizeof what, "W%d%s/%d", bits, sym ? "s" : "a", store);
                    check_gemm(&L, a, lda, m, frand(0.005f, 0.05f), a_zero, idx % 2, what);
                    free(a);
                    free_layer(&L);
                }
            }
}

/* Codes and zero points at the ends of their ranges with k at the largest size the pack accepts:
 * |acc| reaches 2^31 - O(k), any saturation or lost carry would show. */
static void test_qgemm_extremes(void) {
    struct {
        int bits, sym, store;
        int wext;       /* weights all qmin (-1) or qmax (+1) */
        int32_t wzero;  /* weight zero point */
        int32_t a_byte; /* every activation byte */
        int32_t a_zero;
        size_t k;
    } cases[] = {
        {8, 0, 8, 1, 0, 255, 0, 33025},  {8, 0, 8, -1, 255, 255, 0, 33025}, {8, 0, 8, 1, 0, 0, 255, 33025},
        {8, 1, 8, -1, 0, 255, 0, 65793}, {8, 1, 8, -1, 0, 0, 255, 65793},   {8, 1, 8, 1, 0, 255, 0, 65793},
        {4, 0, 4, 1, 0, 255, 0, 561433}, {4, 1, 4, -1, 0, 255, 0, 1052688}, {4, 0, 8, -1, 15, 0, 255, 561433},
        {2, 0, 4, 1, 0, 255, 0, 200001}, {7, 0, 8, 1, 0, 255, 0, 66052},    {5, 1, 8, -1, 0, 0, 255, 100000},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t k = cases[c].k, m = 2, n = 17;
        if (harness_quick() && k > 70000) continue;
        layer L;
        make_layer(&L, n, k, cases[c].bits, cases[c].sym, cases[c].store, 1, cases[c].wext, cases[c].wzero);
        uint8_t *a = make_acts(m, k, k, cases[c].a_byte, cases[c].a_byte, 0);
        char what[64];
        snprintf(what, sizeof what, "extreme case %zu", c);
        check_gemm(&L, a, k, m, 1e-6f, cases[c].a_zero, 1, what);
        /* One more k overflows: the pack refuses it. */
        vitq_i_qpacked p;
        CHECK_STATUS(vitq_i_qgemm_pack(&alloc, L.codes, 1, k + 1 <= k ? k : k + 1, cases[c].bits, cases[c].sym, L.scale,
                                       L.zero, 1, cases[c].store, &p),
                     c == 9 || c >= 10 ? VITQ_OK : VITQ_ERR_UNSUPPORTED);
        vitq_i_qpacked_free(&alloc, &p);
        free(a);
        free_layer(&L);
    }
}

/* The codes mean values: c = sum_k a_value * w_value + bias, to float rounding. The bound: the int32
 * accumulation is exact, so the only differences are the float roundings of the scale product, the
 * conversion of acc (relative 2^-24 each) and the final multiply and add: a few ulps of the largest
 * term, sum |a_value * w_value| + |bias|. */
static void test_qgemm_values(void) {
    size_t m = 9, n = 50, k = 77;
    layer L;
    make_layer(&L, n, k, 4, 0, 4, 1, 0, INT32_MIN);
    vitq_i_qact act = {0.03f, 0, -128, 127};
    int32_t a_zero = act.zero + vitq_i_qact_offset(&act);
    uint8_t *a = make_acts(m, k, k, 0, 255, 0);
    float *c = malloc(m * n * sizeof(float));
    CHECK_STATUS(vitq_i_qgemm(a, k, m, act.scale, a_zero, &L.packed, L.bias, c, n, VITQ_I_EPI_NONE, 2), VITQ_OK);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double s = L.bias[j], mag = fabs(L.bias[j]);
            for (size_t kk = 0; kk < k; kk++) {
                double av = vitq_i_uniform_value((int32_t)a[i * k + kk] - 128, act.scale, (float)act.zero);
                double wv = vitq_i_uniform_value(L.codes[j * k + kk], L.scale[j], (float)L.zero[j]);
                s += av * wv;
                mag += fabs(av * wv);
            }
            CHECK_NEAR(c[i * n + j], s, 4 * FLT_EPSILON * mag);
        }
    free(a), free(c);
    free_layer(&L);
}

/* qgemm_requant gives the bytes of quantizing qgemm's float output, for every kernel and epilogue. */
static void test_qgemm_requant(void) {
    size_t m = 37, n = 113, k = 61;
    layer L;
    make_layer(&L, n, k, 8, 1, 8, 1, 0, INT32_MIN);
    uint8_t *a = make_acts(m, k, k, 0, 255, 0);
    float *c = malloc(m * n * sizeof(float));
    size_t ldq = n + 2;
    uint8_t *want = malloc(m * n), *q = malloc(m * ldq);
    const vitq_i_qact nexts[] = {{0.02f, 0, -128, 127}, {0.01f, 17, 0, 255}, {0.1f, 3, 0, 15}};
    for (int e = 0; e < 3; e++)
        for (int g = 0; g < 3; g++) {
            vitq_i_qkernel_force(VITQ_I_QK_GENERIC);
            CHECK_STATUS(vitq_i_qgemm(a, k, m, 0.02f, 140, &L.packed, L.bias, c, n, (vitq_i_epilogue)e, 1), VITQ_OK);
            vitq_i_quantize_u8(c, n, m, n, &nexts[g], want, n, 1);
            for (int ki = 0; ki < nkernels; ki++)
                for (int isa = VITQ_I_ISA_GENERIC; isa <= VITQ_I_ISA_AVX512; isa++) {
                    vitq_i_isa_force(isa); /* the requantized bytes: this path's uniform_u8 */
                    vitq_i_qkernel_force(kernels[ki]);
                    memset(q, 0xEE, m * ldq);
                    CHECK_STATUS(vitq_i_qgemm_requant(a, k, m, 0.02f, 140, &L.packed, L.bias, (vitq_i_epilogue)e,
                                                      &nexts[g], q, ldq, 2),
                                 VITQ_OK);
                    size_t bad = 0;
                    for (size_t i = 0; i < m; i++)
                        for (size_t j = 0; j < ldq; j++) bad += q[i * ldq + j] != (j < n ? want[i * n + j] : 0xEE);
                    if (bad) {
                        printf("    requant %s / %s epilogue %d grid %d: %zu bytes differ\n",
                               vitq_i_qkernel_name((vitq_i_qkernel)kernels[ki]), vitq_i_isa_name(vitq_i_isa_active()),
                               e, g, bad);
                        harness_check_failures++;
                    }
                }
            vitq_i_isa_force(-1);
        }
    vitq_i_qkernel_force(-1);
    CHECK_STATUS(
        vitq_i_qgemm_requant(a, k, m, 0.02f, 140, &L.packed, L.bias, VITQ_I_EPI_RESIDUAL, &nexts[0], q, ldq, 1),
        VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_qact badq = {0.0f, 0, 0, 255};
    CHECK_STATUS(vitq_i_qgemm_requant(a, k, m, 0.02f, 140, &L.packed, L.bias, VITQ_I_EPI_NONE, &badq, q, ldq, 1),
                 VITQ_ERR_OUT_OF_RANGE);
    free(a), free(c), free(want), free(q);
    free_layer(&L);
}

/* A row gives the same bits alone as inside a batch, whatever the batch size and thread count. */
static void test_qgemm_position_invariance(void) {
    size_t m = 150, n = 100, k = 91;
    layer L;
    make_layer(&L, n, k, 4, 1, 4, 1, 0, INT32_MIN);
    uint8_t *a = make_acts(m, k, k, 0, 255, 0);
    float *all = malloc(m * n * sizeof(float)), *one = malloc(n * sizeof(float));
    CHECK_STATUS(vitq_i_qgemm(a, k, m, 0.01f, 128, &L.packed, L.bias, all, n, VITQ_I_EPI_GELU_ERF, 2), VITQ_OK);
    int same = 1;
    for (size_t r = 0; r < m; r += 7) {
        CHECK_STATUS(vitq_i_qgemm(a + r * k, k, 1, 0.01f, 128, &L.packed, L.bias, one, n, VITQ_I_EPI_GELU_ERF, 1),
                     VITQ_OK);
        same &= memcmp(all + r * n, one, n * sizeof(float)) == 0;
    }
    CHECK(same);
    free(a), free(all), free(one);
    free_layer(&L);
}

static void test_pack_errors(void) {
    int32_t codes[12] = {0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3};
    float scale[3] = {0.1f, 0.2f, 0.3f};
    int32_t zero[3] = {0, 0, 0};
    vitq_i_qpacked p;
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 1, 0, scale, zero, 3, 0, &p), VITQ_ERR_UNSUPPORTED);
    CHECK(p.data == NULL && p.n == 0);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 9, 0, scale, zero, 3, 0, &p), VITQ_ERR_UNSUPPORTED);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 16, 1, scale, zero, 3, 0, &p), VITQ_ERR_UNSUPPORTED);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 5, 0, scale, zero, 3, 4, &p), VITQ_ERR_UNSUPPORTED);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 4, 0, scale, zero, 3, 3, &p), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 4, 0, scale, zero, 2, 0, &p), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, NULL, 3, 4, 4, 0, scale, zero, 3, 0, &p), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 4, 0, NULL, zero, 3, 0, &p), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 4, 0, scale, zero, 3, 0, NULL), VITQ_ERR_INVALID_ARGUMENT);
    /* Codes outside the grid: 3 bits unsigned stops at 7, 3 bits signed at 3, 2 bits unsigned at 3. */
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 3, 0, scale, zero, 3, 0, &p), VITQ_OK);
    vitq_i_qpacked_free(&alloc, &p);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 3, 1, scale, zero, 3, 0, &p), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 2, 0, scale, zero, 3, 8, &p), VITQ_ERR_OUT_OF_RANGE);
    int32_t neg[4] = {0, -1, 0, 0}, big[4] = {256, 0, 0, 0};
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, neg, 1, 4, 8, 0, scale, zero, 1, 0, &p), VITQ_ERR_OUT_OF_RANGE);
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, big, 1, 4, 8, 0, scale, zero, 1, 0, &p), VITQ_ERR_OUT_OF_RANGE);
    big[0] = 128;
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, big, 1, 4, 8, 1, scale, zero, 1, 0, &p), VITQ_ERR_OUT_OF_RANGE);
    /* Scales must be finite and positive. */
    float bad_scale[3] = {0.1f, 0.0f, 0.1f};
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 8, 0, bad_scale, zero, 3, 0, &p), VITQ_ERR_OUT_OF_RANGE);
    bad_scale[1] = NAN;
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 4, 8, 0, bad_scale, zero, 3, 0, &p), VITQ_ERR_OUT_OF_RANGE);
    /* A zero point far outside the grid makes even a short k overflow. */
    int32_t far[1] = {2000000000};
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 1, 4, 8, 0, scale, far, 1, 0, &p), VITQ_ERR_UNSUPPORTED);
    /* Empty layers pack and multiply to nothing. */
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 0, 4, 8, 0, scale, zero, 1, 0, &p), VITQ_OK);
    float c[4] = {1, 2, 3, 4};
    uint8_t a[4] = {1, 2, 3, 4};
    CHECK_STATUS(vitq_i_qgemm(a, 4, 1, 0.1f, 0, &p, NULL, c, 4, VITQ_I_EPI_NONE, 1), VITQ_OK);
    vitq_i_qpacked_free(&alloc, &p);
    /* k = 0: every output is the bias. */
    CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, 3, 0, 8, 0, scale, zero, 3, 0, &p), VITQ_OK);
    CHECK_STATUS(vitq_i_qgemm(a, 0, 1, 0.1f, 7, &p, scale, c, 4, VITQ_I_EPI_NONE, 1), VITQ_OK);
    CHECK(c[0] == scale[0] && c[1] == scale[1] && c[2] == scale[2] && c[3] == 4);
    /* GEMM argument errors leave c alone. */
    CHECK_STATUS(vitq_i_qgemm(a, 4, 1, 0.1f, 256, &p, NULL, c, 4, VITQ_I_EPI_NONE, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm(a, 4, 1, 0.1f, -1, &p, NULL, c, 4, VITQ_I_EPI_NONE, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm(a, 4, 1, 0.1f, 0, &p, NULL, c, 4, (vitq_i_epilogue)9, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm(a, 4, 1, 0.1f, 0, &p, NULL, c, 2, VITQ_I_EPI_NONE, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm(a, 4, 1, 0.1f, 0, NULL, NULL, c, 4, VITQ_I_EPI_NONE, 1), VITQ_ERR_INVALID_ARGUMENT);
    vitq_i_qpacked_free(&alloc, &p);
}

/* The automatic choice follows the forced instruction set and never exceeds the CPU. */
static void test_kernel_choice(void) {
    vitq_i_isa_force(VITQ_I_ISA_GENERIC);
    CHECK(vitq_i_qkernel_active() == VITQ_I_QK_GENERIC);
    vitq_i_isa_force(VITQ_I_ISA_AVX2);
    vitq_i_qkernel k = vitq_i_qkernel_active();
    CHECK(k == VITQ_I_QK_GENERIC || k == VITQ_I_QK_AVX2 || k == VITQ_I_QK_AVX2_VNNI);
    vitq_i_isa_force(-1);
    CHECK(vitq_i_qkernel_available(vitq_i_qkernel_active()));
    vitq_i_qkernel_force(VITQ_I_QK_GENERIC);
    CHECK(vitq_i_qkernel_active() == VITQ_I_QK_GENERIC);
    vitq_i_qkernel_force(-1);
    printf("    kernels on this CPU:");
    for (int i = 0; i < nkernels; i++) printf(" %s", vitq_i_qkernel_name((vitq_i_qkernel)kernels[i]));
    printf("; automatic: %s\n", vitq_i_qkernel_name(vitq_i_qkernel_active()));
}

/* The GEMM through vitq_i_isa_force rather than the kernel override: the same bits. */
static void test_isa_force_paths(void) {
    size_t m = 23, n = 70, k = 45;
    layer L;
    make_layer(&L, n, k, 8, 0, 8, 1, 0, INT32_MIN);
    uint8_t *a = make_acts(m, k, k, 0, 255, 0);
    float *ref = malloc(m * n * sizeof(float)), *c = malloc(m * n * sizeof(float));
    vitq_i_isa_force(VITQ_I_ISA_GENERIC);
    CHECK_STATUS(vitq_i_qgemm(a, k, m, 0.01f, 77, &L.packed, L.bias, ref, n, VITQ_I_EPI_GELU_TANH, 1), VITQ_OK);
    for (int isa = VITQ_I_ISA_AVX2; isa <= VITQ_I_ISA_AVX512; isa++) {
        vitq_i_isa_force(isa);
        CHECK_STATUS(vitq_i_qgemm(a, k, m, 0.01f, 77, &L.packed, L.bias, c, n, VITQ_I_EPI_GELU_TANH, 2), VITQ_OK);
        CHECK(memcmp(ref, c, m * n * sizeof(float)) == 0);
    }
    vitq_i_isa_force(-1);
    free(a), free(ref), free(c);
    free_layer(&L);
}

/* Activation bytes packed in place (attention's K and V^T) give the GEMM exactly what packing their
 * codes as weights gives, in both layouts (rows contiguous, or columns contiguous), on odd shapes,
 * for unsigned, signed and narrow grids, on every kernel. */
static void test_pack_bytes(void) {
    const vitq_i_qact grids[] = {{0.02f, 37, 0, 255}, {0.05f, 0, -128, 127}, {0.3f, 3, 0, 15}, {0.01f, 0, 0, 255}};
    const size_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {49, 32, 49}, {197, 64, 197}, {50, 97, 13}, {64, 197, 9}};
    for (size_t g = 0; g < sizeof grids / sizeof grids[0]; g++)
        for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++)
            for (int transposed = 0; transposed < 2; transposed++) {
                size_t n = shapes[sh][0], k = shapes[sh][1], m = shapes[sh][2];
                const vitq_i_qact *q = &grids[g];
                int32_t off = vitq_i_qact_offset(q);
                /* the matrix in a wider buffer: row stride ld (rows = n) or column stride ld (transposed) */
                size_t ld = (transposed ? n : k) + 3, rs = transposed ? 1 : ld, cs = transposed ? ld : 1;
                uint8_t *b = malloc((transposed ? k : n) * ld), *a = malloc(m * k + 1);
                int32_t *codes = malloc(n * k * sizeof(int32_t) + 4);
                for (size_t i = 0; i < (transposed ? k : n) * ld; i++) b[i] = (uint8_t)irand(q->qmin + off, q->qmax + off);
                for (size_t i = 0; i < m * k; i++) a[i] = (uint8_t)irand(0, 255);
                for (size_t j = 0; j < n; j++)
                    for (size_t kk = 0; kk < k; kk++) codes[j * k + kk] = b[j * rs + kk * cs] - off;
                vitq_i_qpacked ref, got;
                int bits = q->qmax - q->qmin == 15 ? 4 : 8;
                CHECK_STATUS(vitq_i_qgemm_pack(&alloc, codes, n, k, bits, q->qmin < 0, &q->scale, &q->zero, 1, 8, &ref),
                             VITQ_OK);
                size_t bytes = vitq_i_qgemm_bytes_size(n, k);
                void *mem = NULL;
                CHECK(bytes != SIZE_MAX && posix_memalign(&mem, 64, bytes) == 0);
                CHECK_STATUS(vitq_i_qgemm_pack_bytes(b, rs, cs, n, k, q, mem, &got), VITQ_OK);
                float *c1 = malloc(m * n * sizeof(float)), *c2 = malloc(m * n * sizeof(float));
                for (int ki = 0; ki < nkernels; ki++) {
                    vitq_i_qkernel_force(kernels[ki]);
                    CHECK_STATUS(vitq_i_qgemm(a, k, m, 0.013f, 131, &ref, NULL, c1, n, VITQ_I_EPI_NONE, 1), VITQ_OK);
                    CHECK_STATUS(vitq_i_qgemm(a, k, m, 0.013f, 131, &got, NULL, c2, n, VITQ_I_EPI_NONE, 1 + ki % 2),
                                 VITQ_OK);
                    if (memcmp(c1, c2, m * n * sizeof(float)) != 0) {
                        printf("    %s: grid %zu, %zu x %zu (m %zu, %s) differs\n",
                               vitq_i_qkernel_name((vitq_i_qkernel)kernels[ki]), g, n, k, m,
                               transposed ? "transposed" : "rows");
                        harness_check_failures++;
                    }
                }
                vitq_i_qkernel_force(-1);
                vitq_i_qpacked_free(&alloc, &ref);
                free(mem), free(b), free(a), free(codes), free(c1), free(c2);
            }
    /* k past the exact int32 range is refused */
    vitq_i_qpacked p;
    uint8_t one = 0;
    const vitq_i_qact g8 = {0.1f, 0, 0, 255};
    CHECK_STATUS(vitq_i_qgemm_pack_bytes(&one, 0, 0, 1, 40000, &g8, NULL, &p), VITQ_ERR_UNSUPPORTED);
}

/* ---- the int32 output (integer-only path) ---- */

/* Every kernel, 1 and 2 threads: vitq_i_qgemm_i32 equals the int64 triple loop over the codes plus the
 * integer bias, exactly, and writes nothing outside the m x n block. */
static void check_gemm_i32(const layer *L, const uint8_t *a, size_t lda, size_t m, int32_t a_zero,
                           const int32_t *ibias, const char *what) {
    size_t n = L->n, ldc = n + 2;
    int32_t *c = malloc(m * ldc * sizeof(int32_t) + 4);
    int64_t *want = malloc(m * n * sizeof(int64_t) + 8);
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            want[i * n + j] = ref_acc(L, a, lda, i, j, a_zero) + (ibias ? ibias[j] : 0);
            CHECK(want[i * n + j] >= INT32_MIN && want[i * n + j] <= INT32_MAX);
        }
    for (int ki = 0; ki < nkernels; ki++)
        for (int threads = 1; threads <= 2; threads++) {
            vitq_i_qkernel_force(kernels[ki]);
            for (size_t i = 0; i < m * ldc; i++) c[i] = 0x5A5A5A5A;
            CHECK_STATUS(vitq_i_qgemm_i32(a, lda, m, a_zero, &L->packed, ibias, c, ldc, threads), VITQ_OK);
            size_t bad = 0, first = SIZE_MAX;
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < ldc; j++) {
                    int ok = j < n ? c[i * ldc + j] == want[i * n + j] : c[i * ldc + j] == 0x5A5A5A5A;
                    if (!ok && bad++ == 0) first = i * ldc + j;
                }
            if (bad) {
                size_t i = first / ldc, j = first % ldc;
                printf("    i32 %s %s, %d thread(s), m %zu n %zu k %zu: %zu mismatches, first [%zu][%zu] %d "
                       "want %lld\n",
                       what, vitq_i_qkernel_name((vitq_i_qkernel)kernels[ki]), threads, m, n, L->k, bad, i, j,
                       (int)c[first], j < n ? (long long)want[i * n + j] : 0x5A5A5A5ALL);
                harness_check_failures++;
            }
        }
    vitq_i_qkernel_force(-1);
    free(c), free(want);
}

static void test_qgemm_i32_odd_sizes(void) {
    static const size_t sizes[][3] = {{1, 1, 1},    {3, 7, 16},    {7, 17, 63},  {16, 63, 3},
                                      {17, 385, 7}, {63, 49, 197}, {9, 96, 17},  {65, 50, 64}};
    static const int bits_list[] = {8, 4, 3};
    size_t cases = sizeof sizes / sizeof sizes[0];
    if (harness_quick()) cases = 5;
    int idx = 0;
    for (size_t s = 0; s < cases; s++)
        for (int bi = 0; bi < 3; bi++)
            for (int sym = 0; sym <= 1; sym++)
                for (int store = 8; store >= 4; store -= 4) {
                    int bits = bits_list[bi];
                    if (store == 4 && bits > 4) continue;
                    idx++;
                    size_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2], lda = k + (size_t)(idx % 3);
                    layer L;
                    make_layer(&L, n, k, bits, sym, store, idx % 4 != 0, 0, INT32_MIN);
                    int kind = idx % 3;
                    int32_t a_zero = kind == 0 ? 128 : kind == 1 ? irand(0, 255) : 0;
                    uint8_t *a = make_acts(m, k, lda, 0, 255, 0);
                    int32_t *ibias = malloc(n * sizeof(int32_t) + 4);
                    for (size_t j = 0; j < n; j++) ibias[j] = irand(-1000000, 1000000);
                    char what[64];
                    snprintf(what, sizeof what, "W%d%s/%d", bits, sym ? "s" : "a", store);
                    check_gemm_i32(&L, a, lda, m, a_zero, idx % 2 ? ibias : NULL, what);
                    free(a), free(ibias);
                    free_layer(&L);
                }
}

/* At the documented bound: |acc| = k * 255 * 128 = 2^31 - 128 leaves room for |bias| <= 127. Bias
 * -127 on the most negative acc gives -(2^31 - 1) exactly on every path; -128 is refused (the bound
 * could be exceeded), and so is +128 on the other sign. Activation zero points near the middle leave
 * more room (A = max(a_zero, 255 - a_zero)). */
static void test_qgemm_i32_bounds(void) {
    size_t k = 65793, m = 2, n = 5; /* one short layer: cheap in the quick (sanitizer) run too */
    layer L;
    make_layer(&L, n, k, 8, 1, 8, 1, -1, 0); /* every weight -128 */
    uint8_t *a = make_acts(m, k, k, 255, 255, 0);
    int32_t bias[5] = {-127, 127, 0, -1, 100};
    check_gemm_i32(&L, a, k, m, 0, bias, "bound");
    int32_t c[2 * 5];
    for (int i = 0; i < 10; i++) c[i] = 7;
    bias[0] = -128;
    CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, 0, &L.packed, bias, c, n, 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "bias[0]") != NULL);
    bias[0] = 0, bias[3] = 128;
    CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, 255, &L.packed, bias, c, n, 1), VITQ_ERR_OUT_OF_RANGE);
    CHECK(strstr(vitq_last_error(), "bias[3]") != NULL);
    int untouched = 1;
    for (int i = 0; i < 10; i++) untouched &= c[i] == 7;
    CHECK(untouched);
    /* a_zero 128: A = 128 instead of 255, so a bias of 10^6 fits */
    bias[3] = 1000000;
    uint8_t *a2 = make_acts(m, k, k, 0, 0, 0);
    check_gemm_i32(&L, a2, k, m, 128, bias, "bound a_zero 128");
    /* argument errors as the float GEMM's */
    CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, 256, &L.packed, NULL, c, n, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, 0, NULL, NULL, c, n, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, 0, &L.packed, NULL, NULL, n, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, 0, &L.packed, NULL, c, n - 1, 1), VITQ_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(vitq_i_qgemm_i32(a, k, 0, 0, &L.packed, NULL, NULL, 0, 1), VITQ_OK);
    free(a), free(a2);
    free_layer(&L);
    /* asymmetric 4-bit weights with a zero point outside the grid, in 8-bit storage */
    make_layer(&L, 33, 1000, 4, 0, 8, 1, 0, 40);
    uint8_t *a3 = make_acts(9, 1000, 1000, 0, 255, 0);
    int32_t b33[33];
    for (int j = 0; j < 33; j++) b33[j] = irand(-100000000, 100000000);
    check_gemm_i32(&L, a3, 1000, 9, 3, b33, "zero outside the grid");
    free(a3);
    free_layer(&L);
}

/* The float mode is the integer mode followed by the float epilogue of igemm.h: for every kernel,
 * c_float == ((float)c_i32 * (a_scale * w_scale[j])) + bias[j], bit for bit. */
static void test_qgemm_float_is_i32_plus_epilogue(void) {
    const int cfg[][3] = {{8, 1, 8}, {8, 0, 8}, {4, 1, 4}, {4, 0, 4}};
    for (int ci = 0; ci < 4; ci++) {
        size_t m = 21, n = 101, k = 75;
        layer L;
        make_layer(&L, n, k, cfg[ci][0], cfg[ci][1], cfg[ci][2], 1, 0, INT32_MIN);
        uint8_t *a = make_acts(m, k, k, 0, 255, 0);
        int32_t *ci32 = malloc(m * n * sizeof(int32_t));
        float *c = malloc(m * n * sizeof(float));
        float a_scale = 0.0173f;
        for (int ki = 0; ki < nkernels; ki++) {
            vitq_i_qkernel_force(kernels[ki]);
            CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, 77, &L.packed, NULL, ci32, n, 2), VITQ_OK);
            CHECK_STATUS(vitq_i_qgemm(a, k, m, a_scale, 77, &L.packed, L.bias, c, n, VITQ_I_EPI_NONE, 2), VITQ_OK);
            size_t bad = 0;
            for (size_t i = 0; i < m; i++)
                for (size_t j = 0; j < n; j++) {
                    float s = a_scale * L.scale[j];
                    float p = (float)ci32[i * n + j] * s;
                    bad += !same_float(c[i * n + j], p + L.bias[j]);
                }
            if (bad) {
                printf("    %s W%d: %zu float outputs differ from the int32 output's epilogue\n",
                       vitq_i_qkernel_name((vitq_i_qkernel)kernels[ki]), cfg[ci][0], bad);
                harness_check_failures++;
            }
        }
        vitq_i_qkernel_force(-1);
        free(a), free(ci32), free(c);
        free_layer(&L);
    }
}

/* Paths this CPU lacks are named (their int32 mode is not tested here). */
static void test_qgemm_i32_paths(void) {
    int missing = 0;
    for (int k = 0; k < VITQ_I_QK_COUNT; k++)
        if (!vitq_i_qkernel_available((vitq_i_qkernel)k)) {
            SKIP("kernel %s not available on this CPU", vitq_i_qkernel_name((vitq_i_qkernel)k));
            missing++;
        }
    CHECK(nkernels + missing == VITQ_I_QK_COUNT);
}

/* ---- the int32 output handed to a sink (igemm_int_sink.h) ---- */

typedef struct sink_seen {
    size_t m, n, calls, bad_shape;
    int32_t *c;
    int *visits;
} sink_seen;

static void record_sink(void *ctx, size_t r0, size_t nrows, size_t c0, size_t ncols, const int32_t *x, size_t ldx) {
    sink_seen *s = ctx;
    if (nrows == 0 || nrows > VITQ_I_QGEMM_MR_MAX || ncols == 0 || ncols > VITQ_I_QGEMM_NR || r0 + nrows > s->m ||
        c0 + ncols > s->n || ldx < ncols) {
        s->bad_shape++;
        return;
    }
    for (size_t i = 0; i < nrows; i++) /* tiles never overlap: no two threads write one element */
        for (size_t j = 0; j < ncols; j++) {
            s->c[(r0 + i) * s->n + c0 + j] = x[i * ldx + j];
            s->visits[(r0 + i) * s->n + c0 + j]++;
        }
}

/* Counts its calls (one thread only). */
static void count_sink(void *ctx, size_t r0, size_t nrows, size_t c0, size_t ncols, const int32_t *x, size_t ldx) {
    (void)r0, (void)nrows, (void)c0, (void)ncols, (void)x, (void)ldx;
    ((sink_seen *)ctx)->calls++;
}

/* Every kernel, 1 and 2 threads: the sink sees every output once, in tiles of at most MR x 48, with
 * exactly vitq_i_qgemm_i32's int32s; the argument errors are vitq_i_qgemm_i32's, with no call. */
static void test_qgemm_i32_sink(void) {
    static const size_t sizes[][3] = {{1, 1, 1}, {9, 97, 33}, {17, 50, 64}, {64, 197, 64}, {5, 64, 197}};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t m = sizes[s][0], n = sizes[s][1], k = sizes[s][2];
        layer L;
        make_layer(&L, n, k, s % 2 ? 4 : 8, (int)(s % 2), s % 2 ? 4 : 8, 1, 0, INT32_MIN);
        uint8_t *a = make_acts(m, k, k, 0, 255, 0);
        int32_t *ibias = malloc(n * sizeof(int32_t) + 4), *want = malloc(m * n * sizeof(int32_t) + 4);
        for (size_t j = 0; j < n; j++) ibias[j] = irand(-1000, 1000);
        int32_t a_zero = irand(0, 255);
        sink_seen seen = {m, n, 0, 0, malloc(m * n * sizeof(int32_t) + 4), malloc(m * n * sizeof(int) + 4)};
        for (int ki = 0; ki < nkernels; ki++)
            for (int threads = 1; threads <= 2; threads++) {
                vitq_i_qkernel_force(kernels[ki]);
                CHECK_STATUS(vitq_i_qgemm_i32(a, k, m, a_zero, &L.packed, ibias, want, n, threads), VITQ_OK);
                memset(seen.visits, 0, m * n * sizeof(int));
                seen.bad_shape = 0;
                CHECK_STATUS(vitq_i_qgemm_i32_sink(a, k, m, a_zero, &L.packed, ibias, record_sink, &seen, threads),
                             VITQ_OK);
                size_t wrong = 0;
                for (size_t i = 0; i < m * n; i++) wrong += seen.visits[i] != 1 || seen.c[i] != want[i];
                if (wrong || seen.bad_shape)
                    printf("    sink %s, %d thread(s), m %zu n %zu k %zu: %zu wrong outputs, %zu bad tiles\n",
                           vitq_i_qkernel_name((vitq_i_qkernel)kernels[ki]), threads, m, n, k, wrong, seen.bad_shape);
                CHECK(wrong == 0 && seen.bad_shape == 0);
            }
        vitq_i_qkernel_force(-1);
        seen.calls = 0;
        CHECK_STATUS(vitq_i_qgemm_i32_sink(a, k, m, a_zero, &L.packed, ibias, count_sink, &seen, 1), VITQ_OK);
        CHECK(seen.calls >= (n + 47) / 48); /* at least one tile per panel */
        seen.calls = 0;
        CHECK_STATUS(vitq_i_qgemm_i32_sink(a, k, m, 256, &L.packed, ibias, count_sink, &seen, 1),
                     VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(vitq_i_qgemm_i32_sink(a, k, m, a_zero, &L.packed, ibias, NULL, &seen, 1),
                     VITQ_ERR_INVALID_ARGUMENT);
        CHECK_STATUS(vitq_i_qgemm_i32_sink(a, k - 1, m, a_zero, &L.packed, ibias, count_sink, &seen, 1),
                     VITQ_ERR_INVALID_ARGUMENT); /* lda below k */
        CHECK(seen.calls == 0);
        free(seen.c), free(seen.visits), free(a), free(ibias), free(want);
        free_layer(&L);
    }
}

int main(void) {
    CHECK_STATUS(vitq_i_allocator_resolve(NULL, &alloc), VITQ_OK);
    list_kernels();
    RUN(test_kernel_choice);
    RUN(test_qact_check);
    RUN(test_quantize_matches_uniform_code);
    RUN(test_pack_errors);
    RUN(test_qgemm_odd_sizes);
    RUN(test_qgemm_extremes);
    RUN(test_qgemm_values);
    RUN(test_qgemm_requant);
    RUN(test_pack_bytes);
    RUN(test_qgemm_position_invariance);
    RUN(test_isa_force_paths);
    RUN(test_qgemm_i32_paths);
    RUN(test_qgemm_i32_odd_sizes);
    RUN(test_qgemm_i32_bounds);
    RUN(test_qgemm_float_is_i32_plus_epilogue);
    RUN(test_qgemm_i32_sink);
    HARNESS_EXIT();
}

/* Speed of the integer non-linear kernels (src/kernels/intnl.c) on each instruction-set path against the
 * generic (scalar reference) path, on DeiT-Tiny-shaped work: one image's attention of 3 heads, 197 x 197
 * score rows (the softmaxes, FQ-ViT's P.V with 64-wide heads), its 197 tokens of 768 MLP channels (the
 * GELUs) and of 192 channels (the LayerNorms). Parameters are prepared from realistic scales
 * (quant/intnl_params.h); inputs are random codes spread as such activations are. Each time is the
 * best of many short samples (on a shared machine the closest to the code alone), per image.
 *   bench_intnl [--quick] */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_time.h"
#include "kernels/cpu.h"
#include "kernels/intnl.h"
#include "kernels/intnl_dispatch.h"
#include "kernels/requant.h"
#include "quant/intnl_params.h"

enum { T = 197, HEADS = 3, SROWS = HEADS * T, HID = 768, DIM = 192, HD = 64 };

static int16_t scores[SROWS * T], hidden[T * HID], resid[T * DIM];
static int32_t out[SROWS * T > T * HID ? SROWS * T : T * HID];
static uint8_t codes[SROWS * T];
static int8_t vals[HEADS * T * HD];
static vitq_i_ibert_softmax_params p_ib;
static vitq_i_shiftmax_params p_sm;
static vitq_i_lis_params p_lis;
static vitq_i_ibert_gelu_params p_ig;
static vitq_i_shiftgelu_params p_sg;
static vitq_i_int_layernorm_params p_ln;
static vitq_i_ln_channel ln_ch[DIM];
static vitq_i_int_layernorm_params p_ln_ivit;
static vitq_i_ln_channel ln_ch_ivit[DIM];
static int repeats = 30;
static int bad_status;

static uint64_t rng = 88172645463325252ull;
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static double gauss(void) { return sqrt(-2 * log(1 - urand())) * cos(6.283185307179586 * urand()); }
static int16_t code(double v, double lo, double hi) { return (int16_t)(v < lo ? lo : v > hi ? hi : nearbyint(v)); }

static void check(vitq_status st) { bad_status |= st != VITQ_OK; }

static void run_ibert(void) { check(vitq_i_ibert_softmax(&p_ib, scores, SROWS, T, out)); }
static void run_shiftmax(void) { check(vitq_i_shiftmax(&p_sm, scores, SROWS, T, out)); }
static void run_pv(void) {
    for (int h = 0; h < HEADS; h++)
        check(vitq_i_lis_pv(codes + h * T * T, T, T, 4, vals + h * T * HD, HD, 4, out + h * T * HD));
}
static void run_igelu(void) { check(vitq_i_ibert_gelu(&p_ig, hidden, T, HID, out)); }
static void run_shiftgelu(void) { check(vitq_i_shiftgelu(&p_sg, hidden, T, HID, out)); }
static void run_ln(void) { check(vitq_i_int_layernorm(&p_ln, resid, T, out)); }
static void run_ln_ivit(void) { check(vitq_i_int_layernorm(&p_ln_ivit, resid, T, out)); }

/* Best seconds per call over `repeats` samples of at least 1 ms each. */
static double best_time(void (*f)(void)) {
    double best = 1e30;
    for (int r = 0; r < repeats; r++) {
        int calls = 0;
        double t0 = cpu_now(), t;
        do {
            f();
            calls++;
        } while ((t = cpu_now() - t0) < 1e-3);
        if (t / calls < best) best = t / calls;
    }
    return best;
}

static void setup(void) {
    /* attention scores: N(0, 3^2) logits at 8 bits (S = 5 sigma / 127); Shiftmax and I-BERT as I-ViT runs them */
    double s8 = 15.0 / 127;
    for (int i = 0; i < SROWS * T; i++) scores[i] = code(gauss() * 3 / s8, -128, 127);
    for (int i = 0; i < HEADS * T * HD; i++) vals[i] = (int8_t)code(gauss() * 40, -128, 127);
    /* GELU inputs: N(0, 1.5^2) at 8 bits over +-6; residual stream: int16 codes of N(0, 1) with outliers */
    double sg = 6.0 / 127;
    for (int i = 0; i < T * HID; i++) hidden[i] = code(gauss() * 1.5 / sg, -128, 127);
    for (int i = 0; i < T * DIM; i++) resid[i] = code(gauss() * (i % DIM < 3 ? 8000 : 400), -32768, 32767);
    static float gamma[DIM], beta[DIM];
    for (int c = 0; c < DIM; c++) gamma[c] = (float)(0.5 + urand()), beta[c] = (float)(0.1 * gauss());
    vitq_i_ln_affine a = {DIM, gamma, beta, 0.05, {0, -128, 127}};
    check(vitq_i_ibert_softmax_prepare(s8, 8, &p_ib, NULL));
    check(vitq_i_shiftmax_prepare(s8, 8, T, &p_sm, NULL));
    check(vitq_i_lis_prepare(s8, 4, &p_lis));
    check(vitq_i_ibert_gelu_prepare(sg, &p_ig, NULL));
    check(vitq_i_shiftgelu_prepare(sg, 8, &p_sg, NULL));
    check(vitq_i_int_layernorm_prepare(VITQ_I_LN_IBERT, &a, ln_ch, &p_ln));
    check(vitq_i_int_layernorm_prepare(VITQ_I_LN_IVIT, &a, ln_ch_ivit, &p_ln_ivit));
    check(vitq_i_lis_softmax(&p_lis, scores, SROWS, T, codes));
}

static int bench_requant(void);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick")) repeats = 8;
        else {
            fprintf(stderr, "usage: bench_intnl [--quick]\n");
            return 2;
        }
    }
    setup();
    if (bad_status) {
        fprintf(stderr, "bench_intnl: preparing the parameters failed: %s\n", vitq_last_error());
        return 1;
    }
    static const struct {
        const char *name, *shape;
        void (*f)(void);
    } ks[] = {
        {"I-BERT softmax (8-bit out)", "591 x 197", run_ibert},
        {"I-ViT Shiftmax (8-bit out)", "591 x 197", run_shiftmax},
        {"FQ-ViT P.V by shifts", "3 x 197x197x64", run_pv},
        {"I-BERT i-GELU", "197 x 768", run_igelu},
        {"I-ViT ShiftGELU", "197 x 768", run_shiftgelu},
        {"I-BERT LayerNorm", "197 x 192", run_ln},
        {"I-ViT LayerNorm", "197 x 192", run_ln_ivit},
    };
    int nk = (int)(sizeof ks / sizeof ks[0]);
    vitq_i_isa_force(-1);
    int best = (int)vitq_i_isa_active();
    printf("integer non-linear kernels, one DeiT-Tiny image per call, us (best of %d samples, CPU time)\n", repeats);
    printf("%-28s %-16s %10s", "kernel", "rows x length", "generic");
    for (int isa = 1; isa <= best; isa++) printf(" %10s %7s", vitq_i_isa_name((vitq_i_isa)isa), "ratio");
    printf("\n");
    for (int k = 0; k < nk; k++) {
        vitq_i_isa_force(VITQ_I_ISA_GENERIC);
        double g = best_time(ks[k].f);
        printf("%-28s %-16s %10.1f", ks[k].name, ks[k].shape, g * 1e6);
        for (int isa = 1; isa <= best; isa++) {
            vitq_i_isa_force(isa);
            double v = best_time(ks[k].f);
            printf(" %10.1f %6.2fx", v * 1e6, g / v);
        }
        printf("\n");
    }
    vitq_i_isa_force(-1);
    printf("(ratio: generic time / path time; the best path here runs the %s row functions)\n",
           vitq_i_intnl_active()->name);
    if (bad_status) {
        fprintf(stderr, "bench_intnl: a kernel failed: %s\n", vitq_last_error());
        return 1;
    }
    return bench_requant();
}

/* ---- the requantization between the integer ops (kernels/requant.h), DeiT-Small-shaped ----
 * 8 images of 197 tokens; 384 columns (the residual stream, q/k/v, proj), 1152 (the qkv GEMM's output
 * read as one matrix) and 1536 (the MLP's hidden layer). GEMM accumulators are spread as int32 sums of
 * int8 products are (N(0, 2^14^2)); the factors near 2^-8, as requantizing such sums to 8 bits needs. */
enum { RQ_ROWS = 8 * T, RQ_MAXC = 1536 };

static int32_t *rq_x, *rq_res;
static int16_t *rq_res16;
static void *rq_out;
static vitq_i_dyadic rq_m[RQ_MAXC];
static size_t rq_cols, rq_nm;
static vitq_i_requant_grid rq_grid;

static void run_res32(void) {
    check(vitq_i_residual_add_i32(rq_res, rq_cols, rq_x, rq_cols, RQ_ROWS, rq_cols, rq_m, rq_nm, INT32_MIN,
                                  INT32_MAX));
}
static void run_res16(void) {
    check(vitq_i_residual_add_i16(rq_res16, rq_cols, rq_x, rq_cols, RQ_ROWS, rq_cols, rq_m, rq_nm, -32767, 32767));
}
static void run_rows(void) {
    check(vitq_i_requant_rows(rq_x, rq_cols, RQ_ROWS, rq_cols, rq_m, rq_nm, &rq_grid, rq_out, rq_cols));
}

static int bench_requant(void) {
    rq_x = malloc((size_t)RQ_ROWS * RQ_MAXC * sizeof *rq_x);
    rq_res = malloc((size_t)RQ_ROWS * RQ_MAXC * sizeof *rq_res);
    rq_res16 = malloc((size_t)RQ_ROWS * RQ_MAXC * sizeof *rq_res16);
    rq_out = malloc((size_t)RQ_ROWS * RQ_MAXC * sizeof(int16_t));
    if (!rq_x || !rq_res || !rq_res16 || !rq_out) {
        fprintf(stderr, "bench_intnl: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)RQ_ROWS * RQ_MAXC; i++) {
        rq_x[i] = (int32_t)(gauss() * 16384);
        rq_res[i] = (int32_t)(gauss() * 4000);
        rq_res16[i] = code(gauss() * 4000, -32767, 32767);
    }
    for (int c = 0; c < RQ_MAXC; c++) {
        rq_m[c].mult = (int32_t)((1 << 30) + (int32_t)(urand() * 1073741823.0));
        rq_m[c].shift = 38 + (int32_t)(urand() * 3);
    }
    static const struct {
        const char *name;
        int cols, per_col;
        vitq_i_requant_grid g; /* type INT8 + 3: residual add i32, + 4: i16 */
        void (*f)(void);
    } ks[] = {
        {"residual add i32, per col", 384, 1, {0, 0, 0, 0}, run_res32},
        {"residual add i32, per tensor", 384, 0, {0, 0, 0, 0}, run_res32},
        {"residual add i16, per col", 384, 1, {0, 0, 0, 0}, run_res16},
        {"requant uint8, per col", 384, 1, {VITQ_I_RQ_UINT8, 3, -128, 127}, run_rows},
        {"requant uint8, per col", 1152, 1, {VITQ_I_RQ_UINT8, 3, -128, 127}, run_rows},
        {"requant uint8, per tensor", 1536, 0, {VITQ_I_RQ_UINT8, 0, 0, 255}, run_rows},
        {"requant int16, per col", 1536, 1, {VITQ_I_RQ_INT16, 0, -32767, 32767}, run_rows},
        {"requant int16, per tensor", 384, 0, {VITQ_I_RQ_INT16, 7, 0, 255}, run_rows},
    };
    vitq_i_isa_force(-1);
    int avx2 = (vitq_i_cpu_features() & VITQ_I_CPU_AVX2_FMA) != 0;
    printf("\nrequantization between integer ops, 8 DeiT-Small images (%d rows) per call, ns per element\n", RQ_ROWS);
    printf("%-30s %-12s %10s", "kernel", "rows x cols", "generic");
    if (avx2) printf(" %10s %7s", "avx2", "ratio");
    printf("\n");
    for (size_t k = 0; k < sizeof ks / sizeof ks[0]; k++) {
        rq_cols = (size_t)ks[k].cols;
        rq_nm = ks[k].per_col ? rq_cols : 1;
        rq_grid = ks[k].g;
        double n = (double)RQ_ROWS * (double)rq_cols, shape[1];
        char dims[32];
        snprintf(dims, sizeof dims, "%d x %d", RQ_ROWS, ks[k].cols);
        vitq_i_isa_force(VITQ_I_ISA_GENERIC);
        shape[0] = best_time(ks[k].f) / n;
        printf("%-30s %-12s %10.3f", ks[k].name, dims, shape[0] * 1e9);
        if (avx2) {
            vitq_i_isa_force(VITQ_I_ISA_AVX2);
            double v = best_time(ks[k].f) / n;
            printf(" %10.3f %6.2fx", v * 1e9, shape[0] / v);
        }
        printf("\n");
    }
    vitq_i_isa_force(-1);
    if (!avx2) printf("(this CPU has no AVX2: the generic path only)\n");
    free(rq_x), free(rq_res), free(rq_res16), free(rq_out);
    if (bad_status) {
        fprintf(stderr, "bench_intnl: a requantization failed: %s\n", vitq_last_error());
        return 1;
    }
    return 0;
}

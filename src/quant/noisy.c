/* NoisyQuant: seeded uniform noise, noisy fake quantization, denoising bias, and the searches of one
 * layer (output-MSE clipping range, noisy-bias mean and amplitude). */
#include <math.h>
#include <string.h>

#include "quant/noisy.h"
#include "quant/uniform.h"
#include "quant/view.h"

/* splitmix64: a 64-bit counter passed through a bijective mixer. Chosen because it is tiny, needs no
 * state beyond the counter and has no weak low bits for the top-bit extraction below. */
static uint64_t splitmix64_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void vitq_i_noise_draw(uint64_t seed, float *unit, size_t channels) {
    uint64_t state = seed;
    for (size_t c = 0; c < channels; c++) {
        /* 24 top bits -> integer in [-2^23, 2^23), times 2^-23: exact in float, so no rounding mode or
         * libm enters, and -1 is reached while +1 is not */
        int32_t k = (int32_t)(splitmix64_next(&state) >> 40) - (1 << 23);
        unit[c] = (float)k * 0x1p-23f;
    }
}

void vitq_i_noise_scale(const float *unit, size_t channels, float k, float shift, float *noise) {
    /* k * u is exact in double (24 x 24 bits), so the float result is one correctly rounded value and
     * does not depend on whether the compiler contracts the multiply-add */
    for (size_t c = 0; c < channels; c++) noise[c] = (float)((double)shift + (double)k * (double)unit[c]);
}

/* x += sign * noise per channel (sign +1 or -1: subtracting, not adding the negation, keeps the
 * two steps the exact mirror of each other in float). */
static void add_noise(const vitq_tensor_view *x, const float *noise, int sign) {
    for (int64_t o = 0; o < x->outer; o++)
        for (int64_t c = 0; c < x->channels; c++) {
            float *p = vitq_i_view_at(x, o, c), n = noise[c];
            for (int64_t i = 0; i < x->inner; i++) p[i] = sign > 0 ? p[i] + n : p[i] - n;
        }
}

vitq_status vitq_i_noisy_fake_quant(vitq_status (*quant)(void *ctx, const vitq_tensor_view *v), void *ctx,
                                    const float *noise, const vitq_tensor_view *x) {
    if (!quant || !noise)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "noisy fake quant: %s is NULL", quant ? "noise" : "quantizer");
    vitq_status st = vitq_i_view_check(x, 0, "noisy fake quant");
    if (st) return st;
    add_noise(x, noise, 1);
    st = quant(ctx, x);
    add_noise(x, noise, -1);
    if (st) vitq_i_error_prefix("noisy fake quant");
    return st;
}

void vitq_i_noisy_denoise_bias(const float *wq, const float *bias, size_t out, size_t in, const float *noise,
                               float *bias_out) {
    for (size_t o = 0; o < out; o++) {
        const float *w = wq + o * in;
        double acc = bias ? (double)bias[o] : 0.0;
        for (size_t c = 0; c < in; c++) acc -= (double)w[c] * (double)noise[c];
        bias_out[o] = (float)acc;
    }
}

/* ---- the searches of one layer ------------------------------------------------------------------ */

static vitq_status instance_fake_quant(void *ctx, const vitq_tensor_view *v) {
    const vitq_i_instance *inst = ctx;
    return inst->scheme.fake_quant(inst->state, v);
}

/* Scratch of the output-MSE score: the quantized input (then its error) and the output error. */
typedef struct scorer {
    const vitq_i_noisy_layer *l;
    float *xq, *y;
} scorer;

static void scorer_free(scorer *s) {
    if (!s->l) return;
    vitq_i_free(s->l->alloc, s->xq);
    vitq_i_free(s->l->alloc, s->y);
}

static vitq_status scorer_init(scorer *s, const vitq_i_noisy_layer *l, const vitq_i_instance *inst, const char *fn) {
    memset(s, 0, sizeof *s);
    if (!l || !inst || !l->alloc || !l->x || !l->wq || !l->rows)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: layer, quantizer, allocator, rows or weight missing", fn);
    if (l->wq->k != l->in || inst->config.channels != (int64_t)l->in)
        return vitq_i_fail(VITQ_ERR_SHAPE, "%s: %s has %lld channels, the layer's input %zu and its weight %zu", fn,
                           inst->name, (long long)inst->config.channels, l->in, l->wq->k);
    s->l = l;
    s->xq = vitq_i_alloc_array(l->alloc, l->rows * l->in, sizeof(float));
    s->y = vitq_i_alloc_array(l->alloc, l->rows * l->wq->n, sizeof(float));
    if (!s->xq || !s->y) {
        scorer_free(s);
        return vitq_i_oom(fn, l->rows * (l->in + l->wq->n) * sizeof(float));
    }
    return VITQ_OK;
}

/* The output MSE with the input through inst (after `noise` when not NULL). The GEMM of the input
 * error equals the difference of the two outputs up to float rounding, at half the work. */
static vitq_status score(scorer *s, const vitq_i_instance *inst, const float *noise, double *mse) {
    const vitq_i_noisy_layer *l = s->l;
    size_t n = l->rows * l->in, out = l->wq->n;
    memcpy(s->xq, l->x, n * sizeof(float));
    vitq_tensor_view v = vitq_i_view_columns(s->xq, (int64_t)l->rows, (int64_t)l->in, (int64_t)l->in);
    vitq_status st = noise ? vitq_i_noisy_fake_quant(instance_fake_quant, (void *)inst, noise, &v)
                           : instance_fake_quant((void *)inst, &v);
    if (st) return st;
    for (size_t i = 0; i < n; i++) s->xq[i] -= l->x[i];
    vitq_i_gemm(s->xq, l->in, l->rows, l->wq, NULL, s->y, out, VITQ_I_EPI_NONE, l->nthreads);
    double sum = 0.0;
    for (size_t i = 0; i < l->rows * out; i++) sum += (double)s->y[i] * s->y[i];
    *mse = sum / (double)(l->rows * out);
    return VITQ_OK;
}

vitq_status vitq_i_noisy_output_mse(const vitq_i_noisy_layer *l, const vitq_i_instance *inst, const float *noise,
                                    double *mse) {
    scorer s;
    vitq_status st = scorer_init(&s, l, inst, "noisy output mse");
    if (!st) st = mse ? score(&s, inst, noise, mse) : vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "noisy output mse: mse is NULL");
    scorer_free(&s);
    return st;
}

/* Set inst's per-group scale and zero point. */
static vitq_status set_grid(vitq_i_instance *inst, const float *scale, const float *zero) {
    int64_t groups = inst->config.groups;
    vitq_status st = inst->scheme.set_param(inst->state, "scale", scale, groups);
    if (!st) st = inst->scheme.set_param(inst->state, "zero_point", zero, groups);
    if (st)
        vitq_i_error_prefix("%s: the clip search sets scale and zero_point of a uniform scheme (scheme %s)", inst->name,
                            inst->scheme.name);
    return st;
}

vitq_status vitq_i_noisy_clip_search(const vitq_i_noisy_layer *l, vitq_i_instance *inst, int grid, double *alpha,
                                     double *mse) {
    if (grid < 1) return vitq_i_fail(VITQ_ERR_OUT_OF_RANGE, "noisy clip search: grid = %d, at least 1", grid);
    scorer s;
    vitq_status st = scorer_init(&s, l, inst, "noisy clip search");
    if (st) return st;
    const vitq_point_config *c = &inst->config;
    size_t groups = (size_t)c->groups, cpg = (size_t)c->channels_per_group;
    double *range = vitq_i_alloc_array(l->alloc, 2 * groups, sizeof(double));
    float *params = vitq_i_alloc_array(l->alloc, 4 * groups, sizeof(float));
    if (!range || !params) st = vitq_i_oom("noisy clip search", groups * 4 * sizeof(double));
    double *lo = range, *hi = range + groups;
    float *scale = params, *zero = params + groups, *best_scale = params + 2 * groups, *best_zero = params + 3 * groups;
    for (size_t g = 0; !st && g < groups; g++) lo[g] = INFINITY, hi[g] = -INFINITY;
    for (size_t r = 0; !st && r < l->rows; r++)
        for (size_t ch = 0; ch < l->in; ch++) {
            double x = l->x[r * l->in + ch];
            size_t g = ch / cpg;
            if (x < lo[g]) lo[g] = x;
            if (x > hi[g]) hi[g] = x;
        }
    for (size_t g = 0; !st && c->symmetric && g < groups; g++) {
        double amax = fmax(fabs(lo[g]), fabs(hi[g]));
        lo[g] = -amax, hi[g] = amax;
    }
    vitq_i_uniform u = vitq_i_uniform_grid(c->bits, c->symmetric);
    double best = INFINITY, best_alpha = 1.0;
    for (int i = grid; !st && i >= 1; i--) {
        double a = (double)i / grid, e;
        for (size_t g = 0; g < groups; g++) vitq_i_uniform_params(&u, a * lo[g], a * hi[g], &scale[g], &zero[g]);
        st = set_grid(inst, scale, zero);
        if (!st) st = score(&s, inst, NULL, &e);
        if (!st && e < best) {
            best = e, best_alpha = a;
            memcpy(best_scale, scale, groups * sizeof(float));
            memcpy(best_zero, zero, groups * sizeof(float));
        }
    }
    if (!st) st = set_grid(inst, best_scale, best_zero);
    if (!st && alpha) *alpha = best_alpha;
    if (!st && mse) *mse = best;
    vitq_i_free(l->alloc, range);
    vitq_i_free(l->alloc, params);
    scorer_free(&s);
    return st;
}

/* Step of each input channel: inst's per-group "scale". */
static vitq_status channel_steps(const vitq_i_instance *inst, float *step) {
    const vitq_scheme *sc = &inst->scheme;
    for (int32_t k = 0; k < sc->param_count(inst->state); k++) {
        const char *name;
        const float *values;
        int64_t count;
        vitq_status st = sc->get_param(inst->state, k, &name, &values, &count);
        if (st) return st;
        if (strcmp(name, "scale") != 0) continue;
        int64_t cpg = inst->config.channels_per_group;
        if (count != 1 && count != inst->config.groups)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: 'scale' has %lld values for %lld groups", inst->name,
                               (long long)count, (long long)inst->config.groups);
        for (int64_t c = 0; c < inst->config.channels; c++) step[c] = values[count == 1 ? 0 : c / cpg];
        return VITQ_OK;
    }
    return vitq_i_fail(VITQ_ERR_CONFIG, "%s: the noisy bias needs a scheme with a 'scale' parameter (scheme %s)",
                       inst->name, sc->name);
}

/* noise[c] = (t + k u_c) D_c, formed in double and rounded once. */
static void bias_of(const float *step, const float *unit, size_t in, double t, double k, float *noise) {
    for (size_t c = 0; c < in; c++) noise[c] = (float)((t + k * (double)unit[c]) * (double)step[c]);
}

vitq_status vitq_i_noisy_bias_search(const vitq_i_noisy_layer *l, const vitq_i_instance *inst, const float *unit,
                                     int mean_shift, float *noise, vitq_i_noisy_choice *choice) {
    if (!unit || !noise) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "noisy bias search: unit or noise is NULL");
    scorer s;
    vitq_status st = scorer_init(&s, l, inst, "noisy bias search");
    if (st) return st;
    float *step = vitq_i_alloc_array(l->alloc, l->in, sizeof(float));
    if (!step) st = vitq_i_oom("noisy bias search", l->in * sizeof(float));
    if (!st) st = channel_steps(inst, step);
    double plain = INFINITY, best = INFINITY, t = 0.0, k = 0.0, e;
    if (!st) st = score(&s, inst, NULL, &plain);
    best = plain;
    for (int j = 1; !st && mean_shift && j <= VITQ_I_NOISY_STEPS; j++)
        for (int sign = 1; !st && sign >= -1; sign -= 2) {
            double cand = sign * (double)j / VITQ_I_NOISY_STEPS;
            bias_of(step, unit, l->in, cand, 0.0, noise);
            st = score(&s, inst, noise, &e);
            if (!st && e < best) best = e, t = cand;
        }
    double shifted = best;
    for (int i = 1; !st && i <= 2 * VITQ_I_NOISY_STEPS; i++) {
        double cand = (double)i / VITQ_I_NOISY_STEPS;
        bias_of(step, unit, l->in, t, cand, noise);
        st = score(&s, inst, noise, &e);
        if (!st && e < best) best = e, k = cand;
    }
    if (!st) bias_of(step, unit, l->in, t, k, noise);
    if (!st && choice) {
        vitq_i_noisy_choice ch = {t, k, plain, shifted, best};
        *choice = ch;
    }
    vitq_i_free(l->alloc, step);
    scorer_free(&s);
    return st;
}

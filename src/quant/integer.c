/* Integer execution of the linear layers of a quantized model (see integer.h). */
#include <string.h>

#include "model/vit.h"
#include "quant/codes.h"
#include "quant/integer.h"
#include "quant/range_scheme.h"

/* The range state of a uniform quantizer (minmax, percentile, omse, percentile-mse), or NULL when the
 * point uses another kind of quantizer (log, twin, ...) whose codes are not one uniform grid. */
static const vitq_i_range_state *uniform_state(const vitq_i_qpoint *qp) {
    if (qp->inst.scheme.fake_quant != vitq_i_range_fake_quant) return NULL;
    const vitq_i_range_state *s = qp->inst.state;
    return s && s->scale && s->zero_point ? s : NULL;
}

/* The input grid of a layer, when the kernels can take it: one group, at most 8 bits, no noise. */
static int input_grid(const vitq_i_qpoint *qp, vitq_i_qact *act) {
    const vitq_i_range_state *s = uniform_state(qp);
    if (!s || qp->noise || s->config.groups != 1 || s->grid.bits > 8) return 0;
    act->scale = s->scale[0];
    act->zero = (int32_t)s->zero_point[0];
    act->qmin = s->grid.qmin;
    act->qmax = s->grid.qmax;
    if ((float)act->zero != s->zero_point[0]) return 0;
    vitq_status st = vitq_i_qact_check(act);
    vitq_i_error_clear();
    return st == VITQ_OK;
}

/* Pack the weight codes of qp for layer l. VITQ_ERR_UNSUPPORTED when the kernels cannot take them (the
 * layer then stays simulated). */
static vitq_status pack_weight(const vitq_allocator *a, const vitq_i_qpoint *qp, const vitq_i_linear *l,
                               vitq_i_qpacked *out) {
    const vitq_i_range_state *s = uniform_state(qp);
    size_t n = l->out, k = l->in, count;
    if (!s || !qp->codes || s->grid.bits > 8 || (size_t)qp->inst.config.channels != n) return VITQ_ERR_UNSUPPORTED;
    if (!vitq_i_mul_size(n, k, &count)) return vitq_i_oom("integer weights", SIZE_MAX);
    int32_t *codes = vitq_i_alloc_array(a, count, sizeof(int32_t));
    float *scale = vitq_i_alloc_array(a, n, sizeof(float));
    int32_t *zero = vitq_i_alloc_array(a, n, sizeof(int32_t));
    vitq_status st = codes && scale && zero ? VITQ_OK : vitq_i_oom("integer weights", count * sizeof(int32_t));
    if (!st) {
        vitq_i_codes_unpack(qp->codes, (int64_t)n, (int64_t)k, s->grid.bits, s->grid.symmetric, codes);
        int64_t per = s->config.channels_per_group > 0 ? s->config.channels_per_group : (int64_t)n;
        for (size_t j = 0; j < n; j++) {
            scale[j] = s->scale[(int64_t)j / per];
            float z = s->zero_point[(int64_t)j / per];
            zero[j] = (int32_t)z;
            if ((float)zero[j] != z) st = VITQ_ERR_UNSUPPORTED; /* a fractional zero point is not a grid of codes */
        }
    }
    if (!st) st = vitq_i_qgemm_pack(a, codes, n, k, s->grid.bits, s->grid.symmetric, scale, zero, n, 0, out);
    vitq_i_free(a, codes);
    vitq_i_free(a, scale);
    vitq_i_free(a, zero);
    return st;
}

void vitq_i_integer_free(vitq_i_qmodel *q) {
    if (!q) return;
    for (int p = 0; q->attns && p < q->list.count; p++) vitq_i_free(&q->alloc, q->attns[p]);
    vitq_i_free(&q->alloc, q->attns);
    q->attns = NULL;
    q->num_attns = 0;
    q->attention_all = 0;
    if (!q->ints) return;
    for (int p = 0; p < q->list.count; p++)
        if (q->ints[p]) {
            vitq_i_qpacked_free(&q->alloc, &q->ints[p]->weight);
            vitq_i_free(&q->alloc, q->ints[p]);
        }
    vitq_i_free(&q->alloc, q->ints);
    q->ints = NULL;
    q->num_ints = 0;
}

/* The grid of active point `point` when the kernels take it as an input. */
static int point_grid(const vitq_i_qmodel *q, int point, vitq_i_qact *grid) {
    return point >= 0 && q->of_point[point] >= 0 && input_grid(&q->qpoints[q->of_point[point]], grid);
}

static vitq_status build_attention(const vitq_model *m, vitq_i_qmodel *q) {
    q->attns = vitq_i_calloc(&q->alloc, (size_t)q->list.count, sizeof *q->attns);
    if (!q->attns) return vitq_i_oom("integer attention", (size_t)q->list.count * sizeof *q->attns);
    for (int b = 0; q->sites.blocks && b < m->info.depth; b++) {
        const vitq_i_block_sites *s = &q->sites.blocks[b];
        vitq_i_int_attention f;
        if (s->scores >= 0 || !point_grid(q, s->q, &f.q) || !point_grid(q, s->k, &f.k) || !point_grid(q, s->v, &f.v) ||
            !point_grid(q, s->probs, &f.p))
            continue;
        q->attns[s->q] = vitq_i_alloc(&q->alloc, sizeof f);
        if (!q->attns[s->q]) return vitq_i_oom("integer attention", sizeof f);
        *q->attns[s->q] = f;
        q->num_attns++;
    }
    q->attention_all = q->num_attns > 0 && q->num_attns == m->info.depth;
    return VITQ_OK;
}

vitq_status vitq_i_integer_build(vitq_model *m, vitq_i_qmodel *q, int free_float) {
    vitq_status ast = build_attention(m, q);
    if (ast) return ast;
    q->ints = vitq_i_calloc(&q->alloc, (size_t)q->list.count, sizeof *q->ints);
    if (!q->ints) return vitq_i_oom("integer layers", (size_t)q->list.count * sizeof *q->ints);
    /* A weight point follows its layer's input point in the list (points.h). */
    for (int p = 1; p < q->list.count; p++) {
        const vitq_i_point_desc *d = &q->list.points[p];
        int wi = q->of_point[p], ii = q->of_point[p - 1];
        if (d->kind != VITQ_POINT_WEIGHT || !d->weight || wi < 0 || ii < 0 ||
            !vitq_i_role_is_linear_input(q->list.points[p - 1].role))
            continue;
        vitq_i_int_linear form;
        memset(&form, 0, sizeof form);
        if (!input_grid(&q->qpoints[ii], &form.act)) continue;
        vitq_status st = pack_weight(&q->alloc, &q->qpoints[wi], d->weight, &form.weight);
        if (st == VITQ_ERR_UNSUPPORTED) { /* stays simulated */
            vitq_i_error_clear();
            continue;
        }
        if (st) return st;
        form.layer = d->weight;
        form.wpoint = &q->qpoints[wi];
        form.alloc = q->alloc;
        form.act_zero = form.act.zero + vitq_i_qact_offset(&form.act);
        q->ints[p - 1] = vitq_i_alloc(&q->alloc, sizeof form);
        if (!q->ints[p - 1]) {
            vitq_i_qpacked_free(&q->alloc, &form.weight);
            return vitq_i_oom("integer layers", sizeof form);
        }
        *q->ints[p - 1] = form;
        q->num_ints++;
        d->weight->integer = q->ints[p - 1];
        if (free_float) {
            vitq_i_gemm_packed_free(&m->alloc, &d->weight->packed);
            vitq_i_free(&q->alloc, q->qpoints[wi].codes); /* the panels hold them (vitq_i_integer_weight_codes) */
            q->qpoints[wi].codes = NULL;
        }
    }
    return VITQ_OK;
}

/* The codes of f's weight as int32 [out][in] from `a` (NULL: out of memory, reported). */
static int32_t *unpacked_codes(const vitq_allocator *a, const vitq_i_int_linear *f) {
    size_t count;
    if (!vitq_i_mul_size(f->weight.n, f->weight.k, &count)) count = SIZE_MAX;
    int32_t *codes = count == SIZE_MAX ? NULL : vitq_i_alloc_array(a, count, sizeof(int32_t));
    if (!codes) {
        vitq_i_oom(f->wpoint->inst.name, count);
        return NULL;
    }
    vitq_i_qgemm_unpack_codes(&f->weight, codes);
    return codes;
}

vitq_status vitq_i_integer_weight_rows(const vitq_allocator *a, const vitq_i_int_linear *f, float *dst) {
    int32_t *codes = unpacked_codes(a, f);
    if (!codes) return VITQ_ERR_OUT_OF_MEMORY;
    int64_t n = (int64_t)f->weight.n, k = (int64_t)f->weight.k;
    vitq_tensor_view v = {sizeof v, dst, 1, n, k, n * k};
    vitq_status st = f->wpoint->inst.scheme.dequantize(f->wpoint->inst.state, codes, &v);
    vitq_i_free(a, codes);
    return st;
}

vitq_status vitq_i_integer_weight_codes(const vitq_allocator *a, const vitq_i_int_linear *f, uint8_t *out) {
    int32_t *codes = unpacked_codes(a, f);
    if (!codes) return VITQ_ERR_OUT_OF_MEMORY;
    const vitq_point_config *cfg = &f->wpoint->inst.config;
    vitq_status st = vitq_i_codes_pack(codes, (int64_t)f->weight.n, (int64_t)f->weight.k, cfg->bits, cfg->symmetric,
                                       out, f->wpoint->inst.name);
    vitq_i_free(a, codes);
    return st;
}

vitq_status vitq_i_integer_reserve(const vitq_allocator *a, size_t need, void **scratch, size_t *scratch_bytes) {
    if (*scratch_bytes >= need) return VITQ_OK; /* grows to the largest need of the pass, then stays */
    vitq_i_free(a, *scratch);
    *scratch = vitq_i_alloc(a, need);
    *scratch_bytes = *scratch ? need : 0;
    return *scratch ? VITQ_OK : vitq_i_oom("integer activations", need);
}

vitq_status vitq_i_integer_run(const vitq_i_int_linear *f, const float *in, size_t lda, size_t rows, float *out,
                               size_t ldc, int epilogue, int nthreads, void **scratch, size_t *scratch_bytes) {
    size_t k = f->layer->in, need;
    if (!vitq_i_mul_size(rows, k, &need)) return vitq_i_oom("integer activations", SIZE_MAX);
    vitq_status st = vitq_i_integer_reserve(&f->alloc, need, scratch, scratch_bytes);
    if (st) return st;
    uint8_t *codes = *scratch;
    vitq_i_quantize_u8(in, lda, rows, k, &f->act, codes, k, nthreads);
    return vitq_i_qgemm(codes, k, rows, f->act.scale, f->act_zero, &f->weight, f->layer->bias, out, ldc,
                        (vitq_i_epilogue)epilogue, nthreads);
}

int vitq_i_integer_linear(vitq_i_taps *t, int point, const vitq_i_linear *layer, const float *in, size_t lda,
                          size_t rows, float *out, size_t ldc, int epilogue, int nthreads) {
    const vitq_i_qmodel *q = t->ctx;
    const vitq_i_int_linear *f = layer->integer;
    if (!f || !q->ints || q->ints[point] != f) return 0;
    t->status = vitq_i_integer_run(f, in, lda, rows, out, ldc, epilogue, nthreads, &t->scratch, &t->scratch_bytes);
    return 1;
}

int vitq_i_integer_mlp(vitq_i_taps *t, int fc1_point, int fc2_point, const vitq_i_linear *fc1, const vitq_i_linear *fc2,
                       const float *in, size_t rows, float *out, int gelu_epilogue, int nthreads) {
    const vitq_i_qmodel *q = t->ctx;
    const vitq_i_int_linear *f1 = fc1->integer, *f2 = fc2->integer;
    if (!f1 || !f2 || !q->ints || q->ints[fc1_point] != f1 || q->ints[fc2_point] != f2) return 0;
    size_t d = fc1->in, hidden = fc1->out, a, b, need;
    if (!vitq_i_mul_size(rows, d, &a) || !vitq_i_mul_size(rows, hidden, &b) || !vitq_i_add_size(a, b, &need)) {
        t->status = vitq_i_oom("integer activations", SIZE_MAX);
        return 1;
    }
    if ((t->status = vitq_i_integer_reserve(&f1->alloc, need, &t->scratch, &t->scratch_bytes))) return 1;
    uint8_t *codes = t->scratch, *hid = codes + a;
    vitq_i_quantize_u8(in, d, rows, d, &f1->act, codes, d, nthreads);
    t->status = vitq_i_qgemm_requant(codes, d, rows, f1->act.scale, f1->act_zero, &f1->weight, fc1->bias,
                                     (vitq_i_epilogue)gelu_epilogue, &f2->act, hid, hidden, nthreads);
    if (!t->status)
        t->status = vitq_i_qgemm(hid, hidden, rows, f2->act.scale, f2->act_zero, &f2->weight, fc2->bias, out,
                                 fc2->out, VITQ_I_EPI_RESIDUAL, nthreads);
    return 1;
}

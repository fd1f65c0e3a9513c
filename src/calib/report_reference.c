/* The float reference of a report, aligned with the folds of the quantized model (report_reference.h). */
#include <stdio.h>
#include <string.h>

#include "calib/report_reference.h"
#include "model/weights.h"
#include "quant/reparam.h"

/* One LayerNorm and the linear layers that read its output, at the same place in the three networks. */
typedef struct fold_site {
    const char *what;
    const vitq_i_layernorm_params *ln_ref, *ln_q;
    vitq_i_layernorm_params *ln_out;
    int num_next;
    const vitq_i_linear *next_ref[2], *next_q[2];
    vitq_i_linear *next_out[2];
} fold_site;

/* The folded weight of one linear: the float rows with column c times r_c, packed; the bias is qm's. */
static vitq_status fold_linear(const vitq_allocator *a, const vitq_i_linear *ref, const vitq_i_linear *q,
                               const double *r, vitq_i_linear *out) {
    size_t elems = 0;
    float *rows = vitq_i_mul_size(ref->out, ref->in, &elems) ? vitq_i_alloc_array(a, elems, sizeof(float)) : NULL;
    if (!rows) return vitq_i_oom("report: folded float weight", elems * sizeof(float));
    vitq_status st = vitq_i_linear_rows(a, ref, rows);
    for (size_t o = 0; !st && o < ref->out; o++)
        for (size_t c = 0; c < ref->in; c++) rows[o * ref->in + c] = (float)((double)rows[o * ref->in + c] * r[c]);
    vitq_i_packed packed;
    if (!st) st = vitq_i_gemm_pack(a, rows, ref->out, ref->in, &packed);
    vitq_i_free(a, rows);
    if (st) return st;
    out->weight = NULL;
    out->packed = packed;
    out->bias = q->bias;
    out->integer = NULL;
    return VITQ_OK;
}

static vitq_status align_site(const vitq_allocator *a, const fold_site *s) {
    size_t d = s->next_ref[0]->in;
    double *r = vitq_i_alloc_array(a, d, sizeof(double));
    if (!r) return vitq_i_oom("report: fold factors", d * sizeof(double));
    int changed = 0;
    vitq_status st = vitq_i_repq_unfold_factors(s->ln_ref, s->ln_q, d, s->what, r, &changed);
    for (int i = 0; !st && changed && i < s->num_next; i++)
        st = fold_linear(a, s->next_ref[i], s->next_q[i], r, s->next_out[i]);
    if (!st && changed) *s->ln_out = *s->ln_q;
    vitq_i_free(a, r);
    return st;
}

/* Every LayerNorm -> linear pair of the family, in forward order; stops at the first error. */
static vitq_status each_site(const vitq_allocator *a, const vitq_i_net *ref, const vitq_i_net *qm,
                             vitq_i_net *out) {
    vitq_status st = VITQ_OK;
    char what[64];
    for (int b = 0; !st && b < ref->info.depth; b++) {
        const vitq_i_block *br = &ref->blocks[b], *bq = &qm->blocks[b];
        vitq_i_block *bo = &out->blocks[b];
        snprintf(what, sizeof what, "blocks.%d.norm1", b);
        fold_site s1 = {what, &br->norm1, &bq->norm1, &bo->norm1, 1, {&br->qkv}, {&bq->qkv}, {&bo->qkv}};
        st = align_site(a, &s1);
        snprintf(what, sizeof what, "blocks.%d.norm2", b);
        fold_site s2 = {what, &br->norm2, &bq->norm2, &bo->norm2, 1, {&br->fc1}, {&bq->fc1}, {&bo->fc1}};
        if (!st) st = align_site(a, &s2);
    }
    for (int s = 0; !st && ref->stages && s < ref->info.num_stages; s++) {
        if (ref->stages[s].merge.out == 0) continue;
        snprintf(what, sizeof what, "stage %d merge norm", s);
        fold_site sm = {what, &ref->stages[s].merge_norm, &qm->stages[s].merge_norm, &out->stages[s].merge_norm, 1,
                        {&ref->stages[s].merge}, {&qm->stages[s].merge}, {&out->stages[s].merge}};
        st = align_site(a, &sm);
    }
    if (st) return st;
    fold_site f = {"final norm", &ref->norm, &qm->norm, &out->norm, 1, {&ref->head}, {&qm->head}, {&out->head}};
    if (ref->pre_logits.out > 0) {
        f.next_ref[0] = &ref->pre_logits, f.next_q[0] = &qm->pre_logits, f.next_out[0] = &out->pre_logits;
    } else if (ref->head_dist.out > 0) {
        f.num_next = 2;
        f.next_ref[1] = &ref->head_dist, f.next_q[1] = &qm->head_dist, f.next_out[1] = &out->head_dist;
    }
    return align_site(a, &f);
}

/* Panels the aligned network owns: those that are not the float network's. */
static void free_own(const vitq_allocator *a, const vitq_i_linear *ref, vitq_i_linear *out) {
    if (out->packed.panels && out->packed.panels != ref->packed.panels) vitq_i_gemm_packed_free(a, &out->packed);
}

void vitq_i_report_reference_free(const vitq_allocator *a, const vitq_i_net *ref, vitq_i_net *aligned) {
    if (aligned->blocks && aligned->blocks != ref->blocks) {
        for (int b = 0; b < ref->info.depth; b++) {
            free_own(a, &ref->blocks[b].qkv, &aligned->blocks[b].qkv);
            free_own(a, &ref->blocks[b].fc1, &aligned->blocks[b].fc1);
        }
        vitq_i_free(a, aligned->blocks);
    }
    if (aligned->stages && aligned->stages != ref->stages) {
        for (int s = 0; s < ref->info.num_stages; s++) free_own(a, &ref->stages[s].merge, &aligned->stages[s].merge);
        vitq_i_free(a, aligned->stages);
    }
    free_own(a, &ref->pre_logits, &aligned->pre_logits);
    free_own(a, &ref->head, &aligned->head);
    free_own(a, &ref->head_dist, &aligned->head_dist);
    memset(aligned, 0, sizeof *aligned);
}

vitq_status vitq_i_report_reference(const vitq_allocator *a, const vitq_i_net *ref, const vitq_i_net *qm,
                                    vitq_i_net *aligned) {
    *aligned = *ref;
    size_t nb = (size_t)ref->info.depth, ns = ref->stages ? (size_t)ref->info.num_stages : 0;
    aligned->blocks = vitq_i_alloc_array(a, nb + 1, sizeof *aligned->blocks);
    aligned->stages = ns ? vitq_i_alloc_array(a, ns, sizeof *aligned->stages) : NULL;
    if (!aligned->blocks || (ns && !aligned->stages)) { /* nothing folded yet: only the arrays to free */
        vitq_i_free(a, aligned->blocks);
        vitq_i_free(a, aligned->stages);
        memset(aligned, 0, sizeof *aligned);
        return vitq_i_oom("report: aligned reference", (nb + 1) * sizeof *aligned->blocks);
    }
    memcpy(aligned->blocks, ref->blocks, nb * sizeof *aligned->blocks);
    if (ns) memcpy(aligned->stages, ref->stages, ns * sizeof *aligned->stages);
    vitq_status st = each_site(a, ref, qm, aligned);
    if (st) vitq_i_report_reference_free(a, ref, aligned);
    return st;
}

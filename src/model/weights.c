/* Row-major views of the weights of a model that keeps only packed panels (see weights.h). */
#include <string.h>

#include "model/weights.h"

vitq_i_linear *vitq_i_model_linear_at(const vitq_i_net *m, size_t i) {
    vitq_i_net *mm = (vitq_i_net *)m;
    if (i == 0) return &mm->patch_embed;
    size_t in_blocks = m->blocks ? 4 * (size_t)m->info.depth : 0;
    if (i - 1 < in_blocks) {
        vitq_i_block *blk = &m->blocks[(i - 1) / 4];
        vitq_i_linear *l[4] = {&blk->qkv, &blk->proj, &blk->fc1, &blk->fc2};
        return l[(i - 1) % 4];
    }
    i -= 1 + in_blocks;
    size_t merges = m->stages && m->info.num_stages > 1 ? (size_t)m->info.num_stages - 1 : 0;
    if (i < merges) return &mm->stages[i + 1].merge;
    i -= merges;
    vitq_i_linear *tail[3];
    size_t count = 0;
    if (m->pre_logits.out) tail[count++] = &mm->pre_logits;
    tail[count++] = &mm->head;
    if (m->head_dist.out) tail[count++] = &mm->head_dist;
    return i < count ? tail[i] : NULL;
}

vitq_status vitq_i_linear_rows(const vitq_allocator *a, const vitq_i_linear *l, float *dst) {
    if (l->weight) {
        memcpy(dst, l->weight, l->out * l->in * sizeof(float));
        return VITQ_OK;
    }
    if (l->packed.panels) {
        vitq_i_gemm_unpack(&l->packed, dst);
        return VITQ_OK;
    }
    if (l->integer) return vitq_i_qlinear_weight_rows(a, l->integer, dst);
    return vitq_i_fail(VITQ_ERR_BAD_STATE, "linear layer %zu -> %zu has no weight", l->in, l->out);
}

vitq_status vitq_i_model_attach_rows(vitq_i_net *m) {
    vitq_i_linear *l;
    for (size_t i = 0; (l = vitq_i_model_linear_at(m, i)) != NULL; i++) {
        if (l->weight || l->out == 0) continue;
        float *w = vitq_i_alloc_array(&m->alloc, l->out, l->in * sizeof(float));
        if (!w) return vitq_i_oom("row-major weights", l->out * l->in * sizeof(float));
        vitq_status st = vitq_i_linear_rows(&m->alloc, l, w);
        if (st) {
            vitq_i_free(&m->alloc, w);
            return st;
        }
        l->weight = w;
    }
    return VITQ_OK;
}

vitq_status vitq_i_model_require_rows(const vitq_i_net *m, const char *who) {
    const vitq_i_linear *l;
    for (size_t i = 0; (l = vitq_i_model_linear_at(m, i)) != NULL; i++)
        if (!l->weight && l->out)
            return vitq_i_fail(VITQ_ERR_BAD_STATE, "%s: linear layer %zu of %s has no row-major weight attached", who,
                               i, m->name ? m->name : "the model");
    return VITQ_OK;
}

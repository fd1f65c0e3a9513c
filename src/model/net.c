/* The network's lifetime and its forward pass of either family (see net.h). */
#include "model/net.h"

static void free_linear(const vitq_allocator *a, vitq_i_linear *l) {
    vitq_i_free(a, l->weight);
    vitq_i_free(a, l->bias);
    vitq_i_gemm_packed_free(a, &l->packed);
    vitq_i_qlinear_free(a, l->integer);
}

static void free_layernorm(const vitq_allocator *a, vitq_i_layernorm_params *ln) {
    vitq_i_free(a, ln->gamma);
    vitq_i_free(a, ln->beta);
}

void vitq_i_net_destroy(vitq_i_net *m) {
    if (!m) return;
    vitq_allocator a = m->alloc;
    free_linear(&a, &m->patch_embed);
    vitq_i_free(&a, m->cls_token);
    vitq_i_free(&a, m->dist_token);
    vitq_i_free(&a, m->pos_embed);
    if (m->blocks)
        for (int b = 0; b < m->info.depth; b++) {
            free_layernorm(&a, &m->blocks[b].norm1);
            free_layernorm(&a, &m->blocks[b].norm2);
            free_linear(&a, &m->blocks[b].qkv);
            free_linear(&a, &m->blocks[b].proj);
            free_linear(&a, &m->blocks[b].fc1);
            free_linear(&a, &m->blocks[b].fc2);
            vitq_i_free(&a, m->blocks[b].rel_table);
            vitq_i_free(&a, m->blocks[b].attn_bias);
            vitq_i_free(&a, m->blocks[b].integer_attention);
        }
    vitq_i_free(&a, m->blocks);
    if (m->stages)
        for (int s = 0; s < m->info.num_stages; s++) {
            free_layernorm(&a, &m->stages[s].merge_norm);
            free_linear(&a, &m->stages[s].merge);
            vitq_i_free(&a, m->stages[s].mask);
        }
    vitq_i_free(&a, m->stages);
    free_layernorm(&a, &m->patch_norm);
    free_layernorm(&a, &m->norm);
    free_linear(&a, &m->pre_logits);
    free_linear(&a, &m->head);
    free_linear(&a, &m->head_dist);
    vitq_i_free(&a, m->name);
    vitq_i_free(&a, m->class_names);
    vitq_i_free(&a, m);
}

vitq_status vitq_i_net_forward(const vitq_i_net *m, const float *input, size_t n, float *logits, vitq_i_taps *taps) {
    if (m->info.arch == VITQ_ARCH_SWIN) return vitq_i_swin_forward(m, input, n, logits, taps);
    return vitq_i_vit_forward(m, input, n, logits, taps);
}

vitq_status vitq_i_net_preprocess_u8(const vitq_i_net *model, const uint8_t *pixels, size_t n,
                                     vitq_pixel_layout layout, float *out) {
    if (layout != VITQ_PIXELS_NCHW && layout != VITQ_PIXELS_NHWC)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_preprocess_u8: layout %d", (int)layout);
    const vitq_model_info *i = &model->info;
    for (int h = VITQ_HPARAM_MEAN; h <= VITQ_HPARAM_STD; h++)
        if (model->sources[h] == VITQ_SOURCE_NONE)
            return vitq_i_fail(VITQ_ERR_MISSING_CONFIG,
                               "%s: normalisation %s is not in the options (--mean/--std), config.json, "
                               "preprocessor_config.json, __metadata__ (vitq.%s) or a known architecture",
                               model->name, vitq_hparam_name((vitq_hparam)h), vitq_hparam_name((vitq_hparam)h));
    size_t c = (size_t)i->in_channels, hw = (size_t)i->image_size * (size_t)i->image_size;
    float scale[VITQ_MAX_CHANNELS], shift[VITQ_MAX_CHANNELS];
    for (size_t ch = 0; ch < c; ch++) {
        /* (x/255 - mean)/std, evaluated as PyTorch's ToTensor + Normalize do it */
        scale[ch] = i->std[ch];
        shift[ch] = i->mean[ch];
    }
    for (size_t b = 0; b < n; b++)
        for (size_t ch = 0; ch < c; ch++)
            for (size_t p = 0; p < hw; p++) {
                uint8_t v = layout == VITQ_PIXELS_NCHW ? pixels[(b * c + ch) * hw + p] : pixels[(b * hw + p) * c + ch];
                out[(b * c + ch) * hw + p] = ((float)v / 255.0f - shift[ch]) / scale[ch];
            }
    return VITQ_OK;
}

vitq_i_linear *vitq_i_net_same_linear(const vitq_i_net *ref, vitq_i_net *copy, const vitq_i_linear *l) {
    const char *p = (const char *)l;
    size_t blocks = (size_t)ref->info.depth * sizeof *ref->blocks;
    size_t stages = ref->stages ? (size_t)ref->info.num_stages * sizeof *ref->stages : 0;
    if (p >= (const char *)ref && p < (const char *)(ref + 1)) return (vitq_i_linear *)((char *)copy + (p - (const char *)ref));
    if (p >= (const char *)ref->blocks && p < (const char *)ref->blocks + blocks)
        return (vitq_i_linear *)((char *)copy->blocks + (p - (const char *)ref->blocks));
    if (stages && p >= (const char *)ref->stages && p < (const char *)ref->stages + stages)
        return (vitq_i_linear *)((char *)copy->stages + (p - (const char *)ref->stages));
    return NULL;
}

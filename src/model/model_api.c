/* Public model API: loading from files or memory, info, forward, preprocessing. */
#include <stdio.h>
#include <string.h>

#include "io/safetensors.h"
#include "model/vit_build.h"
#include "quant/integer.h"
#include "quant/qmodel.h"
#include "util/json.h"

#define PATH_LEN 4096

void vitq_model_options_init(vitq_model_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
}

void vitq_model_info_init(vitq_model_info *info) {
    if (!info) return;
    memset(info, 0, sizeof *info);
    info->struct_size = sizeof *info;
}

static const char *const hparam_names[VITQ_HPARAM_COUNT] = {"num_heads", "layer_norm_eps", "gelu",
                                                            "image_size", "mean", "std"};

const char *vitq_hparam_name(vitq_hparam h) {
    return (int)h >= 0 && h < VITQ_HPARAM_COUNT ? hparam_names[h] : "unknown";
}

const char *vitq_source_string(vitq_source s) {
    switch (s) {
    case VITQ_SOURCE_NONE: return "undecided";
    case VITQ_SOURCE_OVERRIDE: return "option";
    case VITQ_SOURCE_CONFIG_JSON: return "config.json";
    case VITQ_SOURCE_PREPROCESSOR: return "preprocessor_config.json";
    case VITQ_SOURCE_METADATA: return "__metadata__";
    case VITQ_SOURCE_ARCH_TABLE: return "timm architecture name";
    case VITQ_SOURCE_LAYOUT: return "checkpoint layout default";
    case VITQ_SOURCE_SHAPES: return "tensor shapes";
    }
    return "unknown source";
}

/* Options as this library version sees them: a caller built against an older, smaller struct gets
 * defaults for the members it does not know. */
static vitq_status read_options(const vitq_model_options *in, vitq_model_options *out) {
    vitq_model_options_init(out);
    if (!in) return VITQ_OK;
    if (in->struct_size < offsetof(vitq_model_options, num_threads) || in->struct_size > 1u << 20)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                           "options: struct_size %u is not valid (call vitq_model_options_init)",
                           (unsigned)in->struct_size);
    size_t n = in->struct_size < sizeof *out ? in->struct_size : sizeof *out;
    memcpy(out, in, n);
    out->struct_size = sizeof *out;
    if (out->num_heads < 0 || out->image_size < 0 || out->num_threads < 0 || out->num_mean < 0 ||
        out->num_std < 0 || !(out->layer_norm_eps >= 0))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "options: negative or NaN override");
    if (out->execution != VITQ_EXECUTION_AUTO && out->execution != VITQ_EXECUTION_SIMULATED)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "options: execution %d is not a vitq_execution",
                           (int)out->execution);
    return VITQ_OK;
}

/* Parse optional JSON text (NULL -> no tree). */
static vitq_status parse_json_text(const vitq_allocator *a, const char *text, size_t len, const char *name,
                                   vitq_i_json **out) {
    *out = NULL;
    if (!text) return VITQ_OK;
    return vitq_i_json_parse(a, text, len, name, out);
}

/* Read and parse dir/file when it exists. */
static vitq_status parse_json_file(const vitq_allocator *a, const char *dir, const char *file, char *path,
                                   vitq_i_json **out) {
    *out = NULL;
    int len = snprintf(path, PATH_LEN, "%s/%s", dir, file);
    if (len < 0 || len >= PATH_LEN) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: path too long", dir);
    if (!vitq_i_path_exists(path)) return VITQ_OK;
    uint8_t *data;
    size_t size;
    vitq_status st = vitq_i_read_file(a, path, &data, &size);
    if (st) return st;
    st = vitq_i_json_parse(a, (const char *)data, size, path, out);
    vitq_i_free(a, data);
    return st;
}

static vitq_status load_common(const vitq_allocator *a, const uint8_t *data, size_t size, const char *name,
                               const vitq_model_options *opts, const vitq_i_json *config, const char *config_name,
                               const vitq_i_json *preproc, const char *preproc_name, vitq_model **out) {
    vitq_i_safetensors st_file;
    vitq_status st = vitq_i_st_parse(a, data, size, name, &st_file);
    if (st) return st;
    /* A quantized file carries its hyper-parameters in __metadata__: config files beside it belong
     * to whatever model shares the folder and are not read. */
    int quantized = vitq_i_qload_is_quantized(&st_file);
    vitq_i_qload prep;
    memset(&prep, 0, sizeof prep);
    if (quantized) {
        config = preproc = NULL;
        st = vitq_i_qload_prepare(a, &st_file, opts->registry, &prep);
    }
    vitq_i_config_inputs in = {opts, config, config_name, preproc, preproc_name, &st_file, name};
    vitq_i_ckpt ckpt;
    memset(&ckpt, 0, sizeof ckpt);
    if (!st) st = vitq_i_ckpt_open(&ckpt, a, &st_file, name);
    for (size_t i = 0; !st && i < prep.num_names; i++) vitq_i_ckpt_ignore_raw(&ckpt, prep.names[i]);
    if (!st && ckpt.family == VITQ_I_FAMILY_SWIN)
        st = vitq_i_swin_build(&ckpt, &in, out);
    else if (!st)
        st = vitq_i_vit_build(&ckpt, &in, out);
    if (!st && quantized) {
        st = vitq_i_qload_attach(&prep, *out);
        if (!st && opts->execution != VITQ_EXECUTION_SIMULATED) {
            st = vitq_i_integer_build(*out, (*out)->quant, 1);
            (*out)->info.num_integer_layers = (*out)->quant->num_ints;
            (*out)->info.num_integer_attentions = (*out)->quant->num_attns;
        }
        if (st) {
            vitq_i_model_destroy(*out);
            *out = NULL;
        }
    }
    vitq_i_qload_free(&prep);
    vitq_i_ckpt_close(&ckpt);
    vitq_i_st_free(&st_file);
    return st;
}

vitq_status vitq_model_load_memory(const void *data, size_t size, const char *name,
                                   const vitq_model_options *options, vitq_model **out) {
    vitq_model_options opts;
    vitq_allocator a;
    vitq_i_json *config = NULL, *preproc = NULL;
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_load_memory: out is NULL");
    *out = NULL;
    if (!data && size) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_load_memory: data is NULL");
    vitq_status st = read_options(options, &opts);
    if (!st) st = vitq_i_allocator_resolve(opts.allocator, &a);
    if (!name) name = "<memory>";
    if (!st && opts.config_json)
        st = parse_json_text(&a, opts.config_json, strlen(opts.config_json), "config_json", &config);
    if (!st && opts.preprocessor_json)
        st = parse_json_text(&a, opts.preprocessor_json, strlen(opts.preprocessor_json), "preprocessor_json",
                             &preproc);
    if (!st)
        st = load_common(&a, data, size, name, &opts, config, "config_json", preproc, "preprocessor_json", out);
    vitq_i_json_free(&a, config);
    vitq_i_json_free(&a, preproc);
    return st;
}

vitq_status vitq_model_load_file(const char *path, const vitq_model_options *options, vitq_model **out) {
    vitq_model_options opts;
    vitq_allocator a;
    vitq_i_json *config = NULL, *preproc = NULL;
    char weights[PATH_LEN], dir[PATH_LEN], config_path[PATH_LEN] = "config_json",
                                             preproc_path[PATH_LEN] = "preprocessor_json";
    uint8_t *data = NULL;
    size_t size = 0;
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_load_file: out is NULL");
    *out = NULL;
    if (!path || !*path) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_load_file: path is empty");
    if (strlen(path) > PATH_LEN - 64) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: path too long", path);
    vitq_status st = read_options(options, &opts);
    if (!st) st = vitq_i_allocator_resolve(opts.allocator, &a);
    if (st) return st;
    /* A folder holds model.safetensors and its config files; a file has them beside it. */
    if (vitq_i_path_is_dir(path)) {
        snprintf(dir, sizeof dir, "%s", path);
        if (snprintf(weights, sizeof weights, "%s/model.safetensors", path) >= (int)sizeof weights)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: path too long", path);
    } else {
        snprintf(weights, sizeof weights, "%s", path);
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
    }
    if (opts.config_json)
        st = parse_json_text(&a, opts.config_json, strlen(opts.config_json), config_path, &config);
    else
        st = parse_json_file(&a, dir, "config.json", config_path, &config);
    if (!st && opts.preprocessor_json)
        st = parse_json_text(&a, opts.preprocessor_json, strlen(opts.preprocessor_json), preproc_path, &preproc);
    else if (!st)
        st = parse_json_file(&a, dir, "preprocessor_config.json", preproc_path, &preproc);
    if (!st) st = vitq_i_read_file(&a, weights, &data, &size);
    if (!st) st = load_common(&a, data, size, weights, &opts, config, config_path, preproc, preproc_path, out);
    vitq_i_free(&a, data);
    vitq_i_json_free(&a, config);
    vitq_i_json_free(&a, preproc);
    return st;
}

static void free_linear(const vitq_allocator *a, vitq_i_linear *l) {
    vitq_i_free(a, l->weight);
    vitq_i_free(a, l->bias);
    vitq_i_gemm_packed_free(a, &l->packed);
}

static void free_layernorm(const vitq_allocator *a, vitq_i_layernorm_params *ln) {
    vitq_i_free(a, ln->gamma);
    vitq_i_free(a, ln->beta);
}

void vitq_i_model_destroy(vitq_model *m) {
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
    free_linear(&a, &m->head);
    free_linear(&a, &m->head_dist);
    vitq_i_qmodel_free(m->quant);
    vitq_i_free(&a, m->name);
    vitq_i_free(&a, m);
}

void vitq_model_free(vitq_model *model) { vitq_i_model_destroy(model); }

vitq_status vitq_model_get_info(const vitq_model *model, vitq_model_info *info) {
    if (!model || !info) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_get_info: NULL argument");
    if (info->struct_size < sizeof(uint32_t) * 2 || info->struct_size > 1u << 20)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                           "vitq_model_get_info: info->struct_size %u (call vitq_model_info_init)",
                           (unsigned)info->struct_size);
    size_t n = info->struct_size < sizeof model->info ? info->struct_size : sizeof model->info;
    uint32_t caller_size = info->struct_size;
    memcpy(info, &model->info, n);
    info->struct_size = caller_size;
    return VITQ_OK;
}

vitq_status vitq_model_hparam_source(const vitq_model *model, vitq_hparam hparam, vitq_source *source) {
    if (!model || !source) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_hparam_source: NULL argument");
    if ((int)hparam < 0 || hparam >= VITQ_HPARAM_COUNT)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_hparam_source: hparam %d out of range", (int)hparam);
    *source = model->sources[hparam];
    return VITQ_OK;
}

vitq_status vitq_model_set_num_threads(vitq_model *model, int32_t num_threads) {
    if (!model) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_set_num_threads: model is NULL");
    if (num_threads < 0)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_set_num_threads: %d < 0", (int)num_threads);
    model->num_threads = num_threads;
    return VITQ_OK;
}

vitq_status vitq_model_forward(const vitq_model *model, const float *input, size_t n, float *logits) {
    if (!model || !input || !logits)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_forward: %s is NULL",
                           !model ? "model" : !input ? "input" : "logits");
    if (n == 0) return VITQ_OK;
    if (!model->quant) return vitq_i_model_forward_taps(model, input, n, logits, NULL);
    vitq_i_taps taps = vitq_i_qmodel_taps(model->quant);
    vitq_status st = vitq_i_model_forward_taps(model, input, n, logits, &taps);
    vitq_i_qmodel_taps_release(model->quant, &taps);
    return st;
}

vitq_status vitq_i_model_forward_taps(const vitq_model *m, const float *input, size_t n, float *logits,
                                      vitq_i_taps *taps) {
    if (m->info.arch == VITQ_ARCH_SWIN) return vitq_i_swin_forward(m, input, n, logits, taps);
    return vitq_i_vit_forward(m, input, n, logits, taps);
}

vitq_status vitq_i_model_block_forward(const vitq_model *m, int b, float *x, size_t n, vitq_i_taps *taps) {
    if (b < 0 || b >= m->info.depth)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "block %d of a model with %d blocks", b, (int)m->info.depth);
    if (m->info.arch == VITQ_ARCH_SWIN) return vitq_i_swin_block_forward(m, b, x, n, taps);
    return vitq_i_vit_block_forward(m, b, x, n, taps);
}

vitq_status vitq_model_preprocess_u8(const vitq_model *model, const uint8_t *pixels, size_t n,
                                     vitq_pixel_layout layout, float *out) {
    if (!model || !pixels || !out)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_preprocess_u8: NULL argument");
    if (layout != VITQ_PIXELS_NCHW && layout != VITQ_PIXELS_NHWC)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_preprocess_u8: layout %d", (int)layout);
    const vitq_model_info *i = &model->info;
    for (int h = VITQ_HPARAM_MEAN; h <= VITQ_HPARAM_STD; h++)
        if (model->sources[h] == VITQ_SOURCE_NONE)
            return vitq_i_fail(VITQ_ERR_MISSING_CONFIG,
                               "%s: normalisation %s is not in the options (--mean/--std), config.json, "
                               "preprocessor_config.json, __metadata__ (vitq.%s) or a known architecture",
                               model->name, hparam_names[h], hparam_names[h]);
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

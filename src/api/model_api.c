/* Public model API: loading from files or memory, info, forward, preprocessing. */
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "api/model.h"
#include "core/abi.h"
#include "quant/load.h"
#include "util/json.h"

#define PATH_LEN 4096
/* Largest image side an option may give (a 65536 x 65536 image is 16 GB of floats per channel). */
#define VITQ_I_MAX_IMAGE_SIZE 65536

/* Options as this library version sees them: a caller built against an older, smaller struct gets
 * defaults for the members it does not know. */
static vitq_status read_options(const vitq_model_options *in, vitq_model_options *out) {
    vitq_model_options_init(out);
    if (!in) return VITQ_OK;
    vitq_status st = vitq_i_check_struct_size(in->struct_size, VITQ_I_V1_MODEL_OPTIONS, "model options",
                                              "vitq_model_options");
    if (st) return st;
    vitq_i_struct_in(out, sizeof *out, in, in->struct_size);
    /* Each member named with its range. A 32-bit member given 2^31 arrives negative; an eps given as a
     * double below the float range arrives as 0 ("from the checkpoint") and cannot be told from it. */
    static const struct {
        const char *name, *zero; /* what 0 means */
        size_t offset;
        int32_t max;
    } counts[] = {{"num_heads", "from the checkpoint", offsetof(vitq_model_options, num_heads), 65536},
                  {"image_size", "from the checkpoint", offsetof(vitq_model_options, image_size), VITQ_I_MAX_IMAGE_SIZE},
                  {"num_threads", "all available", offsetof(vitq_model_options, num_threads), 65536},
                  {"num_mean", "from the checkpoint", offsetof(vitq_model_options, num_mean), VITQ_MAX_CHANNELS},
                  {"num_std", "from the checkpoint", offsetof(vitq_model_options, num_std), VITQ_MAX_CHANNELS}};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        int32_t v;
        memcpy(&v, (const char *)out + counts[k].offset, sizeof v);
        if (v < 0 || v > counts[k].max)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "options: %s = %d is not 0 (%s) or 1..%d", counts[k].name,
                               (int)v, counts[k].zero, (int)counts[k].max);
    }
    float eps = out->layer_norm_eps;
    if (!(eps == 0 || (eps >= FLT_MIN && eps < 1)))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT,
                           "options: layer_norm_eps = %g is not 0 (from the checkpoint) or in [%g, 1) (a normal float)",
                           (double)eps, (double)FLT_MIN);
    if (out->execution != VITQ_EXECUTION_AUTO && out->execution != VITQ_EXECUTION_SIMULATED &&
        out->execution != VITQ_EXECUTION_INTEGER_ONLY)
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

vitq_status vitq_i_model_wrap(vitq_i_net *net, vitq_i_qmodel *quant, vitq_model **out) {
    *out = vitq_i_alloc(&net->alloc, sizeof **out);
    if (!*out) {
        vitq_i_qmodel_free(quant);
        vitq_i_net_destroy(net);
        return vitq_i_oom("model", sizeof **out);
    }
    (*out)->net = net;
    (*out)->quant = quant;
    (*out)->intonly = NULL;
    (*out)->progress = (vitq_i_progress){NULL, NULL};
    return VITQ_OK;
}

/* From the caller's bytes (data, size), read in place, or from the file `path` when it is not NULL. */
static vitq_status load_common(const vitq_allocator *a, const char *path, const uint8_t *data, size_t size, const char *name,
                               const vitq_model_options *opts, const vitq_i_json *config, const char *config_name,
                               const vitq_i_json *preproc, const char *preproc_name, vitq_model **out) {
    vitq_i_net *net;
    vitq_i_qmodel *quant;
    vitq_i_progress progress = {opts->progress, opts->progress_user};
    vitq_status st = vitq_i_progress_step(&progress, "load", 1, 2, name);
    if (!st && !path)
        st = vitq_i_load(a, data, size, name, opts, config, config_name, preproc, preproc_name, &net, &quant);
    else if (!st)
        st = vitq_i_load_path(a, path, opts, config, config_name, preproc, preproc_name, &net, &quant);
    if (!st) st = vitq_i_model_wrap(net, quant, out);
    if (!st && opts->execution == VITQ_EXECUTION_INTEGER_ONLY) {
        st = quant ? vitq_i_intonly_build(net, quant, &(*out)->intonly)
                   : vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: integer-only execution needs a quantized model", name);
        if (st) {
            vitq_model_free(*out);
            *out = NULL;
        }
    }
    if (!st) (*out)->progress = progress;
    if (!st && (st = vitq_i_progress_step(&progress, "load", 2, 2, name))) {
        vitq_model_free(*out);
        *out = NULL;
    }
    return st;
}

vitq_status vitq_i_model_load_bytes(const vitq_allocator *a, const uint8_t *data, size_t size, const char *name,
                                    const vitq_model_options *opts, vitq_model **out) {
    *out = NULL;
    return load_common(a, NULL, data, size, name, opts, NULL, "config_json", NULL, "preprocessor_json", out);
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
    if (!st) /* the caller's bytes are read in place, never copied */
        st = load_common(&a, NULL, data, size, name, &opts, config, "config_json", preproc, "preprocessor_json", out);
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
    if (!out) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_load_file: out is NULL");
    *out = NULL;
    if (!path || !*path) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_load_file: path is empty");
    if (strlen(path) > PATH_LEN - 64) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: path too long", path);
    vitq_status st = read_options(options, &opts);
    if (!st) st = vitq_i_allocator_resolve(opts.allocator, &a);
    if (st) return st;
    /* A folder holds model.safetensors - or, without it, a PyTorch checkpoint under one of its usual
     * names - and its config files; a file, whatever its name, has them beside it. */
    if (vitq_i_path_is_dir(path)) {
        static const char *const names[] = {"model.safetensors", "pytorch_model.bin", "model.pth"};
        size_t k = 0, count = sizeof names / sizeof names[0];
        snprintf(dir, sizeof dir, "%s", path);
        for (; k < count; k++) { /* path is at most PATH_LEN - 64 long, so these fit */
            snprintf(weights, sizeof weights, "%s/%s", path, names[k]);
            if (vitq_i_path_exists(weights)) break;
        }
        if (k == count) snprintf(weights, sizeof weights, "%s/%s", path, names[0]); /* the error names it */
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
    vitq_i_progress progress = {opts.progress, opts.progress_user};
    if (!st) st = vitq_i_progress_step(&progress, "load", 0, 2, weights);
    /* read tensor by tensor from the file (quant/load.h), never whole */
    if (!st) st = load_common(&a, weights, NULL, 0, weights, &opts, config, config_path, preproc, preproc_path, out);
    vitq_i_json_free(&a, config);
    vitq_i_json_free(&a, preproc);
    return st;
}

void vitq_model_free(vitq_model *model) {
    if (!model) return;
    vitq_allocator a = model->net->alloc;
    vitq_i_intonly_free(model->intonly); /* it points into the network's integer layers */
    vitq_i_qmodel_free(model->quant);
    vitq_i_net_destroy(model->net);
    vitq_i_free(&a, model);
}

vitq_status vitq_model_get_info(const vitq_model *model, vitq_model_info *info) {
    if (!model || !info) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_get_info: NULL argument");
    vitq_status st =
        vitq_i_check_struct_size(info->struct_size, VITQ_I_V1_MODEL_INFO, "vitq_model_get_info", "vitq_model_info");
    if (!st) vitq_i_struct_out(info, info->struct_size, &model->net->info, sizeof model->net->info);
    return st;
}

vitq_status vitq_model_hparam_source(const vitq_model *model, vitq_hparam hparam, vitq_source *source) {
    if (!model || !source) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_hparam_source: NULL argument");
    if ((int)hparam < 0 || hparam >= VITQ_HPARAM_COUNT)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_hparam_source: hparam %d out of range", (int)hparam);
    *source = model->net->sources[hparam];
    return VITQ_OK;
}

vitq_status vitq_model_set_num_threads(vitq_model *model, int32_t num_threads) {
    if (!model) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_set_num_threads: model is NULL");
    if (num_threads < 0)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_set_num_threads: %d < 0", (int)num_threads);
    model->net->num_threads = num_threads;
    return VITQ_OK;
}

vitq_status vitq_model_set_progress(vitq_model *model, vitq_progress_fn progress, void *user) {
    if (!model) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_set_progress: model is NULL");
    model->progress = (vitq_i_progress){progress, user};
    return VITQ_OK;
}

/* The integer-only program takes the pixels the normalised images came from: x std_c + mean_c, times
 * 255, rounded (exact for images normalised from uint8 pixels, as vitq's datasets and
 * vitq_model_preprocess_u8 make them). */
/* One plane of normalised floats back to the pixel bytes the integer-only program takes: v = (x std +
 * mean) 255, rounded half to even and clamped. The clamp comes first and the rounding adds and removes
 * 1.5 * 2^52, which rounds a double of magnitude below 2^51 to an integer in the current (nearest)
 * mode: the bytes nearbyint gave, without a libm call per pixel. 0 when a value is not finite. */
static int plane_to_bytes(const float *x, size_t count, double std, double mean, uint8_t *out) {
    const double round = 6755399441055744.0; /* 1.5 * 2^52 */
    int finite = 1;
    for (size_t k = 0; k < count; k++) {
        double v = ((double)x[k] * std + mean) * 255.0;
        finite &= v - v == 0.0; /* false for inf and NaN */
        v = v >= -1.0 ? (v <= 256.0 ? v : 256.0) : -1.0; /* NaN too goes to -1: no undefined conversion */
        v = (v + round) - round;
        out[k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }
    return finite;
}

static vitq_status forward_integer_only(const vitq_model *model, const float *input, size_t n, float *logits) {
    const vitq_model_info *i = &model->net->info;
    size_t channels = (size_t)i->in_channels, plane = (size_t)i->image_size * (size_t)i->image_size;
    const vitq_allocator *a = &model->net->alloc;
    uint8_t *pixels = vitq_i_alloc_array(a, n, channels * plane);
    if (!pixels) return vitq_i_oom("integer-only pixels", n * channels * plane);
    vitq_status st = VITQ_OK;
    for (size_t p = 0; !st && p < n * channels; p++)
        if (!plane_to_bytes(input + p * plane, plane, i->std[p % channels], i->mean[p % channels], pixels + p * plane)) {
            size_t k = 0;
            while (k < plane &&
                   isfinite(((double)input[p * plane + k] * i->std[p % channels] + i->mean[p % channels]) * 255.0))
                k++;
            st = vitq_i_fail(VITQ_ERR_NON_FINITE, "vitq_model_forward: input %zu is not finite", p * plane + k);
        }
    if (!st) st = vitq_i_intonly_forward(model->intonly, pixels, n, logits, model->net->num_threads);
    vitq_i_free(a, pixels);
    return st;
}

vitq_status vitq_model_forward(const vitq_model *model, const float *input, size_t n, float *logits) {
    if (!model || !input || !logits)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_forward: %s is NULL",
                           !model ? "model" : !input ? "input" : "logits");
    if (n == 0) return VITQ_OK;
    if (!model->quant) return vitq_i_net_forward(model->net, input, n, logits, NULL);
    if (model->intonly) return forward_integer_only(model, input, n, logits);
    vitq_i_taps taps = vitq_i_qmodel_taps(model->quant);
    return vitq_i_net_forward(model->net, input, n, logits, &taps);
}

vitq_status vitq_model_forward_u8(const vitq_model *model, const uint8_t *pixels, size_t n, vitq_pixel_layout layout,
                                  float *logits) {
    if (!model || !pixels || !logits) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_forward_u8: NULL argument");
    if (layout != VITQ_PIXELS_NCHW && layout != VITQ_PIXELS_NHWC)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_forward_u8: layout %d", (int)layout);
    if (n == 0) return VITQ_OK;
    const vitq_model_info *i = &model->net->info;
    const vitq_allocator *a = &model->net->alloc;
    size_t c = (size_t)i->in_channels, hw = (size_t)i->image_size * (size_t)i->image_size, per = c * hw;
    if (model->intonly && layout == VITQ_PIXELS_NCHW)
        return vitq_i_intonly_forward(model->intonly, pixels, n, logits, model->net->num_threads);
    if (model->intonly) { /* NHWC -> NCHW, still bytes */
        uint8_t *nchw = vitq_i_alloc_array(a, n, per);
        if (!nchw) return vitq_i_oom("vitq_model_forward_u8: pixels", n * per);
        for (size_t b = 0; b < n; b++)
            for (size_t ch = 0; ch < c; ch++)
                for (size_t p = 0; p < hw; p++) nchw[(b * c + ch) * hw + p] = pixels[(b * hw + p) * c + ch];
        vitq_status st = vitq_i_intonly_forward(model->intonly, nchw, n, logits, model->net->num_threads);
        vitq_i_free(a, nchw);
        return st;
    }
    float *input = vitq_i_alloc_array(a, n, per * sizeof(float));
    if (!input) return vitq_i_oom("vitq_model_forward_u8: preprocessed images", n * per * sizeof(float));
    vitq_status st = vitq_i_net_preprocess_u8(model->net, pixels, n, layout, input);
    if (!st) st = vitq_model_forward(model, input, n, logits);
    vitq_i_free(a, input);
    return st;
}

vitq_status vitq_model_preprocess_u8(const vitq_model *model, const uint8_t *pixels, size_t n,
                                     vitq_pixel_layout layout, float *out) {
    if (!model || !pixels || !out)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "vitq_model_preprocess_u8: NULL argument");
    return vitq_i_net_preprocess_u8(model->net, pixels, n, layout, out);
}

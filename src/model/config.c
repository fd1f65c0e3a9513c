/* Hyper-parameter resolution; see config.h for the order of sources. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/arch_table.h"
#include "model/config.h"
#include "model/timm_args.h"

typedef enum { CFG_NONE, CFG_HF, CFG_TIMM } config_kind;

typedef struct {
    const vitq_i_shape_facts *f;
    const vitq_i_config_inputs *in;
    config_kind kind;
    const vitq_i_arch_entry *arch; /* the architecture name's defaults with model_args over them */
    const char *arch_origin;       /* "config.json" or "__metadata__" */
    vitq_i_arch_entry arch_applied;
    char arch_args[128];           /* the model_args that overrode the name's defaults ("" when none) */
} resolver;

/* ---- JSON access by dotted path ("pretrained_cfg.mean") ---------------------------------------- */

static const vitq_i_json *json_path(const vitq_i_json *root, const char *path) {
    char key[64];
    const vitq_i_json *node = root;
    while (node && *path) {
        size_t len = strcspn(path, ".");
        if (len >= sizeof key) return NULL;
        memcpy(key, path, len);
        key[len] = '\0';
        node = vitq_i_json_get(node, key);
        path += len + (path[len] == '.');
    }
    return node;
}

/* Number at `path`: 1 found, 0 absent; -1 present but not a number (error set). */
static int json_number(const vitq_i_json *root, const char *file, const char *path, double *out) {
    const vitq_i_json *n = json_path(root, path);
    if (!n || n->type == VITQ_I_JSON_NULL) return 0;
    if (n->type != VITQ_I_JSON_NUMBER) {
        vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' is not a number", file, path);
        return -1;
    }
    *out = n->number;
    return 1;
}

static int json_int(const vitq_i_json *root, const char *file, const char *path, int *out) {
    double v;
    int r = json_number(root, file, path, &v);
    if (r != 1) return r;
    if (v != floor(v) || v < 0 || v > 1e9) {
        vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' = %g is not a non-negative integer", file, path, v);
        return -1;
    }
    *out = (int)v;
    return 1;
}

static const char *json_string(const vitq_i_json *root, const char *path) {
    const vitq_i_json *n = json_path(root, path);
    return n && n->type == VITQ_I_JSON_STRING ? n->string : NULL;
}

/* Float list (or single number) at `path` into out[max]: count, 0 absent, -1 error. */
static int json_floats(const vitq_i_json *root, const char *file, const char *path, float *out, int max) {
    const vitq_i_json *n = json_path(root, path);
    if (!n || n->type == VITQ_I_JSON_NULL) return 0;
    if (n->type == VITQ_I_JSON_NUMBER) {
        out[0] = (float)n->number;
        return 1;
    }
    if (n->type != VITQ_I_JSON_ARRAY || n->count == 0 || n->count > (size_t)max) {
        vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' must be a list of 1 to %d numbers", file, path, max);
        return -1;
    }
    for (size_t i = 0; i < n->count; i++) {
        const vitq_i_json *item = n->items[i];
        if (item->type != VITQ_I_JSON_NUMBER) {
            vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s'[%zu] is not a number", file, path, i);
            return -1;
        }
        out[i] = (float)item->number;
    }
    return (int)n->count;
}

/* Integer list at `path` compared with `want[n]`: VITQ_OK when absent or equal. */
static vitq_status check_int_list(const vitq_i_json *root, const char *file, const char *path, const int *want,
                                  int n, const char *what) {
    float got[VITQ_MAX_STAGES];
    int count = json_floats(root, file, path, got, VITQ_MAX_STAGES);
    if (count < 0) return VITQ_ERR_CONFIG;
    if (count == 0) return VITQ_OK;
    int same = count == n;
    for (int i = 0; same && i < n; i++) same = got[i] == (float)want[i];
    if (same) return VITQ_OK;
    char stated[96] = "", shapes[96] = "";
    for (int i = 0; i < count; i++)
        snprintf(stated + strlen(stated), sizeof stated - strlen(stated), "%s%g", i ? "," : "", got[i]);
    for (int i = 0; i < n; i++)
        snprintf(shapes + strlen(shapes), sizeof shapes - strlen(shapes), "%s%d", i ? "," : "", want[i]);
    return vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' = [%s] but the weights have %s [%s]", file, path, stated, what,
                       shapes);
}

/* ---- __metadata__ values ----------------------------------------------------------------------- */

static int meta_number(const resolver *r, const char *key, double *out) {
    const char *s = vitq_i_st_meta(r->in->st, key);
    if (!s) return 0;
    char *end;
    *out = strtod(s, &end);
    while (*end == ' ') end++;
    if (end == s || *end) {
        vitq_i_fail(VITQ_ERR_CONFIG, "%s: __metadata__ '%s' = '%s' is not a number", r->in->name, key, s);
        return -1;
    }
    return 1;
}

static int meta_floats(const resolver *r, const char *key, float *out, int max) {
    const char *s = vitq_i_st_meta(r->in->st, key);
    if (!s) return 0;
    int n = 0;
    const char *p = s;
    if (*p == '[') p++;
    for (;;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || n == max) break;
        out[n++] = (float)v;
        p = end;
        while (*p == ' ') p++;
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p == ']') p++;
        if (*p == '\0') return n;
        break;
    }
    vitq_i_fail(VITQ_ERR_CONFIG, "%s: __metadata__ '%s' = '%s' is not a list of up to %d numbers", r->in->name,
                key, s, max);
    return -1;
}

/* ---- consistency checks of stated values against the shapes ------------------------------------ */

static vitq_status expect_equal(const char *file, const char *key, double stated, int from_shapes,
                                const char *what) {
    if ((int)stated == from_shapes && stated == floor(stated)) return VITQ_OK;
    return vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' = %g but the weights have %s %d", file, key, stated, what,
                       from_shapes);
}

static vitq_status check_stated(const vitq_i_json *root, const char *file, const char *key, int from_shapes,
                                const char *what) {
    double v;
    int r = json_number(root, file, key, &v);
    if (r < 0) return VITQ_ERR_CONFIG;
    return r ? expect_equal(file, key, v, from_shapes, what) : VITQ_OK;
}

/* A stated window may exceed a stage's grid: timm and HF then shrink that stage's window (and its
 * table) to the grid. So a stage's table may show a smaller window than stated, never a larger one. */
static vitq_status check_window(const resolver *r, const char *file, const char *key) {
    double w;
    int got = json_number(r->in->config, file, key, &w);
    if (got <= 0) return got < 0 ? VITQ_ERR_CONFIG : VITQ_OK;
    for (int s = 0; s < r->f->num_stages; s++)
        if (r->f->stage_window[s] > w)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' = %g but stage %d of the weights has window %d", file, key, w,
                               s, r->f->stage_window[s]);
    return VITQ_OK;
}

static vitq_status check_swin_config(const resolver *r) {
    const vitq_i_shape_facts *f = r->f;
    const vitq_i_json *c = r->in->config;
    const char *file = r->in->config_name;
    int hf = r->kind == CFG_HF;
    vitq_status st = check_stated(c, file, hf ? "embed_dim" : "model_args.embed_dim", f->embed_dim,
                                  "embedding width");
    if (!st) st = check_int_list(c, file, hf ? "depths" : "model_args.depths", f->stage_depth, f->num_stages,
                                 "blocks per stage");
    if (!st) st = check_int_list(c, file, hf ? "num_heads" : "model_args.num_heads", f->stage_heads, f->num_stages,
                                 "heads per stage");
    if (!st) st = check_stated(c, file, hf ? "patch_size" : "model_args.patch_size", f->patch_size, "patch size");
    if (!st) st = check_stated(c, file, hf ? "num_channels" : "model_args.in_chans", f->in_channels,
                               "input channels:");
    if (!st) st = check_window(r, file, hf ? "window_size" : "model_args.window_size");
    if (!st && !hf) st = check_stated(c, file, "num_classes", f->num_classes, "classes:");
    return st;
}

static vitq_status check_config_against_shapes(const resolver *r) {
    const vitq_i_shape_facts *f = r->f;
    const vitq_i_json *c = r->in->config;
    const char *file = r->in->config_name;
    vitq_status st = VITQ_OK;
    if (f->swin && r->kind != CFG_NONE) {
        st = check_swin_config(r);
    } else if (r->kind == CFG_HF) {
        if (!st) st = check_stated(c, file, "hidden_size", f->embed_dim, "embedding width");
        if (!st) st = check_stated(c, file, "num_hidden_layers", f->depth, "blocks:");
        if (!st) st = check_stated(c, file, "intermediate_size", f->mlp_dim, "MLP width");
        if (!st) st = check_stated(c, file, "patch_size", f->patch_size, "patch size");
        if (!st) st = check_stated(c, file, "num_channels", f->in_channels, "input channels:");
    } else if (r->kind == CFG_TIMM) {
        if (!st) st = check_stated(c, file, "model_args.embed_dim", f->embed_dim, "embedding width");
        if (!st) st = check_stated(c, file, "model_args.depth", f->depth, "blocks:");
        if (!st) st = check_stated(c, file, "model_args.patch_size", f->patch_size, "patch size");
        if (!st) st = check_stated(c, file, "model_args.in_chans", f->in_channels, "input channels:");
        if (!st) st = check_stated(c, file, "num_classes", f->num_classes, "classes:");
    }
    if (!st && r->arch) {
        const vitq_i_arch_entry *a = r->arch;
        char key[256];
        snprintf(key, sizeof key, "architecture %s%s%s%s", a->name, r->arch_args[0] ? " with model_args (" : "",
                 r->arch_args, r->arch_args[0] ? ")" : "");
        if ((a->swin_window != 0) != (f->swin != 0))
            st = vitq_i_fail(VITQ_ERR_CONFIG, "%s: %s (from %s) is a %s, but the weights are a %s", r->in->name, key,
                             r->arch_origin, a->swin_window ? "Swin" : "ViT/DeiT", f->swin ? "Swin" : "ViT/DeiT");
        else if (a->embed_dim != f->embed_dim || a->depth != f->depth || a->patch_size != f->patch_size ||
                 a->distilled != f->distilled)
            st = vitq_i_fail(VITQ_ERR_CONFIG,
                             "%s: %s (from %s) means width %d, %d blocks, patch %d%s, but the weights have width "
                             "%d, %d blocks, patch %d%s",
                             r->in->name, key, r->arch_origin, a->embed_dim, a->depth, a->patch_size,
                             a->distilled ? ", distilled" : "", f->embed_dim, f->depth, f->patch_size,
                             f->distilled ? ", distilled" : "");
    }
    return st;
}

/* ---- one resolver per hyper-parameter ---------------------------------------------------------- */

static vitq_status resolve_heads(const resolver *r, vitq_model_info *info, vitq_source *src) {
    const vitq_i_config_inputs *in = r->in;
    int heads = 0, got;
    double v;
    if (r->f->swin) {
        /* The relative position tables have one column per head: no source can disagree with them. */
        if (in->opts->num_heads > 0 && in->opts->num_heads != r->f->stage_heads[0])
            return vitq_i_fail(VITQ_ERR_CONFIG,
                               "%s: option num_heads = %d, but the relative position tables of stage 0 have %d heads",
                               in->name, (int)in->opts->num_heads, r->f->stage_heads[0]);
        info->num_heads = r->f->stage_heads[0];
        *src = VITQ_SOURCE_SHAPES;
        return VITQ_OK;
    }
    if (in->opts->num_heads > 0) {
        heads = in->opts->num_heads;
        *src = VITQ_SOURCE_OVERRIDE;
    } else if (r->kind != CFG_NONE &&
               (got = json_int(in->config, in->config_name,
                               r->kind == CFG_HF ? "num_attention_heads" : "model_args.num_heads", &heads)) != 0) {
        if (got < 0) return VITQ_ERR_CONFIG;
        *src = VITQ_SOURCE_CONFIG_JSON;
    } else if ((got = meta_number(r, "vitq.num_heads", &v)) != 0) {
        if (got < 0) return VITQ_ERR_CONFIG;
        /* Range first: converting an out-of-range double to int is undefined. */
        if (!(v >= 1 && v <= 65536) || v != floor(v))
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: __metadata__ vitq.num_heads = %g is not an integer in 1..65536",
                               in->name, v);
        heads = (int)v;
        *src = VITQ_SOURCE_METADATA;
    } else if (r->arch) {
        heads = r->arch->num_heads;
        *src = VITQ_SOURCE_ARCH_TABLE;
    } else {
        return vitq_i_fail(VITQ_ERR_MISSING_CONFIG,
                           "%s: the number of attention heads is not in the options (--num-heads), a config.json "
                           "(num_attention_heads / model_args.num_heads), __metadata__ (vitq.num_heads) or a "
                           "known timm architecture name",
                           in->name);
    }
    if (heads <= 0 || r->f->embed_dim % heads != 0)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: %d attention heads (from %s) do not divide the width %d", in->name,
                           heads, vitq_source_string(*src), r->f->embed_dim);
    info->num_heads = heads;
    return VITQ_OK;
}

static vitq_status resolve_eps(const resolver *r, vitq_model_info *info, vitq_source *src) {
    const vitq_i_config_inputs *in = r->in;
    double v = 0;
    int got;
    if (in->opts->layer_norm_eps > 0) {
        v = in->opts->layer_norm_eps;
        *src = VITQ_SOURCE_OVERRIDE;
    } else if (r->kind != CFG_NONE &&
               (got = json_number(in->config, in->config_name,
                                  r->kind == CFG_HF ? "layer_norm_eps" : "model_args.layer_norm_eps", &v)) != 0) {
        if (got < 0) return VITQ_ERR_CONFIG;
        *src = VITQ_SOURCE_CONFIG_JSON;
    } else if ((got = meta_number(r, "vitq.layer_norm_eps", &v)) != 0) {
        if (got < 0) return VITQ_ERR_CONFIG;
        *src = VITQ_SOURCE_METADATA;
    } else if (r->f->layout != VITQ_LAYOUT_HF) {
        /* timm's VisionTransformer builds every LayerNorm with eps=1e-6, its Swin with nn.LayerNorm's 1e-5. */
        v = r->f->swin ? 1e-5 : 1e-6;
        *src = VITQ_SOURCE_LAYOUT;
    } else {
        return vitq_i_fail(VITQ_ERR_MISSING_CONFIG,
                           "%s: LayerNorm eps of this Hugging Face checkpoint is not in config.json "
                           "(layer_norm_eps), __metadata__ (vitq.layer_norm_eps) or the options "
                           "(--layer-norm-eps); HF's ViT default 1e-12, Swin 1e-5 and timm's 1e-6 all occur, so "
                           "vitq does not guess",
                           in->name);
    }
    /* Checked as the float the kernels add, so that 1e-50 is not silently a zero eps. */
    if (!(v > 0 && v < 1) || !((float)v > 0))
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: LayerNorm eps %g (from %s) is not in (0, 1)%s", in->name, v,
                           vitq_source_string(*src), v > 0 && v < 1 ? " as a float32 (it would be 0)" : "");
    info->layer_norm_eps = (float)v;
    return VITQ_OK;
}

static int gelu_from_name(const char *s) {
    if (!strcmp(s, "gelu") || !strcmp(s, "erf") || !strcmp(s, "gelu_erf") || !strcmp(s, "GELU")) return VITQ_GELU_ERF;
    if (!strcmp(s, "gelu_new") || !strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_tanh") || !strcmp(s, "tanh") ||
        !strcmp(s, "gelu_fast"))
        return VITQ_GELU_TANH;
    return 0;
}

static vitq_status resolve_gelu(const resolver *r, vitq_model_info *info, vitq_source *src) {
    const vitq_i_config_inputs *in = r->in;
    const char *name = NULL, *origin = NULL;
    if (in->opts->gelu == VITQ_GELU_ERF || in->opts->gelu == VITQ_GELU_TANH) {
        info->gelu = in->opts->gelu;
        *src = VITQ_SOURCE_OVERRIDE;
        return VITQ_OK;
    }
    if (in->opts->gelu != 0)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "options.gelu = %d is not a vitq_gelu", (int)in->opts->gelu);
    if (r->kind != CFG_NONE &&
        (name = json_string(in->config, r->kind == CFG_HF ? "hidden_act" : "model_args.act_layer")) != NULL) {
        origin = in->config_name;
        *src = VITQ_SOURCE_CONFIG_JSON;
    } else if ((name = vitq_i_st_meta(in->st, "vitq.gelu")) != NULL) {
        origin = "__metadata__ vitq.gelu";
        *src = VITQ_SOURCE_METADATA;
    }
    if (name) {
        info->gelu = gelu_from_name(name);
        if (!info->gelu)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: activation '%s' (%s) is not supported: use gelu (erf) or "
                               "gelu_tanh", in->name, name, origin);
        return VITQ_OK;
    }
    /* Both timm's nn.GELU and HF's default hidden_act "gelu" are the exact (erf) form. */
    info->gelu = VITQ_GELU_ERF;
    *src = VITQ_SOURCE_LAYOUT;
    return VITQ_OK;
}

/* An image size stated by a source must match the position embeddings: vitq does not resample them. */
static vitq_status check_image_size(const resolver *r, int size, const char *origin) {
    int p = r->f->patch_size, grid = size / p;
    if (r->f->swin) {
        if (size <= 0 || size > 65536 || size % p != 0)
            return vitq_i_fail(VITQ_ERR_CONFIG,
                               "%s: image size %d (from %s) is not a multiple of the patch size %d in 1..65536",
                               r->in->name, size, origin, p);
        for (int s = 0; s < r->f->num_stages; s++) {
            if (s > 0 && grid % 2)
                return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                                   "%s: image size %d (from %s): stage %d's %dx%d token grid is odd and cannot be "
                                   "merged into 2x2 patches (padding is not supported)",
                                   r->in->name, size, origin, s - 1, grid, grid);
            if (s > 0) grid /= 2;
            if (grid % r->f->stage_window[s] != 0)
                return vitq_i_fail(VITQ_ERR_UNSUPPORTED,
                                   "%s: image size %d (from %s): stage %d's %dx%d token grid is not a multiple of its "
                                   "window %d (padding is not supported)",
                                   r->in->name, size, origin, s, grid, grid, r->f->stage_window[s]);
        }
        if (r->f->mask_image_size && r->f->mask_image_size != size)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: image size %d (from %s), but the stored attn_mask is for %d",
                               r->in->name, size, origin, r->f->mask_image_size);
        return VITQ_OK;
    }
    if (size <= 0 || size > 65536 || size % p != 0)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: image size %d (from %s) is not a multiple of the patch size %d in 1..65536",
                           r->in->name, size, origin, p);
    if ((int64_t)grid * grid != r->f->pos_patches)
        return vitq_i_fail(VITQ_ERR_CONFIG,
                           "%s: image size %d (from %s) with patch %d needs %lld position embeddings, the weights have "
                           "%d (resampling position embeddings is not supported)",
                           r->in->name, size, origin, p, (long long)grid * grid, r->f->pos_patches);
    return VITQ_OK;
}

static vitq_status resolve_image_size(const resolver *r, vitq_model_info *info, vitq_source *src) {
    const vitq_i_config_inputs *in = r->in;
    int size = 0, got = 0;
    double v;
    const char *origin = NULL;
    if (in->opts->image_size > 0) {
        size = in->opts->image_size;
        *src = VITQ_SOURCE_OVERRIDE;
        origin = "options";
    } else if (r->kind == CFG_HF) {
        got = json_int(in->config, in->config_name, "image_size", &size);
        *src = VITQ_SOURCE_CONFIG_JSON;
        origin = in->config_name;
    } else if (r->kind == CFG_TIMM) {
        /* model_args.img_size is what timm built the model with; pretrained_cfg.input_size is what its
         * data pipeline feeds. They must agree: vitq preprocesses to the size the model has. */
        float dims[3];
        int args_size = 0;
        int n = json_floats(in->config, in->config_name, "pretrained_cfg.input_size", dims, 3);
        if (n == 0) n = json_floats(in->config, in->config_name, "input_size", dims, 3);
        if (n < 0) return VITQ_ERR_CONFIG;
        int from_args = vitq_i_timm_square(json_path(in->config, "model_args"), in->config_name, "img_size", &args_size);
        if (from_args < 0) return VITQ_ERR_CONFIG;
        if (n == 3) {
            if (dims[1] != dims[2] || (int)dims[0] != r->f->in_channels)
                return vitq_i_fail(VITQ_ERR_CONFIG, "%s: input_size [%g,%g,%g] is not [%d,S,S]", in->config_name,
                                   dims[0], dims[1], dims[2], r->f->in_channels);
            size = (int)dims[1];
            got = 1;
            if (from_args && args_size != size)
                return vitq_i_fail(VITQ_ERR_CONFIG,
                                   "%s: model_args.img_size = %d but pretrained_cfg.input_size is %d: the model and "
                                   "its preprocessing disagree",
                                   in->config_name, args_size, size);
        } else if (from_args) {
            size = args_size;
            got = 1;
        }
        *src = VITQ_SOURCE_CONFIG_JSON;
        origin = in->config_name;
    }
    if (got < 0) return VITQ_ERR_CONFIG;
    if (!size && (got = meta_number(r, "vitq.image_size", &v)) != 0) {
        if (got < 0) return VITQ_ERR_CONFIG;
        if (!(v >= 1 && v <= 65536) || v != floor(v))
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: __metadata__ vitq.image_size = %g is not an integer in 1..65536",
                               in->name, v);
        size = (int)v;
        *src = VITQ_SOURCE_METADATA;
        origin = "__metadata__ vitq.image_size";
    }
    if (!size && r->arch) {
        size = r->arch->image_size;
        *src = VITQ_SOURCE_ARCH_TABLE;
        origin = r->arch->name;
    }
    if (!size && r->f->swin) {
        if (!r->f->mask_image_size)
            return vitq_i_fail(VITQ_ERR_MISSING_CONFIG,
                               "%s: the input size of this Swin is not in the options (--image-size), a config.json "
                               "(image_size / pretrained_cfg.input_size), __metadata__ (vitq.image_size) or a known "
                               "timm architecture name",
                               in->name);
        size = r->f->mask_image_size;
        *src = VITQ_SOURCE_SHAPES;
        origin = "attn_mask";
    }
    if (!size) {
        int grid = (int)lround(sqrt((double)r->f->pos_patches));
        if (grid * grid != r->f->pos_patches)
            return vitq_i_fail(VITQ_ERR_MISSING_CONFIG,
                               "%s: %d position embeddings are not a square grid; give the image size", in->name,
                               r->f->pos_patches);
        size = grid * r->f->patch_size;
        *src = VITQ_SOURCE_SHAPES;
        origin = "pos_embed";
    }
    vitq_status st = check_image_size(r, size, origin);
    if (st == VITQ_OK) info->image_size = size;
    return st;
}

/* Mean and std share their logic; `which` is 0 for mean, 1 for std. */
static vitq_status resolve_norm(const resolver *r, int which, float *values, vitq_source *src) {
    const vitq_i_config_inputs *in = r->in;
    const int channels = r->f->in_channels;
    float got[VITQ_MAX_CHANNELS];
    int n = 0;
    const char *origin = NULL;
    const int opt_n = which ? in->opts->num_std : in->opts->num_mean;
    if (opt_n > 0) {
        if (opt_n > VITQ_MAX_CHANNELS)
            return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "options.num_%s = %d > %d", which ? "std" : "mean", opt_n,
                               VITQ_MAX_CHANNELS);
        memcpy(got, which ? in->opts->std : in->opts->mean, sizeof(float) * (size_t)opt_n);
        n = opt_n;
        *src = VITQ_SOURCE_OVERRIDE;
        origin = "options";
    }
    if (!n && r->kind != CFG_NONE) {
        const char *paths[3] = {which ? "pretrained_cfg.std" : "pretrained_cfg.mean", which ? "std" : "mean",
                                which ? "image_std" : "image_mean"};
        for (int i = 0; i < 3 && !n; i++) {
            n = json_floats(in->config, in->config_name, paths[i], got, VITQ_MAX_CHANNELS);
            if (n < 0) return VITQ_ERR_CONFIG;
        }
        *src = VITQ_SOURCE_CONFIG_JSON;
        origin = in->config_name;
    }
    if (!n && in->preproc) {
        const vitq_i_json *norm = vitq_i_json_get(in->preproc, "do_normalize");
        if (norm && norm->type == VITQ_I_JSON_BOOL && !norm->boolean) {
            got[0] = which ? 1.0f : 0.0f; /* normalisation switched off: identity */
            n = 1;
        } else {
            n = json_floats(in->preproc, in->preproc_name, which ? "image_std" : "image_mean", got, VITQ_MAX_CHANNELS);
            if (n < 0) return VITQ_ERR_CONFIG;
        }
        *src = VITQ_SOURCE_PREPROCESSOR;
        origin = in->preproc_name;
    }
    if (!n) {
        n = meta_floats(r, which ? "vitq.std" : "vitq.mean", got, VITQ_MAX_CHANNELS);
        if (n < 0) return VITQ_ERR_CONFIG;
        *src = VITQ_SOURCE_METADATA;
        origin = "__metadata__";
    }
    if (!n && r->arch && r->arch->imagenet_norm) {
        static const float imagenet[2][3] = {{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}};
        memcpy(got, imagenet[which], sizeof imagenet[which]);
        n = 3;
        *src = VITQ_SOURCE_ARCH_TABLE;
        origin = r->arch->name;
    }
    if (!n) {
        *src = VITQ_SOURCE_NONE;
        return VITQ_OK;
    }
    if (channels > VITQ_MAX_CHANNELS) {
        *src = VITQ_SOURCE_NONE;
        return VITQ_OK;
    }
    if (n != 1 && n != channels)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: %s has %d values for %d input channels", in->name,
                           which ? "std" : "mean", n, channels);
    for (int c = 0; c < channels; c++) {
        float v = got[n == 1 ? 0 : c];
        if (!isfinite(v) || (which && v <= 0))
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: %s[%d] = %g (from %s) is invalid", in->name,
                               which ? "std" : "mean", c, v, origin);
        values[c] = v;
    }
    return VITQ_OK;
}

vitq_status vitq_i_config_resolve(const vitq_i_shape_facts *facts, const vitq_i_config_inputs *in,
                                  vitq_model_info *info, vitq_source *sources) {
    resolver r;
    memset(&r, 0, sizeof r);
    r.f = facts;
    r.in = in;
    r.kind = CFG_NONE;
    const vitq_i_json *c = in->config;
    if (c) {
        if (c->type != VITQ_I_JSON_OBJECT)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: not a JSON object", in->config_name);
        if (vitq_i_json_get(c, "model_type") || vitq_i_json_get(c, "hidden_size"))
            r.kind = CFG_HF;
        else if (vitq_i_json_get(c, "architecture") || vitq_i_json_get(c, "pretrained_cfg") ||
                 vitq_i_json_get(c, "model_args"))
            r.kind = CFG_TIMM;
        else
            return vitq_i_fail(VITQ_ERR_CONFIG,
                               "%s: neither a Hugging Face config (model_type, hidden_size) nor a timm hub config "
                               "(architecture, pretrained_cfg)",
                               in->config_name);
    }
    const char *arch_name = r.kind == CFG_TIMM ? json_string(c, "architecture") : NULL;
    r.arch_origin = in->config_name;
    if (!arch_name) {
        arch_name = vitq_i_st_meta(in->st, "vitq.architecture");
        r.arch_origin = "__metadata__";
    }
    r.arch = vitq_i_arch_lookup(arch_name);
    vitq_status st = VITQ_OK;
    /* A name of the other family is reported as such by the shape check, not as a bad model_args. */
    if (r.arch && r.kind == CFG_TIMM && (r.arch->swin_window != 0) == (facts->swin != 0)) {
        st = vitq_i_timm_apply_model_args(r.arch, json_path(c, "model_args"), in->config_name, &r.arch_applied,
                                          r.arch_args, sizeof r.arch_args);
        r.arch = &r.arch_applied;
    }
    if (!st) st = check_config_against_shapes(&r);
    if (!st) st = resolve_heads(&r, info, &sources[VITQ_HPARAM_NUM_HEADS]);
    if (!st) st = resolve_eps(&r, info, &sources[VITQ_HPARAM_LAYER_NORM_EPS]);
    if (!st) st = resolve_gelu(&r, info, &sources[VITQ_HPARAM_GELU]);
    if (!st) st = resolve_image_size(&r, info, &sources[VITQ_HPARAM_IMAGE_SIZE]);
    if (!st) st = resolve_norm(&r, 0, info->mean, &sources[VITQ_HPARAM_MEAN]);
    if (!st) st = resolve_norm(&r, 1, info->std, &sources[VITQ_HPARAM_STD]);
    return st;
}

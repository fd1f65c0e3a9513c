/* model_args over an architecture's defaults (see timm_args.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "model/timm_args.h"

static int valid_count(double v) { return v == floor(v) && v >= 1 && v <= 1e6; }

static int bad(const char *file, const char *key, const char *what) {
    vitq_i_fail(VITQ_ERR_CONFIG, "%s: model_args.%s %s", file, key, what);
    return -1;
}

/* A positive integer member: 1 found, 0 absent, -1 invalid. */
static int count_member(const vitq_i_json *args, const char *file, const char *key, int *out) {
    const vitq_i_json *n = args ? vitq_i_json_get(args, key) : NULL;
    if (!n || n->type == VITQ_I_JSON_NULL) return 0;
    if (n->type != VITQ_I_JSON_NUMBER || !valid_count(n->number)) return bad(file, key, "is not a positive integer");
    *out = (int)n->number;
    return 1;
}

/* A list of positive integers (Swin's depths and num_heads): count found, 0 absent, -1 invalid. */
static int count_list(const vitq_i_json *args, const char *file, const char *key, int *out, int max) {
    const vitq_i_json *n = args ? vitq_i_json_get(args, key) : NULL;
    if (!n || n->type == VITQ_I_JSON_NULL) return 0;
    if (n->type != VITQ_I_JSON_ARRAY || n->count == 0 || n->count > (size_t)max)
        return bad(file, key, "is not a list of 1 to 8 positive integers");
    for (size_t i = 0; i < n->count; i++) {
        if (n->items[i]->type != VITQ_I_JSON_NUMBER || !valid_count(n->items[i]->number))
            return bad(file, key, "has an entry that is not a positive integer");
        out[i] = (int)n->items[i]->number;
    }
    return (int)n->count;
}

int vitq_i_timm_square(const vitq_i_json *args, const char *file, const char *key, int *out) {
    const vitq_i_json *n = args ? vitq_i_json_get(args, key) : NULL;
    if (!n || n->type == VITQ_I_JSON_NULL) return 0;
    if (n->type == VITQ_I_JSON_NUMBER) return count_member(args, file, key, out);
    int pair[2];
    int got = count_list(args, file, key, pair, 2);
    if (got < 0) return -1;
    if (got != 2 || pair[0] != pair[1]) return bad(file, key, "must be one number or a square pair [h, w]");
    *out = pair[0];
    return 1;
}

static void note(char *overridden, size_t cap, const char *key) {
    size_t len = strlen(overridden);
    snprintf(overridden + len, cap - len, "%s%s", len ? ", " : "", key);
}

vitq_status vitq_i_timm_apply_model_args(const vitq_i_arch_entry *base, const vitq_i_json *args, const char *file,
                                         vitq_i_arch_entry *out, char *overridden, size_t cap) {
    *out = *base;
    overridden[0] = '\0';
    if (args && args->type != VITQ_I_JSON_OBJECT)
        return vitq_i_fail(VITQ_ERR_CONFIG, "%s: model_args is not an object", file);
    int v, got;
    if ((got = count_member(args, file, "embed_dim", &v)) < 0) return VITQ_ERR_CONFIG;
    if (got) out->embed_dim = v, note(overridden, cap, "embed_dim");
    if ((got = count_member(args, file, "patch_size", &v)) < 0) return VITQ_ERR_CONFIG;
    if (got) out->patch_size = v, note(overridden, cap, "patch_size");
    if ((got = vitq_i_timm_square(args, file, "img_size", &v)) < 0) return VITQ_ERR_CONFIG;
    if (got) out->image_size = v, note(overridden, cap, "img_size");
    if (!base->swin_window) {
        if ((got = count_member(args, file, "depth", &v)) < 0) return VITQ_ERR_CONFIG;
        if (got) out->depth = v, note(overridden, cap, "depth");
        if ((got = count_member(args, file, "num_heads", &v)) < 0) return VITQ_ERR_CONFIG;
        if (got) out->num_heads = v, note(overridden, cap, "num_heads");
        return VITQ_OK;
    }
    int list[VITQ_MAX_STAGES];
    if ((got = count_list(args, file, "depths", list, VITQ_MAX_STAGES)) < 0) return VITQ_ERR_CONFIG;
    if (got) {
        out->depth = 0;
        for (int i = 0; i < got; i++) out->depth += list[i];
        note(overridden, cap, "depths");
    }
    if ((got = count_list(args, file, "num_heads", list, VITQ_MAX_STAGES)) < 0) return VITQ_ERR_CONFIG;
    if (got) out->num_heads = list[0], note(overridden, cap, "num_heads");
    if ((got = vitq_i_timm_square(args, file, "window_size", &v)) < 0) return VITQ_ERR_CONFIG;
    if (got) out->swin_window = v, note(overridden, cap, "window_size");
    return VITQ_OK;
}

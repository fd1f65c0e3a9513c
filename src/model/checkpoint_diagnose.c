/* Why a checkpoint does not load (see vitq_i_ckpt_explain in checkpoint.h): the tensors the detected
 * layout does not know, and the known layout whose names the file resembles most. A bare "missing
 * tensor 'pos_embed'" hides that the file calls it something else; listing what was not recognised
 * shows the renaming at once.
 *
 * Names are compared as patterns: a leading "module." dropped, and every number that is a whole part
 * of a name ("blocks.11.", "encoder_layer_3.", "mlp.0.") replaced by '#', so that block 0 of a
 * template stands for every block. A layout's patterns are its name map applied to one canonical
 * template of each kind of tensor (names_vit.c, names_swin.c, names_torchvision.c). */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "model/checkpoint.h"

#define MAX_PATTERNS 64
#define MAX_LISTED 8

/* One canonical name of every kind of tensor a family may hold (optional ones included). */
static const char *const vit_templates[] = {
    "patch_embed.proj.weight", "patch_embed.proj.bias", "cls_token", "dist_token", "pos_embed",
    "blocks.0.norm1.weight", "blocks.0.norm1.bias", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias",
    "blocks.0.attn.proj.weight", "blocks.0.attn.proj.bias", "blocks.0.norm2.weight", "blocks.0.norm2.bias",
    "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc1.bias", "blocks.0.mlp.fc2.weight", "blocks.0.mlp.fc2.bias",
    "norm.weight", "norm.bias", "pre_logits.fc.weight", "pre_logits.fc.bias", "head.weight", "head.bias",
    "head_dist.weight", "head_dist.bias",
};

static const char *const swin_templates[] = {
    "patch_embed.proj.weight", "patch_embed.proj.bias", "patch_embed.norm.weight", "patch_embed.norm.bias",
    "layers.0.blocks.0.norm1.weight", "layers.0.blocks.0.norm1.bias", "layers.0.blocks.0.attn.qkv.weight",
    "layers.0.blocks.0.attn.qkv.bias", "layers.0.blocks.0.attn.relative_position_bias_table",
    "layers.0.blocks.0.attn.relative_position_index", "layers.0.blocks.1.attn_mask",
    "layers.0.blocks.0.attn.proj.weight", "layers.0.blocks.0.attn.proj.bias", "layers.0.blocks.0.norm2.weight",
    "layers.0.blocks.0.norm2.bias", "layers.0.blocks.0.mlp.fc1.weight", "layers.0.blocks.0.mlp.fc1.bias",
    "layers.0.blocks.0.mlp.fc2.weight", "layers.0.blocks.0.mlp.fc2.bias", "layers.1.downsample.norm.weight",
    "layers.1.downsample.norm.bias", "layers.1.downsample.reduction.weight", "norm.weight", "norm.bias",
    "head.weight", "head.bias",
};

/* The layouts vitq reads, as checkpoint_open would set them up. */
typedef struct candidate {
    vitq_i_family family;
    vitq_layout layout;
    const char *prefix;
    int merge_at_stage_end, head_fc;
} candidate;

static const candidate candidates[] = {
    {VITQ_I_FAMILY_VIT, VITQ_LAYOUT_TIMM, "", 0, 0},
    {VITQ_I_FAMILY_VIT, VITQ_LAYOUT_HF, "vit.", 0, 0},
    {VITQ_I_FAMILY_VIT, VITQ_LAYOUT_HF, "deit.", 0, 0},
    {VITQ_I_FAMILY_VIT, VITQ_LAYOUT_TORCHVISION, "", 0, 0},
    {VITQ_I_FAMILY_SWIN, VITQ_LAYOUT_TIMM, "", 0, 1},
    {VITQ_I_FAMILY_SWIN, VITQ_LAYOUT_TIMM_PRE09, "", 1, 0},
    {VITQ_I_FAMILY_SWIN, VITQ_LAYOUT_HF, "", 1, 0},
    {VITQ_I_FAMILY_SWIN, VITQ_LAYOUT_TORCHVISION, "", 0, 0},
};

typedef char name_buf[VITQ_I_NAME_LEN];

typedef struct pattern_set {
    name_buf names[MAX_PATTERNS];
    int count;
} pattern_set;

static int is_boundary(char ch) { return ch == '\0' || ch == '.' || ch == '_'; }

static void pattern_of(const char *name, char *out, size_t cap) {
    if (strncmp(name, "module.", 7) == 0) name += 7;
    size_t n = 0;
    for (size_t i = 0; name[i] && n + 1 < cap;) {
        int starts = i == 0 || name[i - 1] == '.' || name[i - 1] == '_';
        size_t j = i;
        while (isdigit((unsigned char)name[j])) j++;
        if (j > i && starts && is_boundary(name[j])) {
            out[n++] = '#';
            i = j;
        } else {
            out[n++] = name[i++];
        }
    }
    out[n] = '\0';
}

static int set_has(const pattern_set *s, const char *p) {
    for (int i = 0; i < s->count; i++)
        if (strcmp(s->names[i], p) == 0) return 1;
    return 0;
}

static void set_add(pattern_set *s, const char *name) {
    name_buf p;
    pattern_of(name, p, sizeof p);
    if (s->count < MAX_PATTERNS && !set_has(s, p)) memcpy(s->names[s->count++], p, sizeof p);
}

/* The patterns of every tensor the layout of c may hold. */
static void expected_patterns(const vitq_i_ckpt *c, pattern_set *s) {
    int swin = c->family == VITQ_I_FAMILY_SWIN;
    const char *const *t = swin ? swin_templates : vit_templates;
    size_t n = swin ? sizeof swin_templates / sizeof *t : sizeof vit_templates / sizeof *t;
    s->count = 0;
    for (size_t i = 0; i < n; i++) {
        name_buf parts[3], actual;
        if (vitq_i_ckpt_qkv_parts(c, t[i], parts)) {
            for (int k = 0; k < 3; k++) set_add(s, parts[k]);
        } else if (vitq_i_ckpt_translate(c, t[i], actual, sizeof actual)) {
            set_add(s, actual);
        }
    }
}

/* How many of the layout's patterns some tensor of the file has. */
static int score(const pattern_set *expected, const name_buf *file, size_t count) {
    int hits = 0;
    for (int i = 0; i < expected->count; i++)
        for (size_t f = 0; f < count; f++)
            if (strcmp(expected->names[i], file[f]) == 0) {
                hits++;
                break;
            }
    return hits;
}

/* Append " 'a', 'b', ... (and K more)" of the file's tensors outside `known` (not consumed). */
static size_t list_unknown(const vitq_i_ckpt *c, const pattern_set *known, const name_buf *file, char *out,
                           size_t cap) {
    size_t unknown = 0, len = strlen(out);
    for (size_t f = 0; f < c->st->count; f++) {
        if ((c->used && c->used[f]) || set_has(known, file[f])) continue;
        if (unknown < MAX_LISTED && len < cap)
            len += (size_t)snprintf(out + len, cap - len, "%s'%s'", unknown ? ", " : "", c->st->tensors[f].name);
        unknown++;
    }
    if (unknown > MAX_LISTED && len < cap) snprintf(out + len, cap - len, " (and %zu more)", unknown - MAX_LISTED);
    return unknown;
}

vitq_status vitq_i_ckpt_explain(const vitq_i_ckpt *c, vitq_status st) {
    if (!c || !c->st || !c->alloc || c->st->count == 0) return st;
    size_t count = c->st->count;
    name_buf *file = vitq_i_alloc_array(c->alloc, count, sizeof *file);
    pattern_set *sets = vitq_i_alloc_array(c->alloc, 2, sizeof *sets);
    if (!file || !sets) { /* the diagnosis is a courtesy: without memory, the plain message stands */
        vitq_i_free(c->alloc, file);
        vitq_i_free(c->alloc, sets);
        return st;
    }
    for (size_t f = 0; f < count; f++) pattern_of(c->st->tensors[f].name, file[f], sizeof file[f]);
    /* the best-matching known layout (the first of equals) */
    vitq_i_ckpt best;
    memset(&best, 0, sizeof best);
    int best_hits = -1, best_total = 0;
    for (size_t k = 0; k < sizeof candidates / sizeof candidates[0]; k++) {
        vitq_i_ckpt probe;
        memset(&probe, 0, sizeof probe);
        probe.st = c->st;
        probe.name = c->name;
        probe.family = candidates[k].family;
        probe.layout = candidates[k].layout;
        probe.prefix = candidates[k].prefix;
        probe.merge_at_stage_end = candidates[k].merge_at_stage_end;
        probe.head_fc = candidates[k].head_fc;
        expected_patterns(&probe, &sets[0]);
        int hits = score(&sets[0], (const name_buf *)file, count);
        if (hits > best_hits) {
            best = probe;
            best_hits = hits;
            best_total = sets[0].count;
        }
    }
    char old[1024], extra[768] = "";
    snprintf(old, sizeof old, "%s", vitq_last_error());
    int detected = c->family != 0;
    const vitq_i_ckpt *ref = detected ? c : &best;
    expected_patterns(ref, &sets[1]);
    char listed[640] = "";
    size_t unknown = list_unknown(ref, &sets[1], (const name_buf *)file, listed, sizeof listed);
    if (unknown)
        snprintf(extra, sizeof extra, ". %zu of the file's %zu tensors are not names of a %s checkpoint: %s", unknown,
                 count, vitq_i_ckpt_layout_label(ref), listed);
    size_t len = strlen(extra);
    if (best_hits <= 0)
        snprintf(extra + len, sizeof extra - len, ". No tensor name matches a layout vitq knows");
    else if (unknown || !detected || best.family != c->family || best.layout != c->layout)
        snprintf(extra + len, sizeof extra - len, ". Closest known layout: %s (%d of its %d kinds of tensor present)",
                 vitq_i_ckpt_layout_label(&best), best_hits, best_total);
    vitq_i_free(c->alloc, file);
    vitq_i_free(c->alloc, sets);
    if (!extra[0]) return st;
    return vitq_i_fail(st, "%s%s", old, extra);
}

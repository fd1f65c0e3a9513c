/* Class names read from the configuration and written as JSON (see class_names.h). */
#include <stdio.h>
#include <string.h>

#include "model/class_names.h"

/* Index of an object key "0".."N-1": decimal digits without sign, spaces or leading zeros, so that
 * two distinct keys never name one class. -1 when it is not such an index. */
static long key_index(const char *key, size_t length, int num_classes) {
    if (length == 0 || length > 10 || (key[0] == '0' && length > 1)) return -1;
    long v = 0;
    for (size_t i = 0; i < length; i++) {
        if (key[i] < '0' || key[i] > '9') return -1;
        v = v * 10 + (key[i] - '0');
    }
    return v < num_classes ? v : -1;
}

/* The names in `list` (an array of strings, or an object index -> string) into one block. `file` and
 * `key` name the source in messages. */
static vitq_status collect(const vitq_allocator *a, const vitq_i_json *list, const char *file, const char *key,
                           int num_classes, char ***out) {
    if (list->type != VITQ_I_JSON_ARRAY && list->type != VITQ_I_JSON_OBJECT)
        return vitq_i_fail(VITQ_ERR_CONFIG,
                           "%s: '%s' is a %s, not an array of class names or an object of class index -> name", file,
                           key, vitq_i_json_type_name(list->type)); /* a string, number or boolean */
    if (list->count != (size_t)num_classes)
        return vitq_i_fail(VITQ_ERR_CONFIG,
                           "%s: '%s' names %zu classes but the classifier has %d outputs (fix or remove the list)",
                           file, key, list->count, num_classes);
    const int keyed = list->type == VITQ_I_JSON_OBJECT;
    size_t bytes = 0;
    for (size_t i = 0; i < list->count; i++) {
        const vitq_i_json *v = list->items[i];
        if (keyed && key_index(list->keys[i], list->key_lengths[i], num_classes) < 0)
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' key '%.64s' is not a class index in 0..%d", file, key,
                               list->keys[i], num_classes - 1);
        if (v->type != VITQ_I_JSON_STRING || strlen(v->string) != v->length) {
            char entry[80];
            if (keyed) snprintf(entry, sizeof entry, "'%.64s'", list->keys[i]);
            else snprintf(entry, sizeof entry, "%zu", i);
            const char *what =
                v->type == VITQ_I_JSON_STRING ? "string holding \\u0000" : vitq_i_json_type_name(v->type);
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' entry %s is a%s %s, not a class name", file, key, entry,
                               strchr("aeiou", what[0]) ? "n" : "", what);
        }
        if (!vitq_i_add_size(bytes, v->length + 1, &bytes)) return vitq_i_oom("class names", SIZE_MAX);
    }
    size_t table, total;
    if (!vitq_i_mul_size((size_t)num_classes, sizeof(char *), &table) || !vitq_i_add_size(table, bytes, &total))
        return vitq_i_oom("class names", SIZE_MAX);
    char **names = vitq_i_calloc(a, 1, total);
    if (!names) return vitq_i_oom("class names", total);
    char *text = (char *)(names + num_classes);
    for (size_t i = 0; i < list->count; i++) {
        size_t index = keyed ? (size_t)key_index(list->keys[i], list->key_lengths[i], num_classes) : i;
        if (names[index]) { /* unreachable: the JSON reader refuses repeated keys, key_index leading zeros */
            vitq_i_free(a, names);
            return vitq_i_fail(VITQ_ERR_CONFIG, "%s: '%s' names class %zu twice", file, key, index);
        }
        names[index] = text;
        memcpy(text, list->items[i]->string, list->items[i]->length + 1);
        text += list->items[i]->length + 1;
    }
    *out = names;
    return VITQ_OK;
}

vitq_status vitq_i_class_names_read(const vitq_allocator *a, const vitq_i_config_inputs *in, int num_classes,
                                    char ***out) {
    *out = NULL;
    if (num_classes <= 0) return VITQ_OK;
    /* config.json: Hugging Face's id2label, timm's label_names (top level, as timm writes it, or in
     * pretrained_cfg); null means "not set" as everywhere in config files */
    static const char *const keys[] = {"id2label", "label_names", "pretrained_cfg.label_names"};
    for (size_t k = 0; in->config && k < sizeof keys / sizeof keys[0]; k++) {
        const vitq_i_json *node = in->config;
        const char *path = keys[k], *dot = strchr(path, '.');
        if (dot) {
            node = vitq_i_json_get(node, "pretrained_cfg");
            path = dot + 1;
        }
        node = vitq_i_json_get(node, path);
        if (node && node->type != VITQ_I_JSON_NULL)
            return collect(a, node, in->config_name, keys[k], num_classes, out);
    }
    /* __metadata__: a saved model's own names (a quantized file reads no config.json) */
    const char *text = vitq_i_st_meta(in->st, VITQ_I_CLASS_NAMES_KEY);
    if (!text) return VITQ_OK;
    char what[512];
    snprintf(what, sizeof what, "%s: __metadata__ %s", in->name ? in->name : "model", VITQ_I_CLASS_NAMES_KEY);
    vitq_i_json *list = NULL;
    vitq_status st = vitq_i_json_parse(a, text, strlen(text), what, &list);
    if (st == VITQ_ERR_FORMAT) { /* a bad value of a config key, as the other vitq.* keys report it */
        char detail[600];
        snprintf(detail, sizeof detail, "%s", vitq_last_error());
        st = vitq_i_fail(VITQ_ERR_CONFIG, "%s", detail);
    }
    if (!st && list->type != VITQ_I_JSON_ARRAY)
        st = vitq_i_fail(VITQ_ERR_CONFIG, "%s is a %s, not a JSON array of class names", what,
                         vitq_i_json_type_name(list->type));
    if (!st)
        st = collect(a, list, in->name ? in->name : "model", "__metadata__ " VITQ_I_CLASS_NAMES_KEY, num_classes, out);
    vitq_i_json_free(a, list);
    return st;
}

/* Appends to out (when not NULL) and counts bytes, so that one pass sizes the text and one writes it. */
static size_t put(char *out, size_t at, const char *s, size_t n) {
    if (out) memcpy(out + at, s, n);
    return at + n;
}

static size_t write_json(char *out, char *const *names, int count) {
    size_t at = put(out, 0, "[", 1);
    for (int c = 0; c < count; c++) {
        if (c) at = put(out, at, ",", 1);
        at = put(out, at, "\"", 1);
        for (const unsigned char *p = (const unsigned char *)names[c]; *p; p++) {
            char esc[8];
            if (*p == '"' || *p == '\\') {
                esc[0] = '\\';
                esc[1] = (char)*p;
                at = put(out, at, esc, 2);
            } else if (*p < 0x20) {
                snprintf(esc, sizeof esc, "\\u%04x", *p);
                at = put(out, at, esc, 6);
            } else {
                at = put(out, at, (const char *)p, 1);
            }
        }
        at = put(out, at, "\"", 1);
    }
    at = put(out, at, "]", 1);
    return put(out, at, "", 1); /* the terminator */
}

char *vitq_i_class_names_json(const vitq_allocator *a, char *const *names, int count) {
    size_t size = write_json(NULL, names, count);
    char *out = vitq_i_alloc(a, size);
    if (out) write_json(out, names, count);
    return out;
}

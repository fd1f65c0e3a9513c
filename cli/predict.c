/* What eval and logits make of the logits: each image's top-K classes with their softmax
 * probabilities, the class names (--class-names FILE or the model's own) and the --predictions file. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define MAX_NAMES_FILE (64u << 20) /* a names file is text: more than this is not one */

/* Length of the valid UTF-8 sequence at s (1..4), or 0 (overlong forms, surrogates and code points
 * beyond U+10FFFF are not valid). */
static int utf8_sequence(const unsigned char *s, size_t left) {
    if (s[0] < 0x80) return 1;
    int n = s[0] >= 0xC2 && s[0] <= 0xDF ? 2 : (s[0] & 0xF0) == 0xE0 ? 3 : s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : 0;
    if (!n || (size_t)n > left) return 0;
    for (int i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (n == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0;
    if (n == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))) return 0;
    return n;
}

/* --class-names FILE into out->text (lines split in place) and out->name. */
static int read_names_file(const char *path, int classes, cli_names *out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vitq: --class-names %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t cap = 4096, size = 0;
    char *text = malloc(cap + 1);
    int err = 0;
    while (text && !err) {
        if (size == cap) {
            char *grown = cap < MAX_NAMES_FILE ? realloc(text, 2 * cap + 1) : NULL;
            if (!grown) break;
            text = grown;
            cap *= 2;
        }
        size_t got = fread(text + size, 1, cap - size, f);
        size += got;
        if (got == 0) err = ferror(f) ? 1 : 2; /* 2: the end */
    }
    fclose(f);
    if (err != 2) {
        fprintf(stderr, "vitq: --class-names %s: %s\n", path,
                !text || size == cap ? "too large or out of memory for a list of names" : "read error");
        free(text);
        return 1;
    }
    text[size] = '\0';
    if (memchr(text, '\0', size)) {
        fprintf(stderr, "vitq: --class-names %s holds a NUL byte: not a text file of names\n", path);
        free(text);
        return 2;
    }
    /* lines: '\n' ends one, the last may lack it; "\r\n" ends one too */
    size_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += text[i] == '\n';
    if (size && text[size - 1] != '\n') lines++;
    if (lines != (size_t)classes) {
        fprintf(stderr, "vitq: --class-names %s has %zu lines but the model has %d classes (line i names class i)\n",
                path, lines, classes);
        free(text);
        return 2;
    }
    out->text = text;
    out->name = calloc((size_t)classes, sizeof *out->name);
    if (!out->name) {
        fprintf(stderr, "vitq: out of memory for %d class names\n", classes);
        return 1;
    }
    char *p = text;
    for (int c = 0; c < classes; c++) {
        char *end = p + strcspn(p, "\n"), *next = *end ? end + 1 : end;
        if (end > p && end[-1] == '\r') end--;
        *end = '\0';
        if (!*p) {
            fprintf(stderr, "vitq: --class-names %s: line %d is empty (line i names class i)\n", path, c + 1);
            return 2;
        }
        for (size_t i = 0, left = (size_t)(end - p); i < left;) {
            int n = utf8_sequence((const unsigned char *)p + i, left - i);
            if (!n) {
                fprintf(stderr, "vitq: --class-names %s: line %d is not UTF-8 text\n", path, c + 1);
                return 2;
            }
            i += (size_t)n;
        }
        out->name[c] = p;
        p = next;
    }
    return 0;
}

int cli_names_load(const cli_args *args, const vitq_model *model, int classes, cli_names *out) {
    memset(out, 0, sizeof *out);
    if (args->class_names) return read_names_file(args->class_names, classes, out);
    const char *first = NULL;
    vitq_status st = vitq_model_class_name(model, 0, &first);
    if (st) return cli_fail("class names", st);
    if (!first) return 0; /* the model's config names no classes */
    out->name = calloc((size_t)classes, sizeof *out->name);
    if (!out->name) {
        fprintf(stderr, "vitq: out of memory for %d class names\n", classes);
        return 1;
    }
    for (int c = 0; c < classes; c++) {
        if ((st = vitq_model_class_name(model, c, &out->name[c]))) return cli_fail("class names", st);
        if (!out->name[c]) { /* the library names all classes or none: a broken promise, not a blank */
            fprintf(stderr, "vitq: class %d of %s has no name though class 0 has one\n", c, args->model);
            return 1;
        }
    }
    return 0;
}

void cli_names_free(cli_names *names) {
    free(names->name);
    free(names->text);
    memset(names, 0, sizeof *names);
}

void cli_top_k(const float *logits, size_t n, int classes, int k, int32_t *ids, float *probs) {
    for (size_t i = 0; i < n; i++) {
        const float *row = logits + i * (size_t)classes;
        int32_t *top = ids + i * (size_t)k;
        int filled = 0;
        /* insertion into the sorted top list; a tie keeps the lower class first, as argmax does */
        for (int c = 0; c < classes; c++) {
            if (filled == k && !(row[c] > row[top[k - 1]])) continue;
            int at = filled < k ? filled++ : k - 1;
            while (at > 0 && row[c] > row[top[at - 1]]) {
                top[at] = top[at - 1];
                at--;
            }
            top[at] = c;
        }
        /* softmax over all classes, shifted by the largest logit so that exp cannot overflow */
        double sum = 0, max = row[top[0]];
        for (int c = 0; c < classes; c++) sum += exp((double)row[c] - max);
        for (int r = 0; r < k; r++) probs[i * (size_t)k + (size_t)r] = (float)(exp((double)row[top[r]] - max) / sum);
    }
}

/* strcmp ignoring ASCII case (strcasecmp is not C11). */
static int strcasecmp_ascii(const char *a, const char *b) {
    for (;; a++, b++) {
        int x = *a >= 'A' && *a <= 'Z' ? *a - 'A' + 'a' : *a, y = *b >= 'A' && *b <= 'Z' ? *b - 'A' + 'a' : *b;
        if (x != y || !x) return x - y;
    }
}

/* A CSV field, quoted when it holds a comma, a quote or a line break (quotes doubled). */
static void csv_field(FILE *f, const char *s) {
    if (!s[strcspn(s, ",\"\r\n")]) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void cli_json_string(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p == '\n') fputs("\\n", f);
        else if (*p == '\t') fputs("\\t", f);
        else if (*p == '\r') fputs("\\r", f);
        else if (*p < 0x20 || *p == 0x7F) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

static void write_csv(FILE *f, const cli_predictions *p) {
    fputs("index", f);
    if (p->labels) fputs(",label", f);
    for (int r = 1; r <= p->k; r++) {
        fprintf(f, ",class_%d", r);
        if (p->names) fprintf(f, ",name_%d", r);
        fprintf(f, ",prob_%d", r);
    }
    fputc('\n', f);
    for (size_t i = 0; i < p->n; i++) {
        fprintf(f, "%zu", i);
        if (p->labels) fprintf(f, ",%d", (int)p->labels[i]);
        for (int r = 0; r < p->k; r++) {
            int32_t c = p->ids[i * (size_t)p->k + (size_t)r];
            fprintf(f, ",%d", (int)c);
            if (p->names) {
                fputc(',', f);
                csv_field(f, p->names[c]);
            }
            fprintf(f, ",%.6g", (double)p->probs[i * (size_t)p->k + (size_t)r]);
        }
        fputc('\n', f);
    }
}

static void write_jsonl(FILE *f, const cli_predictions *p) {
    for (size_t i = 0; i < p->n; i++) {
        const int32_t *ids = p->ids + i * (size_t)p->k;
        fprintf(f, "{\"index\":%zu", i);
        if (p->labels) fprintf(f, ",\"label\":%d", (int)p->labels[i]);
        fputs(",\"classes\":[", f);
        for (int r = 0; r < p->k; r++) fprintf(f, "%s%d", r ? "," : "", (int)ids[r]);
        if (p->names) {
            fputs("],\"names\":[", f);
            for (int r = 0; r < p->k; r++) {
                if (r) fputc(',', f);
                cli_json_string(f, p->names[ids[r]]);
            }
        }
        fputs("],\"probs\":[", f);
        for (int r = 0; r < p->k; r++)
            fprintf(f, "%s%.6g", r ? "," : "", (double)p->probs[i * (size_t)p->k + (size_t)r]);
        fputs("]}\n", f);
    }
}

int cli_write_predictions(const char *path, const cli_predictions *p) {
    size_t len = strlen(path); /* FILE.jsonl (any case), else FILE.csv: the parser allows only these */
    int jsonl = len > 6 && !strcasecmp_ascii(path + len - 6, ".jsonl");
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    if (f) {
        if (jsonl) write_jsonl(f, p);
        else write_csv(f, p);
    }
    int ok = f && !ferror(f);
    if (f && fclose(f) != 0) ok = 0;
    int rc = 1;
    if (!ok) fprintf(stderr, "vitq: --predictions %s: out of memory building the file\n", path);
    else if (!(rc = cli_write_file("--predictions", path, text, size)))
        fprintf(stderr, "wrote %s: top-%d predictions of %zu images\n", path, p->k, p->n);
    free(text);
    return rc;
}

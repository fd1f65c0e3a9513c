/* .npy reader and writer. The header is a Python dict literal; rather than evaluating Python, a small
 * recursive-descent parser accepts exactly the literal forms numpy writes and reads: quoted strings,
 * True/False, integer tuples (with optional trailing commas), in any key order. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "io/npy.h"

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ---- descr <-> element type -------------------------------------------------------------------- */

typedef struct {
    char kind; /* numpy kind letter */
    char size; /* element size as the digit numpy writes */
    vitq_i_elem elem;
} descr_info;

static const descr_info descrs[] = {
    {'u', '1', VITQ_I_ELEM_U8},  {'i', '1', VITQ_I_ELEM_I8},  {'b', '1', VITQ_I_ELEM_BOOL},
    {'i', '2', VITQ_I_ELEM_I16}, {'u', '2', VITQ_I_ELEM_U16}, {'f', '2', VITQ_I_ELEM_F16},
    {'i', '4', VITQ_I_ELEM_I32}, {'u', '4', VITQ_I_ELEM_U32}, {'f', '4', VITQ_I_ELEM_F32},
    {'i', '8', VITQ_I_ELEM_I64}, {'u', '8', VITQ_I_ELEM_U64}, {'f', '8', VITQ_I_ELEM_F64},
};
#define NUM_DESCRS (sizeof descrs / sizeof descrs[0])

static int host_little_endian(void) {
    const uint16_t one = 1;
    uint8_t first;
    memcpy(&first, &one, 1);
    return first == 1;
}

/* Element type of a descr string, or VITQ_I_ELEM_INVALID. Byte order: '<' always works; '=' or none
 * means the host's, accepted on a little-endian host; for one-byte types the order is irrelevant. */
static vitq_i_elem descr_elem(const char *d) {
    char order = 0;
    if (*d == '<' || *d == '>' || *d == '=' || *d == '|') order = *d++;
    if (strlen(d) != 2) return VITQ_I_ELEM_INVALID;
    for (size_t i = 0; i < NUM_DESCRS; i++) {
        if (descrs[i].kind != d[0] || descrs[i].size != d[1]) continue;
        if (d[1] == '1') return descrs[i].elem;
        if (order == '<' || ((order == '=' || order == 0) && host_little_endian())) return descrs[i].elem;
        return VITQ_I_ELEM_INVALID;
    }
    return VITQ_I_ELEM_INVALID;
}

/* ---- Header dict parser ------------------------------------------------------------------------ */

typedef struct {
    const char *s;
    size_t n, i;
    size_t file_off; /* offset of s[0] in the file, for messages */
    const char *name;
} cursor;

static void skip_ws(cursor *c) {
    while (c->i < c->n && (c->s[c->i] == ' ' || c->s[c->i] == '\t' || c->s[c->i] == '\n' || c->s[c->i] == '\r'))
        c->i++;
}

static int peek(const cursor *c) { return c->i < c->n ? (unsigned char)c->s[c->i] : -1; }

static vitq_status malformed(const cursor *c, const char *what) {
    return vitq_i_fail(VITQ_ERR_FORMAT, "%s: malformed .npy header at byte %zu: %s", c->name, c->file_off + c->i,
                       what);
}

static vitq_status expect(cursor *c, char ch, const char *what) {
    skip_ws(c);
    if (peek(c) != (unsigned char)ch) return malformed(c, what);
    c->i++;
    return VITQ_OK;
}

/* A quoted string; its text (truncated to cap - 1, always terminated) goes to dst. Escapes are kept
 * as written: no descr or key numpy writes has any. */
static vitq_status parse_string(cursor *c, char *dst, size_t cap) {
    skip_ws(c);
    int q = peek(c);
    if (q != '\'' && q != '"') return malformed(c, "expected a quoted string");
    size_t start = ++c->i, k = 0;
    while (c->i < c->n && c->s[c->i] != q) {
        if (c->s[c->i] == '\\') c->i++;
        c->i++;
    }
    if (c->i >= c->n) {
        c->i = start;
        return malformed(c, "string without closing quote");
    }
    for (size_t j = start; j < c->i && k + 1 < cap; j++) dst[k++] = c->s[j];
    dst[k] = 0;
    c->i++;
    return VITQ_OK;
}

static vitq_status parse_bool(cursor *c, int *v) {
    skip_ws(c);
    if (c->n - c->i >= 4 && memcmp(c->s + c->i, "True", 4) == 0) {
        c->i += 4;
        *v = 1;
    } else if (c->n - c->i >= 5 && memcmp(c->s + c->i, "False", 5) == 0) {
        c->i += 5;
        *v = 0;
    } else {
        return malformed(c, "fortran_order must be True or False");
    }
    return VITQ_OK;
}

static vitq_status parse_uint(cursor *c, uint64_t *v) {
    skip_ws(c);
    if (peek(c) < '0' || peek(c) > '9') return malformed(c, "expected a non-negative integer in 'shape'");
    uint64_t x = 0;
    while (peek(c) >= '0' && peek(c) <= '9') {
        unsigned dgt = (unsigned)(c->s[c->i] - '0');
        if (x > (UINT64_MAX - dgt) / 10) return malformed(c, "dimension does not fit in 64 bits");
        x = x * 10 + dgt;
        c->i++;
    }
    if (peek(c) == 'L') c->i++; /* Python 2 long literal, found in old files */
    *v = x;
    return VITQ_OK;
}

/* A tuple of integers: (), (N,), (N, M), (N, M,). "(N)" is an int in Python, not a tuple. */
static vitq_status parse_shape(cursor *c, uint64_t *shape, int *ndim) {
    vitq_status st = expect(c, '(', "'shape' must be a tuple");
    if (st) return st;
    *ndim = 0;
    skip_ws(c);
    if (peek(c) == ')') {
        c->i++;
        return VITQ_OK;
    }
    for (;;) {
        uint64_t d = 0;
        skip_ws(c);
        if (peek(c) == '-') { /* say which dimension is negative rather than "expected an integer" */
            char what[96];
            size_t k = c->i + 1;
            while (k < c->n && k - c->i < 21 && c->s[k] >= '0' && c->s[k] <= '9') k++;
            snprintf(what, sizeof what, "dimension %d of 'shape' is negative (%.*s)", *ndim, (int)(k - c->i),
                     c->s + c->i);
            return malformed(c, what);
        }
        if ((st = parse_uint(c, &d))) return st;
        if (*ndim == VITQ_I_MAX_DIMS)
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: .npy array has more than %d dimensions", c->name,
                               VITQ_I_MAX_DIMS);
        shape[(*ndim)++] = d;
        skip_ws(c);
        if (peek(c) == ')') {
            if (*ndim == 1) return malformed(c, "'shape' (N) is not a tuple, (N,) expected");
            c->i++;
            return VITQ_OK;
        }
        if ((st = expect(c, ',', "expected ',' or ')' in 'shape'"))) return st;
        skip_ws(c);
        if (peek(c) == ')') {
            c->i++;
            return VITQ_OK;
        }
    }
}

/* Skip a structured dtype's descr (a list of tuples) so that it can be reported as a dtype problem
 * rather than a malformed header. Only bracket balance and strings are checked. */
static vitq_status skip_list(cursor *c) {
    int depth = 0;
    skip_ws(c);
    if (peek(c) != '[' && peek(c) != '(') return malformed(c, "'descr' must be a string or a list");
    for (;;) {
        int ch = peek(c);
        if (ch < 0) return malformed(c, "unterminated 'descr' list");
        if (depth == 0 && (ch == ',' || ch == '}')) return VITQ_OK;
        if (ch == '\'' || ch == '"') {
            char tmp[2];
            vitq_status st = parse_string(c, tmp, sizeof tmp);
            if (st) return st;
            continue;
        }
        if (ch == '(' || ch == '[' || ch == '{') depth++;
        if (ch == ')' || ch == ']' || ch == '}') {
            if (depth == 0) return malformed(c, "unbalanced brackets in 'descr'");
            depth--;
        }
        c->i++;
    }
}

typedef struct {
    char descr[32];
    int descr_is_string;
    int fortran;
    uint64_t shape[VITQ_I_MAX_DIMS];
    int ndim;
} npy_header;

static vitq_status parse_dict(cursor *c, npy_header *h) {
    enum { K_DESCR = 1, K_FORTRAN = 2, K_SHAPE = 4 };
    unsigned seen = 0;
    vitq_status st = expect(c, '{', "expected '{'");
    if (st) return st;
    for (;;) {
        skip_ws(c);
        if (peek(c) == '}') break;
        char key[32];
        size_t key_at = c->i;
        if ((st = parse_string(c, key, sizeof key))) return st;
        if ((st = expect(c, ':', "expected ':' after a key"))) return st;
        unsigned k = strcmp(key, "descr") == 0 ? K_DESCR
                     : strcmp(key, "fortran_order") == 0 ? K_FORTRAN
                     : strcmp(key, "shape") == 0 ? K_SHAPE : 0;
        if (!k || (seen & k)) {
            c->i = key_at;
            return malformed(c, k ? "duplicate key" : "unknown key (only 'descr', 'fortran_order', 'shape')");
        }
        seen |= k;
        skip_ws(c);
        if (k == K_DESCR) {
            h->descr_is_string = peek(c) == '\'' || peek(c) == '"';
            st = h->descr_is_string ? parse_string(c, h->descr, sizeof h->descr) : skip_list(c);
        } else if (k == K_FORTRAN) {
            st = parse_bool(c, &h->fortran);
        } else {
            st = parse_shape(c, h->shape, &h->ndim);
        }
        if (st) return st;
        skip_ws(c);
        if (peek(c) == ',') {
            c->i++;
            continue;
        }
        if (peek(c) != '}') return malformed(c, "expected ',' or '}' after a value");
    }
    c->i++;
    skip_ws(c); /* numpy pads with spaces and a final newline */
    if (c->i != c->n) return malformed(c, "text after the closing '}'");
    if (seen != (K_DESCR | K_FORTRAN | K_SHAPE))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: .npy header lacks the key '%s'", c->name,
                           !(seen & K_DESCR) ? "descr" : !(seen & K_FORTRAN) ? "fortran_order" : "shape");
    return VITQ_OK;
}

/* ---- Reader ------------------------------------------------------------------------------------ */

vitq_status vitq_i_npy_parse_header(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out,
                                    size_t *data_offset) {
    if (!name) name = "(buffer)";
    if ((!buf && n) || !out || !data_offset)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL argument", name);
    memset(out, 0, sizeof *out);
    if (n == 0) return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: empty file, .npy data expected", name);
    if (memcmp(buf, npy_magic, n < 6 ? n : 6) != 0) {
        char seen[32] = "";
        for (size_t i = 0, k = 0; i < 6 && i < n; i++)
            k += (size_t)snprintf(seen + k, sizeof seen - k, "%s%02x", i ? " " : "", buf[i]);
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: not a .npy file (magic %s, expected 93 4e 55 4d 50 59, "
                           "\"\\x93NUMPY\")", name, seen);
    }
    if (n < 10) return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: .npy preamble cut short (%zu bytes)", name, n);
    unsigned major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: .npy format version %u.%u (1.0, 2.0 and 3.0 supported)", name,
                           major, minor);
    size_t pre = major == 1 ? 10 : 12, hlen;
    if (n < pre) return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: .npy preamble cut short (%zu bytes)", name, n);
    if (major == 1)
        hlen = buf[8] | (size_t)buf[9] << 8;
    else
        hlen = buf[8] | (size_t)buf[9] << 8 | (size_t)buf[10] << 16 | (size_t)buf[11] << 24;
    if (n - pre < hlen)
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: .npy header of %zu bytes but only %zu follow the preamble", name,
                           hlen, n - pre);

    npy_header h;
    memset(&h, 0, sizeof h);
    cursor c = {(const char *)buf + pre, hlen, 0, pre, name};
    vitq_status st = parse_dict(&c, &h);
    if (st) return st;

    vitq_i_elem elem = h.descr_is_string ? descr_elem(h.descr) : VITQ_I_ELEM_INVALID;
    if (elem == VITQ_I_ELEM_INVALID)
        return vitq_i_fail(VITQ_ERR_DTYPE, "%s: .npy dtype %s%s%s is not supported (little-endian u1 i1 b1 i2 u2 "
                           "f2 i4 u4 f4 i8 u8 f8 are)", name, h.descr_is_string ? "'" : "",
                           h.descr_is_string ? h.descr : "(structured)", h.descr_is_string ? "'" : "");
    if (h.fortran)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: .npy array is in Fortran order; save it C-contiguous", name);

    size_t count = 0, nbytes = 0;
    int empty = 0; /* a zero dimension makes the array empty whatever the others say */
    for (int i = 0; i < h.ndim; i++) empty |= h.shape[i] == 0;
    if (!empty && (!vitq_i_shape_count_u64(h.ndim, h.shape, SIZE_MAX, &count) ||
                   !vitq_i_mul_size(count, vitq_i_elem_size(elem), &nbytes)))
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: .npy shape overflows the address space", name);
    out->elem = elem;
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof h.shape);
    out->nbytes = nbytes;
    *data_offset = pre + hlen;
    return VITQ_OK;
}

vitq_status vitq_i_npy_parse(const uint8_t *buf, size_t n, const char *name, vitq_i_array *out) {
    if (!name) name = "(buffer)";
    size_t off = 0;
    vitq_status st = vitq_i_npy_parse_header(buf, n, name, out, &off);
    if (st) return st;
    size_t nbytes = out->nbytes;
    if (n - off < nbytes) {
        memset(out, 0, sizeof *out);
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: .npy data is %zu bytes, shape needs %zu", name, n - off, nbytes);
    }
    if (n - off > nbytes) {
        memset(out, 0, sizeof *out);
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: .npy data is %zu bytes, shape needs only %zu (extra bytes at %zu)",
                           name, n - off, nbytes, off + nbytes);
    }
    out->data = buf + off;
    return VITQ_OK;
}

/* ---- Writer ------------------------------------------------------------------------------------ */

vitq_status vitq_i_npy_write_header(vitq_i_elem elem, int ndim, const uint64_t *shape, char *buf, size_t cap,
                                    size_t *len) {
    const descr_info *d = NULL;
    for (size_t i = 0; i < NUM_DESCRS; i++)
        if (descrs[i].elem == elem) d = &descrs[i];
    if (!d) return vitq_i_fail(VITQ_ERR_DTYPE, ".npy: element type %s has no numpy dtype", vitq_i_elem_name(elem));
    if (ndim < 0 || ndim > VITQ_I_MAX_DIMS || (ndim > 0 && !shape) || !len || (!buf && cap))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, ".npy header: bad arguments (ndim %d)", ndim);

    /* The dict exactly as numpy writes it, e.g. {'descr': '<f4', 'fortran_order': False, 'shape': (3,), } */
    char text[VITQ_I_NPY_HEADER_MAX];
    int k = snprintf(text, sizeof text, "{'descr': '%c%c%c', 'fortran_order': False, 'shape': (",
                     d->size == '1' ? '|' : '<', d->kind, d->size);
    for (int i = 0; i < ndim; i++)
        k += snprintf(text + k, sizeof text - (size_t)k, "%s%llu", i ? ", " : "", (unsigned long long)shape[i]);
    k += snprintf(text + k, sizeof text - (size_t)k, "%s), }", ndim == 1 ? "," : "");

    /* Pad with spaces and a newline so that the data starts 64-byte aligned, as numpy does. */
    size_t total = (10 + (size_t)k + 1 + 63) / 64 * 64, hlen = total - 10;
    *len = total;
    if (cap < total)
        return vitq_i_fail(VITQ_ERR_BUFFER_TOO_SMALL, ".npy header needs %zu bytes, buffer has %zu", total, cap);
    memcpy(buf, npy_magic, 6);
    buf[6] = 1;
    buf[7] = 0;
    buf[8] = (char)(hlen & 0xFF);
    buf[9] = (char)(hlen >> 8);
    memcpy(buf + 10, text, (size_t)k);
    memset(buf + 10 + k, ' ', hlen - (size_t)k - 1);
    buf[total - 1] = '\n';
    return VITQ_OK;
}

vitq_status vitq_i_npy_save(const char *path, vitq_i_elem elem, int ndim, const uint64_t *shape, const void *data) {
    if (!path) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, ".npy save: NULL path");
    char hdr[VITQ_I_NPY_HEADER_MAX];
    size_t hlen, count = 0, nbytes = 0;
    vitq_status st = vitq_i_npy_write_header(elem, ndim, shape, hdr, sizeof hdr, &hlen);
    if (st) {
        vitq_i_error_prefix("%s", path);
        return st;
    }
    int empty = 0;
    for (int i = 0; i < ndim; i++) empty |= shape[i] == 0;
    if (!empty && (!vitq_i_shape_count_u64(ndim, shape, SIZE_MAX, &count) ||
                   !vitq_i_mul_size(count, vitq_i_elem_size(elem), &nbytes)))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: array shape overflows", path);
    if (nbytes && !data) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: NULL data", path);

    const void *parts[2] = {hdr, data};
    const size_t sizes[2] = {hlen, nbytes};
    return vitq_i_write_file_atomic_parts(path, parts, sizes, 2);
}

/* Zip directory reader for torch.save archives (the checks are listed in zip.h), over the caller's
 * buffer or a file read piece by piece (piece()). Only the central directory is trusted for sizes:
 * torch writes its local headers with zero sizes and a data descriptor after the data (flag bit 3).
 * Nothing is decompressed. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "io/zip.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_ZIP64_LOCATOR 0x07064b50u
#define SIG_ZIP64_EOCD 0x06064b50u

#define LOCAL_SIZE 30
#define CENTRAL_SIZE 46
#define EOCD_SIZE 22
#define ZIP64_LOCATOR_SIZE 20
#define ZIP64_EOCD_SIZE 56
#define MAX_COMMENT 65535u

static uint32_t rd16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t rd32(const uint8_t *p) { return rd16(p) | rd16(p + 2) << 16; }
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

int vitq_i_zip_detect(const uint8_t *buf, size_t n) { return n >= 4 && rd32(buf) == SIG_LOCAL; }

/* What the end records say about the central directory. */
typedef struct {
    uint64_t count, cd_offset, cd_size;
    size_t cd_limit; /* the central directory must end here (start of the end records) */
} directory;

/* n bytes at `at` (at + n <= z->size, checked by the caller) of the archive: a pointer into the
 * buffer, or a read into tmp. NULL when the file cannot be read. */
static const uint8_t *piece(const vitq_i_zip *z, size_t at, size_t n, uint8_t *tmp) {
    if (z->buf) return z->buf + at;
    return vitq_i_file_read_at(z->file, at, tmp, n) ? tmp : NULL;
}

static vitq_status read_fail(const vitq_i_zip *z, size_t at) {
    return vitq_i_fail(VITQ_ERR_IO, "%s: read error at offset %zu", z->what, at);
}

/* The end-of-central-directory record in window w, which holds the archive's last `len` bytes:
 * the last 22 bytes, or earlier when followed by a comment that reaches exactly to the end. */
static int scan_eocd(const uint8_t *w, size_t len, size_t *at) {
    size_t last = len - EOCD_SIZE, lowest = last > MAX_COMMENT ? last - MAX_COMMENT : 0;
    for (size_t p = last;; p--) {
        if (rd32(w + p) == SIG_EOCD && rd16(w + p + 20) == len - EOCD_SIZE - p) {
            *at = p;
            return 1;
        }
        if (p == lowest) return 0;
    }
}

static vitq_status find_eocd(const vitq_i_zip *z, size_t *at) {
    size_t n = z->size;
    if (n < EOCD_SIZE)
        return vitq_i_fail(VITQ_ERR_TRUNCATED, "%s: %zu bytes are too few for a zip archive (truncated)", z->what, n);
    size_t len = n - EOCD_SIZE > MAX_COMMENT ? EOCD_SIZE + MAX_COMMENT : n, found = 0;
    uint8_t last[EOCD_SIZE];
    int ok;
    if (z->buf) {
        ok = scan_eocd(z->buf + (n - len), len, &found);
    } else if (!vitq_i_file_read_at(z->file, n - EOCD_SIZE, last, EOCD_SIZE)) {
        return read_fail(z, n - EOCD_SIZE);
    } else if (rd32(last) == SIG_EOCD && rd16(last + 20) == 0) {
        ok = 1; /* no comment, as torch writes it: the record is the last 22 bytes */
        found = len - EOCD_SIZE;
    } else { /* a comment: look through the tail that can hold the record */
        uint8_t *w = vitq_i_alloc(&z->alloc, len);
        if (!w) return vitq_i_oom("zip end record search", len);
        if (!vitq_i_file_read_at(z->file, n - len, w, len)) {
            vitq_i_free(&z->alloc, w);
            return read_fail(z, n - len);
        }
        ok = scan_eocd(w, len, &found);
        vitq_i_free(&z->alloc, w);
    }
    if (ok) {
        *at = n - len + found;
        return VITQ_OK;
    }
    return vitq_i_fail(VITQ_ERR_TRUNCATED,
                       "%s: no zip end-of-central-directory record at the end of the file: the archive is "
                       "truncated",
                       z->what);
}

static vitq_status read_zip64_end(const vitq_i_zip *z, size_t eocd, directory *d) {
    const char *file = z->what;
    uint8_t tl[ZIP64_LOCATOR_SIZE], tr[ZIP64_EOCD_SIZE];
    const uint8_t *loc = piece(z, eocd - ZIP64_LOCATOR_SIZE, ZIP64_LOCATOR_SIZE, tl);
    if (!loc) return read_fail(z, eocd - ZIP64_LOCATOR_SIZE);
    uint64_t record = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) > 1)
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: split (multi-disk) zip archive", file);
    size_t limit = eocd - ZIP64_LOCATOR_SIZE;
    if (limit < ZIP64_EOCD_SIZE || record > limit - ZIP64_EOCD_SIZE)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: zip64 end record offset %llu lies outside the file", file,
                           (unsigned long long)record);
    const uint8_t *r = piece(z, (size_t)record, ZIP64_EOCD_SIZE, tr);
    if (!r) return read_fail(z, (size_t)record);
    if (rd32(r) != SIG_ZIP64_EOCD)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: no zip64 end record at offset %llu", file,
                           (unsigned long long)record);
    if (rd32(r + 16) != 0 || rd32(r + 20) != 0 || rd64(r + 24) != rd64(r + 32))
        return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: split (multi-disk) zip archive", file);
    d->count = rd64(r + 32);
    d->cd_size = rd64(r + 40);
    d->cd_offset = rd64(r + 48);
    d->cd_limit = (size_t)record;
    return VITQ_OK;
}

static vitq_status read_end(const vitq_i_zip *z, directory *d) {
    const char *file = z->what;
    size_t eocd = 0;
    vitq_status st = find_eocd(z, &eocd);
    if (st) return st;
    uint8_t tl[4], te[EOCD_SIZE];
    const uint8_t *sig = eocd >= ZIP64_LOCATOR_SIZE ? piece(z, eocd - ZIP64_LOCATOR_SIZE, 4, tl) : NULL;
    if (eocd >= ZIP64_LOCATOR_SIZE && !sig) return read_fail(z, eocd - ZIP64_LOCATOR_SIZE);
    if (sig && rd32(sig) == SIG_ZIP64_LOCATOR) {
        st = read_zip64_end(z, eocd, d);
        if (st) return st;
    } else {
        const uint8_t *e = piece(z, eocd, EOCD_SIZE, te);
        if (!e) return read_fail(z, eocd);
        if (rd16(e + 4) != 0 || rd16(e + 6) != 0 || rd16(e + 8) != rd16(e + 10))
            return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: split (multi-disk) zip archive", file);
        d->count = rd16(e + 10);
        d->cd_size = rd32(e + 12);
        d->cd_offset = rd32(e + 16);
        d->cd_limit = eocd;
    }
    if (d->cd_offset > d->cd_limit || d->cd_size > d->cd_limit - d->cd_offset)
        return vitq_i_fail(VITQ_ERR_FORMAT,
                           "%s: zip central directory [%llu, +%llu) lies outside the %zu bytes before its end "
                           "record",
                           file, (unsigned long long)d->cd_offset, (unsigned long long)d->cd_size, d->cd_limit);
    if (d->count > d->cd_size / CENTRAL_SIZE)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: zip declares %llu entries in a %llu-byte central directory",
                           file, (unsigned long long)d->count, (unsigned long long)d->cd_size);
    return VITQ_OK;
}

/* Replace the 0xFFFFFFFF (0xFFFF) markers of a central header by the zip64 extra field's values, which
 * come in the order size, compressed size, header offset, disk, each only when its marker is set. */
static int read_zip64_extra(const uint8_t *extra, size_t len, uint64_t *usize, uint64_t *csize, uint64_t *offset,
                            uint32_t *disk) {
    size_t q = 0;
    while (len - q >= 4) {
        uint32_t id = rd16(extra + q), sz = rd16(extra + q + 2);
        if (sz > len - q - 4) return 0;
        if (id == 1) {
            const uint8_t *f = extra + q + 4;
            size_t used = 0;
            uint64_t *wide[3] = {usize, csize, offset};
            for (int k = 0; k < 3; k++) {
                if (*wide[k] != 0xFFFFFFFFu) continue;
                if (sz - used < 8) return 0;
                *wide[k] = rd64(f + used);
                used += 8;
            }
            if (*disk == 0xFFFFu) {
                if (sz - used < 4) return 0;
                *disk = rd32(f + used);
            }
            return 1;
        }
        q += 4 + sz;
    }
    return 0;
}

const char *vitq_i_zip_printable(const char *s, size_t n, char *buf, size_t cap) {
    if (cap == 0) return buf;
    size_t k = 0;
    for (; k < n && k + 1 < cap; k++) buf[k] = (s[k] >= 0x20 && s[k] < 0x7f) ? s[k] : '?';
    buf[k] = '\0';
    return buf;
}

static vitq_status entry_fail(vitq_status status, const char *file, const vitq_i_zip_entry *e, const char *what,
                              unsigned long long a, unsigned long long b) {
    char name[160];
    vitq_i_zip_printable(e->name, e->name_len, name, sizeof name);
    return vitq_i_fail(status, "%s: zip entry '%s': %s (%llu, %llu)", file, name, what, a, b);
}

/* 1 when the archive's bytes [at, at + n) are s[0..n), 0 when not, -1 when the file cannot be read. */
static int bytes_equal(const vitq_i_zip *z, size_t at, const char *s, size_t n) {
    if (z->buf) return memcmp(z->buf + at, s, n) == 0;
    uint8_t chunk[256];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof chunk ? n - done : sizeof chunk;
        if (!vitq_i_file_read_at(z->file, at + done, chunk, k)) return -1;
        if (memcmp(chunk, s + done, k) != 0) return 0;
        done += k;
    }
    return 1;
}

/* Central header at c (archive offset c_at), avail bytes of directory left: fill *e (name, size,
 * data) after checking its local header. */
static vitq_status read_entry(const vitq_i_zip *z, const directory *d, const uint8_t *c, size_t c_at,
                              size_t avail, size_t *used, vitq_i_zip_entry *e) {
    const char *file = z->what;
    if (avail < CENTRAL_SIZE || rd32(c) != SIG_CENTRAL)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: zip central directory entry at offset %zu is malformed", file, c_at);
    uint32_t flags = rd16(c + 8), method = rd16(c + 10), name_len = rd16(c + 28), extra_len = rd16(c + 30),
             comment_len = rd16(c + 32), disk = rd16(c + 34);
    uint64_t csize = rd32(c + 20), usize = rd32(c + 24), offset = rd32(c + 42);
    size_t total = (size_t)CENTRAL_SIZE + name_len + extra_len + comment_len; /* < 2^18, no wrap */
    if (total > avail)
        return vitq_i_fail(VITQ_ERR_FORMAT, "%s: zip central directory entry at offset %zu runs past the directory",
                           file, c_at);
    *used = total;
    e->name = (const char *)c + CENTRAL_SIZE;
    e->name_len = name_len;
    if ((usize == 0xFFFFFFFFu || csize == 0xFFFFFFFFu || offset == 0xFFFFFFFFu || disk == 0xFFFFu) &&
        !read_zip64_extra(c + CENTRAL_SIZE + name_len, extra_len, &usize, &csize, &offset, &disk))
        return entry_fail(VITQ_ERR_FORMAT, file, e, "zip64 sizes announced but no valid zip64 extra field", usize,
                          csize);
    if (flags & 1u) return entry_fail(VITQ_ERR_UNSUPPORTED, file, e, "is encrypted (flags, method)", flags, method);
    if (disk != 0) return vitq_i_fail(VITQ_ERR_UNSUPPORTED, "%s: split (multi-disk) zip archive", file);
    if (method == 0 && csize != usize)
        return entry_fail(VITQ_ERR_FORMAT, file, e, "stored entry with different compressed and real sizes", csize,
                          usize);
    e->method = method;
    /* The local header and the data must lie before the central directory. */
    if (offset > d->cd_offset || d->cd_offset - offset < LOCAL_SIZE)
        return entry_fail(VITQ_ERR_FORMAT, file, e, "local header offset outside the archive (offset, directory at)",
                          offset, d->cd_offset);
    e->header_offset = (size_t)offset;
    uint8_t tmp[LOCAL_SIZE];
    const uint8_t *l = piece(z, (size_t)offset, LOCAL_SIZE, tmp);
    if (!l) return read_fail(z, (size_t)offset);
    if (rd32(l) != SIG_LOCAL)
        return entry_fail(VITQ_ERR_FORMAT, file, e, "no local header at its offset (offset, signature)", offset,
                          rd32(l));
    uint32_t local_name = rd16(l + 26), local_extra = rd16(l + 28);
    /* The name's bytes lie inside the archive: offset + 30 <= the directory, which holds the name. */
    int same = local_name == name_len && rd16(l + 8) == method
                   ? bytes_equal(z, (size_t)offset + LOCAL_SIZE, e->name, name_len)
                   : 0;
    if (same < 0) return read_fail(z, (size_t)offset + LOCAL_SIZE);
    if (!same)
        return entry_fail(VITQ_ERR_FORMAT, file, e, "local header disagrees with the central directory (offset, "
                          "local name length)", offset, local_name);
    uint64_t start = offset + LOCAL_SIZE + local_name + local_extra; /* offset < 2^64 - 2^18: no wrap */
    if (start > d->cd_offset || csize > d->cd_offset - start)
        return entry_fail(VITQ_ERR_FORMAT, file, e,
                          "declared size runs past the start of the central directory (size, data offset)", csize,
                          start);
    e->offset = (size_t)start;
    e->data = z->buf ? z->buf + start : NULL;
    e->size = (size_t)csize;
    return VITQ_OK;
}

static int name_cmp(const vitq_i_zip_entry *a, const char *name, size_t len) {
    size_t m = a->name_len < len ? a->name_len : len;
    int c = memcmp(a->name, name, m);
    if (c) return c;
    return a->name_len < len ? -1 : a->name_len > len;
}

static int by_name_cmp(const void *x, const void *y) {
    const vitq_i_zip_entry *a = *(const vitq_i_zip_entry *const *)x, *b = *(const vitq_i_zip_entry *const *)y;
    return name_cmp(a, b->name, b->name_len);
}

static int by_offset_cmp(const void *x, const void *y) {
    const vitq_i_zip_entry *a = *(const vitq_i_zip_entry *const *)x, *b = *(const vitq_i_zip_entry *const *)y;
    return a->header_offset < b->header_offset ? -1 : a->header_offset > b->header_offset;
}

/* Unique names and entries that do not overlap (a crafted archive could otherwise give two readers
 * two different answers). Sorts by_name by offset for the overlap test, then by name. */
static vitq_status check_entries(vitq_i_zip *z) {
    const char *file = z->what;
    char na[160], nb[160];
    for (size_t i = 0; i < z->count; i++) z->by_name[i] = &z->entries[i];
    qsort(z->by_name, z->count, sizeof *z->by_name, by_offset_cmp);
    for (size_t i = 1; i < z->count; i++) {
        const vitq_i_zip_entry *a = z->by_name[i - 1], *b = z->by_name[i];
        if (a->offset + a->size > b->header_offset)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: zip entries '%s' and '%s' overlap", file,
                               vitq_i_zip_printable(a->name, a->name_len, na, sizeof na),
                               vitq_i_zip_printable(b->name, b->name_len, nb, sizeof nb));
    }
    qsort(z->by_name, z->count, sizeof *z->by_name, by_name_cmp);
    for (size_t i = 1; i < z->count; i++) {
        const vitq_i_zip_entry *a = z->by_name[i - 1], *b = z->by_name[i];
        if (name_cmp(a, b->name, b->name_len) == 0)
            return vitq_i_fail(VITQ_ERR_FORMAT, "%s: two zip entries are named '%s'", file,
                               vitq_i_zip_printable(a->name, a->name_len, na, sizeof na));
    }
    return VITQ_OK;
}

/* Read the directory of z (buf or file set, size, what): the entries, checked. */
static vitq_status read_directory(vitq_i_zip *z) {
    directory d = {0, 0, 0, 0};
    vitq_status st = read_end(z, &d);
    if (st) return st;
    z->count = (size_t)d.count; /* <= cd_size / 46 < SIZE_MAX */
    z->entries = vitq_i_calloc(&z->alloc, z->count, sizeof *z->entries);
    z->by_name = vitq_i_alloc_array(&z->alloc, z->count, sizeof *z->by_name);
    if (!z->entries || !z->by_name)
        return vitq_i_oom("zip directory", z->count * (sizeof *z->entries + sizeof *z->by_name));
    const uint8_t *c = z->buf ? z->buf + d.cd_offset : NULL;
    if (!z->buf) { /* one read; the entries' names point into this copy */
        size_t bytes = (size_t)d.cd_size; /* <= the file's size */
        z->directory = vitq_i_alloc(&z->alloc, bytes ? bytes : 1);
        if (!z->directory) return vitq_i_oom("zip central directory", bytes);
        if (bytes && !vitq_i_file_read_at(z->file, d.cd_offset, z->directory, bytes))
            return read_fail(z, (size_t)d.cd_offset);
        c = z->directory;
    }
    size_t left = (size_t)d.cd_size, at = (size_t)d.cd_offset;
    for (size_t i = 0; i < z->count && !st; i++) {
        size_t used = 0;
        st = read_entry(z, &d, c, at, left, &used, &z->entries[i]);
        c += used;
        at += used;
        left -= used;
    }
    return st ? st : check_entries(z);
}

static vitq_status open_source(const vitq_allocator *a, const uint8_t *buf, vitq_i_file *f, size_t n,
                               const char *file, vitq_i_zip *out) {
    memset(out, 0, sizeof *out);
    vitq_i_zip z;
    memset(&z, 0, sizeof z);
    vitq_status st = vitq_i_allocator_resolve(a, &z.alloc);
    if (st) return st;
    z.buf = buf;
    z.file = f;
    z.size = n;
    z.what = file;
    st = read_directory(&z);
    if (st) {
        vitq_i_zip_close(&z);
        return st;
    }
    *out = z;
    return VITQ_OK;
}

vitq_status vitq_i_zip_open(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *file,
                            vitq_i_zip *out) {
    if (!file) file = "zip";
    if (!out || (!buf && n))
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: zip reader given a NULL argument", file);
    static const uint8_t none[1] = {0};
    return open_source(a, buf ? buf : none, NULL, n, file, out); /* buf non-NULL marks memory */
}

vitq_status vitq_i_zip_open_file(const vitq_allocator *a, vitq_i_file *f, uint64_t size, const char *file,
                                 vitq_i_zip *out) {
    if (!file) file = "zip";
    if (!out || !f) return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: zip reader given a NULL argument", file);
    if (size > SIZE_MAX) {
        memset(out, 0, sizeof *out);
        return vitq_i_fail(VITQ_ERR_IO, "%s: %llu bytes do not fit this machine's memory", file,
                           (unsigned long long)size);
    }
    return open_source(a, NULL, f, (size_t)size, file, out);
}

void vitq_i_zip_close(vitq_i_zip *z) {
    if (!z || !z->alloc.free) return;
    vitq_i_free(&z->alloc, z->entries);
    vitq_i_free(&z->alloc, z->by_name);
    vitq_i_free(&z->alloc, z->directory);
    memset(z, 0, sizeof *z);
}

vitq_status vitq_i_zip_read(const vitq_i_zip *z, const vitq_i_zip_entry *e, size_t at, void *dst, size_t n) {
    if (!z || !e || (!dst && n) || at > e->size || n > e->size - at)
        return vitq_i_fail(VITQ_ERR_INVALID_ARGUMENT, "%s: zip entry read outside the entry", z ? z->what : "zip");
    if (!n) return VITQ_OK;
    if (e->data) {
        memcpy(dst, e->data + at, n);
        return VITQ_OK;
    }
    if (!z->file || !vitq_i_file_read_at(z->file, e->offset + at, dst, n)) {
        char name[160];
        return vitq_i_fail(VITQ_ERR_IO, "%s: zip entry '%s': cannot read %zu bytes at offset %zu", z->what,
                           vitq_i_zip_printable(e->name, e->name_len, name, sizeof name), n, e->offset + at);
    }
    return VITQ_OK;
}

const vitq_i_zip_entry *vitq_i_zip_find(const vitq_i_zip *z, const char *name, size_t len) {
    if (!z || !name) return NULL;
    size_t lo = 0, hi = z->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(z->by_name[mid], name, len);
        if (c == 0) return z->by_name[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

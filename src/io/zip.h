/* Reader of the zip archives torch.save writes (PyTorch >= 1.6): a central directory listing stored
 * (uncompressed) entries. The archive is either the caller's buffer (every entry's bytes are then a
 * slice of it: nothing is decompressed or copied) or a file read piece by piece (core/core.h
 * vitq_i_file: only the end records, the central directory and each local header are read at open;
 * an entry's bytes are read when asked for, vitq_i_zip_read). Both give the same answers.
 *
 * What is checked, each failure naming the file and, where there is one, the entry:
 *  - the end-of-central-directory record is found at the end of the archive (its comment reaching
 *    exactly to the end); none -> VITQ_ERR_TRUNCATED (a zip cut short loses it first);
 *  - zip64 records are used when the locator is present (archives over 4 GB or 65535 entries);
 *    split archives -> VITQ_ERR_UNSUPPORTED;
 *  - the central directory lies inside the archive and holds the number of entries it declares;
 *  - every entry: a local header at its offset with the same name and method, data starting after
 *    that header and ending before the central directory; entries do not overlap; names are unique;
 *    a stored entry's two sizes agree; encryption -> VITQ_ERR_UNSUPPORTED. Compressed entries are
 *    listed (method != 0) but never decompressed: their readers refuse them (TorchScript archives
 *    deflate their code/ entries, torch.save stores everything);
 *  - every offset and size is combined with the checked arithmetic of core.h, never wrapping.
 * Anything else malformed is VITQ_ERR_FORMAT; a file that cannot be read is VITQ_ERR_IO. CRCs are not
 * verified (torch may write none). */
#ifndef VITQ_IO_ZIP_H
#define VITQ_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"
#include "vitq.h"

typedef struct vitq_i_zip_entry {
    const char *name;    /* into the central directory, NOT NUL-terminated: use name_len */
    size_t name_len;
    const uint8_t *data; /* the entry's bytes as they lie in the caller's buffer; NULL for a file */
    size_t offset;       /* where they start in the archive */
    size_t size;         /* their count (for method 0, the content's size) */
    unsigned method;     /* 0: stored, so data[0..size) is the content; else compressed (8: deflate) */
    size_t header_offset; /* of the local header, for messages */
} vitq_i_zip_entry;

typedef struct vitq_i_zip {
    vitq_allocator alloc;
    vitq_i_zip_entry *entries; /* in central-directory order */
    size_t count;
    vitq_i_zip_entry **by_name; /* the entries sorted by name, for vitq_i_zip_find */
    const uint8_t *buf;         /* the archive in the caller's memory, or NULL when read from `file` */
    vitq_i_file *file;          /* not owned: the caller closes it after vitq_i_zip_close */
    size_t size;                /* of the archive */
    uint8_t *directory;         /* a file's central directory, read once (entry names point into it) */
    const char *what;           /* the name given to open, for messages (the caller's string) */
} vitq_i_zip;

/* 1 when buf starts with a zip local-file-header signature ("PK\3\4"). */
int vitq_i_zip_detect(const uint8_t *buf, size_t n);

/* Read the directory of the zip archive buf[0..n); `file` names it in messages (may be NULL). The
 * buffer must outlive *out. On failure *out is zeroed, so vitq_i_zip_close on it is harmless. */
vitq_status vitq_i_zip_open(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *file,
                            vitq_i_zip *out);
/* The same for an archive read from the open file f of `size` bytes (size <= SIZE_MAX); f must stay
 * open while *out is used. */
vitq_status vitq_i_zip_open_file(const vitq_allocator *a, vitq_i_file *f, uint64_t size, const char *file,
                                 vitq_i_zip *out);
void vitq_i_zip_close(vitq_i_zip *z);

/* Bytes [at, at + n) of entry e's stored bytes into dst (at + n <= e->size, else
 * VITQ_ERR_INVALID_ARGUMENT): a copy from the buffer, or a read from the file (VITQ_ERR_IO naming the
 * file and entry when it fails). */
vitq_status vitq_i_zip_read(const vitq_i_zip *z, const vitq_i_zip_entry *e, size_t at, void *dst, size_t n);

/* The entry called name[0..len), or NULL. O(log count). */
const vitq_i_zip_entry *vitq_i_zip_find(const vitq_i_zip *z, const char *name, size_t len);

/* Bytes s[0..n) made fit for a message (names read from archives and pickles): at most cap - 1
 * characters, non-printable ones as '?'. Returns buf. */
const char *vitq_i_zip_printable(const char *s, size_t n, char *buf, size_t cap);

#endif

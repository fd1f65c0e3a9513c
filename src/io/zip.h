/* Reader of the zip archives torch.save writes (PyTorch >= 1.6): a central directory listing stored
 * (uncompressed) entries, so every entry's bytes are a slice of the caller's buffer and nothing is
 * decompressed or copied.
 *
 * What is checked, each failure naming the file and, where there is one, the entry:
 *  - the end-of-central-directory record is found at the end of the buffer (its comment reaching
 *    exactly to the end); none -> VITQ_ERR_TRUNCATED (a zip cut short loses it first);
 *  - zip64 records are used when the locator is present (archives over 4 GB or 65535 entries);
 *    split archives -> VITQ_ERR_UNSUPPORTED;
 *  - the central directory lies inside the buffer and holds the number of entries it declares;
 *  - every entry: a local header at its offset with the same name and method, data starting after
 *    that header and ending before the central directory; entries do not overlap; names are unique;
 *    a stored entry's two sizes agree; encryption -> VITQ_ERR_UNSUPPORTED. Compressed entries are
 *    listed (method != 0) but never decompressed: their readers refuse them (TorchScript archives
 *    deflate their code/ entries, torch.save stores everything);
 *  - every offset and size is combined with the checked arithmetic of core.h, never wrapping.
 * Anything else malformed is VITQ_ERR_FORMAT. CRCs are not verified (torch may write none). */
#ifndef VITQ_IO_ZIP_H
#define VITQ_IO_ZIP_H

#include <stddef.h>
#include <stdint.h>

#include "vitq.h"

typedef struct vitq_i_zip_entry {
    const char *name;    /* into the caller's buffer, NOT NUL-terminated: use name_len */
    size_t name_len;
    const uint8_t *data; /* the entry's bytes as they lie in the caller's buffer */
    size_t size;         /* their count (for method 0, the content's size) */
    unsigned method;     /* 0: stored, so data[0..size) is the content; else compressed (8: deflate) */
    size_t header_offset; /* of the local header, for messages */
} vitq_i_zip_entry;

typedef struct vitq_i_zip {
    vitq_allocator alloc;
    vitq_i_zip_entry *entries; /* in central-directory order */
    size_t count;
    vitq_i_zip_entry **by_name; /* the entries sorted by name, for vitq_i_zip_find */
} vitq_i_zip;

/* 1 when buf starts with a zip local-file-header signature ("PK\3\4"). */
int vitq_i_zip_detect(const uint8_t *buf, size_t n);

/* Read the directory of the zip archive buf[0..n); `file` names it in messages (may be NULL). The
 * buffer must outlive *out. On failure *out is zeroed, so vitq_i_zip_close on it is harmless. */
vitq_status vitq_i_zip_open(const vitq_allocator *a, const uint8_t *buf, size_t n, const char *file,
                            vitq_i_zip *out);
void vitq_i_zip_close(vitq_i_zip *z);

/* The entry called name[0..len), or NULL. O(log count). */
const vitq_i_zip_entry *vitq_i_zip_find(const vitq_i_zip *z, const char *name, size_t len);

/* Bytes s[0..n) made fit for a message (names read from archives and pickles): at most cap - 1
 * characters, non-printable ones as '?'. Returns buf. */
const char *vitq_i_zip_printable(const char *s, size_t n, char *buf, size_t cap);

#endif

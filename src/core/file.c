/* Whole-file reading. The only place the library touches the file system, so a firmware build that
 * loads from memory never calls it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"

vitq_status vitq_i_read_file(const vitq_allocator *a, const char *path, uint8_t **data, size_t *size) {
    *data = NULL;
    *size = 0;
    if (vitq_i_path_is_dir(path)) return vitq_i_fail(VITQ_ERR_IO, "%s: is a directory", path);
    FILE *f = fopen(path, "rb");
    if (!f) return vitq_i_fail(VITQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    vitq_status st = VITQ_OK;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = vitq_i_fail(VITQ_ERR_IO, "%s: cannot determine the file size", path);
    } else {
        uint8_t *buf = vitq_i_alloc(a, (size_t)len);
        if (!buf) {
            st = vitq_i_oom(path, (size_t)len);
        } else if (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            vitq_i_free(a, buf);
            st = vitq_i_fail(VITQ_ERR_IO, "%s: read error", path);
        } else {
            *data = buf;
            *size = (size_t)len;
        }
    }
    fclose(f);
    return st;
}

int vitq_i_path_is_dir(const char *path) {
    struct stat s;
    return stat(path, &s) == 0 && S_ISDIR(s.st_mode);
}

int vitq_i_path_exists(const char *path) {
    struct stat s;
    return stat(path, &s) == 0;
}

/* Reading and writing files: whole, by their first bytes, or piece by piece at offsets. The only place
 * the library touches the file system, so a firmware build that loads from memory never calls it. */
/* realpath is X/Open in glibc's eyes, beyond the _POSIX_C_SOURCE the build sets. */
#ifndef _XOPEN_SOURCE
#define _XOPEN_SOURCE 700
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* The temporary name: beside the target (same file system, so rename is atomic), unique per
 * process and call, created with O_EXCL so that it never replaces anything. */
static int open_temporary(const char *path, char *tmp, size_t cap) {
    static unsigned long counter; /* uniqueness within a process; O_EXCL settles races */
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned long n = counter++;
        if (snprintf(tmp, cap, "%s.vitq-tmp-%ld-%lu", path, (long)getpid(), n) >= (int)cap) return -1;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    return -1;
}

/* Make the rename itself durable. Best effort: some file systems refuse fsync on a folder. */
static void sync_parent(const char *path) {
    char dir[4096 + 1];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        dir[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return 0;
        p += w;
        n -= (size_t)w;
    }
    return 1;
}

vitq_status vitq_i_write_file_atomic_parts(const char *path, const void *const *parts, const size_t *sizes,
                                           int count) {
    struct stat s;
    int exists = stat(path, &s) == 0;
    if (exists && !S_ISREG(s.st_mode))
        return vitq_i_fail(VITQ_ERR_IO, "%s: exists and is not a regular file; refusing to replace it", path);
    if (strlen(path) > 4096) return vitq_i_fail(VITQ_ERR_IO, "%s: path too long", path);
    /* A symbolic link keeps pointing where it did: the file it names is the one replaced. */
    char target[4096 + 1], tmp[4096 + 64];
    struct stat l;
    const char *dest = path;
    if (exists && lstat(path, &l) == 0 && S_ISLNK(l.st_mode)) {
        if (!realpath(path, target))
            return vitq_i_fail(VITQ_ERR_IO, "%s: cannot resolve the link: %s", path, strerror(errno));
        dest = target;
    }
    int fd = open_temporary(dest, tmp, sizeof tmp);
    if (fd < 0) return vitq_i_fail(VITQ_ERR_IO, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
    int ok = 1, err = 0;
    /* A replaced file keeps its permissions (a new one gets 0666 less the umask, as fopen gives). */
    if (exists && fchmod(fd, s.st_mode & 07777) != 0) ok = 0, err = errno;
    for (int i = 0; ok && i < count; i++)
        if (sizes[i] && !write_all(fd, parts[i], sizes[i])) ok = 0, err = errno;
    /* fsync before rename: otherwise a crash can leave the new name pointing at unwritten blocks. */
    if (ok && fsync(fd) != 0 && errno != EINVAL && errno != EROFS) ok = 0, err = errno;
    if (close(fd) != 0 && ok) ok = 0, err = errno;
    if (ok && rename(tmp, dest) != 0) ok = 0, err = errno;
    if (!ok) {
        unlink(tmp);
        return vitq_i_fail(VITQ_ERR_IO, "%s: write failed: %s (the previous file, if any, is unchanged)", path,
                           strerror(err ? err : EIO));
    }
    sync_parent(dest);
    return VITQ_OK;
}

vitq_status vitq_i_write_file_atomic(const char *path, const void *data, size_t n) {
    const void *parts[1] = {data};
    size_t sizes[1] = {n};
    return vitq_i_write_file_atomic_parts(path, parts, sizes, 1);
}

int vitq_i_same_file(const char *a, const char *b) {
    struct stat sa, sb;
    if (stat(a, &sa) != 0 || stat(b, &sb) != 0) return 0;
    return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

vitq_status vitq_i_read_file_head(const char *path, void *buf, size_t cap, size_t *got) {
    *got = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return vitq_i_fail(VITQ_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    *got = fread(buf, 1, cap, f);
    int bad = ferror(f);
    fclose(f);
    return bad ? vitq_i_fail(VITQ_ERR_IO, "%s: read error", path) : VITQ_OK;
}

/* The handle is the stdio stream itself: nothing to allocate, so opening cannot run out of memory. */
vitq_status vitq_i_file_open(const char *path, const char *name, vitq_i_file **out, uint64_t *size) {
    *out = NULL;
    *size = 0;
    if (vitq_i_path_is_dir(path)) return vitq_i_fail(VITQ_ERR_IO, "%s: is a directory", name);
    FILE *f = fopen(path, "rb");
    if (!f) return vitq_i_fail(VITQ_ERR_IO, "%s: cannot open: %s", name, strerror(errno));
    off_t end = fseeko(f, 0, SEEK_END) == 0 ? ftello(f) : -1;
    if (end < 0) {
        fclose(f);
        return vitq_i_fail(VITQ_ERR_IO, "%s: cannot determine the file size", name);
    }
    *size = (uint64_t)end;
    *out = (vitq_i_file *)f;
    return VITQ_OK;
}

int vitq_i_file_read_at(vitq_i_file *f, uint64_t at, void *dst, size_t n) {
    FILE *fp = (FILE *)f;
    if (!fp || at > (uint64_t)INT64_MAX || fseeko(fp, (off_t)at, SEEK_SET) != 0) return 0;
    return fread(dst, 1, n, fp) == n;
}

void vitq_i_file_close(vitq_i_file *f) {
    if (f) fclose((FILE *)f);
}

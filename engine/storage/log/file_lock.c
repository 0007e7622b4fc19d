/*
 * file_lock.c — one owner per store file: open it (creating it only where nothing exists) and
 * hold an exclusive flock on it; or, for a read-only open, open it O_RDONLY (never creating it)
 * and hold a shared flock, which read-only opens share and a writer's exclusive one excludes.
 *
 * flock, not fcntl: fcntl locks belong to the process and vanish when any descriptor of the file
 * is closed, and they do not conflict within one process. flock locks belong to the open file
 * description, so even a second open in the same process is refused (the store's registry shares
 * one instance per path before that happens).
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/io.h"
#include "storage/log/log_backend.h"
#include "storage/log/store_files.h"

/* Take the store's flock without waiting: exclusive for a read-write open, shared for a
 * read-only one. LOCKED while another open description holds a lock that conflicts: a writer's
 * (either), or a reader's (for an exclusive lock). */
static feox_err lock_store(int fd, const char *path, bool shared)
{
    if (flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) == 0)
        return FEOX_OK;
    int e = errno;
    if (e == EWOULDBLOCK && shared)
        return feox_fail(FEOX_ERR_LOCKED,
                         "store file %s is locked by another process that has it open for "
                         "writing (or by such an open in this process)",
                         path);
    if (e == EWOULDBLOCK)
        return feox_fail(FEOX_ERR_LOCKED,
                         "store file %s is locked by another process (or another open "
                         "of it in this process)",
                         path);
    return feox_fail(FEOX_ERR_IO, "cannot lock store file %s: %s", path, strerror(e));
}

/* True if fd and path name the same inode. */
static bool same_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* Open the existing file at path, verified as a feox store before any other descriptor exists:
 * for writing (a second, read-write descriptor on the same inode), or with read_only the
 * verified read-only one itself; then locked. *retry: path was renamed or replaced meanwhile. */
static feox_err open_existing_locked(const char *path, bool read_only, int *fd_out, bool *retry)
{
    int ro, fd;
    feox_err err = feox_store_file_open_existing(path, O_RDONLY, &ro);
    if (err)
        return err;
    feox_log_header h;
    err = feox_store_file_read_header(ro, path, &h);
    if (!err && read_only) {
        fd = ro;
        ro = -1;
    } else if (!err) {
        err = feox_store_file_open_existing(path, O_RDWR, &fd);
    }
    if (err) {
        feox_store_file_close(ro);
        return err;
    }
    if (ro >= 0) {
        struct stat a, b;
        bool same = fstat(ro, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev &&
                    a.st_ino == b.st_ino;
        feox_store_file_close(ro);
        if (!same) {
            feox_store_file_close(fd);
            *retry = true;
            return FEOX_OK;
        }
    }
    err = lock_store(fd, path, read_only);
    if (err) {
        feox_store_file_close(fd);
        return err;
    }
    /* A compaction in the owning process renames a new file over path and then closes the old
     * one; a process that opened the old inode can win its lock afterwards. */
    if (!same_file(fd, path)) {
        feox_store_file_close(fd);
        *retry = true;
        return FEOX_OK;
    }
    *fd_out = fd;
    return FEOX_OK;
}

feox_err feox_log_open_locked(const char *path, const uint8_t *new_header, bool read_only,
                              int *fd_out, bool *created)
{
    *created = false;
    if (read_only)
        new_header = NULL; /* a read-only open never creates */
    for (int attempt = 0; attempt < 16; attempt++) {
        bool retry = false;
        feox_err err = open_existing_locked(path, read_only, fd_out, &retry);
        if (err == FEOX_ERR_NOT_FOUND && new_header) {
            bool existed;
            err = feox_store_file_create(path, new_header, fd_out, &existed);
            if (err == FEOX_OK)
                *created = true;
            else if (existed)
                retry = true; /* something appeared meanwhile: look at what it is */
        }
        if (!retry)
            return err;
        feox_clear_error_detail();
    }
    return feox_fail(FEOX_ERR_LOCKED, "store file %s keeps being replaced while opening", path);
}

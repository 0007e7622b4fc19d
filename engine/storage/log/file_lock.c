/*
 * file_lock.c — one owner per store file: open it (creating it only where nothing exists) and
 * hold an exclusive flock on it.
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

/* Open the existing file at path for writing, verified as a feox store before the read-write
 * descriptor exists, and locked. *retry: path was renamed or replaced meanwhile. */
static feox_err open_existing_locked(const char *path, int *fd_out, bool *retry)
{
    int ro, fd;
    feox_err err = feox_store_file_open_existing(path, O_RDONLY, &ro);
    if (err)
        return err;
    feox_log_header h;
    err = feox_store_file_read_header(ro, path, &h);
    if (!err)
        err = feox_store_file_open_existing(path, O_RDWR, &fd);
    if (err) {
        feox_store_file_close(ro);
        return err;
    }
    struct stat a, b;
    bool same =
        fstat(ro, &a) == 0 && fstat(fd, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    feox_store_file_close(ro);
    if (!same) {
        feox_store_file_close(fd);
        *retry = true;
        return FEOX_OK;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        feox_store_file_close(fd);
        if (e == EWOULDBLOCK)
            return feox_fail(FEOX_ERR_LOCKED,
                             "store file %s is locked by another process (or another open "
                             "of it in this process)",
                             path);
        return feox_fail(FEOX_ERR_IO, "cannot lock store file %s: %s", path, strerror(e));
    }
    /* A compaction in the owning process renames a new file over path and then closes the old
     * one; a process that opened the old inode can win its lock afterwards. */
    struct stat by_path;
    if (fstat(fd, &b) != 0 || stat(path, &by_path) != 0 || b.st_dev != by_path.st_dev ||
        b.st_ino != by_path.st_ino) {
        feox_store_file_close(fd);
        *retry = true;
        return FEOX_OK;
    }
    *fd_out = fd;
    return FEOX_OK;
}

feox_err feox_log_open_locked(const char *path, const uint8_t *new_header, int *fd_out,
                              bool *created)
{
    *created = false;
    for (int attempt = 0; attempt < 16; attempt++) {
        bool retry = false;
        feox_err err = open_existing_locked(path, fd_out, &retry);
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

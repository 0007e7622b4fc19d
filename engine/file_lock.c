/*
 * file_lock.c — one owner per store file: open it and hold an exclusive flock on it.
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

#include "error.h"
#include "io.h"
#include "log_backend.h"

feox_err feox_log_open_locked(const char *path, int *fd_out)
{
    /* A compaction in the owning process renames a new file over path and then closes the old
     * one; a process that opened the old inode can win its lock afterwards. Checking that the
     * locked inode is still the one named path, and retrying if not, closes that window. */
    for (int attempt = 0; attempt < 16; attempt++) {
        int fd = feox_io_open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return feox_fail(errno == ENOSPC ? FEOX_ERR_DISK_FULL : FEOX_ERR_IO,
                             "cannot open store file %s: %s", path, strerror(errno));
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int err = errno;
            close(fd);
            if (err == EWOULDBLOCK)
                return feox_fail(FEOX_ERR_LOCKED,
                                 "store file %s is locked by another process (or another open "
                                 "of it in this process)",
                                 path);
            return feox_fail(FEOX_ERR_IO, "cannot lock store file %s: %s", path, strerror(err));
        }
        struct stat by_fd, by_path;
        if (fstat(fd, &by_fd) == 0 && stat(path, &by_path) == 0 && by_fd.st_dev == by_path.st_dev &&
            by_fd.st_ino == by_path.st_ino) {
            *fd_out = fd;
            return FEOX_OK;
        }
        close(fd); /* renamed or unlinked under us: open the file path names now */
    }
    return feox_fail(FEOX_ERR_LOCKED, "store file %s keeps being replaced while opening", path);
}

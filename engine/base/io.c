/*
 * io.c — the replaceable system-call table and the fault injector (contract in io.h).
 */
#include "base/io.h"

#include <stdatomic.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int real_open(const char *path, int flags, mode_t mode)
{
    return open(path, flags, mode);
}

/* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH on older kernels; the /proc/self/fd link
 * is the unprivileged way to name an O_TMPFILE file. Both fail with EEXIST if path exists. */
static int real_link_tmpfile(int fd, const char *path)
{
    if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != EPERM && errno != ENOENT && errno != EINVAL && errno != EACCES)
        return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1u << 0)
#endif

/* renameat2(RENAME_NOREPLACE); where the file system lacks it, link + unlink (never replaces
 * either: link fails with EEXIST). */
static int real_rename_noreplace(const char *from, const char *to)
{
    if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno != EINVAL && errno != ENOSYS)
        return -1;
    if (link(from, to) != 0)
        return -1;
    if (unlink(from) != 0) {
        int saved = errno;
        unlink(to);
        errno = saved;
        return -1;
    }
    return 0;
}

static const feox_io_methods real_methods = {
    .open = real_open,
    .pread = pread,
    .pwrite = pwrite,
    .fsync = fsync,
    .ftruncate = ftruncate,
    .rename = rename,
    .link_tmpfile = real_link_tmpfile,
    .unlink = unlink,
    .rename_noreplace = real_rename_noreplace,
};

static const feox_io_methods *methods = &real_methods;

/* One armed fault per op. fail_at is the absolute call number (calls[op] after increment) at which
 * the fault fires; 0 = disarmed. Every access is seq_cst (as before the orders were spelled out):
 * the store of fail_at publishes the plain fields, and arming and counting are two variables whose
 * one total order keeps "the nth call from now" exact; the cost is one locked add per I/O call. */
typedef struct injected_fault {
    _Atomic uint64_t fail_at;
    int err;
    bool short_io;
    bool persistent;
} injected_fault;

static injected_fault faults[FEOX_IO_OP_COUNT];
static _Atomic uint64_t calls[FEOX_IO_OP_COUNT];

void feox_io_set_methods(const feox_io_methods *m)
{
    methods = m ? m : &real_methods;
}

void feox_io_inject(feox_io_op op, uint64_t nth, int err, bool short_io, bool persistent)
{
    if (op >= FEOX_IO_OP_COUNT || nth == 0)
        return;
    faults[op].err = err;
    faults[op].short_io = short_io;
    faults[op].persistent = persistent;
    atomic_store_explicit(&faults[op].fail_at,
                          atomic_load_explicit(&calls[op], memory_order_seq_cst) + nth,
                          memory_order_seq_cst);
}

void feox_io_inject_reset(void)
{
    for (int op = 0; op < FEOX_IO_OP_COUNT; op++)
        atomic_store_explicit(&faults[op].fail_at, 0, memory_order_seq_cst);
}

uint64_t feox_io_calls(feox_io_op op)
{
    return op < FEOX_IO_OP_COUNT ? atomic_load_explicit(&calls[op], memory_order_seq_cst) : 0;
}

/* Count the call; return the fault to apply, or NULL. */
static const injected_fault *take_fault(feox_io_op op)
{
    uint64_t n = atomic_fetch_add_explicit(&calls[op], 1, memory_order_seq_cst) + 1;
    uint64_t at = atomic_load_explicit(&faults[op].fail_at, memory_order_seq_cst);
    if (at == 0 || n < at)
        return NULL;
    if (n > at && !faults[op].persistent)
        return NULL;
    return &faults[op];
}

int feox_io_open(const char *path, int flags, mode_t mode)
{
    const injected_fault *f = take_fault(FEOX_IO_OPEN);
    if (f) {
        errno = f->err;
        return -1;
    }
    return methods->open(path, flags, mode);
}

ssize_t feox_io_pread(int fd, void *buf, size_t len, off_t offset)
{
    const injected_fault *f = take_fault(FEOX_IO_PREAD);
    if (f && f->short_io && len > 1)
        return methods->pread(fd, buf, len / 2, offset);
    if (f && !f->short_io) {
        errno = f->err;
        return -1;
    }
    return methods->pread(fd, buf, len, offset);
}

ssize_t feox_io_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
    const injected_fault *f = take_fault(FEOX_IO_PWRITE);
    if (f && f->short_io && len > 1)
        return methods->pwrite(fd, buf, len / 2, offset);
    if (f && !f->short_io) {
        errno = f->err;
        return -1;
    }
    return methods->pwrite(fd, buf, len, offset);
}

int feox_io_fsync(int fd)
{
    const injected_fault *f = take_fault(FEOX_IO_FSYNC);
    if (f) {
        errno = f->err;
        return -1;
    }
    return methods->fsync(fd);
}

int feox_io_ftruncate(int fd, off_t len)
{
    const injected_fault *f = take_fault(FEOX_IO_FTRUNCATE);
    if (f) {
        errno = f->err;
        return -1;
    }
    return methods->ftruncate(fd, len);
}

int feox_io_rename(const char *from, const char *to)
{
    const injected_fault *f = take_fault(FEOX_IO_RENAME);
    if (f) {
        errno = f->err;
        return -1;
    }
    return methods->rename(from, to);
}

int feox_io_link_tmpfile(int fd, const char *path)
{
    const injected_fault *f = take_fault(FEOX_IO_LINK_TMPFILE);
    if (f) {
        errno = f->err;
        return -1;
    }
    return (methods->link_tmpfile ? methods->link_tmpfile : real_link_tmpfile)(fd, path);
}

int feox_io_unlink(const char *path)
{
    const injected_fault *f = take_fault(FEOX_IO_UNLINK);
    if (f) {
        errno = f->err;
        return -1;
    }
    return (methods->unlink ? methods->unlink : unlink)(path);
}

int feox_io_rename_noreplace(const char *from, const char *to)
{
    const injected_fault *f = take_fault(FEOX_IO_RENAME_NOREPLACE);
    if (f) {
        errno = f->err;
        return -1;
    }
    return (methods->rename_noreplace ? methods->rename_noreplace : real_rename_noreplace)(from,
                                                                                           to);
}

int feox_io_fsync_parent_dir(const char *path)
{
    char copy[4096];
    if (strlen(path) >= sizeof copy) {
        errno = ENAMETOOLONG;
        return -1;
    }
    strcpy(copy, path);
    int dir = feox_io_open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
    if (dir < 0)
        return -1;
    int rc = feox_io_fsync(dir);
    int saved = errno;
    close(dir);
    errno = saved;
    return rc;
}

int feox_io_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = feox_io_pwrite(fd, p, len, (off_t)offset);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) { /* no progress and no errno: treat as a device that is full */
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

int feox_io_pread_all(int fd, void *buf, size_t len, uint64_t offset, size_t *done)
{
    uint8_t *p = buf;
    size_t total = 0;
    while (total < len) {
        ssize_t n = feox_io_pread(fd, p + total, len - total, (off_t)(offset + total));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *done = total;
            return -1;
        }
        if (n == 0)
            break;
        total += (size_t)n;
    }
    *done = total;
    if (total < len) {
        errno = 0;
        return -1;
    }
    return 0;
}

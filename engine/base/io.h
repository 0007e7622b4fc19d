/*
 * io.h — the persistence layer's only door to the file system: open, pread, pwrite, fsync,
 * ftruncate, rename, naming an unnamed (O_TMPFILE) file, unlink, a rename that never replaces
 * and a directory fsync, called through a table of function pointers.
 *
 * Why a table: tests replace or wrap the calls to inject faults (ENOSPC, EIO, short writes,
 * fsync EIO) deterministically, the way SQLite's VFS is used by its I/O error tests. The table
 * is process-global; swapping it or arming a fault while stores are open is for tests only.
 *
 * Fault injection (tests only; compiled in always because it costs one atomic load per call):
 * feox_io_inject(op, nth, err, short_io, persistent) makes the nth call of op from now fail with
 * errno err (nth = 1 is the next call). short_io instead makes pread/pwrite transfer half the
 * bytes and return that count (err ignored). persistent keeps failing every call from the nth on.
 */
#ifndef FEOX_IO_H
#define FEOX_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef enum feox_io_op {
    FEOX_IO_OPEN,
    FEOX_IO_PREAD,
    FEOX_IO_PWRITE,
    FEOX_IO_FSYNC, /* file and directory fsyncs */
    FEOX_IO_FTRUNCATE,
    FEOX_IO_RENAME,
    FEOX_IO_LINK_TMPFILE,
    FEOX_IO_UNLINK,
    FEOX_IO_RENAME_NOREPLACE,
    FEOX_IO_OP_COUNT
} feox_io_op;

/* The system calls, as replaceable functions. Each returns what the POSIX call returns and sets
 * errno on failure. A table that leaves one of the last three NULL gets the real call for it
 * (tables written before they existed keep working). */
typedef struct feox_io_methods {
    int (*open)(const char *path, int flags, mode_t mode);
    ssize_t (*pread)(int fd, void *buf, size_t len, off_t offset);
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t offset);
    int (*fsync)(int fd);
    int (*ftruncate)(int fd, off_t len);
    int (*rename)(const char *from, const char *to);
    /* Give the unnamed file fd (opened with O_TMPFILE) the name path; EEXIST if path exists. */
    int (*link_tmpfile)(int fd, const char *path);
    int (*unlink)(const char *path);
    /* rename that fails with EEXIST instead of replacing anything at to. */
    int (*rename_noreplace)(const char *from, const char *to);
} feox_io_methods;

/* Replace the table (NULL restores the real system calls). Tests only. */
void feox_io_set_methods(const feox_io_methods *methods);

/* Arm one fault (see the top of this file); feox_io_inject_reset disarms all. Tests only. */
void feox_io_inject(feox_io_op op, uint64_t nth, int err, bool short_io, bool persistent);
void feox_io_inject_reset(void);
/* Calls of op made since the process started (lets a test aim a fault at a step). */
uint64_t feox_io_calls(feox_io_op op);

int feox_io_open(const char *path, int flags, mode_t mode);
ssize_t feox_io_pread(int fd, void *buf, size_t len, off_t offset);
ssize_t feox_io_pwrite(int fd, const void *buf, size_t len, off_t offset);
int feox_io_fsync(int fd);
int feox_io_ftruncate(int fd, off_t len);
int feox_io_rename(const char *from, const char *to);
int feox_io_link_tmpfile(int fd, const char *path);
int feox_io_unlink(const char *path);
int feox_io_rename_noreplace(const char *from, const char *to);
/* fsync the directory holding path, so a create or rename in it is durable. */
int feox_io_fsync_parent_dir(const char *path);

/* Loops over short transfers and EINTR. Return 0, or -1 with errno set (a read that meets end of
 * file early sets errno = 0 and returns the bytes read through *done). */
int feox_io_pwrite_all(int fd, const void *buf, size_t len, uint64_t offset);
int feox_io_pread_all(int fd, void *buf, size_t len, uint64_t offset, size_t *done);

#endif

/*
 * store_files.c — store files as files: atomic creation, opening only what is a regular file,
 * header verification, and the log backend's file_info / remove_files / rename_files (behind
 * the public feox_store_file_info / feox_remove_store_file / feox_rename_store_file). Every step
 * that could touch a file first proves the file is a feox store (magic, version, header
 * checksum) and, for removal and renaming, that its recorded owner matches and that no open
 * holds its lock. And the table of every store-file descriptor this process holds, which a
 * fork() child closes.
 */
#include "storage/log/store_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/io.h"

#define COMPACT_SUFFIX ".compact"

/* The descriptor table (store_files.h, "Descriptors and fork()").
 *
 * Why open and close run under held_mu, which fork()'s prepare handler takes: a flock belongs to
 * the open file description, which a fork shares with the child, so even a descriptor the child
 * copies before the parent's flock (or before a compaction's rename makes its file the store)
 * carries that lock afterwards. The child must therefore know every store-file descriptor that
 * exists at the fork, including one a thread has just opened and not yet put anywhere; keeping
 * "open + record" and "unrecord + close" atomic with respect to fork() makes the table exactly
 * the set of descriptors the child copied. Only open() and close() run under held_mu, never a
 * read, write, fsync or flock (an open of an existing file is O_NONBLOCK: no FIFO, lease or
 * device can make it wait), so a fork waits for one open or close at most; nothing is locked
 * while held_mu is held, so it cannot deadlock with the registry lock (taken before it, by
 * feox_open and by the prepare handler alike). Descriptors that never take a lock (a read-only
 * header check) are kept too: one rule for all, and a child has no use for any of them. */
#define HELD_INLINE_WORDS 16 /* descriptors 0..1023 need no allocation */
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t held_inline[HELD_INLINE_WORDS];
static uint64_t *held = held_inline; /* [held_mu] bit fd set: fd is a store-file descriptor */
static size_t held_words = HELD_INLINE_WORDS;
static size_t held_count; /* [held_mu] bits set */

/* Record fd (held_mu held). False if the table cannot grow. */
static bool held_add(int fd)
{
    size_t word = (size_t)fd / 64;
    if (word >= held_words) {
        size_t words = held_words * 2 > word + 1 ? held_words * 2 : word + 1;
        uint64_t *grown = feox_mem_calloc(words, sizeof *grown);
        if (!grown)
            return false;
        memcpy(grown, held, held_words * sizeof *held);
        if (held != held_inline)
            feox_mem_free(held);
        held = grown;
        held_words = words;
    }
    held[word] |= UINT64_C(1) << (fd % 64);
    held_count++;
    return true;
}

/* feox_io_open, recording the descriptor; -1 with errno ENOMEM if it cannot be recorded. */
static int open_held(const char *path, int flags, mode_t mode)
{
    pthread_mutex_lock(&held_mu);
    int fd = feox_io_open(path, flags, mode);
    if (fd >= 0 && !held_add(fd)) {
        close(fd);
        fd = -1;
        errno = ENOMEM;
    }
    pthread_mutex_unlock(&held_mu);
    return fd;
}

void feox_store_file_close(int fd)
{
    if (fd < 0)
        return;
    int saved = errno;
    pthread_mutex_lock(&held_mu);
    size_t word = (size_t)fd / 64;
    uint64_t bit = UINT64_C(1) << (fd % 64);
    if (word < held_words && (held[word] & bit)) {
        held[word] &= ~bit;
        held_count--;
    }
    close(fd);
    pthread_mutex_unlock(&held_mu);
    errno = saved; /* callers report the error of the step that failed, not of this close */
}

size_t feox_store_file_descriptors(void)
{
    pthread_mutex_lock(&held_mu);
    size_t n = held_count;
    pthread_mutex_unlock(&held_mu);
    return n;
}

bool feox_store_files_fork_prepare(void)
{
    pthread_mutex_lock(&held_mu);
    return held_count > 0;
}

void feox_store_files_fork_parent(void)
{
    pthread_mutex_unlock(&held_mu);
}

void feox_store_files_fork_child(void)
{
    for (size_t w = 0; w < held_words; w++) {
        for (int i = 0; i < 64; i++)
            if (held[w] >> i & 1)
                close((int)(w * 64) + i); /* never flock(LOCK_UN): it would unlock the parent */
        held[w] = 0;
    }
    held_count = 0;
    pthread_mutex_unlock(&held_mu);
}

/* A descriptor of this process open on the file st describes, or -1 (none, or /proc/self/fd
 * cannot be read). */
static int descriptor_open_on(const struct stat *st)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int found = -1;
    struct dirent *e;
    while (found < 0 && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        struct stat other;
        if (end == e->d_name || *end || fd == dirfd(d) || fstat((int)fd, &other) != 0)
            continue;
        if (other.st_dev == st->st_dev && other.st_ino == st->st_ino)
            found = (int)fd;
    }
    closedir(d);
    return found;
}

/* The file st describes, which path names, judged before this process opens it again.
 *
 * Why: POSIX (fcntl) locks belong to the process, and closing any descriptor of a file drops
 * every such lock the process holds on it. SQLite locks its databases (and their -shm files) so;
 * opening one of them and closing it again, to find that it is not a feox store, would silently
 * drop the locks of the process's own connections: another process could then write the
 * database at the same time, or take itself for the last user of a WAL database and delete its
 * WAL. So when the process already has the file open, its header is read through that descriptor
 * (pread: no offset moves, no lock changes) and a file that is not a feox store is refused
 * without being opened. A feox store, or a descriptor that cannot be read (O_PATH, write-only),
 * takes the ordinary path. */
static feox_err check_file_open_elsewhere(const char *path, const struct stat *st)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        int other = descriptor_open_on(st);
        if (other < 0)
            return FEOX_OK;
        uint8_t header[FEOX_LOG_HEADER_SIZE];
        size_t have = st->st_size < (off_t)sizeof header ? (size_t)st->st_size : sizeof header;
        /* A plain pread, not feox_io's: this look is no I/O of the store (fault injection and
         * crash tests count those). A 64-byte read at offset 0 of a regular file is not split. */
        ssize_t got = have ? pread(other, header, have, 0) : 0;
        if (got < 0)
            return FEOX_OK;
        have = (size_t)got;
        struct stat now;
        if (fstat(other, &now) != 0 || now.st_dev != st->st_dev || now.st_ino != st->st_ino)
            continue; /* that descriptor was closed (and its number reused) meanwhile */
        feox_log_header h;
        feox_err err = feox_log_header_decode(header, have, path, &h);
        if (err == FEOX_ERR_FORMAT && strstr(feox_error_detail(), "is not a feox store")) {
            char why[PATH_MAX + 256];
            snprintf(why, sizeof why, "%s", feox_error_detail());
            return feox_fail(FEOX_ERR_FORMAT,
                             "%s (this process has it open, an SQLite database?, so feox does "
                             "not open it: closing it would drop the locks that open holds)",
                             why);
        }
        return err;
    }
    return FEOX_OK;
}

feox_err feox_store_file_open_existing(const char *path, int access, int *fd_out)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int err = errno;
        if (err == ENOENT && lstat(path, &st) == 0)
            return feox_fail(FEOX_ERR_FORMAT,
                             "'%s' exists and is not a feox store: it is a symbolic link to "
                             "nothing",
                             path);
        if (err == ENOENT)
            return feox_fail(FEOX_ERR_NOT_FOUND, "store file '%s' does not exist", path);
        return feox_fail(FEOX_ERR_IO, "cannot stat '%s': %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode))
        return feox_fail(FEOX_ERR_FORMAT,
                         "'%s' exists and is not a feox store: it is not a regular file", path);
    feox_err elsewhere = check_file_open_elsewhere(path, &st);
    if (elsewhere)
        return elsewhere;
    /* O_NONBLOCK: if a FIFO replaced the file since the stat, the open still returns. */
    int fd = open_held(path, access | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0);
    if (fd < 0) {
        int err = errno;
        if (err == ENOENT)
            return feox_fail(FEOX_ERR_NOT_FOUND, "store file '%s' does not exist", path);
        if (access == O_RDWR && (err == EACCES || err == EPERM || err == EROFS))
            return feox_fail(FEOX_ERR_READ_ONLY,
                             "store file '%s' cannot be opened for writing: %s (a read-only "
                             "open can read it)",
                             path, strerror(err));
        return feox_fail(err == ENOMEM ? FEOX_ERR_NOMEM : FEOX_ERR_IO,
                         "cannot open store file '%s': %s", path, strerror(err));
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        feox_store_file_close(fd);
        return feox_fail(FEOX_ERR_FORMAT,
                         "'%s' exists and is not a feox store: it is not a regular file", path);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl & ~O_NONBLOCK); /* a regular file: back to ordinary I/O */
    *fd_out = fd;
    return FEOX_OK;
}

feox_err feox_store_file_read_header(int fd, const char *path, feox_log_header *out)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return feox_fail(FEOX_ERR_IO, "cannot stat '%s': %s", path, strerror(errno));
    uint8_t header[FEOX_LOG_HEADER_SIZE];
    size_t have = st.st_size < (off_t)sizeof header ? (size_t)st.st_size : sizeof header;
    size_t done = 0;
    if (have && feox_io_pread_all(fd, header, have, 0, &done) != 0) {
        if (errno)
            return feox_fail(FEOX_ERR_IO, "cannot read the header of '%s': %s", path,
                             strerror(errno));
        have = done; /* shrank meanwhile: judge what is there */
    }
    return feox_log_header_decode(header, have, path, out);
}

/* The directory holding path, for O_TMPFILE. */
static void parent_dir(const char *path, char *out, size_t cap)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    snprintf(out, cap, "%s", dirname(copy));
}

/* Write the header, fsync it. */
static int write_header(int fd, const uint8_t *header)
{
    if (feox_io_pwrite_all(fd, header, FEOX_LOG_HEADER_SIZE, 0) != 0)
        return -1;
    return feox_io_fsync(fd);
}

/* DISK_FULL or IO for a failed creation step, naming the file and the step. */
static feox_err create_error(const char *path, const char *what, int err)
{
    return feox_fail(err == ENOSPC || err == EDQUOT || err == EFBIG ? FEOX_ERR_DISK_FULL
                     : err == ENOMEM                                ? FEOX_ERR_NOMEM
                                                                    : FEOX_ERR_IO,
                     "cannot create store file '%s' (%s): %s", path, what, strerror(err));
}

/* Where O_TMPFILE is unsupported: O_CREAT|O_EXCL, lock, header, fsync. A crash before the fsync
 * can leave a short file at path, which every later open refuses (FORMAT.md). */
static feox_err create_excl(const char *path, const uint8_t *header, int *fd_out, bool *existed)
{
    int fd = open_held(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0644);
    if (fd < 0) {
        int err = errno;
        *existed = err == EEXIST;
        return create_error(path, "exclusive create", err);
    }
    int err = 0;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || write_header(fd, header) != 0 ||
        feox_io_fsync_parent_dir(path) != 0)
        err = errno ? errno : EIO;
    if (err) {
        feox_store_file_close(fd);
        feox_io_unlink(path); /* ours: created by this call, and never handed out */
        return create_error(path, "header", err);
    }
    *fd_out = fd;
    return FEOX_OK;
}

feox_err feox_store_file_create(const char *path, const uint8_t header[FEOX_LOG_HEADER_SIZE],
                                int *fd_out, bool *existed)
{
    *existed = false;
    if (strlen(path) >= PATH_MAX)
        return create_error(path, "path", ENAMETOOLONG);
    char dir[PATH_MAX];
    parent_dir(path, dir, sizeof dir);
    int fd = open_held(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0644);
    if (fd < 0) {
        int err = errno;
        if (err == EOPNOTSUPP || err == EISDIR || err == EINVAL)
            return create_excl(path, header, fd_out, existed);
        return create_error(path, "unnamed file", err);
    }
    int err = 0;
    const char *step = "header";
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || write_header(fd, header) != 0)
        err = errno ? errno : EIO;
    if (!err && feox_io_link_tmpfile(fd, path) != 0) {
        err = errno ? errno : EIO;
        step = "link";
        *existed = err == EEXIST;
    }
    if (!err && feox_io_fsync_parent_dir(path) != 0) {
        err = errno ? errno : EIO;
        step = "directory fsync";
        feox_io_unlink(path); /* the name this call just gave our file */
    }
    if (err) {
        feox_store_file_close(fd); /* an unnamed file vanishes with its last descriptor */
        return create_error(path, step, err);
    }
    *fd_out = fd;
    return FEOX_OK;
}

/* True if path still names the file open as fd. */
static bool still_named(int fd, const char *path)
{
    struct stat by_fd, by_path;
    return fstat(fd, &by_fd) == 0 && stat(path, &by_path) == 0 && by_fd.st_dev == by_path.st_dev &&
           by_fd.st_ino == by_path.st_ino;
}

/* Take the file's lock without waiting: LOCKED if an open (here or elsewhere) holds it. */
static feox_err lock_file(int fd, const char *path, int how)
{
    if (flock(fd, how | LOCK_NB) == 0)
        return FEOX_OK;
    if (errno == EWOULDBLOCK)
        return feox_fail(FEOX_ERR_LOCKED, "store file '%s' is in use (an open holds it)", path);
    return feox_fail(FEOX_ERR_IO, "cannot lock '%s': %s", path, strerror(errno));
}

feox_err feox_store_file_remove_leftover(const char *compact_path, uint64_t owner_hash)
{
    int fd;
    feox_err err = feox_store_file_open_existing(compact_path, O_RDONLY, &fd);
    if (err == FEOX_ERR_NOT_FOUND) {
        feox_clear_error_detail();
        return FEOX_OK;
    }
    if (err)
        return err;
    feox_log_header h;
    err = lock_file(fd, compact_path, LOCK_EX);
    if (!err)
        err = feox_store_file_read_header(fd, compact_path, &h);
    if (!err && h.owner_hash != owner_hash)
        err = feox_fail(FEOX_ERR_NOT_OWNER, "'%s' is a feox store of another owner", compact_path);
    if (!err && !still_named(fd, compact_path))
        err = feox_fail(FEOX_ERR_IO, "'%s' was replaced while being removed", compact_path);
    if (!err && feox_io_unlink(compact_path) != 0)
        err = feox_fail(FEOX_ERR_IO, "cannot remove '%s': %s", compact_path, strerror(errno));
    feox_store_file_close(fd);
    return err;
}

/* Is the recorded owner one this call may act on? */
static feox_err check_owner(const char *path, const feox_log_header *h, const char *owner,
                            unsigned flags)
{
    if (h->owner_hash == 0)
        return (flags & FEOX_FILE_ALLOW_UNOWNED)
                   ? FEOX_OK
                   : feox_fail(FEOX_ERR_NOT_OWNER,
                               "'%s' records no owner (written before owners existed); "
                               "FEOX_FILE_ALLOW_UNOWNED is needed to act on it",
                               path);
    if (h->owner_hash != feox_owner_hash(owner))
        return feox_fail(FEOX_ERR_NOT_OWNER, "'%s' is a feox store of another owner", path);
    return FEOX_OK;
}

/* Open path read-only, lock it exclusively and verify it is a store of this owner. */
static feox_err open_verified(const char *path, const char *owner, unsigned flags, int *fd_out,
                              feox_log_header *h)
{
    int fd;
    feox_err err = feox_store_file_open_existing(path, O_RDONLY, &fd);
    if (err)
        return err;
    err = lock_file(fd, path, LOCK_EX);
    if (!err)
        err = feox_store_file_read_header(fd, path, h);
    if (!err)
        err = check_owner(path, h, owner, flags);
    if (!err && !still_named(fd, path))
        err = feox_fail(FEOX_ERR_LOCKED, "'%s' was replaced meanwhile; try again", path);
    if (err) {
        feox_store_file_close(fd);
        return err;
    }
    *fd_out = fd;
    return FEOX_OK;
}

/* True if path is missing or empty, or flags holds an unknown bit. */
static bool bad_args(const char *path, unsigned flags)
{
    return !path || !*path || (flags & ~(unsigned)FEOX_FILE_ALLOW_UNOWNED);
}

feox_err feox_log_file_info(const char *path, feox_file_info *out)
{
    feox_clear_error_detail();
    if (!path || !*path || !out)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "path and out are required");
    int fd;
    feox_err err = feox_store_file_open_existing(path, O_RDONLY, &fd);
    if (err)
        return err;
    feox_log_header h;
    err = feox_store_file_read_header(fd, path, &h);
    if (!err) {
        /* An exclusive probe: it conflicts with a read-write open's exclusive lock and with a
         * read-only open's shared one (and, for that instant, with another info call's). */
        bool in_use = flock(fd, LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK;
        *out = (feox_file_info){.file_id = h.file_id, .owner_hash = h.owner_hash, .in_use = in_use};
    }
    feox_store_file_close(fd);
    return err;
}

feox_err feox_log_remove_file(const char *path, const char *owner, unsigned flags)
{
    feox_clear_error_detail();
    if (bad_args(path, flags))
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "a path and known flags are required");
    char *compact = feox_mem_concat(path, COMPACT_SUFFIX);
    if (!compact)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    int fd;
    feox_log_header h;
    feox_err err = open_verified(path, owner, flags, &fd, &h);
    if (err) {
        feox_mem_free(compact);
        return err;
    }
    /* The leftover first: a crash in between leaves the store file, which is still removable. A
     * leftover that is not ours stays where it is and does not stop the removal. */
    if (feox_store_file_remove_leftover(compact, h.owner_hash) != FEOX_OK)
        feox_clear_error_detail();
    if (feox_io_unlink(path) != 0)
        err = feox_fail(FEOX_ERR_IO, "cannot remove '%s': %s", path, strerror(errno));
    else if (feox_io_fsync_parent_dir(path) != 0)
        err = feox_fail(FEOX_ERR_IO, "removed '%s' but cannot fsync its directory: %s", path,
                        strerror(errno));
    feox_store_file_close(fd);
    feox_mem_free(compact);
    return err;
}

/* Write a header for h with owner_hash at offset 0 of path and fsync it. */
static feox_err rewrite_header(const char *path, int rw_fd, const feox_log_header *h,
                               uint64_t owner_hash)
{
    uint8_t header[FEOX_LOG_HEADER_SIZE];
    feox_log_header_encode(header, h->file_id, h->created_ns, owner_hash);
    if (write_header(rw_fd, header) != 0)
        return feox_fail(errno == ENOSPC ? FEOX_ERR_DISK_FULL : FEOX_ERR_IO,
                         "cannot rewrite the header of '%s': %s", path, strerror(errno));
    return FEOX_OK;
}

/* A second descriptor on the locked file fd, for writing; the same inode or an error. */
static feox_err reopen_for_write(const char *path, int fd, int *rw_fd)
{
    feox_err err = feox_store_file_open_existing(path, O_RDWR, rw_fd);
    if (err)
        return err;
    struct stat a, b;
    if (fstat(fd, &a) != 0 || fstat(*rw_fd, &b) != 0 || a.st_dev != b.st_dev ||
        a.st_ino != b.st_ino) {
        feox_store_file_close(*rw_fd);
        return feox_fail(FEOX_ERR_LOCKED, "'%s' was replaced meanwhile; try again", path);
    }
    return FEOX_OK;
}

/* fsync the directories of from and to (one if they are the same). */
static int fsync_dirs(const char *from, const char *to)
{
    char a[PATH_MAX], b[PATH_MAX];
    parent_dir(from, a, sizeof a);
    parent_dir(to, b, sizeof b);
    if (feox_io_fsync_parent_dir(to) != 0)
        return -1;
    return strcmp(a, b) == 0 ? 0 : feox_io_fsync_parent_dir(from);
}

/* The rename itself, the header already rewritten: undo the header if it fails. */
static feox_err rename_locked(const char *from, const char *to, int rw_fd, const feox_log_header *h,
                              uint64_t new_hash)
{
    struct stat st;
    if (lstat(to, &st) == 0)
        return feox_fail(FEOX_ERR_IO, "cannot rename '%s' to '%s': '%s' exists", from, to, to);
    feox_err err = FEOX_OK;
    if (new_hash != h->owner_hash)
        err = rewrite_header(from, rw_fd, h, new_hash);
    if (err) {
        rewrite_header(from, rw_fd, h, h->owner_hash); /* best effort: the write may have landed */
        feox_set_error_detail("cannot rewrite the header of '%s' (%s); nothing was renamed", from,
                              feox_strerror(err));
        return err;
    }
    if (feox_io_rename_noreplace(from, to) != 0) {
        int e = errno;
        if (new_hash != h->owner_hash)
            rewrite_header(from, rw_fd, h, h->owner_hash); /* best effort: put the owner back */
        if (e == EEXIST)
            return feox_fail(FEOX_ERR_IO, "cannot rename '%s' to '%s': '%s' exists", from, to, to);
        return feox_fail(FEOX_ERR_IO, "cannot rename '%s' to '%s': %s", from, to, strerror(e));
    }
    if (fsync_dirs(from, to) != 0)
        return feox_fail(FEOX_ERR_IO, "renamed '%s' to '%s' but cannot fsync the directory: %s",
                         from, to, strerror(errno));
    return FEOX_OK;
}

feox_err feox_log_rename_file(const char *from, const char *to, const char *owner,
                              const char *new_owner, unsigned flags)
{
    feox_clear_error_detail();
    if (bad_args(from, flags) || !to || !*to)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "from, to and known flags are required");
    char *compact = feox_mem_concat(from, COMPACT_SUFFIX);
    if (!compact)
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    int fd, rw_fd = -1;
    feox_log_header h;
    feox_err err = open_verified(from, owner, flags, &fd, &h);
    if (err) {
        feox_mem_free(compact);
        return err;
    }
    err = reopen_for_write(from, fd, &rw_fd);
    if (!err)
        err = rename_locked(from, to, rw_fd, &h, feox_owner_hash(new_owner));
    if (!err && feox_store_file_remove_leftover(compact, h.owner_hash) != FEOX_OK)
        feox_clear_error_detail(); /* not ours: it stays */
    if (rw_fd >= 0)
        feox_store_file_close(rw_fd);
    feox_store_file_close(fd);
    feox_mem_free(compact);
    return err;
}

/*
 * crash_powerloss.c — power-loss simulation through the I/O table (issue 7 item 3,
 * perf-reliability.md §D.2 "Power-loss simulation").
 *
 * THE CRASHFS MODEL
 * feox_io_set_methods() routes every open/pread/pwrite/fsync/ftruncate/rename of the engine
 * through "crashfs". Every file still lives in a real temporary directory (the engine also calls
 * fstat, flock, stat, close and unlink directly, so descriptors must be real), and the real files
 * always hold the *volatile* state: what a process sees through the page cache. Next to them,
 * crashfs keeps what a power cut would leave:
 *   - per inode: its durable image, plus the list of pending (unsynced) writes and truncates made
 *     since the last fsync of that inode. fsync(fd) applies the pending list to the durable image.
 *   - the directory: a durable name -> inode map, plus the pending directory operations made since
 *     the last directory fsync, in order: create (open with O_CREAT of a missing name, or the
 *     link naming an O_TMPFILE inode), rename,
 *     unlink (the engine unlinks with the raw system call; crashfs notices a vanished name before
 *     each open and rename and at the crash). fsync of a descriptor opened with O_DIRECTORY makes
 *     all of them durable. open(O_TRUNC) of an existing file is a pending truncate to 0.
 *   - real fsync is never called (nothing here needs the real disk).
 * Every call gets a global index (all threads: the flusher, compactor and sweeper run too, so the
 * index of an event varies a little between runs; the checks do not depend on it). At index i the
 * machine dies: that call and every later one fail with EIO and change nothing, so the model is
 * frozen. The post-crash disk is then built from the frozen model:
 *   - directory: the durable map plus a random PREFIX of the pending directory operations (a
 *     journaling file system commits metadata in order), so a rename not yet made durable by a
 *     directory fsync may or may not have happened, and a create may be lost;
 *   - each named inode: its durable image, then a random subset of its pending writes/truncates,
 *     applied either in issue order or shuffled. In some crashes a dropped write that extended the
 *     file still extends it, with zeros (size metadata persisted, data not);
 *   - in about half the crashes, one torn sector: one dropped pending write persists only up to a
 *     cut inside one of its 512-byte sectors (the sectors before it whole, the torn one a prefix).
 * The post-crash disk replaces the directory's content and becomes the durable state.
 *
 * THE WORKLOAD (deterministic from the seed) runs through the public API: 10K ops over 256 keys
 * and 16 counters: upserts (with tags, TTLs, absolute expiries), deletes, insert_if_absent, CAS,
 * increments, update_ttl/persist, reads; feox_flush every 500 ops; feox_compact at ops 3250 and
 * 7250 (the second in a thread while the workload keeps writing); a fake clock advancing 1 ms
 * per op so TTLs expire during the run; flush_interval_ms = 5 with short pauses so the
 * background flusher writes too. Variants: sync=normal, full and off.
 * The oracle logs every version each key was given: acknowledged (the call returned and the
 * machine was still alive afterwards) or uncertain (the op in flight at the crash, whatever it
 * returned: its record may be on disk). The durable floor is the last op acknowledged before the
 * last completed feox_flush (sync=full: the last acknowledged op).
 *
 * THE CHECKS, after the crashed store is closed (it must return, errors are fine) and the
 * post-crash disk is reopened with no faults:
 *   1. feox_open succeeds (a torn tail must never prevent opening);
 *   2. every key holds the state of one of its versions at or after its last version at or
 *      before the floor (any version, or absence, if it had none): so values are real, nothing
 *      acknowledged before the floor is lost, deletes before the floor stay deleted; absence
 *      also follows from a version that has expired by now; no phantom keys (feox_len, cursor);
 *   3. sync=full: no acknowledged write lost; summary: the most acknowledged ops lost (normal);
 *   4. feox_check passes. Exception documented in FORMAT.md: damage followed by valid records
 *      (possible here, as writes are persisted out of order) is kept and reported by feox_check
 *      until the next compaction, so then feox_compact must clear it;
 *   5. recovery is idempotent: close + reopen gives the identical dump (keys, values, tags,
 *      timestamps, expiries);
 *   6. recovery itself interrupted: for every third crash point, the reopen is crashed again at a
 *      random index of its own I/O (often inside the open: its torn-tail truncate + fsync), a new
 *      post-crash disk is built from that, and reopening it must give the same dump again.
 * Crash points, per sync mode, from the clean run's I/O call count N (open to close): every
 * index if N <= CRASH_ITERATIONS * 4, else that many stratified over 1..N (sync=off: half), plus
 * 2 past the end (crash in close, or none), 48 while the store file is created (indexes 1..8,
 * six post-crash disks each), and up to CRASH_ITERATIONS * 2 inside the two compactions when
 * the stratified points are sparse. CRASH_ITERATIONS (env, default 50): make test 50, ASan 10.
 * sync=off is a third variant beyond normal/full: its unsynced flusher writes give crashes many
 * pending writes to drop, reorder and tear.
 * Seed: fixed, printed; env FEOX_POWERLOSS_SEED overrides. Failures print the seed and crash
 * point and keep the post-crash image in the temporary directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "feox.h"
#include "feox_test_support.h"
#include "base/io.h"

#define DEFAULT_SEED UINT64_C(0x5eedf00dc0ffee07)
#define NOPS 10000
#define NKEYS 256
#define NCOUNTERS 16
#define NALL (NKEYS + NCOUNTERS)
#define FLUSH_EVERY 500
#define SECTOR 512
#define MAX_FD 4096
#define MAX_NAMES 8
#define NAME_MAX_LEN 512
#define EARLY_POINTS 48

/* ---------------------------------------------------------------------------------------------
 * Small helpers
 * ------------------------------------------------------------------------------------------- */

static void die(const char *fmt, const char *arg)
{
    fprintf(stderr, "crash_powerloss: fatal: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    exit(2);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("%s", "out of memory");
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p)
        die("%s", "out of memory");
    return p;
}

typedef struct bytes {
    uint8_t *data;
    size_t len, cap;
} bytes;

static void bytes_reserve(bytes *b, size_t need)
{
    if (b->cap >= need)
        return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

/* Write src at off, growing (zero-filled) as needed. */
static void bytes_write(bytes *b, uint64_t off, const uint8_t *src, size_t len)
{
    size_t end = (size_t)off + len;
    if (end > b->len) {
        bytes_reserve(b, end);
        memset(b->data + b->len, 0, end - b->len);
        b->len = end;
    }
    if (len)
        memcpy(b->data + off, src, len);
}

static void bytes_resize(bytes *b, uint64_t size)
{
    if ((size_t)size > b->len) {
        bytes_reserve(b, (size_t)size);
        memset(b->data + b->len, 0, (size_t)size - b->len);
    }
    b->len = (size_t)size;
}

static void bytes_append(bytes *b, const void *src, size_t len)
{
    bytes_reserve(b, b->len + len);
    if (len)
        memcpy(b->data + b->len, src, len);
    b->len += len;
}

static void bytes_free(bytes *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---------------------------------------------------------------------------------------------
 * crashfs
 * ------------------------------------------------------------------------------------------- */

enum { OP_WRITE, OP_TRUNC };
typedef struct pending_op {
    int kind;
    uint64_t off; /* write offset, or the truncate length */
    size_t len;
    uint8_t *data;
} pending_op;

typedef struct inode {
    bytes durable;
    pending_op *ops;
    size_t nops, cap;
    ino_t real_ino;
} inode;

enum { DOP_CREATE, DOP_RENAME, DOP_UNLINK };
typedef struct dir_op {
    int kind;
    char name[NAME_MAX_LEN], to[NAME_MAX_LEN];
    int ino;
} dir_op;

typedef struct dir_entry {
    char name[NAME_MAX_LEN];
    int ino;
} dir_entry;

typedef struct dir_map {
    dir_entry e[MAX_NAMES];
    int n;
} dir_map;

#define FD_NONE (-1)
#define FD_DIR (-2)

static struct {
    pthread_mutex_t mu;
    char dir[PATH_MAX];
    inode *inodes;
    size_t ninodes, cap;
    dir_map cur, dur;
    dir_op *dops;
    size_t ndops, dcap;
    uint64_t calls;
    uint64_t die_at; /* 0 = never */
    atomic_bool dead;
    int fd_ino[MAX_FD];
} fs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int map_find(const dir_map *m, const char *name)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0)
            return i;
    return -1;
}

static void map_remove(dir_map *m, const char *name)
{
    int i = map_find(m, name);
    if (i >= 0)
        m->e[i] = m->e[--m->n];
}

static void map_set(dir_map *m, const char *name, int ino)
{
    int i = map_find(m, name);
    if (i < 0) {
        if (m->n == MAX_NAMES)
            die("%s", "crashfs: too many names");
        i = m->n++;
        snprintf(m->e[i].name, NAME_MAX_LEN, "%s", name);
    }
    m->e[i].ino = ino;
}

static void dop_apply(dir_map *m, const dir_op *d)
{
    if (d->kind == DOP_CREATE) {
        map_set(m, d->name, d->ino);
    } else if (d->kind == DOP_UNLINK) {
        map_remove(m, d->name);
    } else {
        int i = map_find(m, d->name);
        if (i >= 0) {
            int ino = m->e[i].ino;
            map_remove(m, d->name);
            map_set(m, d->to, ino);
        }
    }
}

static void dop_push(int kind, const char *name, const char *to, int ino)
{
    if (fs.ndops == fs.dcap) {
        fs.dcap = fs.dcap ? fs.dcap * 2 : 16;
        fs.dops = xrealloc(fs.dops, fs.dcap * sizeof *fs.dops);
    }
    dir_op *d = &fs.dops[fs.ndops++];
    memset(d, 0, sizeof *d);
    d->kind = kind;
    d->ino = ino;
    snprintf(d->name, NAME_MAX_LEN, "%s", name);
    if (to)
        snprintf(d->to, NAME_MAX_LEN, "%s", to);
}

static int inode_new(ino_t real_ino)
{
    if (fs.ninodes == fs.cap) {
        fs.cap = fs.cap ? fs.cap * 2 : 8;
        fs.inodes = xrealloc(fs.inodes, fs.cap * sizeof *fs.inodes);
    }
    inode *in = &fs.inodes[fs.ninodes];
    memset(in, 0, sizeof *in);
    in->real_ino = real_ino;
    return (int)fs.ninodes++;
}

static void inode_push(int ino, int kind, uint64_t off, const void *data, size_t len)
{
    inode *in = &fs.inodes[ino];
    if (in->nops == in->cap) {
        in->cap = in->cap ? in->cap * 2 : 16;
        in->ops = xrealloc(in->ops, in->cap * sizeof *in->ops);
    }
    pending_op *op = &in->ops[in->nops++];
    op->kind = kind;
    op->off = off;
    op->len = len;
    op->data = NULL;
    if (kind == OP_WRITE) {
        op->data = xmalloc(len);
        memcpy(op->data, data, len);
    }
}

static void apply_op(bytes *b, const pending_op *op)
{
    if (op->kind == OP_WRITE)
        bytes_write(b, op->off, op->data, op->len);
    else
        bytes_resize(b, op->off);
}

static void inode_clear_pending(inode *in)
{
    for (size_t i = 0; i < in->nops; i++)
        free(in->ops[i].data);
    in->nops = 0;
}

static void fs_free_model(void)
{
    for (size_t i = 0; i < fs.ninodes; i++) {
        inode_clear_pending(&fs.inodes[i]);
        free(fs.inodes[i].ops);
        bytes_free(&fs.inodes[i].durable);
    }
    free(fs.inodes);
    fs.inodes = NULL;
    fs.ninodes = fs.cap = 0;
    free(fs.dops);
    fs.dops = NULL;
    fs.ndops = fs.dcap = 0;
    fs.cur.n = fs.dur.n = 0;
}

static bool in_dir(const char *path)
{
    size_t n = strlen(fs.dir);
    return strncmp(path, fs.dir, n) == 0 && path[n] == '/';
}

/* A name the engine unlinked with the raw system call: record it as a pending unlink. */
static void detect_unlinks(void)
{
    for (int i = 0; i < fs.cur.n;) {
        struct stat st;
        if (stat(fs.cur.e[i].name, &st) != 0 || st.st_ino != fs.inodes[fs.cur.e[i].ino].real_ino) {
            dop_push(DOP_UNLINK, fs.cur.e[i].name, NULL, -1);
            fs.cur.e[i] = fs.cur.e[--fs.cur.n];
            continue;
        }
        i++;
    }
}

/* Count the call; false (errno = EIO, lock released) if the machine is dead. */
static bool enter(void)
{
    pthread_mutex_lock(&fs.mu);
    fs.calls++;
    if (!atomic_load(&fs.dead) && fs.die_at && fs.calls >= fs.die_at) {
        detect_unlinks();
        atomic_store(&fs.dead, true);
    }
    if (atomic_load(&fs.dead)) {
        pthread_mutex_unlock(&fs.mu);
        errno = EIO;
        return false;
    }
    return true;
}

static int ino_of_fd(int fd)
{
    return fd >= 0 && fd < MAX_FD ? fs.fd_ino[fd] : FD_NONE;
}

static int cfs_open(const char *path, int flags, mode_t mode)
{
    if (!enter())
        return -1;
    int fd;
    if ((flags & O_TMPFILE) == O_TMPFILE) { /* an inode without a name until link_tmpfile */
        fd = open(path, flags, mode);
        int saved = errno;
        struct stat st;
        if (fd >= 0 && (fd >= MAX_FD || fstat(fd, &st) != 0))
            die("%s", "crashfs: descriptor out of range");
        if (fd >= 0)
            fs.fd_ino[fd] = inode_new(st.st_ino);
        pthread_mutex_unlock(&fs.mu);
        errno = saved;
        return fd;
    }
    if (flags & O_DIRECTORY) {
        fd = open(path, flags, mode);
        if (fd >= 0 && fd < MAX_FD)
            fs.fd_ino[fd] = FD_DIR;
        int saved = errno;
        pthread_mutex_unlock(&fs.mu);
        errno = saved;
        return fd;
    }
    if (!in_dir(path))
        die("crashfs: open outside the test directory: %s", path);
    detect_unlinks();
    struct stat st;
    bool existed = stat(path, &st) == 0;
    fd = open(path, flags, mode);
    int saved = errno;
    if (fd >= 0) {
        if (fd >= MAX_FD || fstat(fd, &st) != 0)
            die("%s", "crashfs: descriptor out of range");
        int ino;
        if (!existed) {
            ino = inode_new(st.st_ino);
            map_set(&fs.cur, path, ino);
            dop_push(DOP_CREATE, path, NULL, ino);
        } else {
            int i = map_find(&fs.cur, path);
            if (i < 0 || fs.inodes[fs.cur.e[i].ino].real_ino != st.st_ino)
                die("crashfs: untracked file %s", path);
            ino = fs.cur.e[i].ino;
            if (flags & O_TRUNC)
                inode_push(ino, OP_TRUNC, 0, NULL, 0);
        }
        fs.fd_ino[fd] = ino;
    }
    pthread_mutex_unlock(&fs.mu);
    errno = saved;
    return fd;
}

static ssize_t cfs_pread(int fd, void *buf, size_t len, off_t offset)
{
    if (!enter())
        return -1;
    ssize_t n = pread(fd, buf, len, offset);
    int saved = errno;
    pthread_mutex_unlock(&fs.mu);
    errno = saved;
    return n;
}

static ssize_t cfs_pwrite(int fd, const void *buf, size_t len, off_t offset)
{
    if (!enter())
        return -1;
    int ino = ino_of_fd(fd);
    if (ino < 0)
        die("%s", "crashfs: pwrite on an unknown descriptor");
    ssize_t n = pwrite(fd, buf, len, offset);
    int saved = errno;
    if (n > 0)
        inode_push(ino, OP_WRITE, (uint64_t)offset, buf, (size_t)n);
    pthread_mutex_unlock(&fs.mu);
    errno = saved;
    return n;
}

static int cfs_fsync(int fd)
{
    if (!enter())
        return -1;
    int ino = ino_of_fd(fd);
    if (ino == FD_DIR) {
        detect_unlinks();
        for (size_t i = 0; i < fs.ndops; i++)
            dop_apply(&fs.dur, &fs.dops[i]);
        fs.ndops = 0;
    } else if (ino >= 0) {
        inode *in = &fs.inodes[ino];
        for (size_t i = 0; i < in->nops; i++)
            apply_op(&in->durable, &in->ops[i]);
        inode_clear_pending(in);
    } else {
        die("%s", "crashfs: fsync on an unknown descriptor");
    }
    pthread_mutex_unlock(&fs.mu);
    return 0;
}

static int cfs_ftruncate(int fd, off_t len)
{
    if (!enter())
        return -1;
    int ino = ino_of_fd(fd);
    if (ino < 0)
        die("%s", "crashfs: ftruncate on an unknown descriptor");
    int rc = ftruncate(fd, len);
    int saved = errno;
    if (rc == 0)
        inode_push(ino, OP_TRUNC, (uint64_t)len, NULL, 0);
    pthread_mutex_unlock(&fs.mu);
    errno = saved;
    return rc;
}

static int cfs_rename(const char *from, const char *to)
{
    if (!enter())
        return -1;
    if (!in_dir(from) || !in_dir(to))
        die("crashfs: rename outside the test directory: %s", from);
    detect_unlinks();
    int rc = rename(from, to);
    int saved = errno;
    if (rc == 0) {
        int i = map_find(&fs.cur, from);
        if (i < 0)
            die("crashfs: rename of an untracked file %s", from);
        int ino = fs.cur.e[i].ino;
        map_remove(&fs.cur, from);
        map_set(&fs.cur, to, ino);
        dop_push(DOP_RENAME, from, to, ino);
    }
    pthread_mutex_unlock(&fs.mu);
    errno = saved;
    return rc;
}

/* Name an O_TMPFILE inode: a pending create of that name (durable with the directory fsync). */
static int cfs_link_tmpfile(int fd, const char *path)
{
    if (!enter())
        return -1;
    if (!in_dir(path))
        die("crashfs: link outside the test directory: %s", path);
    int ino = ino_of_fd(fd);
    if (ino < 0)
        die("%s", "crashfs: link of an unknown descriptor");
    detect_unlinks();
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    int rc = linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
    int saved = errno;
    if (rc == 0) {
        map_set(&fs.cur, path, ino);
        dop_push(DOP_CREATE, path, NULL, ino);
    }
    pthread_mutex_unlock(&fs.mu);
    errno = saved;
    return rc;
}

static const feox_io_methods crashfs_methods = {
    .open = cfs_open,
    .pread = cfs_pread,
    .pwrite = cfs_pwrite,
    .fsync = cfs_fsync,
    .ftruncate = cfs_ftruncate,
    .rename = cfs_rename,
    .link_tmpfile = cfs_link_tmpfile,
};

/* A disk image: file name (full path) -> content. */
typedef struct image_file {
    char name[NAME_MAX_LEN];
    bytes content;
} image_file;

typedef struct disk_image {
    image_file f[MAX_NAMES];
    int n;
} disk_image;

static void image_free(disk_image *im)
{
    for (int i = 0; i < im->n; i++)
        bytes_free(&im->f[i].content);
    im->n = 0;
}

/* Replace the directory's content with the image and make it the durable state; arm death at
 * call die_at (0 = never, counted from now). No engine thread may be running. */
static void fs_install(const disk_image *im, uint64_t die_at)
{
    pthread_mutex_lock(&fs.mu);
    DIR *d = opendir(fs.dir);
    if (!d)
        die("cannot open %s", fs.dir);
    struct dirent *de;
    char path[PATH_MAX + 300];
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", fs.dir, de->d_name);
        unlink(path);
    }
    closedir(d);
    fs_free_model();
    for (int i = 0; i < MAX_FD; i++)
        fs.fd_ino[i] = FD_NONE;
    for (int i = 0; i < im->n; i++) {
        int fd = open(im->f[i].name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) != 0)
            die("cannot create %s", im->f[i].name);
        size_t done = 0;
        while (done < im->f[i].content.len) {
            ssize_t n = write(fd, im->f[i].content.data + done, im->f[i].content.len - done);
            if (n <= 0)
                die("cannot write %s", im->f[i].name);
            done += (size_t)n;
        }
        close(fd);
        int ino = inode_new(st.st_ino);
        bytes_append(&fs.inodes[ino].durable, im->f[i].content.data, im->f[i].content.len);
        map_set(&fs.cur, im->f[i].name, ino);
        map_set(&fs.dur, im->f[i].name, ino);
    }
    fs.calls = 0;
    fs.die_at = die_at;
    atomic_store(&fs.dead, false);
    pthread_mutex_unlock(&fs.mu);
}

static uint64_t fs_calls(void)
{
    pthread_mutex_lock(&fs.mu);
    uint64_t c = fs.calls;
    pthread_mutex_unlock(&fs.mu);
    return c;
}

static bool fs_dead(void)
{
    return atomic_load(&fs.dead);
}

typedef struct crash_stats {
    uint64_t torn, zero_extended, dir_ops_dropped, writes_dropped, reordered;
} crash_stats;

/* Build the disk a power cut at this moment would leave (see the top of the file). */
static void fs_post_crash(ftest_rng *rng, disk_image *out, crash_stats *cs)
{
    pthread_mutex_lock(&fs.mu);
    dir_map m = fs.dur;
    size_t keep_dops = (size_t)ftest_rng_below(rng, fs.ndops + 1);
    for (size_t i = 0; i < keep_dops; i++)
        dop_apply(&m, &fs.dops[i]);
    cs->dir_ops_dropped += fs.ndops - keep_dops;

    /* Per-crash style: how many pending writes survive, in which order, zero extension. */
    unsigned style = (unsigned)ftest_rng_below(rng, 4);
    uint64_t keep_pct = style == 0 ? 0 : style == 1 ? 100 : ftest_rng_below(rng, 101);
    bool shuffle = ftest_rng_below(rng, 2) == 0;
    bool zero_extend = ftest_rng_below(rng, 4) == 0;
    bool want_torn = ftest_rng_below(rng, 2) == 0;

    /* Pick the torn write among all pending writes (of files that keep a name) of >= 2 bytes. */
    size_t candidates = 0;
    for (int i = 0; i < m.n; i++) {
        inode *in = &fs.inodes[m.e[i].ino];
        for (size_t j = 0; j < in->nops; j++)
            candidates += in->ops[j].kind == OP_WRITE && in->ops[j].len >= 2;
    }
    size_t torn_pick =
        want_torn && candidates ? (size_t)ftest_rng_below(rng, candidates) : SIZE_MAX;

    out->n = 0;
    size_t base = 0; /* candidate index of this inode's first write */
    for (int i = 0; i < m.n; i++) {
        inode *in = &fs.inodes[m.e[i].ino];
        image_file *f = &out->f[out->n++];
        snprintf(f->name, NAME_MAX_LEN, "%s", m.e[i].name);
        memset(&f->content, 0, sizeof f->content);
        bytes_append(&f->content, in->durable.data, in->durable.len);
        size_t *order = xmalloc(in->nops * sizeof *order);
        size_t *cand_before = xmalloc(in->nops * sizeof *cand_before); /* issue-order index */
        size_t ncand = 0;
        for (size_t j = 0; j < in->nops; j++) {
            order[j] = j;
            cand_before[j] = ncand;
            ncand += in->ops[j].kind == OP_WRITE && in->ops[j].len >= 2;
        }
        if (shuffle && in->nops > 1) {
            cs->reordered++;
            for (size_t j = in->nops - 1; j > 0; j--) {
                size_t k = (size_t)ftest_rng_below(rng, j + 1);
                size_t t = order[j];
                order[j] = order[k];
                order[k] = t;
            }
        }
        for (size_t jj = 0; jj < in->nops; jj++) {
            const pending_op *op = &in->ops[order[jj]];
            bool torn_here =
                op->kind == OP_WRITE && op->len >= 2 && base + cand_before[order[jj]] == torn_pick;
            if (torn_here) {
                /* the sectors before the cut whole, the cut's sector a prefix, the rest lost */
                uint64_t cut;
                do
                    cut = op->off + 1 + ftest_rng_below(rng, op->len - 1);
                while (cut % SECTOR == 0 && op->len > 2 &&
                       (op->off + 1) / SECTOR != (op->off + op->len - 1) / SECTOR);
                bytes_write(&f->content, op->off, op->data, (size_t)(cut - op->off));
                cs->torn++;
                continue;
            }
            if (ftest_rng_below(rng, 100) < keep_pct) {
                apply_op(&f->content, op);
            } else if (op->kind == OP_WRITE) {
                cs->writes_dropped++;
                if (zero_extend && op->off + op->len > f->content.len) {
                    bytes_resize(&f->content, op->off + op->len);
                    cs->zero_extended++;
                }
            }
        }
        base += ncand;
        free(order);
        free(cand_before);
    }
    pthread_mutex_unlock(&fs.mu);
}

/* ---------------------------------------------------------------------------------------------
 * The oracle
 * ------------------------------------------------------------------------------------------- */

typedef struct version {
    uint64_t seq;
    bool del;
    bool uncertain;
    uint8_t *val;
    uint32_t vlen;
    uint32_t tag;
    uint64_t exp; /* 0 = none */
} version;

typedef struct key_hist {
    version *v;
    size_t n, cap;
} key_hist;

typedef struct oracle {
    key_hist keys[NALL];
    uint64_t floor_seq; /* every op acknowledged at or before it must be durable */
    uint64_t last_acked;
    uint64_t now_at_crash; /* fake clock when the workload stopped */
    uint64_t ops_done;
    bool crashed_in_open;
    bool crashed;
} oracle;

static void oracle_free(oracle *o)
{
    for (int k = 0; k < NALL; k++) {
        for (size_t i = 0; i < o->keys[k].n; i++)
            free(o->keys[k].v[i].val);
        free(o->keys[k].v);
    }
    memset(o, 0, sizeof *o);
}

static void oracle_push(oracle *o, int k, const version *v)
{
    key_hist *h = &o->keys[k];
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    version *d = &h->v[h->n++];
    *d = *v;
    d->val = NULL;
    if (!v->del) {
        d->val = xmalloc(v->vlen);
        memcpy(d->val, v->val, v->vlen);
    }
}

static void key_name(int k, char *out, size_t *len)
{
    int n = k < NKEYS ? snprintf(out, 16, "k%03d", k) : snprintf(out, 16, "c%02d", k - NKEYS);
    *len = (size_t)n;
}

/* The current live version in memory at time now, or NULL. */
static const version *live(const oracle *o, int k, uint64_t now)
{
    const key_hist *h = &o->keys[k];
    if (!h->n)
        return NULL;
    const version *v = &h->v[h->n - 1];
    if (v->del || (v->exp && now > v->exp))
        return NULL;
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * The workload
 * ------------------------------------------------------------------------------------------- */

static ftest_clock clk;
static uint64_t compact_window[2][2]; /* I/O call indexes of the compactions in the clean run */
static char store_path[PATH_MAX + 32];
static int failures;
static char failure_ctx[256];

static void failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void failf(const char *fmt, ...)
{
    failures++;
    if (failures > 20)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "crash_powerloss: FAIL [%s]: ", failure_ctx);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
}

static void make_config(feox_config *cfg, feox_sync_mode sync)
{
    feox_config_init(cfg);
    cfg->path = store_path;
    cfg->sync = sync;
    cfg->flush_interval_ms = 5;
    cfg->ttl_sweep_interval_ms = 10;
    cfg->clock = ftest_clock_read;
    cfg->clock_ctx = &clk;
}

static size_t make_value(uint64_t seq, ftest_rng *rng, uint8_t *out)
{
    size_t len = ftest_rng_below(rng, 50) == 0 ? 600 + (size_t)ftest_rng_below(rng, 1200)
                                               : (size_t)ftest_rng_below(rng, 120);
    int n = snprintf((char *)out, 32, "s%" PRIu64 ":", seq);
    if ((size_t)n > len)
        len = (size_t)n;
    for (size_t i = (size_t)n; i < len; i++)
        out[i] = (uint8_t)('a' + (seq * 7 + i) % 26);
    return len;
}

static int64_t sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

static int pick_key(ftest_rng *rng)
{
    return ftest_rng_below(rng, 2) ? (int)ftest_rng_below(rng, 32)
                                   : (int)ftest_rng_below(rng, NKEYS);
}

typedef struct compactor_state {
    feox_store *s;
    pthread_t thread;
    bool running;
    uint64_t c0;
    feox_err err;
    char detail[256];
} compactor_state;
static compactor_state compactor;

static void *compact_main(void *arg)
{
    compactor_state *c = arg;
    c->err = feox_compact(c->s);
    snprintf(c->detail, sizeof c->detail, "%s", feox_error_detail());
    return NULL;
}

static void join_compactor(bool clean_run)
{
    pthread_join(compactor.thread, NULL);
    compactor.running = false;
    if (clean_run) {
        compact_window[1][0] = compactor.c0 + 1;
        compact_window[1][1] = fs_calls();
    }
    if (!fs_dead() && compactor.err != FEOX_OK)
        failf("concurrent compaction on a live machine: %s (%s)", feox_strerror(compactor.err),
              compactor.detail);
}

/* Run the workload with the machine dying at I/O call die_at (0 = never). */
static void run_workload(feox_sync_mode sync, uint64_t seed, uint64_t die_at, oracle *o)
{
    disk_image empty = {.n = 0};
    memset(o, 0, sizeof *o);
    ftest_clock_init(&clk, FTEST_EPOCH_NS);
    fs_install(&empty, die_at);
    ftest_rng rng;
    ftest_rng_seed(&rng, seed ^ (uint64_t)sync * UINT64_C(0x9E3779B97F4A7C15));

    feox_config cfg;
    make_config(&cfg, sync);
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err != FEOX_OK) {
        if (!fs_dead())
            failf("workload open failed: %s (%s)", feox_strerror(err), feox_error_detail());
        o->crashed_in_open = o->crashed = true;
        o->now_at_crash = ftest_clock_now(&clk);
        return;
    }
    static uint8_t valbuf[4096];
    uint64_t seq;
    for (seq = 1; seq <= NOPS && !fs_dead(); seq++) {
        ftest_clock_advance(&clk, 1000000);
        uint64_t now = ftest_clock_now(&clk);
        unsigned r = (unsigned)ftest_rng_below(&rng, 100);
        int k = pick_key(&rng);
        const version *cur = live(o, k, now);
        version nv = {.seq = seq};
        bool writes = false; /* a new version is expected if the op succeeds */
        feox_err expect = FEOX_OK;
        feox_err rc;
        if (r < 40 || r == 50 || r == 51 || (r >= 84 && r < 89)) {
            nv.vlen = (uint32_t)make_value(seq, &rng, valbuf);
            nv.val = valbuf;
            feox_write_opts opts = {0};
            if (r < 40) {
                opts.tag = (uint32_t)(seq & 0xffff);
            } else if (r == 50 || r == 51) {
                opts.flags = FEOX_WRITE_EXPIRES_AT;
                opts.expires_at_ns = now + 500000000u + ftest_rng_below(&rng, 4500000000u);
                opts.tag = 7;
            }
            nv.tag = opts.tag;
            nv.exp = opts.expires_at_ns;
            if (r >= 84) {
                bool inserted = false;
                char key[16];
                size_t kl;
                key_name(k, key, &kl);
                nv.tag = 0;
                nv.exp = 0;
                const feox_write_opts ia = {.flags = FEOX_WRITE_IF_ABSENT};
                rc = feox_insert(s, key, kl, nv.val, nv.vlen, &ia, &inserted);
                writes = cur == NULL;
                if (rc == FEOX_ERR_KEY_EXISTS) /* a live key: not an error here */
                    rc = FEOX_OK;
                if (rc == FEOX_OK && !fs_dead() && inserted != writes)
                    failf("insert_if_absent seq %" PRIu64 ": inserted=%d expected %d", seq,
                          inserted, writes);
            } else {
                char key[16];
                size_t kl;
                key_name(k, key, &kl);
                rc = feox_insert(s, key, kl, nv.val, nv.vlen, &opts, NULL);
                writes = true;
            }
        } else if (r < 50) {
            nv.vlen = (uint32_t)make_value(seq, &rng, valbuf);
            nv.val = valbuf;
            uint64_t ttl = 1 + ftest_rng_below(&rng, 8);
            feox_write_opts opts = {.flags = FEOX_WRITE_TTL, .ttl_secs = ttl, .tag = 3};
            nv.tag = 3;
            nv.exp = now + ttl * FTEST_SEC;
            char key[16];
            size_t kl;
            key_name(k, key, &kl);
            rc = feox_insert(s, key, kl, nv.val, nv.vlen, &opts, NULL);
            writes = true;
        } else if (r < 65) {
            char key[16];
            size_t kl;
            key_name(k, key, &kl);
            nv.del = true;
            writes = cur != NULL;
            expect = writes ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND;
            rc = feox_delete(s, key, kl, NULL);
        } else if (r < 77) {
            k = NKEYS + (int)ftest_rng_below(&rng, NCOUNTERS);
            cur = live(o, k, now);
            int64_t delta = ftest_rng_below(&rng, 50) == 0
                                ? (ftest_rng_below(&rng, 2) ? INT64_MAX / 2 : INT64_MIN / 2)
                                : (int64_t)ftest_rng_below(&rng, 2001) - 1000;
            int64_t old = cur ? ftest_get_i64(cur->val) : 0;
            int64_t want = cur ? sat_add(old, delta) : delta;
            ftest_put_i64(valbuf, want);
            nv.val = valbuf;
            nv.vlen = 8;
            nv.tag = cur ? cur->tag : 0;
            nv.exp = cur ? cur->exp : 0;
            char key[16];
            size_t kl;
            key_name(k, key, &kl);
            int64_t result = 0;
            rc = feox_atomic_increment(s, key, kl, delta, NULL, &result);
            writes = true;
            if (rc == FEOX_OK && !fs_dead() && result != want)
                failf("increment seq %" PRIu64 ": %" PRId64 " expected %" PRId64, seq, result,
                      want);
        } else if (r < 84) {
            uint64_t ttl = r < 82 ? ftest_rng_below(&rng, 11) : 0;
            char key[16];
            size_t kl;
            key_name(k, key, &kl);
            if (cur) {
                memcpy(valbuf, cur->val, cur->vlen);
                nv.val = valbuf;
                nv.vlen = cur->vlen;
                nv.tag = cur->tag;
                nv.exp = ttl ? now + ttl * FTEST_SEC : 0;
                writes = true;
            }
            expect = cur ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND;
            rc = r < 82 ? feox_update_ttl(s, key, kl, ttl, NULL) : feox_update_ttl(s, key, kl, 0, NULL);
        } else if (r < 94) {
            char key[16];
            size_t kl;
            key_name(k, key, &kl);
            bool hit = cur && ftest_rng_below(&rng, 4) != 0;
            static uint8_t expected[4096];
            size_t elen = 3;
            memcpy(expected, "nop", 3);
            if (hit) {
                memcpy(expected, cur->val, cur->vlen);
                elen = cur->vlen;
            }
            nv.vlen = (uint32_t)make_value(seq, &rng, valbuf);
            nv.val = valbuf;
            nv.tag = cur ? cur->tag : 0;
            nv.exp = cur ? cur->exp : 0;
            bool swapped = false;
            rc = feox_compare_and_swap(s, key, kl, expected, elen, nv.val, nv.vlen, NULL, &swapped);
            writes = cur && cur->vlen == elen && memcmp(cur->val, expected, elen) == 0;
            if (rc == FEOX_OK && !fs_dead() && swapped != writes)
                failf("cas seq %" PRIu64 ": swapped=%d expected %d", seq, swapped, writes);
        } else {
            char key[16];
            size_t kl;
            key_name(k, key, &kl);
            void *v = NULL;
            size_t vl = 0;
            rc = feox_get(s, key, kl, &v, &vl, NULL);
            if (!fs_dead()) {
                if (cur && (rc != FEOX_OK || vl != cur->vlen || memcmp(v, cur->val, vl) != 0))
                    failf("get seq %" PRIu64 " of key %d: wrong value (%s)", seq, k,
                          feox_strerror(rc));
                if (!cur && rc != FEOX_ERR_KEY_NOT_FOUND)
                    failf("get seq %" PRIu64 " of key %d: %s, expected absent", seq, k,
                          feox_strerror(rc));
            }
            feox_free(v);
            rc = expect = cur ? FEOX_OK : FEOX_ERR_KEY_NOT_FOUND;
        }
        bool dead_after = fs_dead();
        if (!dead_after) {
            if (rc != expect)
                failf("op seq %" PRIu64
                      " (kind %u) on a live machine returned %s, expected %s (%s)",
                      seq, r, feox_strerror(rc), feox_strerror(expect), feox_error_detail());
            else if (writes && rc == FEOX_OK) {
                oracle_push(o, k, &nv);
                o->last_acked = seq;
            }
        } else {
            if (writes) { /* in flight at the crash: may or may not be on disk */
                nv.uncertain = true;
                oracle_push(o, k, &nv);
            }
            break;
        }
        if (sync == FEOX_SYNC_FULL && !dead_after)
            o->floor_seq = o->last_acked;
        if (seq % FLUSH_EVERY == 0) {
            uint64_t before = o->last_acked;
            err = feox_flush(s);
            if (!fs_dead()) {
                if (err != FEOX_OK)
                    failf("flush at seq %" PRIu64 " on a live machine: %s", seq,
                          feox_strerror(err));
                else
                    o->floor_seq = before;
            }
        }
        if (seq == 3250) {
            uint64_t c0 = fs_calls();
            err = feox_compact(s);
            if (die_at == 0) { /* the clean run: remember where compactions are */
                compact_window[0][0] = c0 + 1;
                compact_window[0][1] = fs_calls();
            }
            if (!fs_dead() && err != FEOX_OK)
                failf("compact at seq %" PRIu64 " on a live machine: %s (%s)", seq,
                      feox_strerror(err), feox_error_detail());
        }
        if (seq == 7250) { /* the second one runs while the workload keeps writing */
            compactor.s = s;
            compactor.c0 = fs_calls();
            compactor.running =
                pthread_create(&compactor.thread, NULL, compact_main, &compactor) == 0;
        }
        if ((seq == 7400 || seq == NOPS) && compactor.running)
            join_compactor(die_at == 0);
        if (seq % 100 == 0) { /* let the background flusher tick now and then */
            struct timespec ts = {0, 700000};
            nanosleep(&ts, NULL);
        }
    }
    if (compactor.running)
        join_compactor(false);
    o->ops_done = seq > NOPS ? NOPS : seq;
    o->now_at_crash = ftest_clock_now(&clk);
    uint64_t before = o->last_acked;
    err = feox_close(s);
    if (!fs_dead()) {
        if (err != FEOX_OK)
            failf("close on a live machine: %s", feox_strerror(err));
        else
            o->floor_seq = before;
    }
    o->crashed = fs_dead();
}

/* ---------------------------------------------------------------------------------------------
 * Checks
 * ------------------------------------------------------------------------------------------- */

typedef struct check_result {
    uint64_t lost_acked; /* acknowledged versions superseded by an older state */
} check_result;

static bool state_matches(const version *v, uint64_t now, bool present, const void *val,
                          size_t vlen, const feox_record_info *info)
{
    bool v_absent = v->del || (v->exp && now > v->exp);
    if (v_absent || !present)
        return v_absent && !present;
    return vlen == v->vlen && memcmp(val, v->val, vlen) == 0 && info->tag == v->tag &&
           info->expires_at_ns == v->exp;
}

/* Dump every live record (key, value, tag, timestamp, expiry) in key order. */
static feox_err dump_store(feox_store *s, bytes *out, uint64_t *rows)
{
    feox_cursor *c;
    feox_err err = feox_cursor_open(s, &c);
    if (err)
        return err;
    *rows = 0;
    err = feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0);
    while (!err && feox_cursor_valid(c)) {
        size_t kl, vl;
        const void *k = feox_cursor_key(c, &kl);
        const void *v = feox_cursor_value(c, &vl);
        feox_record_info info;
        feox_cursor_info(c, &info);
        uint64_t hdr[5] = {kl, vl, info.tag, info.timestamp_ns, info.expires_at_ns};
        bytes_append(out, hdr, sizeof hdr);
        bytes_append(out, k, kl);
        bytes_append(out, v, vl);
        (*rows)++;
        err = feox_cursor_next(c);
    }
    feox_cursor_close(c);
    return err;
}

/* Invariants 2 and 3 against the oracle. */
static void check_state(feox_store *s, const oracle *o, feox_sync_mode sync, check_result *res)
{
    uint64_t now = o->now_at_crash;
    uint64_t present_keys = 0;
    res->lost_acked = 0;
    for (int k = 0; k < NALL; k++) {
        const key_hist *h = &o->keys[k];
        char key[16];
        size_t kl;
        key_name(k, key, &kl);
        void *val = NULL;
        size_t vlen = 0;
        feox_record_info info = {0};
        feox_err err = feox_get(s, key, kl, &val, &vlen, &info);
        if (err != FEOX_OK && err != FEOX_ERR_KEY_NOT_FOUND) {
            failf("get %s after recovery: %s", key, feox_strerror(err));
            continue;
        }
        bool present = err == FEOX_OK;
        present_keys += present;
        ptrdiff_t r = -1; /* last required version */
        for (size_t j = 0; j < h->n; j++)
            if (!h->v[j].uncertain && h->v[j].seq <= o->floor_seq)
                r = (ptrdiff_t)j;
        ptrdiff_t match = -2;
        for (ptrdiff_t j = (ptrdiff_t)h->n - 1; j >= (r < 0 ? 0 : r); j--)
            if (state_matches(&h->v[j], now, present, val, vlen, &info)) {
                match = j;
                break;
            }
        if (match == -2 && r < 0 && !present)
            match = -1; /* never required: absence allowed */
        if (match == -2) {
            bool older = false;
            for (ptrdiff_t j = r - 1; j >= 0 && !older; j--)
                older = state_matches(&h->v[j], now, present, val, vlen, &info);
            failf("key %s: recovered %s (%zu bytes) is not a state it may hold: %s; required "
                  "version #%td seq %" PRIu64 " (%s), %zu versions, floor seq %" PRIu64,
                  key, present ? "value" : "absence", vlen,
                  older ? "an OLDER state than the last one made durable (lost durable write)"
                        : "never held",
                  r, r >= 0 ? h->v[r].seq : 0, r >= 0 && h->v[r].del ? "delete" : "put", h->n,
                  o->floor_seq);
        } else {
            for (size_t j = (size_t)(match + 1); j < h->n; j++)
                res->lost_acked += !h->v[j].uncertain;
        }
        feox_free(val);
    }
    if (sync == FEOX_SYNC_FULL && res->lost_acked)
        failf("sync=full lost %" PRIu64 " acknowledged writes", res->lost_acked);
    uint64_t len = feox_len(s, 0);
    if (len != present_keys)
        failf("feox_len %" PRIu64 " but %" PRIu64 " keys found (phantom keys?)", len, present_keys);
}

static feox_store *reopen(feox_sync_mode sync, const char *what)
{
    feox_config cfg;
    make_config(&cfg, sync);
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err != FEOX_OK) {
        failf("%s: feox_open failed: %s (%s)", what, feox_strerror(err), feox_error_detail());
        return NULL;
    }
    return s;
}

static void save_image(const disk_image *im, int point)
{
    for (int i = 0; i < im->n; i++) {
        char path[PATH_MAX + 600];
        const char *base = strrchr(im->f[i].name, '/');
        snprintf(path, sizeof path, "%s-failure-%d-%s", fs.dir, point, base ? base + 1 : "x");
        FILE *f = fopen(path, "wb");
        if (f) {
            fwrite(im->f[i].content.data, 1, im->f[i].content.len, f);
            fclose(f);
            fprintf(stderr, "crash_powerloss: post-crash image kept in %s\n", path);
        }
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] = "crash_powerloss: FAIL: a crash point hung (watchdog)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

typedef struct totals {
    uint64_t points, crashed, in_open, after_workload, torn, zero_ext, dir_dropped, reordered;
    uint64_t writes_dropped, dropped_records, mid_damage, double_crashes, double_in_open;
    uint64_t max_lost, total_acked_floor;
} totals;

/* One crash point: workload, crash, post-crash disk, checks. */
static void crash_point(int point, feox_sync_mode sync, uint64_t seed, uint64_t die_at,
                        bool interrupt_recovery, totals *t)
{
    snprintf(failure_ctx, sizeof failure_ctx, "seed 0x%" PRIx64 " point %d sync=%s die_at %" PRIu64,
             seed, point,
             sync == FEOX_SYNC_FULL  ? "full"
             : sync == FEOX_SYNC_OFF ? "off"
                                     : "normal",
             die_at);
    int failures_before = failures;
    alarm(120);
    oracle o;
    run_workload(sync, seed, die_at, &o);
    t->points++;
    t->crashed += o.crashed;
    t->in_open += o.crashed_in_open;
    t->after_workload += o.crashed && o.ops_done >= NOPS;

    ftest_rng rng;
    ftest_rng_seed(&rng, seed ^ ((uint64_t)point << 32) ^ 0xabcdef);
    disk_image post = {.n = 0};
    crash_stats cs = {0};
    fs_post_crash(&rng, &post, &cs);
    t->torn += cs.torn;
    t->zero_ext += cs.zero_extended;
    t->dir_dropped += cs.dir_ops_dropped;
    t->reordered += cs.reordered;
    t->writes_dropped += cs.writes_dropped;

    /* 1-4: reopen, check, count the I/O calls of a clean recovery */
    ftest_clock_set(&clk, o.now_at_crash);
    fs_install(&post, 0);
    feox_store *s = reopen(sync, "reopen after the crash");
    uint64_t open_calls = fs_calls();
    bytes d1 = {0}, d2 = {0};
    uint64_t rows = 0, rows2 = 0;
    bool damaged = false;
    if (s) {
        check_result cr;
        check_state(s, &o, sync, &cr);
        if (cr.lost_acked > t->max_lost)
            t->max_lost = cr.lost_acked;
        if (dump_store(s, &d1, &rows) != FEOX_OK)
            failf("dump after recovery failed: %s", feox_error_detail());
        if (rows != feox_len(s, 0))
            failf("cursor saw %" PRIu64 " rows, feox_len says %" PRIu64, rows, feox_len(s, 0));
        feox_stats st;
        feox_get_stats(s, &st);
        t->dropped_records += st.recovery_dropped_records;
        feox_err err = feox_check(s);
        if (err != FEOX_OK) {
            if (st.recovery_dropped_records > 0 && strstr(feox_error_detail(), "damaged")) {
                damaged = true; /* documented: kept until the next compaction */
                t->mid_damage++;
            } else {
                failf("feox_check after recovery: %s (%s)", feox_strerror(err),
                      feox_error_detail());
            }
        }
        err = feox_close(s);
        if (err != FEOX_OK)
            failf("close after recovery: %s (%s)", feox_strerror(err), feox_error_detail());
    }
    uint64_t clean_calls = fs_calls();

    /* 5: idempotence (and the damage cleared by a compaction) */
    if (s && (s = reopen(sync, "second reopen"))) {
        if (dump_store(s, &d2, &rows2) != FEOX_OK)
            failf("second dump failed: %s", feox_error_detail());
        if (d1.len != d2.len || (d1.len && memcmp(d1.data, d2.data, d1.len) != 0))
            failf("recovery is not idempotent: %" PRIu64 " rows, then %" PRIu64, rows, rows2);
        if (damaged) {
            feox_err err = feox_compact(s);
            if (err == FEOX_OK)
                err = feox_check(s);
            if (err != FEOX_OK)
                failf("damage not cleared by compaction: %s (%s)", feox_strerror(err),
                      feox_error_detail());
            bytes d3 = {0};
            if (dump_store(s, &d3, &rows2) != FEOX_OK || d3.len != d1.len ||
                (d1.len && memcmp(d1.data, d3.data, d1.len) != 0))
                failf("%s", "compaction of a recovered store changed its content");
            bytes_free(&d3);
        }
        feox_close(s);
    }

    /* 6: recovery interrupted by a second power cut, then rerun */
    if (interrupt_recovery && clean_calls > 0 && d1.len + rows > 0) {
        t->double_crashes++;
        uint64_t at = ftest_rng_below(&rng, 2) && open_calls > 0
                          ? 1 + ftest_rng_below(&rng, open_calls)
                          : 1 + ftest_rng_below(&rng, clean_calls);
        t->double_in_open += at <= open_calls;
        fs_install(&post, at);
        feox_config cfg;
        make_config(&cfg, sync);
        feox_store *s2 = NULL;
        if (feox_open(&cfg, &s2) == FEOX_OK) {
            feox_check(s2);
            feox_close(s2);
        } else if (!fs_dead()) {
            failf("open before the second crash failed: %s", feox_error_detail());
        }
        disk_image post2 = {.n = 0};
        crash_stats cs2 = {0};
        fs_post_crash(&rng, &post2, &cs2);
        t->torn += cs2.torn;
        fs_install(&post2, 0);
        s2 = reopen(sync, "reopen after a crash during recovery");
        if (s2) {
            check_result cr;
            check_state(s2, &o, sync, &cr);
            bytes d4 = {0};
            uint64_t rows4 = 0;
            if (dump_store(s2, &d4, &rows4) != FEOX_OK || d4.len != d1.len ||
                (d1.len && memcmp(d1.data, d4.data, d1.len) != 0))
                failf("recovery interrupted at call %" PRIu64 " and rerun: %" PRIu64
                      " rows, the uninterrupted recovery gave %" PRIu64,
                      at, rows4, rows);
            bytes_free(&d4);
            feox_close(s2);
        } else {
            save_image(&post2, point * 10 + 1);
        }
        image_free(&post2);
    } else if (interrupt_recovery) {
        /* nothing recovered: still interrupt and rerun to cover create/truncate paths */
        fs_install(&post, 1 + ftest_rng_below(&rng, clean_calls ? clean_calls : 1));
        feox_config cfg;
        make_config(&cfg, sync);
        feox_store *s2 = NULL;
        if (feox_open(&cfg, &s2) == FEOX_OK)
            feox_close(s2);
        disk_image post2 = {.n = 0};
        crash_stats cs2 = {0};
        fs_post_crash(&rng, &post2, &cs2);
        fs_install(&post2, 0);
        s2 = reopen(sync, "reopen after a crash during recovery (empty store)");
        if (s2) {
            check_result cr;
            check_state(s2, &o, sync, &cr);
            feox_close(s2);
        }
        image_free(&post2);
        t->double_crashes++;
    }
    if (failures != failures_before)
        save_image(&post, point);
    bytes_free(&d1);
    bytes_free(&d2);
    image_free(&post);
    oracle_free(&o);
    alarm(0);
}

int main(void)
{
    const char *env = getenv("CRASH_ITERATIONS");
    int iterations = env && atoi(env) > 0 ? atoi(env) : 50;
    const char *seed_env = getenv("FEOX_POWERLOSS_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 0) : DEFAULT_SEED;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("crash_powerloss: seed 0x%" PRIx64 " (FEOX_POWERLOSS_SEED overrides), %d iterations\n",
           seed, iterations);
    signal(SIGALRM, on_alarm);

    const char *tmp = getenv("TMPDIR");
    if (tmp && strlen(tmp) > 1000)
        tmp = NULL;
    snprintf(fs.dir, sizeof fs.dir, "%s/feox-powerloss-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fs.dir))
        die("cannot create a directory from %s", fs.dir);
    snprintf(store_path, sizeof store_path, "%s/store.feox", fs.dir);
    for (int i = 0; i < MAX_FD; i++)
        fs.fd_ino[i] = FD_NONE;
    feox_io_set_methods(&crashfs_methods);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t points_per_mode = (uint64_t)iterations * 4; /* CRASH_ITERATIONS * 8 in all */
    /* sync=off too: its flusher writes without fsync, so crashes find many pending writes to
     * drop, reorder and tear (flush() is its only durability point). */
    feox_sync_mode modes[3] = {FEOX_SYNC_NORMAL, FEOX_SYNC_FULL, FEOX_SYNC_OFF};
    static const char *const mode_names[3] = {"normal", "full", "off"};
    int point = 0;
    for (int mi = 0; mi < 3; mi++) {
        feox_sync_mode sync = modes[mi];
        snprintf(failure_ctx, sizeof failure_ctx, "seed 0x%" PRIx64 " clean run sync=%s", seed,
                 mode_names[mi]);
        oracle o;
        alarm(120);
        run_workload(sync, seed, 0, &o);
        uint64_t total_calls = fs_calls();
        uint64_t floor = o.floor_seq;
        /* the clean run must recover everything */
        disk_image clean = {.n = 0};
        ftest_rng rng;
        ftest_rng_seed(&rng, seed + 17u * (unsigned)mi);
        crash_stats cs = {0};
        fs_post_crash(&rng, &clean, &cs);
        ftest_clock_set(&clk, o.now_at_crash);
        fs_install(&clean, 0);
        feox_store *s = reopen(sync, "reopen after a clean run");
        if (s) {
            check_result cr;
            check_state(s, &o, sync, &cr);
            if (cr.lost_acked)
                failf("clean run lost %" PRIu64 " writes", cr.lost_acked);
            feox_close(s);
        }
        image_free(&clean);
        oracle_free(&o);
        alarm(0);
        printf("crash_powerloss: sync=%s clean run: %d ops, %" PRIu64
               " I/O calls, floor seq %" PRIu64 "\n",
               mode_names[mi], NOPS, total_calls, floor);
        printf("crash_powerloss: sync=%s compactions at I/O calls %" PRIu64 "-%" PRIu64
               " and %" PRIu64 "-%" PRIu64 "\n",
               mode_names[mi], compact_window[0][0], compact_window[0][1], compact_window[1][0],
               compact_window[1][1]);

        totals t = {0};
        ftest_rng prng;
        ftest_rng_seed(&prng, seed * 31u + (uint64_t)mi);
        /* Every call index if there are few, else one crash index in each slice of the clean
         * run's call range (stratified), plus a few past its end (crash during close or none). */
        uint64_t n = total_calls < points_per_mode ? total_calls : points_per_mode;
        if (sync == FEOX_SYNC_OFF)
            n /= 2;
        /* and up to CRASH_ITERATIONS * 2 calls inside the two compactions when the stratified
         * points are sparse (sync=full) */
        uint64_t w0 = compact_window[0][1] - compact_window[0][0] + 1;
        uint64_t w1 = compact_window[1][1] - compact_window[1][0] + 1;
        uint64_t extra = n < total_calls ? w0 + w1 : 0;
        uint64_t extra_cap = (uint64_t)iterations * 2;
        uint64_t extra_n = extra < extra_cap ? extra : extra_cap;
        for (uint64_t j = 0; j < n + 2 + EARLY_POINTS + extra_n; j++, point++) {
            uint64_t die_at;
            if (j >= n + 2 + EARLY_POINTS) { /* stratified over the compaction windows */
                uint64_t y = j - n - 2 - EARLY_POINTS;
                uint64_t lo = extra * y / extra_n, hi = extra * (y + 1) / extra_n;
                uint64_t x = lo + ftest_rng_below(&prng, hi > lo ? hi - lo : 1);
                die_at = x < w0 ? compact_window[0][0] + x : compact_window[1][0] + x - w0;
            } else if (j >= n + 2) /* the creation of the store file, several post-crash disks */
                die_at = 1 + (j - n - 2) % 8;
            else if (j >= n)
                die_at = total_calls + j - n;
            else if (n == total_calls)
                die_at = j + 1;
            else {
                uint64_t lo = total_calls * j / n, hi = total_calls * (j + 1) / n;
                die_at = 1 + lo + ftest_rng_below(&prng, hi > lo ? hi - lo : 1);
            }
            crash_point(point, sync, seed, die_at, j % 3 == 1, &t);
        }
        printf("crash_powerloss: sync=%s: %" PRIu64 " crash points (%" PRIu64 " crashed, %" PRIu64
               " inside open, %" PRIu64 " after the last op), %" PRIu64 " torn sectors, %" PRIu64
               " zero-extended writes, %" PRIu64 " dropped writes, %" PRIu64
               " reordered files, %" PRIu64 " dropped directory ops, %" PRIu64
               " records dropped by recovery, %" PRIu64 " recoveries with mid-file damage, %" PRIu64
               " recoveries interrupted (%" PRIu64
               " inside open), max acknowledged ops lost %" PRIu64 "\n",
               mode_names[mi], t.points, t.crashed, t.in_open, t.after_workload, t.torn, t.zero_ext,
               t.writes_dropped, t.reordered, t.dir_dropped, t.dropped_records, t.mid_damage,
               t.double_crashes, t.double_in_open, t.max_lost);
    }
    feox_io_set_methods(NULL);
    disk_image empty = {.n = 0};
    fs_install(&empty, 0);
    fs_free_model();
    rmdir(fs.dir);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (failures) {
        fprintf(stderr, "crash_powerloss: %d failure(s) (seed 0x%" PRIx64 "), %.1f s\n", failures,
                seed, secs);
        return 1;
    }
    printf("crash_powerloss: all invariants held, %.1f s\n", secs);
    return 0;
}

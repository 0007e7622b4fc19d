/*
 * test_log_file_ownership.c — the engine touches only files it created (issue 11 items 1, 2, 5):
 * a foreign file of any kind (empty, zeros, a header prefix, text, a directory, a FIFO, a
 * device, /proc/self/mem) is refused and left byte for byte and mtime unchanged; no_create;
 * creation is atomic (a failure at any step leaves nothing at the path); the owner recorded in
 * the header survives reopen and compaction; feox_remove_store_file / feox_rename_store_file act
 * only on a feox store of the given owner that no open holds, never on its neighbours
 * (data.csv, data-backup.sql, data.txt, data.feox.bak) and never over an existing file.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "feox.h"
#include "base/io.h"

static char dir[] = "/tmp/feox-owner-XXXXXX";

/* dir/name into out. */
static const char *at(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
    return out;
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
}

/* What a file is: its bytes (up to 8 KiB) and its mtime, to prove it was left alone. */
typedef struct snapshot {
    uint8_t bytes[8192];
    ssize_t len;
    struct timespec mtime;
    ino_t ino;
} snapshot;

static void take(const char *path, snapshot *s)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    s->mtime = st.st_mtim;
    s->ino = st.st_ino;
    s->len = 0;
    if (S_ISREG(st.st_mode)) {
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        s->len = read(fd, s->bytes, sizeof s->bytes);
        close(fd);
    }
}

static void assert_unchanged(const char *path, const snapshot *before)
{
    snapshot now;
    take(path, &now);
    assert_int_equal(now.ino, before->ino);
    assert_int_equal(now.len, before->len);
    assert_memory_equal(now.bytes, before->bytes, (size_t)now.len);
    assert_int_equal(now.mtime.tv_sec, before->mtime.tv_sec);
    assert_int_equal(now.mtime.tv_nsec, before->mtime.tv_nsec);
}

static feox_err open_store(const char *path, const char *owner, bool no_create, feox_store **s)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.owner = owner;
    cfg.no_create = no_create;
    cfg.disable_compaction = true;
    return feox_open(&cfg, s);
}

/* Create a store at path with owner holding key "k" = value, closed. */
static void make_store(const char *path, const char *owner, const char *value)
{
    feox_store *s;
    assert_int_equal(open_store(path, owner, false, &s), FEOX_OK);
    assert_int_equal(feox_insert(s, "k", 1, value, strlen(value), NULL, NULL), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
}

static void assert_store_holds(const char *path, const char *value)
{
    feox_store *s;
    assert_int_equal(open_store(path, NULL, true, &s), FEOX_OK);
    void *v;
    size_t len;
    assert_int_equal(feox_get(s, "k", 1, &v, &len, NULL), FEOX_OK);
    assert_int_equal(len, strlen(value));
    assert_memory_equal(v, value, len);
    feox_free(v);
    assert_int_equal(feox_close(s), FEOX_OK);
}

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void assert_detail(const char *want)
{
    if (!strstr(feox_error_detail(), want))
        fail_msg("detail '%s' does not contain '%s'", feox_error_detail(), want);
}

/* ------------------------------------------------------------------------------------------ */

static void test_foreign_regular_files_are_refused_untouched(void **state)
{
    (void)state;
    char path[256];
    at(path, sizeof path, "foreign.feox");
    uint8_t zeros[64] = {0}, text[64], random_bytes[4096];
    memset(text, 'x', sizeof text);
    memcpy(text, "id,name\n1,Ada\n", 14);
    for (size_t i = 0; i < sizeof random_bytes; i++)
        random_bytes[i] = (uint8_t)(i * 131 + 7);
    uint8_t header_prefix[64] = {'F', 'E', 'O', 'X', 'L', 'O', 'G', 0, 1, 0, 0, 0, 64};
    const struct {
        const void *data;
        size_t len;
    } kinds[] = {
        {"", 0},               /* empty */
        {zeros, sizeof zeros}, /* a header's worth of zeros */
        {zeros, 10},           /* a few zeros */
        {"FEO", 3},            /* a torn prefix of the magic */
        {"FEOXLOG", 8},        /* the whole magic, nothing else */
        {header_prefix, 64},   /* a header prefix then zeros */
        {text, sizeof text},   /* a CSV */
        {random_bytes, sizeof random_bytes},
    };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        write_bytes(path, kinds[k].data, kinds[k].len);
        snapshot before;
        take(path, &before);
        feox_store *s = NULL;
        feox_err err = open_store(path, "owner", false, &s);
        if (k == 5) /* magic and version 1: a damaged header */
            assert_true(err == FEOX_ERR_FORMAT || err == FEOX_ERR_CORRUPT);
        else {
            assert_int_equal(err, FEOX_ERR_FORMAT);
            assert_detail("exists and is not a feox store");
            assert_detail(path);
        }
        assert_int_equal(open_store(path, "owner", true, &s) != FEOX_OK, true);
        feox_err rm = feox_remove_store_file(path, "owner", FEOX_FILE_ALLOW_UNOWNED);
        assert_true(rm == FEOX_ERR_FORMAT || rm == FEOX_ERR_CORRUPT);
        char to[256];
        feox_err mv = feox_rename_store_file(path, at(to, sizeof to, "moved.feox"), "owner",
                                             "owner", FEOX_FILE_ALLOW_UNOWNED);
        assert_true(mv == FEOX_ERR_FORMAT || mv == FEOX_ERR_CORRUPT);
        assert_false(exists(to));
        feox_file_info info;
        assert_true(feox_store_file_info(path, &info) != FEOX_OK);
        assert_unchanged(path, &before);
    }
    unlink(path);
}

static void test_special_files_are_refused(void **state)
{
    (void)state;
    char path[256];
    feox_store *s;
    /* A directory. */
    at(path, sizeof path, "a-directory");
    assert_int_equal(mkdir(path, 0755), 0);
    snapshot before;
    take(path, &before);
    assert_int_equal(open_store(path, "o", false, &s), FEOX_ERR_FORMAT);
    assert_detail("is not a regular file");
    assert_int_equal(feox_remove_store_file(path, "o", FEOX_FILE_ALLOW_UNOWNED), FEOX_ERR_FORMAT);
    assert_unchanged(path, &before);
    assert_int_equal(rmdir(path), 0);
    /* A FIFO: opening it would block if it were opened at all. */
    at(path, sizeof path, "a-fifo");
    assert_int_equal(mkfifo(path, 0644), 0);
    take(path, &before);
    assert_int_equal(open_store(path, "o", false, &s), FEOX_ERR_FORMAT);
    assert_detail("is not a regular file");
    assert_int_equal(feox_remove_store_file(path, "o", FEOX_FILE_ALLOW_UNOWNED), FEOX_ERR_FORMAT);
    feox_file_info info;
    assert_int_equal(feox_store_file_info(path, &info), FEOX_ERR_FORMAT);
    assert_unchanged(path, &before);
    unlink(path);
    /* A device, and /proc/self/mem (a "regular" file of size 0 that writes into memory). */
    assert_int_equal(open_store("/dev/null", "o", false, &s), FEOX_ERR_FORMAT);
    assert_detail("is not a regular file");
    assert_int_equal(open_store("/proc/self/mem", "o", false, &s), FEOX_ERR_FORMAT);
    assert_detail("exists and is not a feox store");
    assert_int_equal(feox_remove_store_file("/proc/self/mem", "o", FEOX_FILE_ALLOW_UNOWNED),
                     FEOX_ERR_FORMAT);
    const char *sys = "/sys/kernel/mm/transparent_hugepage/enabled";
    if (access(sys, R_OK) == 0) {
        assert_int_equal(open_store(sys, "o", false, &s), FEOX_ERR_FORMAT);
        assert_detail("exists and is not a feox store");
    }
    /* A dangling symbolic link: nothing is created at its target. */
    char target[256];
    at(path, sizeof path, "a-link");
    assert_int_equal(symlink(at(target, sizeof target, "link-target"), path), 0);
    assert_int_equal(open_store(path, "o", false, &s), FEOX_ERR_FORMAT);
    assert_false(exists(target));
    unlink(path);
}

static void test_no_create(void **state)
{
    (void)state;
    char path[256];
    at(path, sizeof path, "missing.feox");
    feox_store *s;
    assert_int_equal(open_store(path, "o", true, &s), FEOX_ERR_NOT_FOUND);
    assert_false(exists(path));
    make_store(path, "o", "v");
    assert_int_equal(open_store(path, NULL, true, &s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

/* O_TMPFILE reported unsupported, so creation takes the O_CREAT|O_EXCL fallback. */
static int open_without_tmpfile(const char *path, int flags, mode_t mode)
{
    if ((flags & O_TMPFILE) == O_TMPFILE) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return open(path, flags, mode);
}

static void test_creation_is_atomic(void **state)
{
    (void)state;
    char path[256];
    at(path, sizeof path, "atomic.feox");
    const struct {
        feox_io_op op;
        int err;
    } faults[] = {{FEOX_IO_OPEN, EIO},         {FEOX_IO_PWRITE, EIO},
                  {FEOX_IO_PWRITE, ENOSPC},    {FEOX_IO_FSYNC, EIO},
                  {FEOX_IO_LINK_TMPFILE, EIO}, {FEOX_IO_LINK_TMPFILE, EEXIST}};
    feox_io_methods no_tmpfile = {.open = open_without_tmpfile,
                                  .pread = pread,
                                  .pwrite = pwrite,
                                  .fsync = fsync,
                                  .ftruncate = ftruncate,
                                  .rename = rename};
    for (int fallback = 0; fallback < 2; fallback++) {
        feox_io_set_methods(fallback ? &no_tmpfile : NULL);
        for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
            if (fallback && faults[f].op == FEOX_IO_LINK_TMPFILE)
                continue;
            /* the fallback's first open is the exclusive create itself */
            feox_io_inject(faults[f].op, 1, faults[f].err, false, false);
            feox_store *s;
            feox_err err = open_store(path, "o", false, &s);
            feox_io_inject_reset();
            if (faults[f].err == EEXIST) /* a name appeared, then vanished: retried */
                assert_true(err == FEOX_OK || err == FEOX_ERR_IO);
            else
                assert_true(err == FEOX_ERR_IO || err == FEOX_ERR_DISK_FULL);
            if (err == FEOX_OK) {
                assert_int_equal(feox_close(s), FEOX_OK);
                unlink(path);
                continue;
            }
            assert_false(exists(path)); /* never a name without a durable header */
        }
        /* And without a fault the file appears with its header. */
        make_store(path, "o", "created");
        assert_store_holds(path, "created");
        feox_file_info info;
        assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
        assert_int_equal(info.owner_hash, feox_owner_hash("o"));
        unlink(path);
    }
    feox_io_set_methods(NULL);
}

static void test_owner_recorded_and_kept(void **state)
{
    (void)state;
    assert_int_equal(feox_owner_hash(NULL), 0);
    assert_int_not_equal(feox_owner_hash(""), 0);
    assert_int_not_equal(feox_owner_hash("a"), feox_owner_hash("b"));
    char path[256];
    at(path, sizeof path, "owned.feox");
    make_store(path, "app.db:kv", "v1");
    feox_file_info info;
    assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
    assert_int_equal(info.owner_hash, feox_owner_hash("app.db:kv"));
    assert_false(info.in_use);
    uint64_t first_id = info.file_id;
    /* Opening an existing file with another owner neither checks nor changes it; a compaction
     * rewrites the file (new id) and keeps the recorded owner. */
    feox_store *s;
    assert_int_equal(open_store(path, "someone else", false, &s), FEOX_OK);
    assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
    assert_true(info.in_use);
    assert_int_equal(feox_insert(s, "k", 1, "v2", 2, NULL, NULL), FEOX_OK);
    assert_int_equal(feox_compact(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
    assert_int_not_equal(info.file_id, first_id);
    assert_int_equal(info.owner_hash, feox_owner_hash("app.db:kv"));
    assert_false(info.in_use);
    assert_store_holds(path, "v2");
    assert_int_equal(feox_remove_store_file(path, "app.db:kv", 0), FEOX_OK);
    assert_int_equal(feox_store_file_info(path, &info), FEOX_ERR_NOT_FOUND);
}

static void test_remove_acts_only_on_its_own_file(void **state)
{
    (void)state;
    char path[256], neighbour[4][256];
    const char *names[] = {"data.csv", "data-backup.sql", "data.txt", "data.feox.bak"};
    snapshot before[4];
    for (int i = 0; i < 4; i++) {
        write_bytes(at(neighbour[i], sizeof neighbour[i], names[i]), names[i], strlen(names[i]));
        take(neighbour[i], &before[i]);
    }
    at(path, sizeof path, "data.feox");
    make_store(path, "A", "mine");
    snapshot store_before;
    take(path, &store_before);
    /* Another owner, no owner given, and a foreign file are all refused. */
    assert_int_equal(feox_remove_store_file(path, "B", 0), FEOX_ERR_NOT_OWNER);
    assert_int_equal(feox_remove_store_file(path, NULL, FEOX_FILE_ALLOW_UNOWNED),
                     FEOX_ERR_NOT_OWNER);
    assert_int_equal(feox_remove_store_file(neighbour[0], "A", FEOX_FILE_ALLOW_UNOWNED),
                     FEOX_ERR_FORMAT);
    assert_int_equal(feox_remove_store_file(path, "A", 1u << 7), FEOX_ERR_INVALID_ARGUMENT);
    /* In use: an open in this process holds the lock. */
    feox_store *s;
    assert_int_equal(open_store(path, "A", true, &s), FEOX_OK);
    assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_ERR_LOCKED);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_unchanged(path, &store_before);
    /* The owner removes it: exactly it. */
    assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_OK);
    assert_false(exists(path));
    assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_ERR_NOT_FOUND);
    for (int i = 0; i < 4; i++) {
        assert_unchanged(neighbour[i], &before[i]);
        unlink(neighbour[i]);
    }
}

static void test_remove_takes_only_its_own_compaction_leftover(void **state)
{
    (void)state;
    char path[256], compact[256];
    at(path, sizeof path, "left.feox");
    at(compact, sizeof compact, "left.feox.compact");
    /* A leftover that is a feox store of the same owner goes with the store file. */
    make_store(compact, "A", "old rewrite");
    make_store(path, "A", "v");
    assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_OK);
    assert_false(exists(compact));
    /* A foreign file or another owner's store at that name stays. */
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0)
            write_bytes(compact, "not ours", 8);
        else
            make_store(compact, "B", "theirs");
        snapshot before;
        take(compact, &before);
        make_store(path, "A", "v");
        assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_OK);
        assert_false(exists(path));
        assert_unchanged(compact, &before);
        unlink(compact);
    }
}

static void test_rename_never_overwrites_and_updates_owner(void **state)
{
    (void)state;
    char from[256], to[256], taken[256];
    at(from, sizeof from, "r-from.feox");
    at(to, sizeof to, "r-to.feox");
    at(taken, sizeof taken, "r-taken.txt");
    make_store(from, "A", "payload");
    write_bytes(taken, "precious", 8);
    snapshot taken_before, from_before;
    take(taken, &taken_before);
    take(from, &from_before);
    assert_int_equal(feox_rename_store_file(from, taken, "A", "A2", 0), FEOX_ERR_IO);
    assert_detail(taken);
    assert_unchanged(taken, &taken_before);
    assert_unchanged(from, &from_before);
    /* Another store at to is not replaced either. */
    make_store(to, "A", "other");
    snapshot to_before;
    take(to, &to_before);
    assert_int_equal(feox_rename_store_file(from, to, "A", "A2", 0), FEOX_ERR_IO);
    assert_unchanged(to, &to_before);
    assert_unchanged(from, &from_before);
    assert_int_equal(feox_remove_store_file(to, "A", 0), FEOX_OK);
    /* Wrong owner, in use. */
    assert_int_equal(feox_rename_store_file(from, to, "B", "A2", 0), FEOX_ERR_NOT_OWNER);
    feox_store *s;
    assert_int_equal(open_store(from, NULL, true, &s), FEOX_OK);
    assert_int_equal(feox_rename_store_file(from, to, "A", "A2", 0), FEOX_ERR_LOCKED);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_false(exists(to));
    /* The rename itself: new name, new owner, same data. */
    assert_int_equal(feox_rename_store_file(from, to, "A", "A2", 0), FEOX_OK);
    assert_false(exists(from));
    feox_file_info info;
    assert_int_equal(feox_store_file_info(to, &info), FEOX_OK);
    assert_int_equal(info.owner_hash, feox_owner_hash("A2"));
    assert_int_equal(feox_remove_store_file(to, "A", 0), FEOX_ERR_NOT_OWNER);
    assert_store_holds(to, "payload");
    assert_int_equal(feox_rename_store_file(to, from, "A2", "A2", 0), FEOX_OK); /* same owner */
    assert_int_equal(feox_remove_store_file(from, "A2", 0), FEOX_OK);
    assert_unchanged(taken, &taken_before);
    unlink(taken);
}

/* A failure at any step of a rename or removal leaves both names as they were. */
static void test_failed_rename_or_remove_changes_nothing(void **state)
{
    (void)state;
    char from[256], to[256];
    at(from, sizeof from, "f-from.feox");
    at(to, sizeof to, "f-to.feox");
    make_store(from, "A", "kept");
    snapshot before;
    take(from, &before);
    const struct {
        feox_io_op op;
        int err;
    } faults[] = {{FEOX_IO_OPEN, EIO},
                  {FEOX_IO_PREAD, EIO},
                  {FEOX_IO_PWRITE, ENOSPC},
                  {FEOX_IO_FSYNC, EIO},
                  {FEOX_IO_RENAME_NOREPLACE, EXDEV}};
    for (size_t f = 0; f < sizeof faults / sizeof faults[0]; f++) {
        feox_io_inject(faults[f].op, 1, faults[f].err, false, false);
        feox_err err = feox_rename_store_file(from, to, "A", "B", 0);
        feox_io_inject_reset();
        assert_true(err == FEOX_ERR_IO || err == FEOX_ERR_DISK_FULL);
        assert_false(exists(to));
        feox_file_info info;
        assert_int_equal(feox_store_file_info(from, &info), FEOX_OK);
        assert_int_equal(info.owner_hash, feox_owner_hash("A")); /* the owner written back */
        snapshot now;
        take(from, &now); /* the same bytes (the mtime may differ: the header was rewritten) */
        assert_int_equal(now.len, before.len);
        assert_memory_equal(now.bytes, before.bytes, (size_t)now.len);
        assert_store_holds(from, "kept");
        take(from, &before); /* the next round compares with the file as it is now */
    }
    feox_io_inject(FEOX_IO_UNLINK, 1, EIO, false, false);
    assert_int_equal(feox_remove_store_file(from, "A", 0), FEOX_ERR_IO);
    feox_io_inject_reset();
    assert_true(exists(from));
    assert_store_holds(from, "kept");
    assert_int_equal(feox_remove_store_file(from, "A", 0), FEOX_OK);
}

static void test_unowned_files_need_allow_unowned(void **state)
{
    (void)state;
    char path[256], to[256];
    at(path, sizeof path, "legacy.feox");
    at(to, sizeof to, "legacy2.feox");
    make_store(path, NULL, "old"); /* no owner: the header's owner bytes are zero, as before */
    feox_file_info info;
    assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
    assert_int_equal(info.owner_hash, 0);
    assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_ERR_NOT_OWNER);
    assert_detail("FEOX_FILE_ALLOW_UNOWNED");
    assert_int_equal(feox_remove_store_file(path, NULL, 0), FEOX_ERR_NOT_OWNER);
    assert_int_equal(feox_rename_store_file(path, to, "A", "A", 0), FEOX_ERR_NOT_OWNER);
    assert_int_equal(feox_rename_store_file(path, to, "A", "A", FEOX_FILE_ALLOW_UNOWNED), FEOX_OK);
    assert_int_equal(feox_store_file_info(to, &info), FEOX_OK);
    assert_int_equal(info.owner_hash, feox_owner_hash("A")); /* it has an owner now */
    assert_store_holds(to, "old");
    make_store(path, NULL, "old");
    assert_int_equal(feox_remove_store_file(path, "A", FEOX_FILE_ALLOW_UNOWNED), FEOX_OK);
    assert_int_equal(feox_remove_store_file(to, "A", 0), FEOX_OK);
}

static void test_compaction_never_takes_a_foreign_compact_file(void **state)
{
    (void)state;
    char path[256], compact[256];
    at(path, sizeof path, "c.feox");
    at(compact, sizeof compact, "c.feox.compact");
    for (int kind = 0; kind < 2; kind++) {
        if (kind == 0)
            write_bytes(compact, "user data named like a rewrite", 30);
        else
            make_store(compact, "B", "another owner's store");
        snapshot before;
        take(compact, &before);
        feox_store *s;
        assert_int_equal(open_store(path, "A", false, &s), FEOX_OK); /* the open leaves it too */
        assert_int_equal(feox_insert(s, "k", 1, "v", 1, NULL, NULL), FEOX_OK);
        assert_int_not_equal(feox_compact(s), FEOX_OK);
        assert_detail(compact);
        assert_int_equal(feox_insert(s, "k", 1, "v2", 2, NULL, NULL), FEOX_OK); /* still usable */
        assert_int_equal(feox_close(s), FEOX_OK);
        assert_unchanged(compact, &before);
        assert_store_holds(path, "v2");
        assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_OK);
        assert_unchanged(compact, &before);
        unlink(compact);
    }
    /* A leftover of our own (a crash before the rename) is removed by the next open. */
    make_store(compact, "A", "stale rewrite");
    make_store(path, "A", "live");
    assert_false(exists(compact));
    feox_store *s;
    assert_int_equal(open_store(path, NULL, true, &s), FEOX_OK);
    assert_int_equal(feox_compact(s), FEOX_OK);
    assert_int_equal(feox_close(s), FEOX_OK);
    assert_false(exists(compact));
    assert_store_holds(path, "live");
    assert_int_equal(feox_remove_store_file(path, "A", 0), FEOX_OK);
}

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_foreign_regular_files_are_refused_untouched),
        cmocka_unit_test(test_special_files_are_refused),
        cmocka_unit_test(test_no_create),
        cmocka_unit_test(test_creation_is_atomic),
        cmocka_unit_test(test_owner_recorded_and_kept),
        cmocka_unit_test(test_remove_acts_only_on_its_own_file),
        cmocka_unit_test(test_remove_takes_only_its_own_compaction_leftover),
        cmocka_unit_test(test_rename_never_overwrites_and_updates_owner),
        cmocka_unit_test(test_failed_rename_or_remove_changes_nothing),
        cmocka_unit_test(test_unowned_files_need_allow_unowned),
        cmocka_unit_test(test_compaction_never_takes_a_foreign_compact_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

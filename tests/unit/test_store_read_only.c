/*
 * test_store_read_only.c — feox_config.read_only: a store file opened for reading only. It reads
 * everything a read-write open reads (also past a torn tail, and through the index snapshot a
 * clean close leaves), and writes nothing, ever: the file keeps its bytes (hash), size and mtime,
 * and no write, truncate, fsync, rename or unlink reaches the I/O table. Every write fails with
 * FEOX_ERR_READ_ONLY; flush is a no-op. Its shared lock excludes a writer's exclusive lock in
 * either order, in this process (the registry) and across processes (fork). A read-write open
 * the system refuses to give write access (EACCES, EROFS: injected through the I/O table, since
 * the tests may run as root) fails with FEOX_ERR_READ_ONLY, so the caller knows a read-only open
 * would read the file.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "base/io.h"
#include "feox.h"
#include "feox_test_support.h"

#define KS(str) (str), strlen(str)
#define KEYS 3000

/* gcc's ASan cannot fork a process with threads safely (test_store_lifecycle.c says why). */
#if FTEST_UNDER_ASAN
#define SKIP_FORK_UNDER_ASAN() skip()
#else
#define SKIP_FORK_UNDER_ASAN() ((void)0)
#endif

static char path[160];

static void temp_path(const char *name)
{
    snprintf(path, sizeof path, "/tmp/feox-read-only-%ld-%s.feox", (long)getpid(), name);
    unlink(path);
}

static feox_store *open_mode(bool read_only, ftest_clock *clock)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.read_only = read_only;
    if (clock) {
        cfg.clock = ftest_clock_read;
        cfg.clock_ctx = clock;
    }
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    if (err)
        fail_msg("open (read_only %d): %s: %s", read_only, feox_strerror(err), feox_error_detail());
    return s;
}

static void key_of(int i, char *out, size_t cap)
{
    snprintf(out, cap, "key:%05d", i);
}

/* KEYS keys (every 7th deleted again), a counter, a JSON document and a key with a TTL of 10 s
 * at clock (NULL: the real clock). */
static void fill(feox_store *s)
{
    char key[32], value[64];
    for (int i = 0; i < KEYS; i++) {
        key_of(i, key, sizeof key);
        snprintf(value, sizeof value, "value of %d", i);
        assert_int_equal(feox_insert(s, KS(key), KS(value), NULL, NULL), FEOX_OK);
    }
    for (int i = 0; i < KEYS; i += 7) {
        key_of(i, key, sizeof key);
        assert_int_equal(feox_delete(s, KS(key), NULL), FEOX_OK);
    }
    assert_int_equal(feox_atomic_increment(s, KS("counter"), 41, NULL, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, KS("doc"), KS("{\"a\":1}"), NULL, NULL), FEOX_OK);
    feox_write_opts ttl = {.flags = FEOX_WRITE_TTL, .ttl_secs = 10};
    assert_int_equal(feox_insert(s, KS("short-lived"), KS("soon gone"), &ttl, NULL), FEOX_OK);
}

/* Every key fill wrote is there (read as a read-write open would), by point reads and a scan;
 * besides them the store holds `extra` keys. */
static void check_keys(feox_store *s, bool expired, uint64_t extra)
{
    char key[32], want[64];
    for (int i = 0; i < KEYS; i++) {
        key_of(i, key, sizeof key);
        void *v = NULL;
        size_t n = 0;
        feox_err err = feox_get(s, KS(key), &v, &n, NULL);
        if (i % 7 == 0) {
            assert_int_equal(err, FEOX_ERR_KEY_NOT_FOUND);
            continue;
        }
        assert_int_equal(err, FEOX_OK);
        snprintf(want, sizeof want, "value of %d", i);
        assert_int_equal(n, strlen(want));
        assert_memory_equal(v, want, n);
        feox_free(v);
    }
    int64_t counter = 0;
    size_t n = 0;
    assert_int_equal(feox_get_into(s, KS("counter"), &counter, sizeof counter, &n, NULL), FEOX_OK);
    assert_int_equal(counter, 41); /* little-endian on the machines this runs on */
    assert_int_equal(feox_contains(s, KS("short-lived")), !expired);
    uint64_t live = KEYS - (KEYS + 6) / 7 + 2 + (expired ? 0 : 1) + extra;
    feox_cursor *c = NULL;
    assert_int_equal(feox_cursor_open(s, &c), FEOX_OK);
    uint64_t seen = 0;
    assert_int_equal(feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0), FEOX_OK);
    while (feox_cursor_valid(c)) {
        seen++;
        assert_int_equal(feox_cursor_next(c), FEOX_OK);
    }
    feox_cursor_close(c);
    assert_int_equal(seen, live);
    assert_int_equal(feox_len(s, 0), live);
    assert_int_equal(feox_check(s), FEOX_OK);
}

static void check_filled(feox_store *s, bool expired)
{
    check_keys(s, expired, 0);
}

/* What a file is: its bytes' hash, size and mtime. */
typedef struct file_state {
    XXH64_hash_t hash;
    off_t size;
    struct timespec mtime;
    ino_t inode;
} file_state;

static file_state state_of(const char *p)
{
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    file_state f = {.size = st.st_size, .mtime = st.st_mtim, .inode = st.st_ino};
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    char *bytes = malloc((size_t)st.st_size + 1);
    assert_non_null(bytes);
    assert_int_equal(read(fd, bytes, (size_t)st.st_size), (ssize_t)st.st_size);
    close(fd);
    f.hash = XXH64(bytes, (size_t)st.st_size, 0);
    free(bytes);
    return f;
}

static void assert_same_file(const file_state *a, const file_state *b)
{
    assert_int_equal(a->hash, b->hash);
    assert_int_equal(a->size, b->size);
    assert_int_equal(a->inode, b->inode);
    assert_int_equal(a->mtime.tv_sec, b->mtime.tv_sec);
    assert_int_equal(a->mtime.tv_nsec, b->mtime.tv_nsec);
}

/* Calls that change files, as the I/O table counts them (a read-only store makes none). */
static uint64_t changing_calls(void)
{
    static const feox_io_op ops[] = {FEOX_IO_PWRITE,          FEOX_IO_FSYNC,  FEOX_IO_FTRUNCATE,
                                     FEOX_IO_RENAME,          FEOX_IO_UNLINK, FEOX_IO_LINK_TMPFILE,
                                     FEOX_IO_RENAME_NOREPLACE};
    uint64_t n = 0;
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        n += feox_io_calls(ops[i]);
    return n;
}

static void pause_past_mtime_granularity(void)
{
    struct timespec ms20 = {.tv_nsec = 20 * 1000 * 1000};
    nanosleep(&ms20, NULL);
}

/* A store of fill's keys, closed cleanly (the file ends in an index snapshot). */
static void make_store(const char *name)
{
    temp_path(name);
    feox_store *s = open_mode(false, NULL);
    fill(s);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    pause_past_mtime_granularity();
}

static void test_reads_everything_writes_nothing(void **state)
{
    (void)state;
    make_store("reads");
    file_state before = state_of(path);
    uint64_t calls = changing_calls();
    feox_store *s = open_mode(true, NULL);
    assert_true(feox_store_read_only(s));
    check_filled(s, false);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_int_equal(st.disk_writes, 0);
    assert_int_equal(st.fsyncs, 0);
    assert_int_equal(feox_flush(s), FEOX_OK); /* nothing to make durable */
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    assert_int_equal(changing_calls(), calls);
    file_state after = state_of(path);
    assert_same_file(&before, &after);
    /* A read-write open reads the same afterwards. */
    s = open_mode(false, NULL);
    check_filled(s, false);
    assert_int_equal(feox_close(s), FEOX_OK);
    unlink(path);
}

/* The file as a crash leaves it: flushed records, no index snapshot, and a torn tail. */
static void make_crashed_store(const char *name, const char *tail, size_t tail_len)
{
    make_store(name);
    /* Without its snapshot: open, write one more record, flush, and copy that file (as kill -9
     * after the flush would leave it) before the close appends a snapshot. */
    feox_store *s = open_mode(false, NULL);
    assert_int_equal(feox_insert(s, KS("last"), KS("flushed"), NULL, NULL), FEOX_OK);
    assert_int_equal(feox_flush(s), FEOX_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    char *bytes = malloc((size_t)st.st_size);
    assert_non_null(bytes);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, bytes, (size_t)st.st_size), (ssize_t)st.st_size);
    close(fd);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, (size_t)st.st_size), (ssize_t)st.st_size);
    assert_int_equal(write(fd, tail, tail_len), (ssize_t)tail_len);
    close(fd);
    free(bytes);
    pause_past_mtime_granularity();
}

static void test_torn_tail_is_skipped_and_left_in_place(void **state)
{
    (void)state;
    /* A record's magic and then garbage: the start of a torn record. */
    static const char tail[] = "FXR1 a torn record: half of it reached the disk";
    make_crashed_store("torn", tail, sizeof tail);
    file_state before = state_of(path);
    uint64_t calls = changing_calls();
    feox_store *s = open_mode(true, NULL);
    check_keys(s, false, 1);
    void *v = NULL;
    size_t n = 0;
    assert_int_equal(feox_get(s, KS("last"), &v, &n, NULL), FEOX_OK);
    assert_memory_equal(v, "flushed", n);
    feox_free(v);
    feox_stats st;
    assert_int_equal(feox_get_stats(s, &st), FEOX_OK);
    assert_true(st.recovery_dropped_bytes >= sizeof tail);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    assert_int_equal(changing_calls(), calls);
    file_state after = state_of(path);
    assert_same_file(&before, &after); /* no cut, no snapshot at close */
    /* Twice: what one read-only open read, the next reads again. */
    s = open_mode(true, NULL);
    check_keys(s, false, 1);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    after = state_of(path);
    assert_same_file(&before, &after);
    /* The writer's open cuts the tail (and its close appends a snapshot): the file changes. */
    s = open_mode(false, NULL);
    check_keys(s, false, 1);
    assert_int_equal(feox_close(s), FEOX_OK);
    after = state_of(path);
    assert_int_not_equal(after.hash, before.hash);
    unlink(path);
}

static void test_expired_records_are_hidden(void **state)
{
    (void)state;
    ftest_clock clock;
    ftest_clock_init(&clock, FTEST_EPOCH_NS);
    temp_path("expiry");
    feox_store *s = open_mode(false, &clock);
    fill(s);
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    file_state before = state_of(path);
    ftest_clock_advance(&clock, 11 * FTEST_SEC);
    s = open_mode(true, &clock);
    check_filled(s, true); /* feox_len included: it removes the expired key from memory only */
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    file_state after = state_of(path);
    assert_same_file(&before, &after);
    unlink(path);
}

/* The error of a refused write: READ_ONLY, the detail naming the file. */
static void assert_refused(feox_err err)
{
    assert_int_equal(err, FEOX_ERR_READ_ONLY);
    assert_non_null(strstr(feox_error_detail(), "read-only"));
    assert_non_null(strstr(feox_error_detail(), path));
}

static void test_every_write_fails_with_read_only(void **state)
{
    (void)state;
    make_store("writes");
    file_state before = state_of(path);
    feox_store *s = open_mode(true, NULL);
    bool created = true, swapped = true;
    int64_t result = 0;
    feox_write_opts opts = {.flags = FEOX_WRITE_IF_ABSENT};
    assert_refused(feox_insert(s, KS("new"), KS("v"), NULL, &created));
    assert_refused(feox_insert(s, KS("key:00001"), KS("v"), NULL, NULL));
    assert_refused(feox_insert(s, KS("new"), KS("v"), &opts, NULL));
    assert_refused(feox_insert(s, "", 0, KS("v"), NULL, NULL)); /* before the key is judged */
    assert_refused(feox_insert(s, KS("new"), NULL, 5, NULL, NULL));
    assert_refused(feox_delete(s, KS("key:00001"), NULL));
    assert_refused(feox_delete(s, KS("absent"), NULL));
    assert_refused(feox_update_ttl(s, KS("key:00001"), 5, NULL));
    assert_refused(feox_atomic_increment(s, KS("counter"), 1, NULL, &result));
    assert_refused(feox_atomic_increment(s, KS("new-counter"), 1, NULL, &result));
    assert_refused(
        feox_compare_and_swap(s, KS("key:00001"), KS("value of 1"), KS("x"), NULL, &swapped));
    assert_false(swapped);
    assert_refused(feox_json_patch(
        s, KS("doc"), KS("[{\"op\":\"add\",\"path\":\"/b\",\"value\":2}]"), NULL, NULL, NULL));
    assert_refused(feox_compact(s));
    assert_refused(feox_set_owner(s, "someone"));
    assert_true(created);
    assert_int_equal(result, 0);
    /* The file cannot be removed or renamed while the read-only open holds it. */
    feox_file_info info;
    assert_int_equal(feox_store_file_info(path, &info), FEOX_OK);
    assert_true(info.in_use);
    assert_int_equal(feox_remove_store_file(path, NULL, FEOX_FILE_ALLOW_UNOWNED), FEOX_ERR_LOCKED);
    char to[200];
    snprintf(to, sizeof to, "%s.renamed", path);
    assert_int_equal(feox_rename_store_file(path, to, NULL, NULL, FEOX_FILE_ALLOW_UNOWNED),
                     FEOX_ERR_LOCKED);
    check_filled(s, false); /* nothing changed */
    assert_int_equal(feox_close(s), FEOX_OK);
    feox_close_wait();
    file_state after = state_of(path);
    assert_same_file(&before, &after);
    assert_int_equal(access(to, F_OK), -1);
    unlink(path);
}

static void test_open_rules(void **state)
{
    (void)state;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.read_only = true;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_ERR_INVALID_ARGUMENT); /* memory mode */
    assert_null(s);
    cfg.path = ":memory:";
    assert_int_equal(feox_open(&cfg, &s), FEOX_ERR_INVALID_ARGUMENT);
    /* Never created: NOT_FOUND, and nothing at the path. */
    temp_path("missing");
    cfg.path = path;
    assert_int_equal(feox_open(&cfg, &s), FEOX_ERR_NOT_FOUND);
    assert_int_equal(access(path, F_OK), -1);
    /* Not a feox store: FORMAT, the file untouched. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "a,b,c\n1,2,3\n", 12), 12);
    close(fd);
    file_state before = state_of(path);
    assert_int_equal(feox_open(&cfg, &s), FEOX_ERR_FORMAT);
    file_state after = state_of(path);
    assert_same_file(&before, &after);
    unlink(path);
    assert_false(feox_store_read_only(NULL));
}

static void test_one_mode_per_path_in_a_process(void **state)
{
    (void)state;
    make_store("modes");
    feox_store *r1 = open_mode(true, NULL);
    feox_store *r2 = open_mode(true, NULL);
    assert_ptr_equal(r1, r2); /* shared, as any second open of a path */
    /* A writer never gets the read-only instance. */
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    feox_store *w = NULL;
    assert_int_equal(feox_open(&cfg, &w), FEOX_ERR_READ_ONLY);
    assert_null(w);
    assert_non_null(strstr(feox_error_detail(), "open read-only in this process"));
    /* open_existing finds it whatever its mode. */
    cfg.open_existing = true;
    assert_int_equal(feox_open(&cfg, &w), FEOX_OK);
    assert_ptr_equal(w, r1);
    assert_true(feox_store_read_only(w));
    assert_int_equal(feox_close(w), FEOX_OK);
    assert_int_equal(feox_close(r2), FEOX_OK);
    assert_int_equal(feox_close(r1), FEOX_OK);
    /* Once closed, the writer opens it; and then a reader is refused. */
    w = open_mode(false, NULL);
    assert_false(feox_store_read_only(w));
    cfg.open_existing = false;
    cfg.read_only = true;
    feox_store *r = NULL;
    assert_int_equal(feox_open(&cfg, &r), FEOX_ERR_LOCKED);
    assert_null(r);
    assert_int_equal(feox_close(w), FEOX_OK);
    unlink(path);
}

/* The I/O table with open() refusing read-write opens of path with refuse_errno. */
static int refuse_errno;
static int refusing_open(const char *p, int flags, mode_t mode)
{
    if ((flags & O_ACCMODE) == O_RDWR && strcmp(p, path) == 0) {
        errno = refuse_errno;
        return -1;
    }
    return open(p, flags, mode);
}
static const feox_io_methods refusing_methods = {.open = refusing_open,
                                                 .pread = pread,
                                                 .pwrite = pwrite,
                                                 .fsync = fsync,
                                                 .ftruncate = ftruncate,
                                                 .rename = rename};

static void test_refused_write_access_says_read_only(void **state)
{
    (void)state;
    static const int errs[] = {EACCES, EROFS, EPERM};
    make_store("refused");
    file_state before = state_of(path);
    for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
        refuse_errno = errs[i];
        feox_io_set_methods(&refusing_methods);
        feox_config cfg;
        feox_config_init(&cfg);
        cfg.path = path;
        feox_store *s = NULL;
        feox_err err = feox_open(&cfg, &s);
        char detail[512];
        snprintf(detail, sizeof detail, "%s", feox_error_detail());
        feox_store *r = err == FEOX_ERR_READ_ONLY ? open_mode(true, NULL) : NULL;
        feox_io_set_methods(NULL);
        assert_int_equal(err, FEOX_ERR_READ_ONLY);
        assert_null(s);
        assert_non_null(strstr(detail, strerror(errs[i])));
        assert_non_null(strstr(detail, path));
        /* ... and the read-only open reads it. */
        assert_non_null(r);
        check_filled(r, false);
        assert_int_equal(feox_close(r), FEOX_OK);
        feox_close_wait();
    }
    /* Any other failure stays an I/O error. */
    refuse_errno = EIO;
    feox_io_set_methods(&refusing_methods);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    feox_store *s = NULL;
    feox_err err = feox_open(&cfg, &s);
    feox_io_set_methods(NULL);
    assert_int_equal(err, FEOX_ERR_IO);
    file_state after = state_of(path);
    assert_same_file(&before, &after);
    unlink(path);
}

/* In a forked child: open path in a mode and return the error. */
static feox_err child_open(bool read_only, feox_store **out)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.read_only = read_only;
    cfg.disable_ttl_sweeper = true;
    *out = NULL;
    return feox_open(&cfg, out);
}

/* Fork a child that opens path read_only or not, expecting want (and, for LOCKED, the detail
 * to name the file); the child's status is checked. */
static void child_expects(bool read_only, feox_err want)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        feox_store *s;
        feox_err err = child_open(read_only, &s);
        FTEST_CHILD_CHECK(err == want);
        FTEST_CHILD_CHECK(want != FEOX_ERR_LOCKED || strstr(feox_error_detail(), path));
        if (s)
            FTEST_CHILD_CHECK(feox_close(s) == FEOX_OK);
        _exit(0);
    }
    assert_int_equal(ftest_wait_child(pid), 0);
}

static void test_shared_and_exclusive_locks_across_processes(void **state)
{
    (void)state;
    SKIP_FORK_UNDER_ASAN();
    make_store("locks");
    /* A reader here: another process's writer is locked out, its readers are not. */
    feox_store *r = open_mode(true, NULL);
    child_expects(false, FEOX_ERR_LOCKED);
    child_expects(true, FEOX_OK);
    assert_int_equal(feox_close(r), FEOX_OK);
    /* A writer here: another process's reader is locked out. */
    feox_store *w = open_mode(false, NULL);
    child_expects(true, FEOX_ERR_LOCKED);
    assert_int_equal(feox_close(w), FEOX_OK);
    /* A reader in another process: this process's writer is locked out until it is gone, this
     * process's reader is not. */
    int to_child[2], to_parent[2];
    assert_int_equal(pipe(to_child), 0);
    assert_int_equal(pipe(to_parent), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        feox_store *s;
        char byte = 0;
        FTEST_CHILD_CHECK(child_open(true, &s) == FEOX_OK);
        FTEST_CHILD_CHECK(write(to_parent[1], "o", 1) == 1);
        FTEST_CHILD_CHECK(read(to_child[0], &byte, 1) == 1);
        FTEST_CHILD_CHECK(feox_close(s) == FEOX_OK);
        _exit(0);
    }
    char byte;
    assert_int_equal(read(to_parent[0], &byte, 1), 1);
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_ERR_LOCKED);
    assert_non_null(strstr(feox_error_detail(), "locked"));
    r = open_mode(true, NULL);
    check_filled(r, false);
    assert_int_equal(feox_close(r), FEOX_OK);
    assert_int_equal(write(to_child[1], "c", 1), 1);
    assert_int_equal(ftest_wait_child(pid), 0);
    w = open_mode(false, NULL); /* the child's lock is gone with its close */
    assert_int_equal(feox_close(w), FEOX_OK);
    close(to_child[0]);
    close(to_child[1]);
    close(to_parent[0]);
    close(to_parent[1]);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reads_everything_writes_nothing),
        cmocka_unit_test(test_torn_tail_is_skipped_and_left_in_place),
        cmocka_unit_test(test_expired_records_are_hidden),
        cmocka_unit_test(test_every_write_fails_with_read_only),
        cmocka_unit_test(test_open_rules),
        cmocka_unit_test(test_one_mode_per_path_in_a_process),
        cmocka_unit_test(test_refused_write_access_says_read_only),
        cmocka_unit_test(test_shared_and_exclusive_locks_across_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * test_ext_io_faults.c — injected I/O faults under the in-database mode (records in shadow
 * tables). A wrapper VFS ("faulty", tests/support/fault_vfs.c) fails the Nth file operation of one
 * class (xWrite, xSync, xTruncate, xRead, xFileSize, shm map/lock, xDelete, xOpen) with SQLite's
 * own error code, for N swept over a seeded workload, in rollback-journal and WAL mode.
 *
 * The oracle is a native twin: every change to the feox table `kv` is made in the same statement
 * or transaction as the same change to the native table `m` (through triggers on `m`, or paired
 * statements with the triggers switched off), so whatever SQLite decides after a fault, `kv` must
 * equal `m`. After each step that meets the fault: the step fails with an I/O code (IOERR_*, FULL,
 * CANTOPEN) or succeeds; an open transaction is committed (statement-atomic steps) or rolled back;
 * then on the faulty connection and on a second connection (plain VFS) `kv` equals `m` and
 * feox_check('kv') is 'ok'; later steps work; and a reopen shows `kv` equal to `m`.
 * Some steps run on the second connection, so the faulty connection's next statement refreshes
 * its cache from the change feed under the fault; the first step loads the cache lazily.
 * A lazy load's chunks are bounded by rows only (feox_sq_chunk_ns), so a run counts the same
 * operations as the clean run before it. FEOX_IOFAULT_SEED=<n> replays a seed (printed). Apart
 * from the sweeps, faults placed on purpose: a read of a find that rolls the transaction back
 * from inside the engine's call, and
 * read faults while values that left memory (max_memory) are read back: only the statements
 * asking for such a value fail, with SQLite's own code and message; and a write whose engine call
 * meets the fault (32 MiB of changes written out) fails with it too.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "fault_vfs.h"
#include "feox_ext.h"
#include "sql_exec.h"
#include "storage_sqlite.h"

/* ---- the faulty VFS ----------------------------------------------------------------------------
 */

enum fault_class {
    FAULT_WRITE,
    FAULT_SYNC,
    FAULT_TRUNCATE,
    FAULT_READ,
    FAULT_FILESIZE,
    FAULT_SHM,
    FAULT_DELETE,
    FAULT_OPEN,
    FAULT_CLASSES
};
static const char *const fault_names[FAULT_CLASSES] = {"write",    "sync", "truncate", "read",
                                                       "filesize", "shm",  "delete",   "open"};

typedef struct fault_state {
    bool armed;            /* count and fail operations now */
    enum fault_class kind; /* the class counted */
    unsigned long count;   /* operations of that class so far */
    unsigned long fail_at; /* fail this one (0: none) */
    bool full;             /* a write fails with SQLITE_FULL instead of SQLITE_IOERR_WRITE */
    bool persistent;       /* every later operation of the class in this step fails too */
    bool injected;
} fault_state;
static fault_state fault;

/* Whether this operation of class k fails. */
static bool fault_now(enum fault_class k)
{
    if (!fault.armed || fault.kind != k)
        return false;
    ++fault.count;
    if (fault.count != fault.fail_at &&
        !(fault.persistent && fault.fail_at && fault.count > fault.fail_at))
        return false;
    fault.injected = true;
    return true;
}

/* fault_vfs.c asks this before each operation: the code the Nth of the armed class fails with. */
static int faulty_op(feox_fault_op op)
{
    switch (op) {
    case FEOX_FAULT_READ: return fault_now(FAULT_READ) ? SQLITE_IOERR_READ : 0;
    case FEOX_FAULT_WRITE:
        return fault_now(FAULT_WRITE) ? (fault.full ? SQLITE_FULL : SQLITE_IOERR_WRITE) : 0;
    case FEOX_FAULT_TRUNCATE: return fault_now(FAULT_TRUNCATE) ? SQLITE_IOERR_TRUNCATE : 0;
    case FEOX_FAULT_SYNC: return fault_now(FAULT_SYNC) ? SQLITE_IOERR_FSYNC : 0;
    case FEOX_FAULT_FILESIZE: return fault_now(FAULT_FILESIZE) ? SQLITE_IOERR_FSTAT : 0;
    case FEOX_FAULT_SHM_MAP: return fault_now(FAULT_SHM) ? SQLITE_IOERR_SHMMAP : 0;
    case FEOX_FAULT_SHM_LOCK: return fault_now(FAULT_SHM) ? SQLITE_IOERR_SHMLOCK : 0;
    case FEOX_FAULT_DELETE: return fault_now(FAULT_DELETE) ? SQLITE_IOERR_DELETE : 0;
    case FEOX_FAULT_OPEN: return fault_now(FAULT_OPEN) ? SQLITE_CANTOPEN : 0;
    }
    return 0;
}

/* ---- the workload ------------------------------------------------------------------------------
 */

/* A step runs on the faulty connection, or ("@2 ...") on the second one without faults. Steps
 * marked atomic are statement-atomic across kv and m: after a failure inside BEGIN the rest is
 * committed; other steps are rolled back. */
typedef struct step {
    const char *sql;
    bool atomic;
} step;

#define OFF "UPDATE ctl SET on_ = 0; "
#define ON "UPDATE ctl SET on_ = 1; "

static const step workload[] = {
    /* with table_rows past one lazy-load chunk, these meet keys the cache has not loaded yet */
    {"SELECT value FROM kv WHERE key = 'k9000'", true},
    {"UPDATE m SET v = 'lazy' WHERE k IN ('k8000', 'k0001')", true},
    {"BEGIN; DELETE FROM m WHERE k = 'k9100'; INSERT INTO m VALUES ('k9100', 'again', 1);"
     " INSERT INTO m VALUES ('k9100x', 'new', 0); COMMIT",
     true},
    {"SELECT count(*) FROM kv WHERE key > 'k7000' AND key < 'k7100'", true},
    {"SELECT count(*) FROM kv WHERE key >= 'k0100'", true},
    {"INSERT INTO m VALUES ('a', 'alpha', 0)", true},
    /* autocommit functions: their own transactions (a new version, the same value) */
    {"SELECT feox_cas('kv', 'a', 'alpha', 'alpha')", true},
    {"BEGIN; INSERT INTO m VALUES ('b', 2, 0); INSERT INTO m VALUES ('c', 3.5, 1);"
     " INSERT INTO m VALUES ('d', x'00ff', 0); COMMIT",
     true},
    {"@2 INSERT INTO m VALUES ('x2', 'from two', 0)", true},
    {"SELECT * FROM kv WHERE key = 'x2'", true},
    {"UPDATE m SET v = v || '!' WHERE k IN ('a', 'b')", true},
    {"DELETE FROM m WHERE k BETWEEN 'k0010' AND 'k0020'", true},
    {"BEGIN; " OFF "SELECT feox_incr('kv', 'cnt', 5);"
     " INSERT INTO m VALUES ('cnt', 5, 0) ON CONFLICT(k) DO UPDATE SET v = v + 5; " ON "COMMIT",
     false},
    {"SELECT feox_incr('kv', 'cnt', 0)", true},
    {"BEGIN; SAVEPOINT s; INSERT INTO m VALUES ('s1', 1, 0); ROLLBACK TO s;"
     " INSERT INTO m VALUES ('s2', 2, 1); RELEASE s; COMMIT",
     true},
    {"BEGIN; " OFF "REPLACE INTO kv(key, value) VALUES ('a', 'A2');"
     " REPLACE INTO m VALUES ('a', 'A2', 0); DELETE FROM kv WHERE key = 'b'; DELETE FROM m WHERE k "
     "= 'b'; " ON "COMMIT",
     false},
    {"@2 DELETE FROM m WHERE k >= 'k0040' AND k < 'k0050'", true},
    {"SELECT count(*), sum(length(key)) FROM kv", true},
    {"BEGIN; " OFF "INSERT INTO kv(key, value) VALUES ('doc', '{\"n\":1}');"
     " SELECT feox_patch('kv', 'doc', '[{\"op\":\"replace\",\"path\":\"/n\",\"value\":2}]');"
     " SELECT feox_cas('kv', 'a', 'A2', 'A3'); INSERT INTO m VALUES ('doc', '{\"n\":2}', 0);"
     " UPDATE m SET v = 'A3' WHERE k = 'a' AND v = 'A2'; " ON "COMMIT",
     false},
    {"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300)"
     " INSERT INTO m SELECT printf('bulk%04d', i), i, i % 2 FROM c",
     true},
    {"UPDATE m SET v = v * 2 WHERE k GLOB 'bulk01*'", true},
    {"BEGIN; DELETE FROM m WHERE k GLOB 'bulk*' AND v % 3 = 0; UPDATE m SET e = 1 - e"
     " WHERE k GLOB 'bulk02*'; COMMIT",
     true},
    {"@2 UPDATE m SET v = 'two' WHERE k GLOB 'k00[0-3]*'", true},
    {"SELECT key FROM kv ORDER BY key DESC LIMIT 5", true},
    {"INSERT INTO m SELECT 'copy' || substr(key, 2), value, 0 FROM kv WHERE key GLOB 'k000*'",
     true},
    {"BEGIN; " OFF "SELECT feox_incr('kv', 'cnt', 7); "
     " INSERT INTO m VALUES ('cnt', 7, 0) ON CONFLICT(k) DO UPDATE SET v = v + 7;"
     " DELETE FROM kv WHERE key GLOB 'copy*'; DELETE FROM m WHERE k GLOB 'copy*'; " ON "COMMIT",
     false},
    {"DELETE FROM m WHERE k GLOB 'bulk*'", true},
};
#define N_STEPS (sizeof workload / sizeof workload[0])

static const char *const schema =
    "CREATE TABLE m(k TEXT PRIMARY KEY, v, e INTEGER NOT NULL);"
    "CREATE TABLE ctl(on_ INTEGER NOT NULL); INSERT INTO ctl VALUES (1);"
    "CREATE VIRTUAL TABLE kv USING feox;"
    "CREATE TRIGGER m_ins AFTER INSERT ON m WHEN (SELECT on_ FROM ctl) BEGIN"
    " INSERT OR REPLACE INTO kv(key, value, ttl) VALUES (new.k, new.v,"
    " CASE WHEN new.e THEN 100000 END); END;"
    "CREATE TRIGGER m_upd AFTER UPDATE ON m WHEN (SELECT on_ FROM ctl) BEGIN"
    " UPDATE kv SET value = new.v, ttl = CASE WHEN new.e THEN 100000 END WHERE key = old.k; END;"
    "CREATE TRIGGER m_del AFTER DELETE ON m WHEN (SELECT on_ FROM ctl) BEGIN"
    " DELETE FROM kv WHERE key = old.k; END;"
    "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < %d)"
    " INSERT INTO m SELECT printf('k%%04d', i), CASE i %% 4 WHEN 0 THEN i WHEN 1 THEN 'v' || i"
    " WHEN 2 THEN i * 0.5 ELSE randomblob(i %% 50) END, (i %% 5 = 0) FROM c;";

/* ---- helpers -----------------------------------------------------------------------------------
 */

static int table_rows = 400; /* rows m and kv start with (at most 9999) */
static char dir[256];
static char db_path[300];
static int problems;

static void problem(const char *fmt, ...)
{
    problems++;
    if (problems > 30)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static sqlite3 *open_db(const char *vfs)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    sqlite3_extended_result_codes(db, 1);
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 2000);
    return db;
}

/* The rows of a query as text, or NULL (with *err) if it failed. Never meets a fault. */
static char *rows(sqlite3 *db, const char *sql, char **err)
{
    bool was = fault.armed;
    fault.armed = false;
    sqlite3_stmt *st = NULL;
    sqlite3_str *s = sqlite3_str_new(NULL);
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW) {
        if ((rc = sqlite3_step(st)) != SQLITE_ROW)
            break;
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const char *t = (const char *)sqlite3_column_text(st, i);
            sqlite3_str_appendf(s, "%s%s", i ? "|" : "", t ? t : "NULL");
        }
        sqlite3_str_appendchar(s, 1, '\n');
    }
    if (rc == SQLITE_DONE)
        rc = SQLITE_OK;
    if (rc != SQLITE_OK)
        *err = sqlite3_mprintf("%s (%s)", sqlite3_errmsg(db), sqlite3_errstr(rc));
    sqlite3_finalize(st);
    fault.armed = was;
    char *out = sqlite3_str_finish(s);
    if (rc != SQLITE_OK) {
        sqlite3_free(out);
        return NULL;
    }
    return out ? out : sqlite3_mprintf("");
}

/* kv equals m and feox_check passes on db; false (with a problem said) if not. */
static bool consistent(sqlite3 *db, const char *who, const char *where)
{
    char *err = NULL;
    char *feox = rows(
        db, "SELECT key, typeof(value), quote(value), ttl IS NOT NULL FROM kv ORDER BY key", &err);
    if (!feox) {
        problem("%s, %s: reading kv failed: %s", where, who, err);
        sqlite3_free(err);
        return false;
    }
    char *native = rows(db, "SELECT k, typeof(v), quote(v), e FROM m ORDER BY k", &err);
    assert_non_null(native);
    bool ok = true;
    if (strcmp(feox, native)) {
        size_t i = 0;
        while (feox[i] && feox[i] == native[i])
            i++;
        while (i && feox[i - 1] != '\n')
            i--;
        problem("%s, %s: kv differs from its native twin m from here:\n  kv: %.160s\n  m:  %.160s",
                where, who, feox + i, native + i);
        ok = false;
    }
    char *check = rows(db, "SELECT feox_check('kv')", &err);
    if (!check || strcmp(check, "ok\n")) {
        problem("%s, %s: feox_check: %s", where, who, check ? check : err);
        ok = false;
    }
    sqlite3_free(err);
    sqlite3_free(check);
    sqlite3_free(feox);
    sqlite3_free(native);
    return ok;
}

static void remove_db(void)
{
    static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
    for (size_t i = 0; i < sizeof suffixes / sizeof suffixes[0]; i++) {
        char p[320];
        snprintf(p, sizeof p, "%s%s", db_path, suffixes[i]);
        unlink(p);
    }
}

static void copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    assert_int_equal(fclose(in), 0);
    assert_int_equal(fclose(out), 0);
}

/* A fresh database with the schema and its rows, in journal mode `mode`: made once per mode and
 * size, then copied (closed cleanly, so the database file alone holds everything). */
static void make_db(const char *mode)
{
    char template_path[340];
    snprintf(template_path, sizeof template_path, "%s/template-%s-%d.db", dir, mode, table_rows);
    remove_db();
    if (access(template_path, F_OK) != 0) {
        sqlite3 *db = open_db(NULL);
        ftest_exec_ok(db, "PRAGMA synchronous = OFF");
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA journal_mode=%s", mode);
        ftest_exec_ok(db, sql);
        char *sql_rows = sqlite3_mprintf(schema, table_rows);
        ftest_exec_ok(db, sql_rows);
        sqlite3_free(sql_rows);
        assert_int_equal(sqlite3_close(db), SQLITE_OK);
        copy_file(db_path, template_path);
    }
    copy_file(template_path, db_path);
}

static bool io_code(int rc)
{
    int primary = rc & 0xff;
    return primary == SQLITE_IOERR || primary == SQLITE_FULL || primary == SQLITE_CANTOPEN;
}

/* One run of the workload with operation n of class k failing (n = 0: none). Returns whether the
 * fault was reached; *total is the number of operations of class k counted. */
static bool run(const char *mode, enum fault_class k, unsigned long n, bool full, bool persistent,
                unsigned long *total)
{
    make_db(mode);
    sqlite3 *one = open_db("faulty");
    ftest_exec_ok(one, "PRAGMA cache_size = 4"); /* pages are read again, so reads can fail */
    sqlite3 *two = open_db(NULL);
    ftest_exec_ok(two, "PRAGMA synchronous = OFF"); /* its fsyncs would only slow the sweep */
    char where[160];
    fault = (fault_state){.kind = k, .fail_at = n, .full = full, .persistent = persistent};
    char how[32];
    snprintf(how, sizeof how, "%s%s", full ? " FULL" : "", persistent ? " persistent" : "");
    bool ok = true;
    for (size_t i = 0; i < N_STEPS && ok; i++) {
        const char *sql = workload[i].sql;
        bool on_two = !strncmp(sql, "@2 ", 3);
        sqlite3 *db = on_two ? two : one;
        snprintf(where, sizeof where, "%s, %s fault %lu%s, step %zu", mode, fault_names[k], n, how,
                 i);
        bool injected_before = fault.injected;
        char *err = NULL;
        fault.armed = !on_two;
        int rc = sqlite3_exec(db, on_two ? sql + 3 : sql, NULL, NULL, &err);
        fault.armed = false;
        bool hit = fault.injected && !injected_before;
        if (hit)
            fault.fail_at = 0; /* one failing step per run */
        if (rc != SQLITE_OK && !hit) {
            problem("%s failed without a fault: %s (%s)\n  %s", where, err, sqlite3_errstr(rc),
                    sql);
            ok = false;
        } else if (rc != SQLITE_OK && !io_code(rc)) {
            problem("%s: an I/O fault surfaced as %s (%s), not an I/O code\n  %s", where,
                    sqlite3_errstr(rc), err, sql);
            ok = false;
        }
        sqlite3_free(err);
        if (rc != SQLITE_OK && !sqlite3_get_autocommit(db)) {
            err = NULL;
            const char *end = workload[i].atomic ? "COMMIT" : "ROLLBACK";
            int erc = sqlite3_exec(db, end, NULL, NULL, &err);
            if (erc != SQLITE_OK) {
                problem("%s: %s after the fault failed: %s", where, end, err);
                ok = false;
                if (!sqlite3_get_autocommit(db))
                    (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            }
            sqlite3_free(err);
        }
        if (hit || rc != SQLITE_OK) {
            ok = consistent(one, "faulty connection", where) && ok;
            ok = consistent(two, "second connection", where) && ok;
        }
    }
    bool reached = fault.injected;
    if (total)
        *total = fault.count;
    snprintf(where, sizeof where, "%s, %s fault %lu%s, end", mode, fault_names[k], n, how);
    if (ok) {
        ok = consistent(one, "faulty connection", where);
        ok = consistent(two, "second connection", where) && ok;
    }
    assert_int_equal(sqlite3_close(one), SQLITE_OK);
    assert_int_equal(sqlite3_close(two), SQLITE_OK);
    if (ok) {
        snprintf(where, sizeof where, "%s, %s fault %lu%s, reopened", mode, fault_names[k], n, how);
        sqlite3 *again = open_db(NULL);
        (void)consistent(again, "new connection", where);
        assert_int_equal(sqlite3_close(again), SQLITE_OK);
    }
    return reached;
}

/* splitmix64 */
static uint64_t rng_state;
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

#define ALL_CLASSES ((1u << FAULT_CLASSES) - 1)
#define EARLY_READS 60
static unsigned long runs_per_class = 60; /* FEOX_IOFAULT_RUNS=<n> explores more */
#define RUNS_PER_CLASS runs_per_class

/* Sweeps the fault over operation numbers of each class: every one up to RUNS_PER_CLASS, else a
 * seeded sample of RUNS_PER_CLASS of them. */
static void sweep(const char *mode, unsigned classes)
{
    problems = 0;
    unsigned long runs = 0;
    for (int k = 0; k < FAULT_CLASSES; k++) {
        if (!(classes & (1u << k)))
            continue;
        unsigned long total = 0;
        assert_false(run(mode, (enum fault_class)k, 0, false, false, &total));
        assert_int_equal(problems, 0); /* the clean run holds */
        for (unsigned long i = 0; i < RUNS_PER_CLASS && i < total; i++) {
            unsigned long n = total <= RUNS_PER_CLASS ? i + 1 : 1 + rng_next() % total;
            bool full = k == FAULT_WRITE && (rng_next() & 1);
            bool persistent = rng_next() & 1;
            if (!run(mode, (enum fault_class)k, n, full, persistent, NULL))
                problem("%s, %s fault %lu: not reached (the workload is not deterministic?)", mode,
                        fault_names[k], n);
            runs++;
        }
        print_message("%s: %s: %lu operations\n", mode, fault_names[k], total);
    }
    print_message("%s: %lu runs with a fault; %d problems\n", mode, runs, problems);
    assert_int_equal(problems, 0);
}

static void test_faults_rollback_journal(void **state)
{
    (void)state;
    sweep("DELETE", ALL_CLASSES);
}

static void test_faults_wal(void **state)
{
    (void)state;
    sweep("WAL", ALL_CLASSES);
}

/* A table larger than one chunk of the lazy load: reads and writes fail while the cache loads.
 * Among them, reads of a find: a key the cache has not loaded yet is read from <t>_data while
 * the engine holds the key's shard lock, and SQLite answers an I/O error there by rolling the
 * whole transaction back from inside the find's statement; the table's xRollback then leaves
 * the cache's undo to its next use (the undo's writes would wait for that lock: under ASan,
 * where a chunk loads fewer rows, run 117 of the read sweep hung here). */
static void test_faults_during_lazy_load(void **state)
{
    (void)state;
    table_rows = 9999;
    unsigned long saved = runs_per_class;
    runs_per_class = runs_per_class / 3;
    sweep("WAL", 1u << FAULT_READ | 1u << FAULT_WRITE);
    runs_per_class = saved;
    table_rows = 400;
}

/* Every one of the first reads fails in turn (not a sample): they include the first write's
 * commit, whose expiry sweep seeks the expiry index (the connection does not know yet when its
 * rows expire). A read that fails there rolls the whole transaction back inside xSync; the commit
 * must then fail, not go on and commit the rest in transactions of their own. */
static void test_every_early_read_fault(void **state)
{
    (void)state;
    static const char *const modes[] = {"DELETE", "WAL"};
    for (size_t m = 0; m < 2; m++) {
        problems = 0;
        for (unsigned long n = 1; n <= EARLY_READS; n++)
            if (!run(modes[m], FAULT_READ, n, false, false, NULL))
                problem("%s, read fault %lu: not reached", modes[m], n);
        assert_int_equal(problems, 0);
    }
}

/* ---- one writing statement, every fault position ----------------------------------------------
 * Each writing form on its own (INSERT, UPDATE, DELETE, feox_incr on an existing and a new key,
 * feox_cas, feox_patch, a multi-row UPDATE), in autocommit and inside BEGIN after a native write
 * (ctl.on_ from 1 to 2), with the fault at every position of its class (spread over at most
 * ONE_STATEMENT_RUNS of them): the statement is all or nothing. Each connection (the faulty one,
 * the second one, and a new one after both closed) shows kv as before the statement with on_ = 1,
 * or as after it with on_ = 2 (never one without the other); the two live connections agree;
 * feox_check is ok; and the faulty connection writes again at once. */

#define ONE_STATEMENT_RUNS 24

static const char *const one_statements[] = {
    "INSERT INTO kv(key, value) VALUES ('new', 'v')",
    "UPDATE kv SET value = 'upd' WHERE key = 'k0003'",
    "DELETE FROM kv WHERE key = 'k0004'",
    "SELECT feox_incr('kv', 'k0008', 5)",
    "SELECT feox_incr('kv', 'fresh', 1)",
    "SELECT feox_cas('kv', 'k0001', 'v1', 'swapped')",
    "SELECT feox_patch('kv', 'doc', '[{\"op\":\"replace\",\"path\":\"/n\",\"value\":2}]')",
    "UPDATE kv SET value = 'many' WHERE key BETWEEN 'k0010' AND 'k0019'",
};

#define KV_STATE                                                                                   \
    "SELECT (SELECT on_ FROM ctl), key, typeof(value), quote(value) FROM kv ORDER BY key"

/* kv and ctl as one text on db, or NULL if the read failed (said as a problem). */
static char *kv_state(sqlite3 *db, const char *where)
{
    char *err = NULL;
    char *out = rows(db, KV_STATE, &err);
    if (!out)
        problem("%s: reading kv failed: %s", where, err);
    sqlite3_free(err);
    return out;
}

/* Is state one of the two the statement may leave? */
static bool either(const char *state, const char *before, const char *after)
{
    return state && (!strcmp(state, before) || !strcmp(state, after));
}

/* One run of sql (inside BEGIN after the native write if in_txn; in autocommit the native write
 * is committed first) with fault n of class k (0: none). Returns whether the fault was reached;
 * *total counts the class's operations. A clean run (n = 0) stores the states before and after
 * in *before and *after; a faulty one checks against them. */
static bool one_statement_run(const char *mode, const char *sql, bool in_txn, enum fault_class k,
                              unsigned long n, unsigned long *total, char **before, char **after)
{
    make_db(mode);
    sqlite3 *one = open_db("faulty");
    ftest_exec_ok(one, "PRAGMA cache_size = 4; INSERT INTO m VALUES ('doc', '{\"n\":1}', 0)");
    sqlite3 *two = open_db(NULL);
    char where[400];
    snprintf(where, sizeof where, "%s, %s%s, %s fault %lu", mode, in_txn ? "in BEGIN: " : "", sql,
             fault_names[k], n);
    if (!in_txn)
        ftest_exec_ok(one, "UPDATE ctl SET on_ = 2");
    char *was = kv_state(one, where);
    assert_non_null(was);
    char *script = in_txn ? sqlite3_mprintf("BEGIN; UPDATE ctl SET on_ = 2; %s; COMMIT", sql)
                          : sqlite3_mprintf("%s", sql);
    fault = (fault_state){.kind = k, .fail_at = n, .armed = true};
    char *err = NULL;
    int rc = sqlite3_exec(one, script, NULL, NULL, &err);
    fault.armed = false;
    sqlite3_free(script);
    if (rc != SQLITE_OK && !fault.injected)
        problem("%s: failed without a fault: %s", where, err);
    else if (rc != SQLITE_OK && !io_code(rc))
        problem("%s: an I/O fault surfaced as %s (%s)", where, sqlite3_errstr(rc), err);
    sqlite3_free(err);
    err = NULL;
    if (!sqlite3_get_autocommit(one))
        (void)sqlite3_exec(one, "ROLLBACK", NULL, NULL, NULL);
    char *a = kv_state(one, where);
    char *b = kv_state(two, where);
    if (n == 0) {
        *before = was;
        *after = a;
        was = a = NULL;
    } else {
        if (a && strcmp(was, *before))
            problem("%s: the run did not start from the clean run's state", where);
        if (a && !either(a, *before, *after))
            problem("%s: the faulty connection shows neither the state before nor after:\n%.400s",
                    where, a);
        if (a && b && strcmp(a, b))
            problem("%s: the two connections differ:\n one: %.300s\n two: %.300s", where, a, b);
    }
    char *check = rows(one, "SELECT feox_check('kv')", &err);
    if (!check || strcmp(check, "ok\n"))
        problem("%s: feox_check: %s", where, check ? check : err);
    sqlite3_free(check);
    sqlite3_free(err);
    err = NULL;
    if (sqlite3_exec(one, "INSERT OR REPLACE INTO kv(key, value) VALUES ('zz', 1)", NULL, NULL,
                     &err) != SQLITE_OK)
        problem("%s: the next write failed: %s", where, err);
    sqlite3_free(err);
    bool reached = fault.injected;
    if (total)
        *total = fault.count;
    char *live = kv_state(two, where); /* the write shows on the other connection... */
    assert_int_equal(sqlite3_close(one), SQLITE_OK);
    assert_int_equal(sqlite3_close(two), SQLITE_OK);
    sqlite3 *again = open_db(NULL);
    char *reopened = kv_state(again, where); /* ...and after a reopen */
    if (live && reopened && (strcmp(live, reopened) || !strstr(live, "|zz|integer|1\n")))
        problem("%s: after the next write, live and reopened differ:\n live: %.300s\n new: %.300s",
                where, live, reopened);
    assert_int_equal(sqlite3_close(again), SQLITE_OK);
    sqlite3_free(live);
    sqlite3_free(reopened);
    sqlite3_free(was);
    sqlite3_free(a);
    sqlite3_free(b);
    return reached;
}

static void test_every_fault_of_one_statement(void **state)
{
    (void)state;
    static const char *const modes[] = {"DELETE", "WAL"};
    static const enum fault_class classes[] = {FAULT_WRITE, FAULT_SYNC, FAULT_READ, FAULT_TRUNCATE};
    problems = 0;
    unsigned long runs = 0;
    for (size_t m = 0; m < 2; m++)
        for (size_t q = 0; q < sizeof one_statements / sizeof one_statements[0]; q++)
            for (int in_txn = 0; in_txn < 2; in_txn++) {
                const char *sql = one_statements[q];
                char *before = NULL, *after = NULL;
                for (size_t c = 0; c < sizeof classes / sizeof classes[0]; c++) {
                    unsigned long total = 0;
                    if (c == 0)
                        (void)one_statement_run(modes[m], sql, in_txn, classes[c], 0, &total,
                                                &before, &after);
                    else {
                        char *b2 = NULL, *a2 = NULL;
                        (void)one_statement_run(modes[m], sql, in_txn, classes[c], 0, &total, &b2,
                                                &a2);
                        sqlite3_free(b2);
                        sqlite3_free(a2);
                    }
                    assert_non_null(after);
                    unsigned long steps = total < ONE_STATEMENT_RUNS ? total : ONE_STATEMENT_RUNS;
                    for (unsigned long i = 0; i < steps; i++) {
                        unsigned long n = 1 + i * total / steps;
                        if (!one_statement_run(modes[m], sql, in_txn, classes[c], n, NULL, &before,
                                               &after))
                            problem("%s, %s, %s fault %lu: not reached", modes[m], sql,
                                    fault_names[classes[c]], n);
                        runs++;
                    }
                }
                sqlite3_free(before);
                sqlite3_free(after);
            }
    print_message("one statement: %lu runs with a fault; %d problems\n", runs, problems);
    assert_int_equal(problems, 0);
}

/* ---- a rollback from inside a find ------------------------------------------------------------
 * The case of commit 6196db2, made to happen every time. A write transaction has changed keys in
 * every one of the engine's 64 shards (so undoing it takes every shard lock), then reads a key
 * the lazy load has not reached: the engine looks it up in <t>_data (FIND) holding the key's
 * shard lock, and the first file read of that statement fails. SQLite answers an I/O error in a
 * read by rolling the whole transaction back there, from inside FIND: the table's xRollback runs
 * while the engine holds that shard lock. Undoing the cache then waited for the lock forever;
 * now the undo waits for the table's next use. xRollbackTo is not reached this way: SQLite rolls
 * a statement back (not the transaction) only for a statement that writes, and FIND only reads.
 * The scenario runs in a child process, so that a hang fails the test instead of blocking it. */

#define FIND_HANG_SECONDS 120

/* Each check of the child: its number is the child's exit status when it fails. */
static int child_check(bool ok, int which, const char *what)
{
    if (!ok)
        fprintf(stderr, "rollback inside a find: check %d failed: %s\n", which, what);
    return ok ? 0 : which;
}

static int child_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* The rows of sql on db equal want. */
static bool child_rows_are(sqlite3 *db, const char *sql, const char *want)
{
    char *err = NULL;
    char *got = rows(db, sql, &err);
    bool same = got != NULL && strcmp(got, want) == 0;
    if (!same)
        fprintf(stderr, "  %s\n  got: %s  want: %s", sql, got ? got : err, want);
    sqlite3_free(got);
    sqlite3_free(err);
    return same;
}

static int rollback_inside_a_find_child(void)
{
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) != 0)
        return 90;
    char *err = NULL;
    if (sqlite3_feox_init(db, &err, NULL) != SQLITE_OK ||
        /* 30000 rows: past two chunks of the lazy load (8192 rows at most each) */
        child_exec(db, "PRAGMA journal_mode=WAL; CREATE VIRTUAL TABLE kv USING feox;"
                       " WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c"
                       " WHERE i < 29999) INSERT INTO kv(key, value)"
                       " SELECT printf('k%05d', i), i FROM c") != SQLITE_OK)
        return 91;
    sqlite3_close(db);
    /* Another connection, through the faulty VFS: its page cache holds none of the table. */
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, "faulty") != SQLITE_OK ||
        sqlite3_feox_init(db, &err, NULL) != SQLITE_OK)
        return 92;
    sqlite3_extended_result_codes(db, 1);
    int bad = child_check(child_rows_are(db, "SELECT value FROM kv WHERE key = 'k00001'", "1\n"), 1,
                          "the first chunk");
    /* 4096 keys of the first chunk: every one of the 64 shards has a change to undo */
    bad = bad ? bad
              : child_check(child_exec(db, "BEGIN; UPDATE kv SET value = -value WHERE"
                                           " key < 'k04096'") == SQLITE_OK,
                            2, "the changes before the fault");
    if (bad)
        return bad;
    fault = (fault_state){.armed = true, .kind = FAULT_READ, .fail_at = 1};
    int rc = child_exec(db, "UPDATE kv SET value = 'x' WHERE key = 'k29999'");
    fault.armed = false;
    bad = child_check(fault.injected, 3, "the read fault was injected");
    bad = bad ? bad : child_check((rc & 0xff) == SQLITE_IOERR, 4, "the write failed: I/O error");
    bad = bad ? bad : child_check(sqlite3_get_autocommit(db), 5, "the transaction rolled back");
    /* The next use undoes the cache: every change of the transaction is gone. */
    static const struct {
        const char *sql, *want;
    } after[] = {
        {"SELECT count(*), sum(value), min(value) FROM kv", "30000|449985000|0\n"},
        {"SELECT value FROM kv WHERE key IN ('k00005', 'k29999') ORDER BY key", "5\n29999\n"},
        {"SELECT feox_check('kv')", "ok\n"},
    };
    for (int i = 0; i < 3 && !bad; i++)
        bad = child_check(child_rows_are(db, after[i].sql, after[i].want), 6 + i, after[i].sql);
    bad = bad ? bad
              : child_check(child_exec(db, "UPDATE kv SET value = 7 WHERE key = 'k29998'") == 0, 9,
                            "a write after it");
    bad = bad ? bad
              : child_check(child_rows_are(db, "SELECT value FROM kv WHERE key = 'k29998'", "7\n"),
                            10, "the write is there");
    sqlite3_close(db);
    return bad;
}

static void test_rollback_inside_a_find(void **state)
{
    (void)state;
    remove_db();
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(rollback_inside_a_find_child());
    int status = 0;
    pid_t done = 0;
    for (int tenths = 0; tenths < FIND_HANG_SECONDS * 10 && done == 0; tenths++) {
        done = waitpid(child, &status, WNOHANG);
        if (done == 0)
            nanosleep(&(struct timespec){0, 100000000}, NULL);
    }
    if (done == 0) {
        kill(child, SIGKILL);
        waitpid(child, &status, 0);
        fail_msg("the rollback inside a find hung (more than %d s)", FIND_HANG_SECONDS);
    }
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    remove_db();
}

/* Step sql to its end; its result code (extended) and, on failure, its message in msg. */
static int step_all(sqlite3 *db, const char *sql, char *msg, size_t msg_cap)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    while (rc == SQLITE_OK || rc == SQLITE_ROW)
        rc = sqlite3_step(st);
    rc = rc == SQLITE_DONE ? SQLITE_OK : sqlite3_extended_errcode(db);
    snprintf(msg, msg_cap, "%s", rc == SQLITE_OK ? "" : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc;
}

/* Larger than memory: 1 MB of values in a 200 KB cache, so most values stay in kv_data and are
 * read back by key. Inside one read transaction every later file read fails: statements that
 * ask for no value still answer from the cache (no read), and those that read a value back fail
 * with SQLite's own code and message (SQLITE_IOERR_READ, "disk I/O error") naming the table. */
static void test_read_back_faults_fail_only_statements_asking_for_the_value(void **state)
{
    (void)state;
    remove_db();
    sqlite3 *db = open_db("faulty");
    ftest_exec_ok(db,
                  "CREATE VIRTUAL TABLE kv USING feox(max_memory=200000);"
                  "BEGIN;"
                  "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 199)"
                  " INSERT INTO kv(key, value) SELECT printf('k%04d', i), zeroblob(5000) FROM n;"
                  "COMMIT");
    sqlite3_close(db);
    db = open_db("faulty");
    /* a page cache far smaller than kv_data: reading a value back reads the file */
    ftest_exec_ok(db,
                  "PRAGMA cache_size = 10; BEGIN; SELECT count(*) FROM kv"); /* loads the cache */
    fault = (fault_state){.armed = true, .kind = FAULT_READ, .fail_at = 1, .persistent = true};
    char msg[300];
    static const char *const no_value[] = {
        "SELECT count(*) FROM kv", "SELECT key FROM kv", "SELECT key FROM kv WHERE key < 'k0100'",
        "SELECT key, ts, ttl FROM kv WHERE key >= 'k0150' ORDER BY key DESC"};
    for (size_t i = 0; i < sizeof no_value / sizeof *no_value; i++) {
        int rc = step_all(db, no_value[i], msg, sizeof msg);
        if (rc != SQLITE_OK)
            fail_msg("%s: %s (%d)", no_value[i], msg, rc);
    }
    assert_false(fault.injected);
    /* each in a transaction of its own: after an I/O error SQLite fails the transaction's
     * later statements itself */
    static const char *const with_value[] = {"SELECT value FROM kv",
                                             "SELECT length(value) FROM kv WHERE key >= 'k0100'",
                                             "SELECT value FROM kv WHERE key = 'k0150'"};
    for (size_t i = 0; i < sizeof with_value / sizeof *with_value; i++) {
        fault.armed = false;
        if (!sqlite3_get_autocommit(db)) /* an I/O error may have rolled it back */
            ftest_exec_ok(db, "ROLLBACK");
        ftest_exec_ok(db, "BEGIN; SELECT count(*) FROM kv");
        fault = (fault_state){.armed = true, .kind = FAULT_READ, .fail_at = 1, .persistent = true};
        int rc = step_all(db, with_value[i], msg, sizeof msg);
        bool said = strstr(msg, "feox: kv: ") && strstr(msg, "disk I/O error");
        if (rc != SQLITE_IOERR_READ || !said)
            fail_msg("%s: %s (%d), want SQLITE_IOERR_READ", with_value[i], msg, rc);
        assert_true(fault.injected);
    }
    fault.armed = false;
    if (!sqlite3_get_autocommit(db))
        ftest_exec_ok(db, "ROLLBACK");
    char *err = NULL;
    char *out = rows(db, "SELECT count(*), sum(length(value)) FROM kv", &err);
    if (!out)
        fail_msg("after the faults: %s", err);
    assert_string_equal(out, "200|1000000\n");
    sqlite3_free(out);
    sqlite3_close(db);
    remove_db();
}

/* ---- a write's own backend error ---------------------------------------------------------------
 * An INSERT whose engine write meets SQLite's error fails with that error, as a read does: the
 * backend's extended code (SQLITE_IOERR_WRITE, SQLITE_FULL) and SQLite's message, naming the table
 * once, not the engine's generic "I/O error" (SQLITE_IOERR). (A write's look-up of a key the lazy
 * load has not reached is not met here: a write transaction loads the whole table first, and a
 * read fault there fails it through db_mode.c already.) */

/* "feox: kv: " exactly once in msg, and SQLite's text. */
static void expect_said_once(const char *sql, int rc, const char *msg, int want_rc,
                             const char *sqlite_text)
{
    const char *first = strstr(msg, "feox: kv: ");
    bool once = first != NULL && strstr(first + 1, "feox: kv: ") == NULL;
    if (rc != want_rc || !once || strstr(msg, sqlite_text) == NULL)
        fail_msg("%s: '%s' (%d), want %d with '%s' naming kv once", sql, msg, rc, want_rc,
                 sqlite_text);
}

/* More than the 32 MiB a transaction's changes wait in memory: the write that passes it (last)
 * writes them to kv_data itself, and every file write fails from there (SQLITE_IOERR_WRITE, or
 * SQLITE_FULL for a full disk). The transaction is rolled back: kv is what it was. */
static void big_write_fails(const char *mode, bool full, const char *last)
{
    remove_db();
    sqlite3 *db = open_db("faulty");
    char sql[200];
    snprintf(sql, sizeof sql,
             "PRAGMA journal_mode=%s; PRAGMA cache_size = 50; PRAGMA temp_store = MEMORY;"
             " CREATE VIRTUAL TABLE kv USING feox; INSERT INTO kv VALUES('a', 1, NULL, NULL)",
             mode);
    ftest_exec_ok(db, sql);
    ftest_exec_ok(db, "BEGIN");
    /* 4 MiB values: with the last one, key and value bytes pass 32 MiB */
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "INSERT INTO kv(key, value)"
                                        " VALUES(printf('b%d', ?1), zeroblob(4194304))",
                                        -1, &st, NULL),
                     SQLITE_OK);
    for (int i = 0; i < 7; i++) {
        sqlite3_bind_int(st, 1, i);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    fault = (fault_state){
        .armed = true, .kind = FAULT_WRITE, .fail_at = 1, .full = full, .persistent = true};
    char msg[300];
    int rc = step_all(db, last, msg, sizeof msg);
    fault.armed = false;
    assert_true(fault.injected);
    expect_said_once(last, rc, msg, full ? SQLITE_FULL : SQLITE_IOERR_WRITE,
                     full ? "database or disk is full" : "disk I/O error");
    if (!sqlite3_get_autocommit(db))
        ftest_exec_ok(db, "ROLLBACK");
    char *err = NULL;
    char *out = rows(db, "SELECT count(*), sum(length(value)), feox_check('kv') FROM kv", &err);
    if (out == NULL)
        fail_msg("after the fault: %s", err);
    assert_string_equal(out, "1|1|ok\n");
    sqlite3_free(out);
    sqlite3_close(db);
    remove_db();
}

static void test_big_write_fails_with_the_write_error(void **state)
{
    (void)state;
    big_write_fails("WAL", false, "INSERT INTO kv(key, value) VALUES('b7', zeroblob(4194304))");
    big_write_fails("DELETE", true, "UPDATE kv SET value = zeroblob(4194304) WHERE key = 'a'");
}

static int setup(void **state)
{
    (void)state;
    const char *s = getenv("FEOX_IOFAULT_SEED");
    uint64_t seed = s ? strtoull(s, NULL, 10) : UINT64_C(20261204);
    rng_state = seed;
    feox_sq_chunk_ns = UINT64_MAX; /* a lazy load's chunks by rows only: the same reads each run */
    fprintf(stderr, "test_ext_io_faults: seed %llu (FEOX_IOFAULT_SEED=%llu replays it)\n",
            (unsigned long long)seed, (unsigned long long)seed);
    const char *r = getenv("FEOX_IOFAULT_RUNS");
    if (r)
        runs_per_class = strtoul(r, NULL, 10);
    snprintf(dir, sizeof dir, "/tmp/feox-iofaults-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    feox_fault_vfs_register("faulty", faulty_op);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_db();
    static const char *const modes[] = {"DELETE", "WAL"};
    static const int sizes[] = {400, 9999};
    for (size_t m = 0; m < 2; m++)
        for (size_t z = 0; z < 2; z++) {
            char p[340];
            snprintf(p, sizeof p, "%s/template-%s-%d.db", dir, modes[m], sizes[z]);
            unlink(p);
        }
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_faults_rollback_journal),
        cmocka_unit_test(test_faults_wal),
        cmocka_unit_test(test_faults_during_lazy_load),
        cmocka_unit_test(test_every_early_read_fault),
        cmocka_unit_test(test_every_fault_of_one_statement),
        cmocka_unit_test(test_rollback_inside_a_find),
        cmocka_unit_test(test_read_back_faults_fail_only_statements_asking_for_the_value),
        cmocka_unit_test(test_big_write_fails_with_the_write_error),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

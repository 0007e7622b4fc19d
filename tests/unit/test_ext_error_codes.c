/*
 * test_ext_error_codes.c — a statement on a feox table that meets an I/O error reports SQLite's
 * own code, extended part included, as the same statement on a native table does: on a connection
 * that never turned extended result codes on (the default, and Python's), where sqlite3_step,
 * sqlite3_prepare and sqlite3_errcode give only the primary code, so every place that turns an
 * SQLite failure into the statement's code must read sqlite3_extended_errcode.
 *
 * A wrapper VFS ("coded", tests/support/fault_vfs.c) fails the Nth read, write, fsync or truncate
 * with SQLITE_IOERR_READ, _WRITE, _FSYNC or _TRUNCATE. Each statement runs with the fault at every
 * position of each class (rollback journal and WAL, autocommit and inside BEGIN ... COMMIT), and
 * whenever it fails, the code the application reads (sqlite3_extended_errcode) must be the code
 * the VFS returned, and its message SQLite's ("disk I/O error"). The native statements run first,
 * under the same sweep: they are the oracle (SQLite passes the VFS's code through), and a feox
 * statement must do as they do.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "fault_vfs.h"
#include "feox_ext.h"
#include "sql_exec.h"

/* ---- the VFS ------------------------------------------------------------------------------- */

enum fault_class { FAULT_READ, FAULT_WRITE, FAULT_SYNC, FAULT_TRUNCATE, FAULT_CLASSES };
static const char *const fault_names[FAULT_CLASSES] = {"read", "write", "sync", "truncate"};
static const int fault_codes[FAULT_CLASSES] = {SQLITE_IOERR_READ, SQLITE_IOERR_WRITE,
                                               SQLITE_IOERR_FSYNC, SQLITE_IOERR_TRUNCATE};

typedef struct fault_state {
    bool armed;
    enum fault_class kind;
    unsigned long count;   /* operations of kind so far */
    unsigned long fail_at; /* this one fails (0: none) */
    bool injected;
} fault_state;
static fault_state fault;

static bool fault_now(enum fault_class k)
{
    if (!fault.armed || fault.kind != k || ++fault.count != fault.fail_at)
        return false;
    fault.injected = true;
    return true;
}

/* fault_vfs.c asks this before each operation: the code the Nth of the armed class fails with. */
static int coded_op(feox_fault_op op)
{
    switch (op) {
    case FEOX_FAULT_READ: return fault_now(FAULT_READ) ? fault_codes[FAULT_READ] : 0;
    case FEOX_FAULT_WRITE: return fault_now(FAULT_WRITE) ? fault_codes[FAULT_WRITE] : 0;
    case FEOX_FAULT_SYNC: return fault_now(FAULT_SYNC) ? fault_codes[FAULT_SYNC] : 0;
    case FEOX_FAULT_TRUNCATE: return fault_now(FAULT_TRUNCATE) ? fault_codes[FAULT_TRUNCATE] : 0;
    default: return 0;
    }
}

/* ---- the sweep ----------------------------------------------------------------------------- */

static char dir[256];
static char db_path[300];
static int problems;

static void problem(const char *fmt, ...)
{
    if (++problems > 30)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
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

/* A connection through the VFS vfs (NULL: the default), extended result codes left off. */
static sqlite3 *open_db(const char *vfs)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, vfs),
                     SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    return db;
}

/* A new database in journal mode `mode`: a native table nat and feox tables kv and ck
 * (clock='log'), 200 rows each. */
static void make_db(const char *mode)
{
    remove_db();
    sqlite3 *db = open_db(NULL);
    char *sql = sqlite3_mprintf(
        "PRAGMA journal_mode=%s; PRAGMA synchronous=OFF;"
        "CREATE TABLE nat(k TEXT PRIMARY KEY, v) WITHOUT ROWID;"
        "CREATE VIRTUAL TABLE kv USING feox;"
        "CREATE VIRTUAL TABLE ck USING feox(clock='log');"
        "INSERT INTO ck(ck, ts) VALUES('clock', 1000);"
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200)"
        " INSERT INTO nat SELECT printf('k%%04d', i), i FROM c;"
        "INSERT INTO kv(key, value) SELECT k, v FROM nat;"
        "INSERT INTO ck(key, value) SELECT k, v FROM nat;",
        mode);
    ftest_exec_ok(db, sql);
    sqlite3_free(sql);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* Step every statement of sql to its end; SQLITE_OK, or the failure's extended code. */
static int run_script(sqlite3 *db, const char *sql)
{
    const char *tail = sql;
    int rc = SQLITE_OK;
    while (rc == SQLITE_OK && tail != NULL && *tail != '\0') {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, tail, -1, &st, &tail);
        while (rc == SQLITE_OK && st != NULL && (rc = sqlite3_step(st)) == SQLITE_ROW)
            rc = SQLITE_OK;
        if (rc == SQLITE_DONE)
            rc = SQLITE_OK;
        sqlite3_finalize(st);
        if (st == NULL && rc == SQLITE_OK)
            break;
    }
    return rc == SQLITE_OK ? SQLITE_OK : sqlite3_extended_errcode(db);
}

/* One run of sql with fault n of class k (0: none) on a new connection whose page cache is small
 * (pages are read again: reads can fail). Returns whether the fault was reached; *total counts
 * the class's operations. */
static bool run_one(const char *mode, const char *sql, bool in_txn, enum fault_class k,
                    unsigned long n, unsigned long *total)
{
    make_db(mode);
    sqlite3 *db = open_db("coded");
    ftest_exec_ok(db, "PRAGMA cache_size = 2; SELECT count(*) FROM kv; SELECT count(*) FROM ck");
    char *script = in_txn ? sqlite3_mprintf("BEGIN; %s; COMMIT", sql) : sqlite3_mprintf("%s", sql);
    fault = (fault_state){.kind = k, .fail_at = n, .armed = true};
    int rc = run_script(db, script);
    fault.armed = false;
    sqlite3_free(script);
    if (rc != SQLITE_OK && !fault.injected)
        problem("%s, %s%s: failed without a fault: %s (%d)", mode, in_txn ? "in BEGIN: " : "", sql,
                sqlite3_errmsg(db), rc);
    else if (rc != SQLITE_OK && (rc != fault_codes[k] || !strstr(sqlite3_errmsg(db), "I/O error")))
        problem("%s, %s%s, %s fault %lu: reported %s (%d: %s), SQLite's code was %d", mode,
                in_txn ? "in BEGIN: " : "", sql, fault_names[k], n, sqlite3_errstr(rc), rc,
                sqlite3_errmsg(db), fault_codes[k]);
    if (!sqlite3_get_autocommit(db))
        (void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    if (total)
        *total = fault.count;
    bool reached = fault.injected;
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return reached;
}

/* Every fault position (at most MAX_RUNS of them, spread) of every class for sql. */
#define MAX_RUNS 40
static void sweep_statement(const char *sql)
{
    static const char *const modes[] = {"DELETE", "WAL"};
    for (size_t m = 0; m < 2; m++)
        for (int in_txn = 0; in_txn < 2; in_txn++)
            for (int k = 0; k < FAULT_CLASSES; k++) {
                unsigned long total = 0;
                (void)run_one(modes[m], sql, in_txn, (enum fault_class)k, 0, &total);
                unsigned long runs = total < MAX_RUNS ? total : MAX_RUNS;
                for (unsigned long i = 0; i < runs; i++)
                    (void)run_one(modes[m], sql, in_txn, (enum fault_class)k, 1 + i * total / runs,
                                  NULL);
            }
}

static void sweep_all(const char *const *sqls, size_t n)
{
    problems = 0;
    for (size_t i = 0; i < n; i++)
        sweep_statement(sqls[i]);
    assert_int_equal(problems, 0);
}

/* The oracle: native statements report the VFS's code. */
static void test_native_statements_report_the_vfs_code(void **state)
{
    (void)state;
    static const char *const sqls[] = {
        "INSERT INTO nat VALUES ('new', 'v')",
        "UPDATE nat SET v = v + 5 WHERE k = 'k0008'",
        "SELECT count(*), sum(v) FROM nat",
        "PRAGMA integrity_check",
        "CREATE TABLE nat2(k PRIMARY KEY, v) WITHOUT ROWID",
        "DROP TABLE nat",
    };
    sweep_all(sqls, sizeof sqls / sizeof sqls[0]);
}

/* feox statements and functions report it too. */
static void test_feox_statements_report_the_vfs_code(void **state)
{
    (void)state;
    static const char *const sqls[] = {
        "INSERT INTO kv(key, value) VALUES ('new', 'v')",
        "UPDATE kv SET value = value + 5 WHERE key = 'k0008'",
        "SELECT feox_incr('kv', 'k0008', 5)",
        "SELECT feox_cas('kv', 'k0001', 1, 'swapped')",
        "SELECT feox_check('kv')",
        "INSERT INTO ck(ck, ts) VALUES('clock', 5000)",
        "INSERT INTO ck(ck) VALUES('sweep')",
        "SELECT count(*), sum(value) FROM kv",
        "CREATE VIRTUAL TABLE kv2 USING feox",
        "DROP TABLE kv",
    };
    sweep_all(sqls, sizeof sqls / sizeof sqls[0]);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/feox-errcodes-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    feox_fault_vfs_register("coded", coded_op);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_db();
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_native_statements_report_the_vfs_code),
        cmocka_unit_test(test_feox_statements_report_the_vfs_code),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

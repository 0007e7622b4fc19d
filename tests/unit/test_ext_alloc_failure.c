/*
 * test_ext_alloc_failure.c — allocation-failure loop through SQL (issue 7, item 2).
 *
 * SQLite's own allocator is process-wide and must be configured before sqlite3_initialize, so
 * only the ENGINE allocator fails here (feox_set_allocator): the Nth engine allocation made by the
 * test thread returns NULL, for N = 1, 2, ... through a workload of SQL statements on a feox
 * table (CREATE, INSERT single and multi-row, INSERT with ttl, REPLACE, INSERT OR IGNORE, UPDATE
 * of value / key / ttl, DELETE of a range, SELECTs by key, range, GLOB and ORDER BY DESC,
 * feox_incr, feox_cas, feox_patch, and transactions with ROLLBACK and ROLLBACK TO), until a run
 * never reaches N. For each statement that meets the failure:
 *   - it either succeeds anyway, or fails with an SQLite error (SQLITE_NOMEM expected; any other
 *     code is reported as a problem too, since the cause was memory);
 *   - after a failure the table is exactly as before the statement (statement atomicity; a
 *     transaction left open is rolled back first, then the table must be as before BEGIN), and
 *     feox_check('kv') passes;
 *   - the statement retried without the failure succeeds;
 * and at the end the table equals the one of a clean run. A second pass makes the failure
 * persistent (allocation N and every later one in that statement fail), as SQLite's own OOM
 * tests do, so retrying an allocation cannot hide a lost change. Problems are collected (the run
 * stops at its first) and printed, so one bug does not hide the next.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <sqlite3.h>

#include "feox_ext.h"
#include "failing_alloc.h"

/* ---- the workload --------------------------------------------------------------------------- */

static const char *const workload[] = {
    "CREATE VIRTUAL TABLE kv USING feox",
    "INSERT INTO kv(key, value) VALUES ('a', 'alpha')",
    "INSERT INTO kv(key, value) VALUES ('b', 2), ('c', 3.5), ('d', x'00ff'), ('e', NULL),"
    " ('f', 'six'), ('g', 'seven'), ('h', 'eight')",
    "INSERT INTO kv(key, value, ttl) VALUES ('session', 'tok', 1000)",
    "REPLACE INTO kv(key, value) VALUES ('a', 'ALPHA')",
    "INSERT OR IGNORE INTO kv(key, value) VALUES ('a', 'ignored'), ('i', 'nine')",
    "UPDATE kv SET value = value || '!' WHERE key IN ('f', 'g')",
    "UPDATE kv SET key = 'zz' WHERE key = 'h'",
    "UPDATE kv SET ttl = 2000 WHERE key = 'a'",
    "UPDATE kv SET ttl = NULL WHERE key = 'a'",
    "SELECT count(*) FROM kv WHERE key BETWEEN 'b' AND 'g'",
    "SELECT * FROM kv WHERE key = 'session'",
    "SELECT key FROM kv WHERE key GLOB 'f*' ORDER BY key DESC",
    "SELECT key, value FROM kv ORDER BY key DESC LIMIT 3 OFFSET 1",
    "SELECT feox_incr('kv', 'counter', 5)",
    "SELECT feox_incr('kv', 'counter', -2)",
    "SELECT feox_cas('kv', 'f', 'six!', 'SIX')",
    "INSERT INTO kv(key, value) VALUES ('doc', '{\"name\":\"Ada\",\"age\":36,\"l\":[1,2]}')",
    "SELECT feox_patch('kv', 'doc', '[{\"op\":\"replace\",\"path\":\"/age\",\"value\":37},"
    "{\"op\":\"add\",\"path\":\"/l/-\",\"value\":{\"x\":[3]}}]')",
    "DELETE FROM kv WHERE key > 'b' AND key < 'e'",
    "BEGIN; INSERT INTO kv(key, value) VALUES ('t1', 1), ('t2', 2); UPDATE kv SET value = 'x'"
    " WHERE key = 'a'; DELETE FROM kv WHERE key = 'b'; SELECT feox_incr('kv', 'counter', 10);"
    " ROLLBACK",
    "BEGIN; INSERT INTO kv(key, value) VALUES ('s1', 1); SAVEPOINT sp; DELETE FROM kv WHERE key"
    " >= 'a'; INSERT INTO kv(key, value) VALUES ('s2', 2); ROLLBACK TO sp;"
    " UPDATE kv SET value = 'kept' WHERE key = 's1'; COMMIT",
    "INSERT INTO kv(key, value) VALUES ('bb', 'again')",
    "DELETE FROM kv WHERE key GLOB 's*'",
};
#define N_STATEMENTS (sizeof workload / sizeof workload[0])

/* ---- dumping the table --------------------------------------------------------------------------
 */

/* key, type and value of every row, whether it has a ttl; never fails on purpose. */
static char *dump_table(sqlite3 *db)
{
    bool was_injecting = ftest_fault.injecting;
    ftest_fault.injecting = false;
    sqlite3_stmt *st = NULL;
    char *text = sqlite3_mprintf("%s", "");
    int rc = sqlite3_prepare_v2(db,
                                "SELECT key, typeof(value), quote(value), ttl IS NOT NULL "
                                "FROM kv ORDER BY key",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) {
        sqlite3_free(text);
        text = sqlite3_mprintf("(no table: %s)\n", sqlite3_errmsg(db));
    } else {
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            char *next = sqlite3_mprintf("%s%s %s %s ttl=%d\n", text, sqlite3_column_text(st, 0),
                                         sqlite3_column_text(st, 1), sqlite3_column_text(st, 2),
                                         sqlite3_column_int(st, 3));
            sqlite3_free(text);
            text = next;
        }
        assert_int_equal(rc, SQLITE_DONE);
    }
    sqlite3_finalize(st);
    ftest_fault.injecting = was_injecting;
    assert_non_null(text);
    return text;
}

static bool table_checks(sqlite3 *db)
{
    bool was_injecting = ftest_fault.injecting;
    ftest_fault.injecting = false;
    sqlite3_stmt *st = NULL;
    bool ok = true;
    if (sqlite3_prepare_v2(db, "SELECT feox_check('kv')", -1, &st, NULL) == SQLITE_OK)
        ok = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    ftest_fault.injecting = was_injecting;
    return ok;
}

/* ---- the loop
 * ------------------------------------------------------------------------------------ */

static int problems;

static void problem(const char *fmt, ...)
{
    problems++;
    if (problems > 40)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int exec_quiet(sqlite3 *db, const char *sql, char **errmsg)
{
    return sqlite3_exec(db, sql, NULL, NULL, errmsg);
}

/* Statement i with engine allocation n failing; false if a problem was found. */
static bool checked_statement(sqlite3 *db, size_t i, unsigned long n, bool *reached)
{
    char *before = dump_table(db);
    char *msg = NULL;
    ftest_fault.failure_injected = false;
    ftest_fault.injecting = true;
    int rc = exec_quiet(db, workload[i], &msg);
    ftest_fault.injecting = false;
    *reached |= ftest_fault.failure_injected;
    if (ftest_fault.failure_injected)
        ftest_fault.fail_at = 0; /* one failing statement per run */
    bool ok = true;
    if (rc != SQLITE_OK) {
        if (!ftest_fault.failure_injected) {
            problem("alloc %lu, statement %zu failed without an injected failure: %s", n, i, msg);
            ok = false;
        } else if (rc != SQLITE_NOMEM) {
            problem("alloc %lu, statement %zu: an engine allocation failure surfaced as %s (%s),"
                    " not SQLITE_NOMEM\n  %s",
                    n, i, sqlite3_errstr(rc), msg, workload[i]);
            ok = false;
        }
        if (!sqlite3_get_autocommit(db))
            assert_int_equal(exec_quiet(db, "ROLLBACK", NULL), SQLITE_OK);
        char *after = dump_table(db);
        if (ok && strcmp(before, after)) {
            problem("alloc %lu, statement %zu failed (%s) but changed the table:\n  %s\n"
                    "--- before\n%s--- after\n%s",
                    n, i, msg, workload[i], before, after);
            ok = false;
        }
        if (ok && strncmp(after, "(no table", 9) && !table_checks(db)) {
            problem("alloc %lu, statement %zu: feox_check failed: %s", n, i, sqlite3_errmsg(db));
            ok = false;
        }
        sqlite3_free(after);
        if (ok) {
            sqlite3_free(msg);
            msg = NULL;
            rc = exec_quiet(db, workload[i], &msg); /* no failure now: it must work */
            if (rc != SQLITE_OK) {
                problem("alloc %lu, statement %zu retried: %s\n  %s", n, i, msg, workload[i]);
                ok = false;
            }
        }
    }
    sqlite3_free(msg);
    sqlite3_free(before);
    return ok;
}

/* One run with engine allocation n failing. Returns whether the failure was reached; *final is
 * the end state (NULL if the run stopped at a problem). */
static bool run_with_failure_at(unsigned long n, char **final)
{
    *final = NULL;
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    ftest_fault.alloc_count = 0;
    ftest_fault.fail_at = n;
    bool reached = false, ok = true;
    for (size_t i = 0; i < N_STATEMENTS && ok; i++)
        ok = checked_statement(db, i, n, &reached);
    if (ok)
        *final = dump_table(db);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    return reached;
}

static void failure_loop(bool persistent)
{
    problems = 0;
    ftest_failing_alloc_install(persistent);
    char *reference = NULL;
    assert_false(run_with_failure_at(0, &reference));
    assert_int_equal(problems, 0);
    assert_non_null(reference);
    unsigned long n;
    for (n = 1;; n++) {
        char *final = NULL;
        bool reached = run_with_failure_at(n, &final);
        if (final && strcmp(final, reference))
            problem("alloc %lu: end state differs from the clean run:\n%s---\n%s", n, final,
                    reference);
        sqlite3_free(final);
        if (!reached)
            break;
    }
    ftest_failing_alloc_remove();
    sqlite3_free(reference);
    print_message("SQL allocation failure loop (%s): %lu engine allocations; %d problems\n",
                  persistent ? "persistent failure" : "single failure", n - 1, problems);
    assert_true(n > 20);
    assert_int_equal(problems, 0);
}

static void test_sql_allocation_failures(void **state)
{
    (void)state;
    failure_loop(false);
}

static void test_sql_persistent_allocation_failures(void **state)
{
    (void)state;
    failure_loop(true);
}

/* An undo that cannot finish says what happened: each later use of the table first tries to
 * finish it and, while it still cannot, fails with the engine's code (SQLITE_NOMEM here), never
 * SQLITE_CANTOPEN (the store is open); once memory is back it finishes, and the table is as it
 * was before BEGIN. */
static void test_unfinished_undo_keeps_its_code(void **state)
{
    (void)state;
    ftest_failing_alloc_install(true);
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    assert_int_equal(exec_quiet(db,
                                "CREATE VIRTUAL TABLE kv USING feox; INSERT INTO kv(key, value) "
                                "VALUES ('a', 'one'); BEGIN; UPDATE kv SET value = 'two' WHERE "
                                "key = 'a'",
                                NULL),
                     SQLITE_OK);
    ftest_fault.alloc_count = 0;
    ftest_fault.fail_at = 1; /* every engine allocation of this thread fails from now on */
    ftest_fault.injecting = true;
    (void)exec_quiet(db, "ROLLBACK", NULL); /* SQLite ends the transaction whatever undo says */
    assert_true(ftest_fault.failure_injected);
    assert_int_equal(exec_quiet(db, "INSERT INTO kv(key, value) VALUES ('b', 1)", NULL),
                     SQLITE_NOMEM); /* xUpdate: was SQLITE_CANTOPEN */
    assert_int_equal(exec_quiet(db, "SELECT * FROM kv", NULL), SQLITE_NOMEM); /* xFilter */
    assert_int_equal(exec_quiet(db, "BEGIN; INSERT INTO kv(key, value) VALUES ('c', 1)", NULL),
                     SQLITE_NOMEM); /* xBegin */
    if (!sqlite3_get_autocommit(db))
        assert_int_equal(exec_quiet(db, "ROLLBACK", NULL), SQLITE_OK);
    ftest_fault.injecting = false;
    char *rows = dump_table(db); /* finishes the undo */
    assert_string_equal(rows, "a text 'one' ttl=0\n");
    sqlite3_free(rows);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    ftest_failing_alloc_remove();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sql_allocation_failures),
        cmocka_unit_test(test_sql_persistent_allocation_failures),
        cmocka_unit_test(test_unfinished_undo_keeps_its_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

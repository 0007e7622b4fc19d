/*
 * test_ext_snapshot.c — a `path=` table whose store file ends in an index snapshot, through SQL:
 * the first `SELECT ... WHERE key = ?` of a new connection is answered while the store's load is
 * held back (xConnect, xBestIndex, xFilter wait for nothing: a test hook sees any call that
 * would wait, and lets the load go so that nothing hangs); a scan then waits, and sees every row.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <sqlite3.h>

#include "feox_ext.h"
#include "load_gate.h"

#define ROWS 1000

static char dir[] = "/tmp/feox_ext_snapshot_XXXXXX";
static char db_path[sizeof dir + 16];
static char store_path[sizeof dir + 16];

/* The store file's last record is an index snapshot's footer (FORMAT.md: op 4 at size - 56). */
static bool ends_in_snapshot(void)
{
    struct stat st;
    assert_int_equal(stat(store_path, &st), 0);
    uint8_t footer[56];
    int fd = open(store_path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, footer, sizeof footer, st.st_size - (off_t)sizeof footer),
                     (ssize_t)sizeof footer);
    close(fd);
    return memcmp(footer, "FXR1", 4) == 0 && footer[4] == 4;
}

static sqlite3 *open_db(void)
{
    sqlite3 *db = NULL;
    assert_int_equal(
        sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL), SQLITE_OK);
    char *err = NULL;
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    return db;
}

static void exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (rc != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, err ? err : "?");
    sqlite3_free(err);
    assert_int_equal(rc, SQLITE_OK);
}

static void test_first_point_select_does_not_wait(void **state)
{
    (void)state;
    sqlite3 *db = open_db();
    char sql[512];
    snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE t USING feox(path='%s')", store_path);
    exec(db, sql);
    exec(db, "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 999)"
             " INSERT INTO t(key, value) SELECT printf('k%05d', i), 'value ' || i FROM c");
    exec(db, "DELETE FROM t WHERE key = 'k00007'");
    assert_int_equal(sqlite3_close(db), SQLITE_OK); /* the last user: the store closes */
    assert_true(ends_in_snapshot());

    ftest_load_gate_arm();
    db = open_db();
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM t WHERE key = ?", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_bind_text(q, 1, "k00042", -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "value 42");
    assert_int_equal(sqlite3_step(q), SQLITE_DONE);
    assert_int_equal(sqlite3_reset(q), SQLITE_OK);
    assert_int_equal(sqlite3_bind_text(q, 1, "k00007", -1, SQLITE_STATIC), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_DONE); /* deleted before the close */
    /* The load cannot have finished (held back), so the snapshot is still the file's end, and
     * connect, plan and both lookups waited for nothing. */
    assert_true(ends_in_snapshot());
    assert_int_equal(ftest_load_gate_waits(), 0);
    sqlite3_finalize(q);

    assert_int_equal(sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(q, 0), ROWS - 1);
    sqlite3_finalize(q);
    assert_int_equal(ftest_load_gate_waits(), 1); /* the scan waited for the load */
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/db", dir);
    snprintf(store_path, sizeof store_path, "%s/t.feox", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ftest_load_gate_disarm();
    unlink(db_path);
    unlink(store_path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_point_select_does_not_wait),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

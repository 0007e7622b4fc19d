/*
 * test_ext_sql.c — the feox extension through SQL, linked statically (-DSQLITE_CORE): columns and
 * types, keys, conflicts, ttl and ts rules, UPDATE of the key, the functions, transactions and
 * savepoints, options, where the data lives (files, sharing, DROP, RENAME), EXPLAIN QUERY PLAN
 * strings, and writes during scans. Error messages are checked verbatim where SPEC fixes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "feox_ext.h"
#include "sql_exec.h"

static char tmpdir[256];

static sqlite3 *open_db(const char *path)
{
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

/* Run sql, expect failure with rc (primary code) and a message equal to msg. */
static void exec_fails(sqlite3 *db, const char *sql, int rc, const char *msg)
{
    char *err = NULL;
    int got = sqlite3_exec(db, sql, NULL, NULL, &err);
    if (got == SQLITE_OK) {
        fail_msg("expected failure: %s", sql);
    }
    if ((got & 0xff) != rc || (msg != NULL && (err == NULL || strcmp(err, msg) != 0))) {
        fail_msg("%s\n  -> rc %d '%s', expected rc %d '%s'", sql, got, err ? err : "", rc,
                 msg ? msg : "(any)");
    }
    sqlite3_free(err);
}

/* Every row's columns joined by '|', rows by ','. Caller frees with sqlite3_free. */
static char *query(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3_str *s = sqlite3_str_new(db);
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        fail_msg("%s\n  -> %s", sql, sqlite3_errmsg(db));
    }
    int row = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (row++) {
            sqlite3_str_appendchar(s, 1, ',');
        }
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const char *t = (const char *)sqlite3_column_text(st, i);
            sqlite3_str_appendf(s, "%s%s", i ? "|" : "", t ? t : "NULL");
        }
    }
    if (rc != SQLITE_DONE) {
        fail_msg("%s\n  -> %s", sql, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    char *out = sqlite3_str_finish(s);
    return out ? out : sqlite3_mprintf("");
}

static void expect(sqlite3 *db, const char *sql, const char *want)
{
    char *got = query(db, sql);
    if (strcmp(got, want) != 0) {
        fail_msg("%s\n  got:  %s\n  want: %s", sql, got, want);
    }
    sqlite3_free(got);
}

static sqlite3_int64 query_int(sqlite3 *db, const char *sql)
{
    char *got = query(db, sql);
    sqlite3_int64 v = strtoll(got, NULL, 10);
    sqlite3_free(got);
    return v;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static sqlite3 *mem_db_with_kv(void)
{
    sqlite3 *db = open_db(":memory:");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE kv USING feox");
    return db;
}

static void test_value_types(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(
        db, "INSERT INTO kv(key, value) VALUES ('i', 42), ('r', 2.5), ('t', 'hello'), "
            "('b', x'00ff'), ('n', NULL), ('et', ''), ('eb', x''), ('big', 9223372036854775807),"
            "('neg', -7), ('j', '{\"a\":{\"b\":3}}')");
    expect(db, "SELECT key, typeof(value), quote(value) FROM kv ORDER BY key",
           "b|blob|X'00FF',big|integer|9223372036854775807,eb|blob|X'',et|text|'',"
           "i|integer|42,j|text|'{\"a\":{\"b\":3}}',n|null|NULL,neg|integer|-7,r|real|2.5,"
           "t|text|'hello'");
    /* the same through the hash index */
    expect(db, "SELECT typeof(value), length(value) FROM kv WHERE key = 'eb'", "blob|0");
    expect(db, "SELECT typeof(value), length(value) FROM kv WHERE key = 'et'", "text|0");
    expect(db, "SELECT json_extract(value, '$.a.b') FROM kv WHERE key = 'j'", "3");
    expect(db, "SELECT ttl, ts > 1600000000000000000 FROM kv WHERE key = 'i'", "NULL|1");
    sqlite3_close(db);
}

/* IN lists: each is read into one block, the cursor's own for the candidates and reused from
 * one statement to the next (a closed cursor is kept by its table): lists that grow, shrink, hold
 * longer keys, duplicates, NULLs and numbers (text keys: converted), and a second IN list. */
static void test_in_lists(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    /* empty keys match nothing, as `key = ''` does: first on a new cursor, whose IN buffers
     * are not allocated yet, then as a further IN list */
    expect(db, "SELECT count(*) FROM kv WHERE key IN ('', x'')", "0");
    expect(db, "SELECT count(*) FROM kv WHERE key IN ('a', 'b') AND key IN ('')", "0");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2), ('c', 3), ('7', 4), "
                      "(printf('%.*c', 300, 'x'), 5), (printf('%.*c', 301, 'y'), 6)");
    expect(db, "SELECT group_concat(value) FROM kv WHERE key IN ('b', 'a')", "1,2");
    expect(db, "SELECT group_concat(value) FROM kv WHERE key IN ('c')", "3");
    expect(db,
           "SELECT group_concat(value) FROM kv WHERE key IN (printf('%.*c', 301, 'y'), 'a', "
           "printf('%.*c', 300, 'x'), 'zz', 'b', 'c', 7, 'q')",
           "4,1,2,3,5,6");
    expect(db, "SELECT group_concat(value) FROM kv WHERE key IN ('b')", "2");
    expect(db, "SELECT group_concat(value) FROM kv WHERE key IN ('c', NULL, 'c', 'a', 'c')", "1,3");
    expect(db, "SELECT count(*) FROM kv WHERE key IN (NULL, NULL)", "0");
    expect(db,
           "SELECT group_concat(value) FROM (SELECT value FROM kv WHERE key IN ('a', 'b', 'c') "
           "ORDER BY key DESC)",
           "3,2,1");
    expect(db,
           "SELECT group_concat(value) FROM kv WHERE key IN ('a', 'b', 'c', 7) "
           "AND key IN (7, 'c', 'zz', printf('%.*c', 300, 'x'))",
           "4,3");
    expect(db,
           "SELECT group_concat(value) FROM kv WHERE key IN (SELECT key FROM kv WHERE key < 'b')",
           "4,1");
    /* a list larger than a kept cursor keeps (64 KiB), then a small one again */
    expect(db,
           "SELECT count(*), sum(value) FROM kv WHERE key IN (WITH RECURSIVE n(i) AS (SELECT 1 "
           "UNION ALL SELECT i + 1 FROM n WHERE i < 5000) SELECT printf('%.*c', 40, 'z') || i "
           "FROM n UNION ALL SELECT 'a' UNION ALL SELECT 'c')",
           "2|4");
    expect(db, "SELECT group_concat(value) FROM kv WHERE key IN ('b', 'c')", "2,3");
    sqlite3_close(db);
}

static void test_keys(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES (5, 'five'), (1.5, 'x')");
    expect(db, "SELECT key, typeof(key) FROM kv ORDER BY key", "1.5|text,5|text");
    expect(db, "SELECT value FROM kv WHERE key = 5", "five");
    expect(db, "SELECT value FROM kv WHERE key IN (5, 7)", "five");
    exec_fails(db, "INSERT INTO kv(key, value) VALUES (NULL, 1)", SQLITE_CONSTRAINT,
               "feox: kv: key may not be NULL");
    exec_fails(db, "INSERT INTO kv(key, value) VALUES ('', 1)", SQLITE_CONSTRAINT,
               "feox: kv: key may not be empty");
    exec_fails(db, "INSERT INTO kv(key, value) VALUES (zeroblob(102401), 1)", SQLITE_TOOBIG,
               "feox: kv: key is longer than 102400 bytes");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES (printf('%.*c', 102400, 'k'), 'max')");
    expect(db, "SELECT value FROM kv WHERE key = printf('%.*c', 102400, 'k')", "max");
    expect(db, "SELECT count(*) FROM kv WHERE key > printf('%.*c', 102401, 'k')", "0");
    expect(db, "SELECT count(*) FROM kv WHERE key < printf('%.*c', 102401, 'k')", "3");
    /* NULL operands match nothing */
    expect(db, "SELECT count(*) FROM kv WHERE key = NULL", "0");
    expect(db, "SELECT count(*) FROM kv WHERE key > NULL", "0");
    expect(db, "SELECT count(*) FROM kv WHERE key IN (NULL, 5)", "1");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE kb USING feox(keytype=blob)");
    ftest_exec_ok(db, "INSERT INTO kb(key, value) VALUES ('abc', 1), (x'00', 2), (7, 3)");
    expect(db, "SELECT hex(key), typeof(key) FROM kb ORDER BY key", "00|blob,37|blob,616263|blob");
    expect(db, "SELECT value FROM kb WHERE key = x'616263'", "1");
    sqlite3_close(db);
}

static void test_conflicts(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 2)");
    exec_fails(db, "INSERT INTO kv(key, value) VALUES ('a', 9)", SQLITE_CONSTRAINT,
               "UNIQUE constraint failed: kv.key");
    ftest_exec_ok(db, "INSERT OR REPLACE INTO kv VALUES ('a', 10, NULL, NULL)");
    ftest_exec_ok(db, "REPLACE INTO kv(key, value) VALUES ('b', 20)");
    ftest_exec_ok(db, "INSERT OR IGNORE INTO kv(key, value) VALUES ('a', 99), ('c', 3)");
    expect(db, "SELECT group_concat(key || '=' || value) FROM kv", "a=10,b=20,c=3");
    /* a failing multi-row INSERT leaves nothing, in autocommit and inside BEGIN */
    exec_fails(db, "INSERT INTO kv(key, value) VALUES ('m1', 1), ('a', 2), ('m2', 3)",
               SQLITE_CONSTRAINT, "UNIQUE constraint failed: kv.key");
    ftest_exec_ok(db, "BEGIN");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('t1', 1)");
    exec_fails(db, "INSERT INTO kv(key, value) VALUES ('m1', 1), ('a', 2), ('m2', 3)",
               SQLITE_CONSTRAINT, "UNIQUE constraint failed: kv.key");
    ftest_exec_ok(db, "COMMIT");
    expect(db, "SELECT group_concat(key) FROM kv", "a,b,c,t1");
    /* OR REPLACE over a live key inside a rolled-back transaction restores it */
    ftest_exec_ok(db, "BEGIN; REPLACE INTO kv(key, value) VALUES ('a', 'new'); ROLLBACK");
    expect(db, "SELECT value, typeof(value) FROM kv WHERE key = 'a'", "10|integer");
    sqlite3_close(db);
}

static void test_ttl_rules(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ttl) VALUES ('s', 'x', 60), ('p', 'y', NULL), "
                      "('z', 'z', 0), ('t', 't', '100')");
    expect(db, "SELECT ttl BETWEEN 58 AND 60 FROM kv WHERE key = 's'", "1");
    expect(db, "SELECT ttl FROM kv WHERE key IN ('p', 'z') ORDER BY key", "NULL,NULL");
    expect(db, "SELECT ttl BETWEEN 98 AND 100 FROM kv WHERE key = 't'", "1");
    exec_fails(db, "INSERT INTO kv(key, value, ttl) VALUES ('n', 1, -5)", SQLITE_ERROR,
               "feox: kv: ttl may not be negative");
    exec_fails(db, "INSERT INTO kv(key, value, ttl) VALUES ('n', 1, 'soon')", SQLITE_MISMATCH,
               "feox: kv: ttl must be a whole number of seconds");
    exec_fails(db, "UPDATE kv SET ttl = -1 WHERE key = 's'", SQLITE_ERROR,
               "feox: kv: ttl may not be negative");
    /* an UPDATE that does not assign ttl keeps the exact expiry instant */
    sqlite3_int64 ts0 = query_int(db, "SELECT ts FROM kv WHERE key = 's'");
    (void)ts0;
    ftest_exec_ok(db, "UPDATE kv SET ttl = 3600 WHERE key = 's'");
    expect(db, "SELECT ttl BETWEEN 3598 AND 3600 FROM kv WHERE key = 's'", "1");
    for (int i = 0; i < 5; i++) {
        ftest_exec_ok(db, "UPDATE kv SET value = value || '!' WHERE key = 's'");
    }
    expect(db, "SELECT value, ttl BETWEEN 3598 AND 3600 FROM kv WHERE key = 's'", "x!!!!!|1");
    ftest_exec_ok(db, "UPDATE kv SET ttl = NULL WHERE key = 's'");
    expect(db, "SELECT ttl FROM kv WHERE key = 's'", "NULL");
    ftest_exec_ok(db, "UPDATE kv SET ttl = 50 WHERE key = 's'");
    ftest_exec_ok(db, "INSERT OR REPLACE INTO kv(key, value) VALUES ('s', 'again')");
    expect(db, "SELECT ttl FROM kv WHERE key = 's'", "NULL");
    /* expired rows never appear: scans, lookups, IN, count, functions */
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ttl) VALUES ('gone', 1, 1), ('gone2', 2, 1)");
    expect(db, "SELECT count(*) FROM kv WHERE key LIKE 'gone%'", "2");
    usleep(2100 * 1000);
    expect(db, "SELECT count(*) FROM kv WHERE key LIKE 'gone%'", "0");
    expect(db, "SELECT count(*) FROM kv WHERE key = 'gone'", "0");
    expect(db, "SELECT count(*) FROM kv WHERE key IN ('gone', 'gone2')", "0");
    expect(db, "SELECT count(*) FROM kv WHERE key >= 'gone' AND key < 'gonf'", "0");
    expect(db, "SELECT feox_cas('kv', 'gone', 1, 2)", "0");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('gone', 'back')"); /* no UNIQUE error */
    expect(db, "SELECT value FROM kv WHERE key = 'gone'", "back");
    sqlite3_close(db);
}

static void test_ts_rules(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ts) VALUES ('k', 1, 1000)");
    expect(db, "SELECT ts FROM kv WHERE key = 'k'", "1000");
    exec_fails(db, "UPDATE kv SET value = 2, ts = 999 WHERE key = 'k'", SQLITE_CONSTRAINT,
               "feox: kv: ts 999 is not newer than the record's timestamp");
    exec_fails(db, "UPDATE kv SET value = 2, ts = 1000 WHERE key = 'k'", SQLITE_CONSTRAINT,
               "feox: kv: ts 1000 is not newer than the record's timestamp");
    ftest_exec_ok(db, "UPDATE OR IGNORE kv SET value = 2, ts = 5 WHERE key = 'k'");
    expect(db, "SELECT value, ts FROM kv WHERE key = 'k'", "1|1000");
    ftest_exec_ok(db, "UPDATE kv SET value = 3, ts = 2000 WHERE key = 'k'");
    expect(db, "SELECT value, ts FROM kv WHERE key = 'k'", "3|2000");
    exec_fails(db, "INSERT OR REPLACE INTO kv VALUES ('k', 4, NULL, 1500)", SQLITE_CONSTRAINT,
               "feox: kv: ts 1500 is not newer than the record's timestamp");
    /* a future explicit ts, then plain writes still succeed with newer automatic ts */
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ts) VALUES ('f', 1, 4000000000000000000)");
    ftest_exec_ok(db, "UPDATE kv SET value = 2 WHERE key = 'f'");
    expect(db, "SELECT value, ts > 4000000000000000000 FROM kv WHERE key = 'f'", "2|1");
    ftest_exec_ok(db, "INSERT OR REPLACE INTO kv(key, value) VALUES ('f', 3)");
    expect(db, "SELECT value FROM kv WHERE key = 'f'", "3");
    exec_fails(db, "INSERT INTO kv(key, value, ts) VALUES ('x', 1, -1)", SQLITE_MISMATCH,
               "feox: kv: ts must be a non-negative integer (ns)");
    sqlite3_close(db);
}

/* ts never wraps: automatic timestamps stop at INT64_MAX (SQL's integer range), and a u64 ts
 * above it, which only the C API can write, is shown as INT64_MAX, never as a negative number. */
static void test_ts_limit(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ts) VALUES ('max', 1, 9223372036854775807)");
    exec_fails(db, "UPDATE kv SET value = 2 WHERE key = 'max'", SQLITE_ERROR,
               "feox: kv: ts 9223372036854775807 is the largest timestamp; an automatic "
               "timestamp cannot be newer");
    exec_fails(db, "SELECT feox_incr('kv', 'max', 1)", SQLITE_ERROR,
               "feox: kv: ts 9223372036854775807 is the largest timestamp; an automatic "
               "timestamp cannot be newer");
    expect(db, "SELECT value, ts FROM kv WHERE key = 'max'", "1|9223372036854775807");

    feox_conn *conn = feox_conn_get(db);
    feox_vtab *vt = feox_conn_find_vtab(conn, "main", "kv");
    assert_non_null(vt);
    unsigned char seven[8];
    feox_put_i64(seven, 7);
    feox_write_opts o = {.timestamp_ns = (uint64_t)INT64_MAX + 5, .tag = FEOX_TAG_INTEGER};
    assert_int_equal(feox_insert(vt->entry->store, "big", 3, seven, 8, &o, NULL), FEOX_OK);
    feox_conn_release(conn);
    expect(db, "SELECT value, ts FROM kv WHERE key = 'big'", "7|9223372036854775807");
    exec_fails(db, "UPDATE kv SET value = 8 WHERE key = 'big'", SQLITE_ERROR,
               "feox: kv: ts 9223372036854775812 is the largest timestamp; an automatic "
               "timestamp cannot be newer");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE kv2 USING feox; INSERT INTO kv2 SELECT * FROM kv");
    expect(db, "SELECT key, value, ts FROM kv2 ORDER BY key",
           "big|7|9223372036854775807,max|1|9223372036854775807");
    sqlite3_close(db);
}

/* UPDATE ... FROM passes the columns it does not assign back as read: ts then means automatic,
 * and a value passed back keeps the record's own tag (a raw C API value stays raw). */
static void test_update_from_passes_back(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ts) VALUES ('k', 1, 1000)");
    feox_conn *conn = feox_conn_get(db);
    feox_vtab *vt = feox_conn_find_vtab(conn, "main", "kv");
    assert_non_null(vt);
    feox_write_opts o = {.tag = FEOX_TAG_RAW};
    assert_int_equal(feox_insert(vt->entry->store, "raw", 3, "bytes", 5, &o, NULL), FEOX_OK);
    ftest_exec_ok(db, "CREATE TABLE o(k TEXT); INSERT INTO o VALUES ('k'), ('raw')");
    ftest_exec_ok(db, "UPDATE kv SET ttl = 300 FROM o WHERE kv.key = o.k");
    expect(db, "SELECT key, quote(value), ttl BETWEEN 298 AND 300, ts > 1000 FROM kv ORDER BY key",
           "k|1|1|1,raw|X'6279746573'|1|1");
    feox_value *v = NULL;
    feox_record_info info;
    assert_int_equal(feox_get_ref(vt->entry->store, "raw", 3, &v), FEOX_OK);
    feox_value_info(v, &info);
    assert_int_equal(info.tag, FEOX_TAG_RAW);
    feox_value_release(v);
    feox_conn_release(conn);
    sqlite3_close(db);
}

static void test_update_and_delete(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ttl) VALUES ('a', 1, 100), ('b', 2, NULL), "
                      "('c', 3, NULL), ('d', 4, NULL)");
    ftest_exec_ok(db, "UPDATE kv SET key = 'a2' WHERE key = 'a'");
    expect(db, "SELECT key, value, ttl BETWEEN 98 AND 100 FROM kv WHERE key LIKE 'a%'", "a2|1|1");
    exec_fails(db, "UPDATE kv SET key = 'b' WHERE key = 'c'", SQLITE_CONSTRAINT,
               "UNIQUE constraint failed: kv.key");
    expect(db, "SELECT group_concat(key || '=' || value) FROM kv", "a2=1,b=2,c=3,d=4");
    ftest_exec_ok(db, "UPDATE OR REPLACE kv SET key = 'b' WHERE key = 'c'");
    expect(db, "SELECT group_concat(key || '=' || value) FROM kv", "a2=1,b=3,d=4");
    exec_fails(db, "UPDATE kv SET key = NULL WHERE key = 'b'", SQLITE_CONSTRAINT,
               "feox: kv: key may not be NULL");
    /* multi-row UPDATE (two-pass) touches every row once */
    ftest_exec_ok(db, "UPDATE kv SET value = value * 10");
    expect(db, "SELECT group_concat(value) FROM kv", "10,30,40");
    ftest_exec_ok(db, "UPDATE kv SET key = key || '_x' WHERE key >= 'b'");
    expect(db, "SELECT group_concat(key) FROM kv", "a2,b_x,d_x");
    ftest_exec_ok(db, "DELETE FROM kv WHERE key < 'c'");
    expect(db, "SELECT group_concat(key) FROM kv", "d_x");
    ftest_exec_ok(db, "DELETE FROM kv");
    expect(db, "SELECT count(*) FROM kv", "0");
    sqlite3_close(db);
}

static void test_functions(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    expect(db,
           "SELECT feox_incr('kv', 'visits', 1), feox_incr('kv', 'visits', 1), "
           "feox_incr('main.kv', 'visits', 40)",
           "1|2|42");
    expect(db, "SELECT value, typeof(value) FROM kv WHERE key = 'visits'", "42|integer");
    expect(db, "SELECT feox_incr('kv', 'visits', 9223372036854775807)", "9223372036854775807");
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ttl) VALUES ('c', 10, 500), ('blob8', "
                      "x'0500000000000000', NULL), ('txt', 'abcdefgh', NULL), ('r', 1.0, NULL), "
                      "('rf', 1.5, NULL)");
    expect(db, "SELECT feox_incr('kv', 'c', -3)", "7");
    expect(db, "SELECT ttl BETWEEN 498 AND 500 FROM kv WHERE key = 'c'", "1");
    expect(db, "SELECT feox_incr('kv', 'c', 1, 0)", "8");
    expect(db, "SELECT ttl FROM kv WHERE key = 'c'", "NULL");
    expect(db, "SELECT feox_incr('kv', 'blob8', 1)", "6");
    expect(db, "SELECT value, typeof(value) FROM kv WHERE key = 'blob8'", "6|integer");
    exec_fails(db, "SELECT feox_incr('kv', 'txt', 1)", SQLITE_MISMATCH,
               "feox: kv: value is not a 64-bit integer");
    /* a REAL that holds an integer counts as that integer (stored as INTEGER); a fraction not */
    expect(db, "SELECT feox_incr('kv', 'r', 1)", "2");
    expect(db, "SELECT value, typeof(value) FROM kv WHERE key = 'r'", "2|integer");
    exec_fails(db, "SELECT feox_incr('kv', 'rf', 1)", SQLITE_MISMATCH,
               "feox: kv: value is not a 64-bit integer");
    exec_fails(db, "SELECT feox_incr('kv', 'r', 0.5)", SQLITE_MISMATCH,
               "feox: kv: delta must be an integer");
    exec_fails(db, "SELECT feox_incr('nope', 'x', 1)", SQLITE_ERROR, "feox: no such table: nope");
    ftest_exec_ok(db, "CREATE TABLE plain(key, value)");
    exec_fails(db, "SELECT feox_incr('plain', 'x', 1)", SQLITE_ERROR,
               "feox: plain is not a feox table");
    /* cas compares SQL type and bytes */
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ttl) VALUES ('cfg', 5, 300)");
    expect(db, "SELECT feox_cas('kv', 'cfg', '5', 'v2')", "0");
    expect(db, "SELECT feox_cas('kv', 'cfg', 5.0, 'v2')", "0");
    expect(db, "SELECT feox_cas('kv', 'cfg', 5, 'v2')", "1");
    expect(db, "SELECT value, typeof(value), ttl BETWEEN 298 AND 300 FROM kv WHERE key = 'cfg'",
           "v2|text|1");
    expect(db, "SELECT feox_cas('kv', 'cfg', 'v2', NULL, 10)", "1");
    expect(db, "SELECT typeof(value), ttl BETWEEN 8 AND 10 FROM kv WHERE key = 'cfg'", "null|1");
    expect(db, "SELECT feox_cas('kv', 'missing', NULL, 1)", "0");
    /* patch */
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ttl) VALUES ('user:1', "
                      "'{\"name\":\"Ada\",\"age\":36,\"id\":9007199254740993}', 900)");
    expect(db,
           "SELECT feox_patch('kv', 'user:1', "
           "'[{\"op\":\"replace\",\"path\":\"/age\",\"value\":38}]')",
           "{\"name\":\"Ada\",\"age\":38,\"id\":9007199254740993}");
    expect(db, "SELECT json_extract(value, '$.age'), ttl > 890 FROM kv WHERE key = 'user:1'",
           "38|1");
    exec_fails(db, "SELECT feox_patch('kv', 'nobody', '[]')", SQLITE_ERROR, NULL);
    exec_fails(db,
               "SELECT feox_patch('kv', 'user:1', '[{\"op\":\"test\",\"path\":\"/age\","
               "\"value\":1}]')",
               SQLITE_ERROR, NULL);
    expect(db, "SELECT json_extract(value, '$.age') FROM kv WHERE key = 'user:1'", "38");
    /* stats, flush, check */
    expect(db, "SELECT json_extract(feox_stats('kv'), '$.len') = (SELECT count(*) FROM kv)", "1");
    expect(db,
           "SELECT json_type(feox_stats('kv'), '$.memory_usage'), "
           "json_extract(feox_stats('kv'), '$.max_memory'), "
           "json_extract(feox_stats('kv'), '$.increments') > 0, "
           "json_extract(feox_stats('kv'), '$.cas_success') > 0",
           "integer|0|1|1");
    expect(db, "SELECT feox_flush('kv'), feox_check('kv')", "1|ok");
    sqlite3_close(db);
}

static void test_functions_in_transactions(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('n', 1), ('j', '{\"a\":1}'), ('c', 'x')");
    ftest_exec_ok(db, "BEGIN");
    expect(db,
           "SELECT feox_incr('kv', 'n', 5), feox_incr('kv', 'new', 1), "
           "feox_cas('kv', 'c', 'x', 'y'), "
           "feox_patch('kv', 'j', '[{\"op\":\"add\",\"path\":\"/b\",\"value\":2}]')",
           "6|1|1|{\"a\":1,\"b\":2}");
    ftest_exec_ok(db, "ROLLBACK");
    expect(db, "SELECT group_concat(key || '=' || value) FROM kv", "c=x,j={\"a\":1},n=1");
    /* savepoints */
    ftest_exec_ok(db, "BEGIN");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('s0', 0)");
    ftest_exec_ok(db, "SAVEPOINT a");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('s1', 1)");
    ftest_exec_ok(db, "SELECT feox_incr('kv', 'n', 100)");
    ftest_exec_ok(db, "SAVEPOINT b");
    ftest_exec_ok(db, "DELETE FROM kv WHERE key = 'c'");
    ftest_exec_ok(db, "ROLLBACK TO b");
    expect(db, "SELECT group_concat(key) FROM kv", "c,j,n,s0,s1");
    ftest_exec_ok(db, "ROLLBACK TO a");
    expect(db, "SELECT group_concat(key || '=' || value) FROM kv", "c=x,j={\"a\":1},n=1,s0=0");
    ftest_exec_ok(db, "RELEASE a");
    ftest_exec_ok(db, "COMMIT");
    expect(db, "SELECT group_concat(key) FROM kv", "c,j,n,s0");
    /* a savepoint that opened the transaction: SQLite calls xRollbackTo(-1) */
    ftest_exec_ok(db, "SAVEPOINT outer_sp");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('gone', 1)");
    ftest_exec_ok(db, "UPDATE kv SET value = 'changed' WHERE key = 'c'");
    ftest_exec_ok(db, "ROLLBACK TO outer_sp");
    ftest_exec_ok(db, "RELEASE outer_sp");
    expect(db, "SELECT group_concat(key || '=' || value) FROM kv", "c=x,j={\"a\":1},n=1,s0=0");
    /* a failing statement inside BEGIN undoes only itself */
    ftest_exec_ok(db, "BEGIN");
    ftest_exec_ok(db, "UPDATE kv SET value = 2 WHERE key = 'n'");
    exec_fails(db, "UPDATE kv SET key = 'n' WHERE key = 'c'", SQLITE_CONSTRAINT,
               "UNIQUE constraint failed: kv.key");
    ftest_exec_ok(db, "COMMIT");
    expect(db, "SELECT group_concat(key || '=' || value) FROM kv", "c=x,j={\"a\":1},n=2,s0=0");
    /* a rollback restores the exact version: value, type, timestamp and expiry instant */
    ftest_exec_ok(db, "INSERT INTO kv(key, value, ttl, ts) VALUES ('w', 7, 500, 1000)");
    sqlite3_int64 ttl_before = query_int(db, "SELECT ttl FROM kv WHERE key = 'w'");
    ftest_exec_ok(db, "BEGIN");
    ftest_exec_ok(db, "UPDATE kv SET value = 'v2', ts = 5000, ttl = NULL WHERE key = 'w'");
    ftest_exec_ok(db, "DELETE FROM kv WHERE key = 'w'");
    ftest_exec_ok(db, "ROLLBACK");
    expect(db, "SELECT value, typeof(value), ts FROM kv WHERE key = 'w'", "7|integer|1000");
    assert_true(query_int(db, "SELECT ttl FROM kv WHERE key = 'w'") >= ttl_before - 1);
    ftest_exec_ok(db, "UPDATE kv SET value = 8, ts = 2000 WHERE key = 'w'");
    expect(db, "SELECT value, ts FROM kv WHERE key = 'w'", "8|2000");
    sqlite3_close(db);
}

static void test_options(void **state)
{
    (void)state;
    sqlite3 *db = open_db(":memory:");
    exec_fails(db, "CREATE VIRTUAL TABLE t USING feox(colour='red')", SQLITE_ERROR,
               "feox: t: unknown option 'colour'");
    exec_fails(db, "CREATE VIRTUAL TABLE t USING feox(max_memory='lots')", SQLITE_ERROR,
               "feox: t: bad value 'lots' for option 'max_memory' (expected a size such as "
               "1048576, '512MB' or '1GiB')");
    exec_fails(db, "CREATE VIRTUAL TABLE t USING feox(sync='sometimes')", SQLITE_ERROR,
               "feox: t: bad value 'sometimes' for option 'sync' (expected off, normal or full)");
    exec_fails(db, "CREATE VIRTUAL TABLE t USING feox(keytype=integer)", SQLITE_ERROR,
               "feox: t: bad value 'integer' for option 'keytype' (expected text or blob)");
    exec_fails(db, "CREATE VIRTUAL TABLE t USING feox(ttl_sweep_interval=-1)", SQLITE_ERROR,
               "feox: t: bad value '-1' for option 'ttl_sweep_interval' (expected a number of "
               "milliseconds)");
    exec_fails(db, "CREATE VIRTUAL TABLE t USING feox(sync=off, sync=full)", SQLITE_ERROR,
               "feox: t: option 'sync' given twice");
    exec_fails(db, "CREATE VIRTUAL TABLE t USING feox(path)", SQLITE_ERROR,
               "feox: t: option 'path' needs a value (name=value)");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE m1 USING feox(max_memory='512MB')");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE m2 USING feox(max_memory=\"512MiB\", sync=off)");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE m3 USING feox(max_memory=4096, ttl_sweep_interval=0, "
                      "keytype='BLOB', flush_interval=10)");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE m4 USING feox(max_memory='1GiB', sync='full', "
                      "ttl_sweep_interval=20, path=':memory:')");
    expect(db,
           "SELECT json_extract(feox_stats('m1'), '$.max_memory'), "
           "json_extract(feox_stats('m2'), '$.max_memory'), "
           "json_extract(feox_stats('m3'), '$.max_memory'), "
           "json_extract(feox_stats('m4'), '$.max_memory')",
           "512000000|536870912|4096|1073741824");
    /* max_memory is enforced: OutOfMemory is SQLITE_FULL and nothing is half-written */
    exec_fails(db, "INSERT INTO m3(key, value) VALUES ('big', zeroblob(10000))", SQLITE_FULL, NULL);
    expect(db, "SELECT count(*) FROM m3", "0");
    sqlite3_close(db);
}

/* Create schema.table as the previous release did: no path in its CREATE text, its records in
 * its default store file "<db file>-<table>.feox" (this release puts a new table without path
 * in the database and keeps such a table in its file). Created with that file as its path; the
 * path is then taken out of the schema text, and the schema version bumped so that every
 * connection reads the schema again. */
static void create_previous_release(sqlite3 *db, const char *schema, const char *table)
{
    char sql[1400];
    snprintf(sql, sizeof sql, "CREATE VIRTUAL TABLE \"%s\".\"%s\" USING feox(path='%s-%s.feox')",
             schema, table, sqlite3_db_filename(db, schema), table);
    ftest_exec_ok(db, sql);
    snprintf(sql, sizeof sql, "PRAGMA \"%s\".schema_version", schema);
    char *version = query(db, sql);
    snprintf(sql, sizeof sql,
             "PRAGMA writable_schema = ON; UPDATE \"%s\".sqlite_schema SET sql = "
             "'CREATE VIRTUAL TABLE \"%s\" USING feox' WHERE name = '%s'; "
             "PRAGMA writable_schema = OFF; PRAGMA \"%s\".schema_version = %lld",
             schema, table, table, schema, atoll(version) + 1);
    sqlite3_free(version);
    ftest_exec_ok(db, sql);
}

static void test_files_and_sharing(void **state)
{
    (void)state;
    char dbpath[512], store[512], rel[512], renamed[512], sql[1024];
    snprintf(dbpath, sizeof dbpath, "%s/app.db", tmpdir);
    snprintf(store, sizeof store, "%s/app.db-kv.feox", tmpdir);
    snprintf(rel, sizeof rel, "%s/sub.feox", tmpdir);
    snprintf(renamed, sizeof renamed, "%s/app.db-kv2.feox", tmpdir);

    sqlite3 *a = open_db(dbpath);
    create_previous_release(a, "main", "kv"); /* a table in its default file */
    ftest_exec_ok(a, "CREATE VIRTUAL TABLE mem USING feox(path=':memory:')");
    ftest_exec_ok(a, "CREATE VIRTUAL TABLE rel USING feox(path='sub.feox', sync=full)");
    assert_true(file_exists(store));
    assert_true(file_exists(rel));
    ftest_exec_ok(a, "INSERT INTO kv(key, value) VALUES ('k', 'persisted')");
    ftest_exec_ok(a, "INSERT INTO mem(key, value) VALUES ('m', 1)");
    ftest_exec_ok(a, "INSERT INTO rel(key, value) VALUES ('r', 1)");

    /* a second connection of this process shares every store, memory ones included */
    sqlite3 *b = open_db(dbpath);
    expect(b, "SELECT value FROM kv WHERE key = 'k'", "persisted");
    expect(b, "SELECT count(*) FROM mem", "1");
    ftest_exec_ok(b, "INSERT INTO mem(key, value) VALUES ('m2', 2)");
    expect(a, "SELECT count(*) FROM mem", "2");
    /* functions find a table the connection has not touched yet */
    sqlite3 *c = open_db(dbpath);
    expect(c, "SELECT feox_incr('rel', 'n', 3)", "3");
    expect(a, "SELECT value FROM rel WHERE key = 'n'", "3");
    sqlite3_close(c);
    sqlite3_close(b);
    sqlite3_close(a);

    /* reopen: the file store persisted, the memory store vanished with its last connection */
    a = open_db(dbpath);
    expect(a, "SELECT value FROM kv WHERE key = 'k'", "persisted");
    expect(a, "SELECT count(*) FROM mem", "0");
    expect(a, "SELECT group_concat(key) FROM rel", "n,r");
    /* RENAME moves the default file with the table */
    ftest_exec_ok(a, "ALTER TABLE kv RENAME TO kv2");
    assert_false(file_exists(store));
    assert_true(file_exists(renamed));
    expect(a, "SELECT value FROM kv2 WHERE key = 'k'", "persisted");
    ftest_exec_ok(a, "INSERT INTO kv2(key, value) VALUES ('after', 1)");
    sqlite3_close(a);
    a = open_db(dbpath);
    expect(a, "SELECT group_concat(key) FROM kv2", "after,k");
    /* DROP while another connection still uses the table: the store is emptied, that
     * connection's statements fail cleanly, a new table of the same name starts empty, and the
     * file goes with the last connection */
    sqlite3 *b2 = open_db(dbpath);
    expect(b2, "SELECT count(*) FROM kv2", "2");
    ftest_exec_ok(a, "DROP TABLE kv2");
    exec_fails(b2, "SELECT count(*) FROM kv2", SQLITE_ERROR, "no such table: kv2");
    ftest_exec_ok(a, "CREATE VIRTUAL TABLE gone USING feox");
    expect(b2, "SELECT count(*) FROM gone", "0");
    ftest_exec_ok(a, "DROP TABLE gone");
    snprintf(sql, sizeof sql, "%s/app.db-gone.feox", tmpdir);
    sqlite3_close(b2); /* b2 held the dropped store: its files go now */
    /* a DROP's file goes once it is known committed: at the connection's next use of feox */
    expect(a, "SELECT group_concat(key) FROM rel", "n,r");
    assert_false(file_exists(sql));
    b2 = open_db(dbpath);
    ftest_exec_ok(a, "CREATE VIRTUAL TABLE kv2 USING feox");
    expect(b2, "SELECT count(*) FROM kv2", "0");
    ftest_exec_ok(b2, "INSERT INTO kv2(key, value) VALUES ('x', 1)");
    sqlite3_close(b2);
    expect(a, "SELECT group_concat(key) FROM kv2", "x");
    /* DROP removes the store files */
    ftest_exec_ok(a, "DROP TABLE kv2");
    ftest_exec_ok(a, "DROP TABLE rel");
    expect(a, "SELECT count(*) FROM mem", "0"); /* the next use of feox settles the DROPs */
    assert_false(file_exists(renamed));
    assert_false(file_exists(rel));
    ftest_exec_ok(a, "CREATE VIRTUAL TABLE kv2 USING feox");
    expect(a, "SELECT count(*) FROM kv2", "0");
    ftest_exec_ok(a, "DROP TABLE kv2");
    ftest_exec_ok(a, "DROP TABLE mem");
    sqlite3_close(a);
    snprintf(sql, sizeof sql, "%s-journal", dbpath);
    unlink(sql);
    unlink(dbpath);
}

static void test_schemas(void **state)
{
    (void)state;
    char main_db[512], aux_db[512], aux_store[512], sql[1200];
    snprintf(main_db, sizeof main_db, "%s/main.db", tmpdir);
    snprintf(aux_db, sizeof aux_db, "%s/aux.db", tmpdir);
    snprintf(aux_store, sizeof aux_store, "%s/aux.db-t.feox", tmpdir);
    sqlite3 *db = open_db(main_db);
    snprintf(sql, sizeof sql, "ATTACH '%s' AS aux", aux_db);
    ftest_exec_ok(db, sql);
    create_previous_release(db, "aux", "t"); /* a table in its default file */
    assert_true(file_exists(aux_store));
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE main.t USING feox(path=':memory:')");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE temp.t USING feox");
    /* unqualified names resolve as SQLite does: temp first */
    expect(db,
           "SELECT feox_incr('t', 'n', 1), feox_incr('main.t', 'n', 10), "
           "feox_incr('aux.t', 'n', 100)",
           "1|10|100");
    expect(db,
           "SELECT (SELECT value FROM temp.t), (SELECT value FROM main.t), "
           "(SELECT value FROM aux.t)",
           "1|10|100");
    exec_fails(db, "SELECT feox_incr('nosuch.t', 'n', 1)", SQLITE_ERROR, NULL);
    ftest_exec_ok(db, "DROP TABLE aux.t");
    expect(db, "SELECT count(*) FROM main.t", "1"); /* the next use of feox settles the DROP */
    assert_false(file_exists(aux_store));
    ftest_exec_ok(db, "DROP TABLE main.t");
    sqlite3_close(db);
}

/* EXPLAIN QUERY PLAN of SELECT * FROM kv <tail> shows "INDEX <n>:<plan>". */
static void expect_plan(sqlite3 *db, const char *tail, const char *plan)
{
    char sql[256], want[256];
    snprintf(sql, sizeof sql, "EXPLAIN QUERY PLAN SELECT * FROM kv %s", tail);
    char *got = query(db, sql);
    snprintf(want, sizeof want, ":%s", plan);
    const char *colon = strstr(got, ":");
    if (colon == NULL || strncmp(colon, want, strlen(want)) != 0 ||
        (colon[strlen(want)] != '\0' && colon[strlen(want)] != ',')) {
        fail_msg("%s\n  got:  %s\n  want: ...%s", sql, got, want);
    }
    sqlite3_free(got);
}

static void test_query_plans(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    static const struct {
        const char *where;
        const char *plan;
    } cases[] = {
        {"WHERE key = ?", "hash lookup key=?"},
        {"WHERE key IN ('a', 'b')", "hash lookup key IN(...)"},
        {"WHERE key > ? AND key <= ?", "ordered scan key>? AND key<=?"},
        {"WHERE key <= ? AND key > ?", "ordered scan key<=? AND key>?"},
        {"WHERE key BETWEEN 'a' AND 'b'", "ordered scan key>=? AND key<=?"},
        {"WHERE key >= 'a' AND key <= 'b' ORDER BY key DESC LIMIT 10",
         "ordered scan key>=? AND key<=? DESC LIMIT"},
        {"WHERE key GLOB 'user:*'", "ordered scan key>=? AND key<?"},
        {"WHERE key LIKE 'user:%'", "full scan"},
        {"WHERE key = 'A' COLLATE NOCASE", "full scan"},
        {"ORDER BY key LIMIT 5 OFFSET 2", "full scan ASC LIMIT OFFSET"},
        {"WHERE value = 1 LIMIT 5", "full scan"},
        {"ORDER BY value LIMIT 5", "full scan"},
        {"WHERE key > 'a' ORDER BY key DESC", "ordered scan key>? DESC"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        expect_plan(db, cases[i].where, cases[i].plan);
    }
    ftest_exec_ok(db, "PRAGMA case_sensitive_like = ON");
    expect_plan(db, "WHERE key LIKE 'user:%'", "ordered scan key>=? AND key<?");
    /* LIMIT/OFFSET next to a row value, which SQLite re-checks after the vtab: still exact */
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('a', 1), ('b', 1), ('c', 5), ('d', 5), "
                      "('e', 5)");
    expect(db, "SELECT key FROM kv WHERE (key, value) > ('b', 2) ORDER BY key LIMIT 2", "c,d");
    expect(db, "SELECT key FROM kv WHERE (key, value) >= ('a', 2) LIMIT 2 OFFSET 1", "c,d");
    expect(db, "SELECT key FROM kv WHERE key >= 'b' ORDER BY key DESC LIMIT 2 OFFSET 1", "d,c");
    expect(db, "SELECT key FROM kv WHERE key > 'a' ORDER BY key DESC LIMIT 2 OFFSET 1", "d,c");
    expect(db, "SELECT key FROM kv ORDER BY key LIMIT 2 OFFSET 3", "d,e");
    expect(db,
           "SELECT key FROM kv WHERE key IN ('e', 'a', 'c') ORDER BY key DESC LIMIT 1 "
           "OFFSET 1",
           "c");
    sqlite3_close(db);
}

/* Planning never changes a store: preparing statements (xBestIndex) over a table whose keys have
 * expired, with no sweeper, leaves those keys in place (an exact count would remove them). */
static void test_planning_changes_nothing(void **state)
{
    (void)state;
    char dbpath[512], store[512];
    snprintf(dbpath, sizeof dbpath, "%s/plan.db", tmpdir);
    snprintf(store, sizeof store, "%s/plan.feox", tmpdir);
    sqlite3 *db = open_db(dbpath);
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE kv USING feox(path='plan.feox', ttl_sweep_interval=0)");
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = store;
    cfg.disable_ttl_sweeper = true;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK); /* the table's own instance */
    feox_write_opts o = {.flags = FEOX_WRITE_EXPIRES_AT, .expires_at_ns = 1};
    assert_int_equal(feox_insert(s, "e1", 2, "x", 1, &o, NULL), FEOX_OK);
    assert_int_equal(feox_insert(s, "e2", 2, "x", 1, &o, NULL), FEOX_OK);
    assert_int_equal(feox_len(s, FEOX_LEN_ESTIMATE), 2);
    expect_plan(db, "WHERE key > 'a'", "ordered scan key>?");
    expect_plan(db, "", "full scan");
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT * FROM kv WHERE key = 'e1'", -1, &st, NULL),
                     SQLITE_OK);
    sqlite3_finalize(st);
    assert_int_equal(feox_len(s, FEOX_LEN_ESTIMATE), 2); /* nothing swept */
    feox_stats stats;
    assert_int_equal(feox_get_stats(s, &stats), FEOX_OK); /* exact: sweeps them now */
    assert_int_equal(stats.ttl_expired_lazy, 2);
    assert_int_equal(stats.len, 0);
    assert_int_equal(feox_close(s), FEOX_OK);
    sqlite3_close(db);
}

/* Error codes say what happened: a table whose store file is missing fails with SQLITE_CANTOPEN
 * (its open failed); once a damaged store file is in its place, every use (a scan, a write) fails
 * with SQLITE_CORRUPT. */
static void test_store_error_codes(void **state)
{
    (void)state;
    char dbpath[512], store[512];
    snprintf(dbpath, sizeof dbpath, "%s/codes.db", tmpdir);
    snprintf(store, sizeof store, "%s/codes.db-kv.feox", tmpdir);
    sqlite3 *db = open_db(dbpath);
    create_previous_release(db, "main", "kv"); /* a table in its default file */
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('k', 1)");
    sqlite3_close(db);
    unsigned char head[64];
    FILE *f = fopen(store, "rb");
    assert_non_null(f);
    assert_int_equal(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    assert_int_equal(unlink(store), 0);
    db = open_db(dbpath);
    exec_fails(db, "SELECT * FROM kv", SQLITE_CANTOPEN, NULL);
    exec_fails(db, "INSERT INTO kv(key, value) VALUES ('n', 1)", SQLITE_CANTOPEN, NULL);
    head[24] ^= 0xff; /* creation time: the header checksum no longer matches */
    f = fopen(store, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    exec_fails(db, "SELECT * FROM kv", SQLITE_CORRUPT, NULL);
    exec_fails(db, "INSERT INTO kv(key, value) VALUES ('n', 1)", SQLITE_CORRUPT, NULL);
    sqlite3_close(db);
}

static void test_writes_during_scans(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db,
                  "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 500) "
                  "INSERT INTO kv(key, value) SELECT printf('k%04d', i), i FROM c");
    /* a function writing every row of the table it scans: each row exactly once */
    expect(db, "SELECT count(*), sum(x) FROM (SELECT feox_incr('kv', key, 1) AS x FROM kv)",
           "500|125750");
    /* a scan that inserts new keys ahead of itself still terminates and sees no key twice */
    expect(db,
           "SELECT count(*), count(DISTINCT key), sum(x) FROM (SELECT key, "
           "feox_incr('kv', key || 'z', 1) AS x FROM kv WHERE key < 'k0100' "
           "AND key NOT LIKE '%z')",
           "99|99|99");
    expect(db, "SELECT count(*) FROM kv WHERE key GLOB '*z'", "99");
    ftest_exec_ok(db, "UPDATE kv SET value = value + 1 WHERE key >= 'k0400'");
    expect(db, "SELECT sum(value) FROM kv WHERE key >= 'k0400' AND key < 'k0500'", "45150");
    /* the same scan descending */
    expect(db,
           "SELECT count(*), sum(x) FROM (SELECT key, feox_incr('kv', key || 'y', 1) AS x "
           "FROM kv WHERE key >= 'k0200' AND key < 'k0300' AND key NOT GLOB '*[yz]' "
           "ORDER BY key DESC)",
           "100|100");
    sqlite3_close(db);
}

/* SQLite's allocator, wrapped to count allocations (installed in main, before SQLite starts). */
static sqlite3_mem_methods sqlite_mem;
static _Atomic unsigned long sqlite_allocs;

static void *counting_malloc(int n)
{
    atomic_fetch_add_explicit(&sqlite_allocs, 1, memory_order_relaxed);
    return sqlite_mem.xMalloc(n);
}

static void *counting_realloc(void *p, int n)
{
    atomic_fetch_add_explicit(&sqlite_allocs, 1, memory_order_relaxed);
    return sqlite_mem.xRealloc(p, n);
}

static void install_counting_allocator(void)
{
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_GETMALLOC, &sqlite_mem), SQLITE_OK);
    sqlite3_mem_methods counting = sqlite_mem;
    counting.xMalloc = counting_malloc;
    counting.xRealloc = counting_realloc;
    assert_int_equal(sqlite3_config(SQLITE_CONFIG_MALLOC, &counting), SQLITE_OK);
}

/* SQLite allocations made while one prepared point SELECT runs. */
static unsigned long point_select_allocs(sqlite3_stmt *st, const char *key)
{
    unsigned long before = atomic_load_explicit(&sqlite_allocs, memory_order_relaxed);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        rows++;
    }
    sqlite3_reset(st);
    assert_int_equal(rows, 1);
    return atomic_load_explicit(&sqlite_allocs, memory_order_relaxed) - before;
}

/* Cursors are kept by their table between statements and reuse their buffers between xFilter
 * calls: after a first run a point SELECT allocates nothing from SQLite's heap, and plans that
 * follow each other on one cursor (join, subquery, IN then scan, long then short bounds) still
 * see the right rows. */
static void test_cursor_reuse(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db,
                  "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300) "
                  "INSERT INTO kv(key, value) SELECT printf('k%04d', i), i FROM c");
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT value FROM kv WHERE key = ?1", -1, &st, NULL),
                     SQLITE_OK);
    (void)point_select_allocs(st, "k0001"); /* the first run may size buffers */
    for (int i = 2; i < 50; i += 7) {
        char key[16];
        snprintf(key, sizeof key, "k%04d", i);
        /* SQLite allocates its own cursor record for the virtual table on every run (one
         * allocation); the extension adds none (it added three before: its cursor and the key
         * list with its key). */
        assert_true(point_select_allocs(st, key) <= 1);
    }
    sqlite3_finalize(st);
    /* One cursor running several plans: a self-join (two cursors on one table at once) and a
     * correlated subquery (EQ per outer row), a scan with LIMIT and OFFSET. */
    expect(db,
           "SELECT group_concat(a.key || '=' || b.value) FROM kv a JOIN kv b ON b.key = a.key "
           "WHERE a.key > 'k0100' AND a.key <= 'k0103'",
           "k0101=101,k0102=102,k0103=103");
    expect(db,
           "SELECT group_concat(k || ':' || v) FROM (SELECT key AS k, (SELECT value FROM kv b "
           "WHERE b.key = 'k' || substr(a.key, 2)) AS v FROM kv a WHERE key >= 'k0298')",
           "k0298:298,k0299:299,k0300:300");
    expect(db,
           "SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key > 'k0010' ORDER BY key "
           "LIMIT 3 OFFSET 2)",
           "k0013,k0014,k0015");
    expect(db,
           "SELECT group_concat(key) FROM (SELECT key FROM kv WHERE key < 'k0290' ORDER BY key "
           "DESC LIMIT 2)",
           "k0289,k0288");
    /* Long then short bounds and keys through the same prepared statements. */
    char *long_key = sqlite3_mprintf("k0050%0200d", 0);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT count(*), min(key) FROM kv WHERE key > ?1 AND "
                                        "key < 'k0060'",
                                        -1, &st, NULL),
                     SQLITE_OK);
    const char *bounds[] = {long_key, "k0055", long_key, "k"};
    const int counts[] = {9, 4, 9, 59};
    const char *firsts[] = {"k0051", "k0056", "k0051", "k0001"};
    for (int i = 0; i < 4; i++) {
        sqlite3_bind_text(st, 1, bounds[i], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int(st, 0), counts[i]);
        assert_string_equal((const char *)sqlite3_column_text(st, 1), firsts[i]);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    expect(db, "SELECT count(*) FROM kv WHERE key IN ('k0001', 'k0002', 'nope')", "2");
    expect(db, "SELECT value FROM kv WHERE key = 'k0007'", "7");
    sqlite3_free(long_key);
    sqlite3_close(db);
}

/* A point SELECT hands SQLite the version's own TEXT and BLOB bytes, with a handle that SQLite
 * releases when done: two statements on one key see the same bytes (one copy each before), and
 * those bytes stay as they were while the key is overwritten and deleted, until the statement
 * lets go of them. A value SQLite refuses (too big) and one it converts (a UTF-16 database) are
 * released too (ASan's leak check). */
static void test_point_values_not_copied(void **state)
{
    (void)state;
    sqlite3 *db = mem_db_with_kv();
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('b', zeroblob(100) || x'01'), "
                      "('t', printf('%.100c', 'x')), ('i', 7)");
    sqlite3_stmt *first = NULL, *second = NULL;
    const char *sql = "SELECT value FROM kv WHERE key = ?1";
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &first, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &second, NULL), SQLITE_OK);
    const char *keys[] = {"b", "t"};
    for (int k = 0; k < 2; k++) {
        sqlite3_bind_text(first, 1, keys[k], -1, SQLITE_STATIC);
        sqlite3_bind_text(second, 1, keys[k], -1, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(first), SQLITE_ROW);
        assert_int_equal(sqlite3_step(second), SQLITE_ROW);
        const void *a = sqlite3_column_blob(first, 0), *b = sqlite3_column_blob(second, 0);
        assert_int_equal(sqlite3_column_bytes(first, 0), 101 - k);
        assert_ptr_equal(a, b);
        unsigned char before[101];
        memcpy(before, a, (size_t)(101 - k));
        sqlite3_reset(second);
        char *update = sqlite3_mprintf("UPDATE kv SET value = 'new' WHERE key = '%s'", keys[k]);
        ftest_exec_ok(db, update);
        sqlite3_free(update);
        expect(db,
               k == 0 ? "SELECT value FROM kv WHERE key = 'b'"
                      : "SELECT value FROM kv WHERE key = 't'",
               "new");
        char *del = sqlite3_mprintf("DELETE FROM kv WHERE key = '%s'", keys[k]);
        ftest_exec_ok(db, del);
        sqlite3_free(del);
        assert_ptr_equal(sqlite3_column_blob(first, 0), a);
        assert_memory_equal(a, before, (size_t)(101 - k));
        assert_int_equal(sqlite3_step(first), SQLITE_DONE);
        sqlite3_reset(first);
    }
    sqlite3_finalize(first);
    sqlite3_finalize(second);
    ftest_exec_ok(db,
                  "INSERT INTO kv(key, value) VALUES ('b', zeroblob(100)), ('t', printf('%.100c', "
                  "'x'))");
    /* No allocation for the value either: SQLite's own cursor record is the only one. */
    sqlite3_stmt *point = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &point, NULL), SQLITE_OK);
    (void)point_select_allocs(point, "b"); /* the first run may size buffers */
    assert_true(point_select_allocs(point, "b") <= 1);
    assert_true(point_select_allocs(point, "t") <= 1);
    sqlite3_finalize(point);
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 50);
    exec_fails(db, "SELECT value FROM kv WHERE key = 'b'", SQLITE_TOOBIG, "string or blob too big");
    exec_fails(db, "SELECT value FROM kv WHERE key = 't'", SQLITE_TOOBIG, "string or blob too big");
    sqlite3_limit(db, SQLITE_LIMIT_LENGTH, 1000000);
    expect(db, "SELECT length(value), value FROM kv WHERE key = 'i'", "1|7");
    sqlite3_close(db);

    db = open_db(":memory:");
    ftest_exec_ok(db, "PRAGMA encoding = 'UTF-16le'");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE kv USING feox");
    ftest_exec_ok(db, "INSERT INTO kv(key, value) VALUES ('t', 'h\xc3\xa9llo')");
    expect(db, "SELECT value, length(value) FROM kv WHERE key = 't'", "h\xc3\xa9llo|5");
    sqlite3_close(db);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/feox_ext_sql_XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_types),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_in_lists),
        cmocka_unit_test(test_conflicts),
        cmocka_unit_test(test_ttl_rules),
        cmocka_unit_test(test_ts_rules),
        cmocka_unit_test(test_ts_limit),
        cmocka_unit_test(test_update_from_passes_back),
        cmocka_unit_test(test_update_and_delete),
        cmocka_unit_test(test_functions),
        cmocka_unit_test(test_functions_in_transactions),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_files_and_sharing),
        cmocka_unit_test(test_schemas),
        cmocka_unit_test(test_query_plans),
        cmocka_unit_test(test_writes_during_scans),
        cmocka_unit_test(test_planning_changes_nothing),
        cmocka_unit_test(test_store_error_codes),
        cmocka_unit_test(test_cursor_reuse),
        cmocka_unit_test(test_point_values_not_copied),
    };
    install_counting_allocator(); /* before SQLite initializes */
    return cmocka_run_group_tests(tests, setup, teardown);
}

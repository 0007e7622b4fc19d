/*
 * test_ext_storage_sqlite.c — the "sqlite" storage backend (ext/storage_sqlite*.c) driven
 * directly through its methods on real SQLite databases, as the virtual table will drive it:
 * shadow-table DDL inside transactions that roll back, write/erase/load round trips of every
 * value type (and through `.dump`), the change feed between two connections, STALE, the
 * no-SQL fast path, savepoints, check() on damaged rows and BUSY, the lazy load (also on the
 * store's worker thread, with its allocations failing).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "failing_alloc.h"
#include "feox_ext.h"
#include "sql_exec.h"
#include "storage_sqlite.h"

static char tmpdir[256];

/* ---- helpers ------------------------------------------------------------------------------- */

static char *query(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    sqlite3_str *s = sqlite3_str_new(db);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fail_msg("%s\n  -> %s", sql, sqlite3_errmsg(db));
    }
    int rc, row = 0;
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

int sqlite3_feox_init(sqlite3 *db, char **err, const sqlite3_api_routines *api);

static sqlite3 *open_db(const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    ftest_exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
    return db;
}

/* What a sink received: the latest version of each key, and the events in order
 * ("+key" put, "-key" del, keys printed as text). */
typedef struct copy {
    char key[32];
    unsigned char value[512];
    uint32_t value_len, tag;
    uint64_t ts, expires;
    bool live;
} copy;

typedef struct test_sink {
    copy recs[64];
    int n;
    char events[1024];
} test_sink;

static copy *slot(test_sink *ts, const void *key, uint32_t key_len)
{
    assert_true(key_len < sizeof ts->recs[0].key);
    for (int i = 0; i < ts->n; i++) {
        if (strlen(ts->recs[i].key) == key_len && memcmp(ts->recs[i].key, key, key_len) == 0) {
            return &ts->recs[i];
        }
    }
    assert_true(ts->n < 64);
    copy *c = &ts->recs[ts->n++];
    memset(c, 0, sizeof *c);
    memcpy(c->key, key, key_len);
    return c;
}

static void event(test_sink *ts, char what, const void *key, uint32_t key_len)
{
    size_t used = strlen(ts->events);
    snprintf(ts->events + used, sizeof ts->events - used, "%c%.*s", what, (int)key_len,
             (const char *)key);
}

static feox_err sink_put(void *ctx, const feox_storage_record *rec)
{
    test_sink *ts = ctx;
    copy *c = slot(ts, rec->key, rec->key_len);
    assert_true(rec->value_len <= sizeof c->value);
    memcpy(c->value, rec->value, rec->value_len);
    c->value_len = rec->value_len;
    c->tag = rec->tag;
    c->ts = rec->ts_ns;
    c->expires = rec->expires_at_ns;
    c->live = true;
    assert_true(rec->location != 0);
    event(ts, '+', rec->key, rec->key_len);
    return FEOX_OK;
}

static feox_err sink_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    (void)ts_ns;
    test_sink *ts = ctx;
    slot(ts, key, key_len)->live = false;
    event(ts, '-', key, key_len);
    return FEOX_OK;
}

static feox_storage_sink sink_of(test_sink *ts)
{
    memset(ts, 0, sizeof *ts);
    feox_storage_sink s = {.ctx = ts, .put = sink_put, .del = sink_del};
    return s;
}

static int live_count(const test_sink *ts)
{
    int n = 0;
    for (int i = 0; i < ts->n; i++) {
        n += ts->recs[i].live;
    }
    return n;
}

/* One table's backend on one connection. */
typedef struct backend {
    feox_sqlite_table t;
    feox_storage *st;
} backend;

static void open_backend_limits(backend *bk, sqlite3 *db, const char *table,
                                feox_sqlite_write_mode mode, uint64_t pending_limit,
                                uint64_t feed_limit)
{
    memset(bk, 0, sizeof *bk);
    bk->t.db = db;
    bk->t.schema = "main";
    bk->t.table = table;
    bk->t.write_mode = mode;
    bk->t.pending_limit = pending_limit;
    bk->t.feed_limit = feed_limit;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage = feox_sqlite_storage();
    cfg.storage_arg = &bk->t;
    assert_int_equal(cfg.storage->open(cfg.storage, &cfg, NULL, &bk->st), FEOX_OK);
    assert_ptr_equal(bk->t.backend, (void *)bk->st);
}

static void open_backend(backend *bk, sqlite3 *db, const char *table, feox_sqlite_write_mode mode)
{
    open_backend_limits(bk, db, table, mode, 0, 0);
}

static void close_backend(backend *bk)
{
    assert_int_equal(bk->st->methods->close(bk->st), FEOX_OK);
    assert_null(bk->t.backend);
}

static void load(backend *bk, test_sink *ts)
{
    feox_storage_sink s = sink_of(ts);
    feox_err err = bk->st->methods->load(bk->st, NULL, &s);
    if (err != FEOX_OK) {
        fail_msg("load: %s (%d)", bk->t.errmsg, (int)err);
    }
}

static feox_err refresh(backend *bk, test_sink *ts)
{
    feox_storage_sink s = sink_of(ts);
    return bk->st->methods->refresh(bk->st, NULL, &s);
}

static feox_err put_tagged(backend *bk, const char *key, const void *value, uint32_t len,
                           uint32_t tag, uint64_t ts, uint64_t expires)
{
    feox_storage_record rec = {key, (uint32_t)strlen(key), value, len, tag, ts, expires, 0};
    uint64_t location = 0, seq = 1;
    feox_err err = bk->st->methods->write(bk->st, NULL, &rec, NULL, &location, &seq);
    if (err == FEOX_OK) {
        assert_true(location != 0);
        assert_int_equal(seq, 0);
    }
    return err;
}

static feox_err put_text(backend *bk, const char *key, const char *text)
{
    return put_tagged(bk, key, text, (uint32_t)strlen(text), FEOX_TAG_TEXT, 1000, 0);
}

static feox_err erase(backend *bk, const char *key)
{
    return bk->st->methods->erase(bk->st, NULL, key, (uint32_t)strlen(key), 2000, NULL, NULL);
}

/* A write transaction as the vtab runs one: BEGIN IMMEDIATE (xBegin sees a write txn) .. */
static void txn_begin(backend *bk)
{
    ftest_exec_ok(bk->t.db, "BEGIN IMMEDIATE");
    assert_int_equal(feox_sqlite_storage_begin(&bk->t), FEOX_OK);
}

/* .. xSync, COMMIT, xCommit. */
static void txn_commit(backend *bk)
{
    assert_int_equal(feox_sqlite_storage_sync(&bk->t), FEOX_OK);
    ftest_exec_ok(bk->t.db, "COMMIT");
    feox_sqlite_storage_commit(&bk->t);
}

static void create_table(sqlite3 *db, const char *table)
{
    char *err = NULL;
    int rc = feox_sqlite_storage_create(db, "main", table, &err);
    if (rc != SQLITE_OK) {
        fail_msg("create %s: %s", table, err ? err : "?");
    }
}

/* Two connections to the database name, its table kv, and a backend of it on each: A on *dba
 * (mode_a, its feed_limit_a) and B on *dbb (mode_b). Opening runs no SQL. */
static void open_pair_limits(const char *name, feox_sqlite_write_mode mode_a, uint64_t feed_limit_a,
                             feox_sqlite_write_mode mode_b, sqlite3 **dba, sqlite3 **dbb,
                             backend *a, backend *b)
{
    *dba = open_db(name);
    *dbb = open_db(name);
    create_table(*dba, "kv");
    open_backend_limits(a, *dba, "kv", mode_a, 0, feed_limit_a);
    open_backend(b, *dbb, "kv", mode_b);
}

static void open_pair(const char *name, feox_sqlite_write_mode mode, sqlite3 **dba, sqlite3 **dbb,
                      backend *a, backend *b)
{
    open_pair_limits(name, mode, 0, mode, dba, dbb, a, b);
}

/* Close both backends, then their connections. */
static void close_pair(backend *a, backend *b)
{
    sqlite3 *dba = a->t.db, *dbb = b->t.db;
    close_backend(a);
    close_backend(b);
    sqlite3_close(dba);
    sqlite3_close(dbb);
}

static int count_tables(sqlite3 *db, const char *glob)
{
    char *sql = sqlite3_mprintf(
        "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name GLOB %Q", glob);
    char *got = query(db, sql);
    int n = atoi(got);
    sqlite3_free(sql);
    sqlite3_free(got);
    return n;
}

static int setup_dir(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/feox-storage-sqlite-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int teardown_dir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- DDL ----------------------------------------------------------------------------------- */

static void test_ddl_inside_transactions(void **state)
{
    (void)state;
    sqlite3 *db = open_db("ddl.db");
    ftest_exec_ok(db, "BEGIN");
    create_table(db, "kv");
    assert_int_equal(count_tables(db, "kv_*"), 3);
    ftest_exec_ok(db, "ROLLBACK");
    assert_int_equal(count_tables(db, "kv_*"), 0);

    create_table(db, "kv");
    expect(db, "SELECT name, value FROM kv_meta ORDER BY name", "format|1,min_seq|0");
    ftest_exec_ok(db, "INSERT INTO kv_data VALUES(x'01', 'v', 3, 1, NULL, 1)");
    char *err = NULL;
    ftest_exec_ok(db, "BEGIN");
    assert_int_equal(feox_sqlite_storage_drop(db, "main", "kv", &err), SQLITE_OK);
    assert_int_equal(count_tables(db, "kv_*"), 0);
    ftest_exec_ok(db, "ROLLBACK");
    expect(db, "SELECT hex(key), value FROM kv_data", "01|v");

    ftest_exec_ok(db, "BEGIN");
    assert_int_equal(feox_sqlite_storage_rename(db, "main", "kv", "kv2", &err), SQLITE_OK);
    assert_int_equal(count_tables(db, "kv2_*"), 3);
    assert_int_equal(count_tables(db, "kv_*"), 0);
    ftest_exec_ok(db, "ROLLBACK");
    assert_int_equal(count_tables(db, "kv2_*"), 0);
    expect(db, "SELECT hex(key), value FROM kv_data", "01|v");

    assert_int_equal(feox_sqlite_storage_rename(db, "main", "kv", "kv2", &err), SQLITE_OK);
    expect(db, "SELECT hex(key), value FROM kv2_data", "01|v");
    /* The expiry index follows its table (under its first name); a new kv gets another name,
     * and each is found by its table. */
    expect(db, "SELECT name, tbl_name FROM sqlite_schema WHERE type = 'index'",
           "kv_data_expires|kv2_data");
    create_table(db, "kv");
    expect(db, "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'kv_data'",
           "kv_data_expires_2");
    char *index = NULL;
    assert_int_equal(feox_sqlite_storage_expiry_index(db, "main", "kv2", false, &index, &err),
                     SQLITE_OK);
    assert_string_equal(index, "kv_data_expires");
    sqlite3_free(index);
    /* A table of the first layout has none; asked to, it gets one. */
    ftest_exec_ok(db, "DROP INDEX kv_data_expires_2");
    assert_int_equal(feox_sqlite_storage_expiry_index(db, "main", "kv", false, &index, &err),
                     SQLITE_OK);
    assert_null(index);
    assert_int_equal(feox_sqlite_storage_expiry_index(db, "main", "kv", true, &index, &err),
                     SQLITE_OK);
    assert_string_equal(index, "kv_data_expires_2");
    sqlite3_free(index);
    assert_int_equal(feox_sqlite_storage_drop(db, "main", "kv", &err), SQLITE_OK);
    expect(db, "SELECT count(*) FROM sqlite_schema WHERE tbl_name GLOB 'kv_*'", "0");
    /* Creating over existing tables fails with a message naming the table. */
    assert_int_equal(feox_sqlite_storage_create(db, "main", "kv2", &err), SQLITE_ERROR);
    assert_non_null(err);
    assert_non_null(strstr(err, "feox: kv2: creating the shadow tables: table \"kv2_data\""));
    sqlite3_free(err);
    assert_int_equal(feox_sqlite_storage_drop(db, "main", "kv2", &err), SQLITE_OK);
    assert_int_equal(count_tables(db, "kv2_*"), 0);

    assert_true(feox_sqlite_storage_shadow_name("data"));
    assert_true(feox_sqlite_storage_shadow_name("log"));
    assert_true(feox_sqlite_storage_shadow_name("meta"));
    assert_false(feox_sqlite_storage_shadow_name("config"));
    assert_false(feox_sqlite_storage_shadow_name(NULL));
    sqlite3_close(db);
}

/* ---- round trips ----------------------------------------------------------------------------- */

typedef struct typed_value {
    const char *key;
    uint32_t tag;
    unsigned char bytes[16];
    uint32_t len;
    const char *sql_type; /* typeof(value) in _data */
} typed_value;

static const typed_value typed_values[] = {
    {"int", FEOX_TAG_INTEGER, {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 8, "integer"},
    {"real", FEOX_TAG_REAL, {0, 0, 0, 0, 0, 0, 0xf8, 0x3f}, 8, "real"}, /* 1.5 */
    {"nan", FEOX_TAG_REAL, {1, 0, 0, 0, 0, 0, 0xf8, 0x7f}, 8, "blob"},  /* NaN */
    {"negzero", FEOX_TAG_REAL, {0, 0, 0, 0, 0, 0, 0, 0x80}, 8, "blob"}, /* -0.0 */
    {"inf", FEOX_TAG_REAL, {0, 0, 0, 0, 0, 0, 0xf0, 0x7f}, 8, "blob"},  /* +Inf */
    {"text", FEOX_TAG_TEXT, "h\xc3\xa9llo\n'x", 9, "text"},
    {"textnul", FEOX_TAG_TEXT, {'a', 0, 'b'}, 3, "blob"},
    {"textempty", FEOX_TAG_TEXT, {0}, 0, "text"},
    {"blob", FEOX_TAG_BLOB, {0, 1, 2, 0xff}, 4, "blob"},
    {"blobempty", FEOX_TAG_BLOB, {0}, 0, "blob"},
    {"null", FEOX_TAG_NULL, {0}, 0, "null"},
    {"raw", FEOX_TAG_RAW, {'r', 'a', 'w'}, 3, "blob"},
    {"rawint", FEOX_TAG_RAW, {1, 2, 3, 4, 5, 6, 7, 8}, 8, "blob"},
    {"shortint", FEOX_TAG_INTEGER, {1, 2}, 2, "blob"},
    {"usertag", 0xfffffff0u, {'u'}, 1, "blob"},
};
#define N_TYPED (sizeof typed_values / sizeof typed_values[0])

static void write_typed_values(backend *bk)
{
    for (size_t i = 0; i < N_TYPED; i++) {
        const typed_value *v = &typed_values[i];
        uint64_t expires = i % 3 == 0 ? UINT64_C(1800000000000000000) + i : 0;
        assert_int_equal(put_tagged(bk, v->key, v->bytes, v->len, v->tag,
                                    UINT64_MAX - i /* > INT64_MAX */, expires),
                         FEOX_OK);
    }
}

static void expect_typed_values(const test_sink *ts)
{
    assert_int_equal(live_count(ts), N_TYPED);
    for (size_t i = 0; i < N_TYPED; i++) {
        const typed_value *v = &typed_values[i];
        const copy *c = NULL;
        for (int k = 0; k < ts->n; k++) {
            if (strcmp(ts->recs[k].key, v->key) == 0) {
                c = &ts->recs[k];
            }
        }
        assert_non_null(c);
        assert_true(c->live);
        assert_int_equal(c->tag, v->tag);
        assert_int_equal(c->value_len, v->len);
        assert_memory_equal(c->value, v->bytes, v->len);
        assert_true(c->ts == UINT64_MAX - i);
        assert_true(c->expires == (i % 3 == 0 ? UINT64_C(1800000000000000000) + i : 0));
    }
}

static void round_trip(feox_sqlite_write_mode mode, const char *name)
{
    sqlite3 *db = open_db(name);
    create_table(db, "kv");
    backend bk;
    test_sink ts;
    open_backend(&bk, db, "kv", mode);
    load(&bk, &ts);
    assert_int_equal(ts.n, 0);

    txn_begin(&bk);
    write_typed_values(&bk);
    assert_int_equal(put_text(&bk, "gone", "soon deleted"), FEOX_OK);
    assert_int_equal(erase(&bk, "gone"), FEOX_OK);
    txn_commit(&bk);

    for (size_t i = 0; i < N_TYPED; i++) {
        char *sql = sqlite3_mprintf(
            "SELECT typeof(value) FROM kv_data WHERE key = CAST(%Q AS BLOB)", typed_values[i].key);
        expect(db, sql, typed_values[i].sql_type);
        sqlite3_free(sql);
    }
    expect(db, "SELECT value FROM kv_data WHERE key = CAST('text' AS BLOB)", "h\xc3\xa9llo\n'x");
    expect(db, "SELECT value FROM kv_data WHERE key = CAST('int' AS BLOB)", "-2");
    expect(db, "SELECT count(*) FROM kv_data WHERE key = CAST('gone' AS BLOB)", "0");

    /* A second backend on the same table loads exactly what was written. */
    backend again;
    open_backend(&again, db, "kv", mode);
    load(&again, &ts);
    expect_typed_values(&ts);
    char detail[512];
    assert_int_equal(again.st->methods->check(again.st, detail, sizeof detail), FEOX_OK);
    assert_string_equal(detail, "");
    close_backend(&again);
    close_backend(&bk);

    /* .dump reloaded into a fresh database brings back every record exactly. */
    if (access("/usr/bin/sqlite3", X_OK) == 0) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "/usr/bin/sqlite3 '%s/%s' .dump | /usr/bin/sqlite3 '%s/%s.copy'",
                 tmpdir, name, tmpdir, name);
        assert_int_equal(system(cmd), 0);
        char copy_name[64];
        snprintf(copy_name, sizeof copy_name, "%s.copy", name);
        sqlite3 *db2 = open_db(copy_name);
        open_backend(&again, db2, "kv", mode);
        load(&again, &ts);
        expect_typed_values(&ts);
        assert_int_equal(again.st->methods->check(again.st, detail, sizeof detail), FEOX_OK);
        close_backend(&again);
        sqlite3_close(db2);
    }
    sqlite3_close(db);
}

static void test_round_trip_buffered(void **state)
{
    (void)state;
    round_trip(FEOX_SQLITE_WRITE_BUFFERED, "rt_buffered.db");
}

static void test_round_trip_write_through(void **state)
{
    (void)state;
    round_trip(FEOX_SQLITE_WRITE_THROUGH, "rt_through.db");
}

/* ---- transactions -------------------------------------------------------------------------- */

static void test_writes_need_a_transaction(void **state)
{
    (void)state;
    sqlite3 *db = open_db("notxn.db");
    create_table(db, "kv");
    backend bk;
    test_sink ts;
    open_backend(&bk, db, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&bk, &ts);
    assert_int_equal(put_text(&bk, "a", "1"), FEOX_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(bk.t.errmsg, "feox: kv: write outside a transaction"));
    assert_int_equal(erase(&bk, "a"), FEOX_ERR_INVALID_ARGUMENT);
    /* A second open on the same argument is refused. */
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage_arg = &bk.t;
    feox_storage *other = NULL;
    assert_int_equal(feox_sqlite_storage()->open(feox_sqlite_storage(), &cfg, NULL, &other),
                     FEOX_ERR_INVALID_ARGUMENT);
    close_backend(&bk);
    sqlite3_close(db);
}

/* After a rename the open backend follows the tables to their new name. */
static void test_renamed_backend(void **state)
{
    (void)state;
    sqlite3 *db = open_db("renamed.db");
    create_table(db, "kv");
    backend bk;
    test_sink ts;
    open_backend(&bk, db, "kv", FEOX_SQLITE_WRITE_THROUGH);
    load(&bk, &ts);
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "a", "1"), FEOX_OK);
    txn_commit(&bk);
    assert_int_equal(feox_sqlite_storage_rename(db, "main", "kv", "kv2", NULL), SQLITE_OK);
    assert_int_equal(feox_sqlite_storage_renamed(&bk.t, "kv2"), FEOX_OK);
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "b", "2"), FEOX_OK);
    txn_commit(&bk);
    expect(db, "SELECT group_concat(CAST(key AS TEXT), '') FROM kv2_data", "ab");
    load(&bk, &ts);
    assert_int_equal(live_count(&ts), 2);
    assert_int_equal(feox_sqlite_storage_renamed(NULL, "x"), FEOX_ERR_INVALID_ARGUMENT);
    close_backend(&bk);
    sqlite3_close(db);
}

static void test_rollback_and_savepoints(feox_sqlite_write_mode mode, uint64_t pending_limit,
                                         const char *name)
{
    sqlite3 *db = open_db(name);
    create_table(db, "kv");
    backend bk;
    test_sink ts;
    open_backend_limits(&bk, db, "kv", mode, pending_limit, 0);
    load(&bk, &ts);

    /* ROLLBACK: nothing stays, and the next transaction begins (the seq did not move). */
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "x", "1"), FEOX_OK);
    assert_int_equal(feox_sqlite_storage_sync(&bk.t), FEOX_OK);
    ftest_exec_ok(db, "ROLLBACK");
    feox_sqlite_storage_rollback(&bk.t);
    expect(db, "SELECT count(*) FROM kv_data", "0");

    /* a; SAVEPOINT s0 (xSavepoint first, then SQLite's); b, c; ROLLBACK TO s0; d; COMMIT. */
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "a", "1"), FEOX_OK);
    assert_int_equal(feox_sqlite_storage_savepoint(&bk.t, 0), FEOX_OK);
    ftest_exec_ok(db, "SAVEPOINT s0");
    assert_int_equal(put_text(&bk, "b", "2"), FEOX_OK);
    assert_int_equal(feox_sqlite_storage_savepoint(&bk.t, 1), FEOX_OK);
    ftest_exec_ok(db, "SAVEPOINT s1");
    assert_int_equal(put_text(&bk, "c", "3"), FEOX_OK);
    assert_int_equal(put_text(&bk, "a", "overwritten after s0"), FEOX_OK);
    ftest_exec_ok(db, "ROLLBACK TO s0"); /* SQLite restores first, then calls xRollbackTo */
    feox_sqlite_storage_rollback_to(&bk.t, 0);
    assert_int_equal(put_text(&bk, "d", "4"), FEOX_OK);
    txn_commit(&bk);
    expect(db, "SELECT CAST(key AS TEXT), value FROM kv_data ORDER BY key", "a|1,d|4");

    /* The seq bookkeeping survived: another transaction begins, and a second connection's
     * refresh hears exactly a and d. */
    sqlite3 *db2 = open_db(name);
    backend other;
    open_backend(&other, db2, "kv", mode);
    load(&other, &ts);
    assert_int_equal(live_count(&ts), 2);
    txn_begin(&bk);
    assert_int_equal(erase(&bk, "a"), FEOX_OK);
    txn_commit(&bk);
    assert_int_equal(refresh(&other, &ts), FEOX_OK);
    assert_string_equal(ts.events, "-a");
    char detail[256];
    assert_int_equal(bk.st->methods->check(bk.st, detail, sizeof detail), FEOX_OK);

    /* xRollbackTo(-1): back to the transaction's start. */
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "e", "5"), FEOX_OK);
    assert_int_equal(feox_sqlite_storage_savepoint(&bk.t, 0), FEOX_OK);
    ftest_exec_ok(db, "ROLLBACK");
    feox_sqlite_storage_rollback_to(&bk.t, -1);
    feox_sqlite_storage_rollback(&bk.t);
    txn_begin(&bk);
    txn_commit(&bk);
    expect(db, "SELECT CAST(key AS TEXT) FROM kv_data ORDER BY key", "d");

    close_backend(&other);
    sqlite3_close(db2);
    close_backend(&bk);
    sqlite3_close(db);
}

static void test_savepoints_buffered(void **state)
{
    (void)state;
    test_rollback_and_savepoints(FEOX_SQLITE_WRITE_BUFFERED, 0, "sp_buffered.db");
}

static void test_savepoints_buffered_early_flush(void **state)
{
    (void)state;
    test_rollback_and_savepoints(FEOX_SQLITE_WRITE_BUFFERED, 1, "sp_flush.db");
}

static void test_savepoints_write_through(void **state)
{
    (void)state;
    test_rollback_and_savepoints(FEOX_SQLITE_WRITE_THROUGH, 0, "sp_through.db");
}

/* ---- two connections: the change feed -------------------------------------------------------- */

static void feed_between_connections(feox_sqlite_write_mode mode, const char *name)
{
    sqlite3 *dba, *dbb;
    backend a, b;
    test_sink ts;
    open_pair(name, mode, &dba, &dbb, &a, &b);
    load(&a, &ts);
    txn_begin(&a);
    assert_int_equal(put_text(&a, "k3", "old"), FEOX_OK);
    assert_int_equal(put_text(&a, "k4", "stays"), FEOX_OK);
    txn_commit(&a);
    load(&b, &ts);
    assert_int_equal(live_count(&ts), 2);
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "");

    txn_begin(&a);
    assert_int_equal(put_text(&a, "k1", "first"), FEOX_OK);
    assert_int_equal(put_text(&a, "k2", "two"), FEOX_OK);
    assert_int_equal(erase(&a, "k3"), FEOX_OK);
    assert_int_equal(put_text(&a, "k1", "second"), FEOX_OK);
    /* Not committed: B sees nothing (its refresh runs in its own read transaction). */
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "");
    txn_commit(&a);

    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    /* Exactly the changed keys, each once: in the order they reached the tables (buffered: key
     * order at sync; write-through: the order of their last change). */
    assert_string_equal(ts.events, mode == FEOX_SQLITE_WRITE_BUFFERED ? "+k1+k2-k3" : "+k2-k3+k1");
    const copy *k1 = slot(&ts, "k1", 2);
    assert_int_equal(k1->value_len, 6);
    assert_memory_equal(k1->value, "second", 6);
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "");

    /* B writes next (its cache is current, so it may begin), and A hears it. */
    txn_begin(&b);
    assert_int_equal(put_text(&b, "k5", "from b"), FEOX_OK);
    txn_commit(&b);
    assert_int_equal(refresh(&a, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+k5");
    /* A begins only once its cache is current. */
    txn_begin(&b);
    assert_int_equal(put_text(&b, "k6", "from b"), FEOX_OK);
    txn_commit(&b);
    ftest_exec_ok(dba, "BEGIN IMMEDIATE");
    assert_int_equal(feox_sqlite_storage_begin(&a.t), FEOX_ERR_STALE);
    assert_int_equal(refresh(&a, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+k6");
    assert_int_equal(feox_sqlite_storage_begin(&a.t), FEOX_OK);
    txn_commit(&a);

    close_pair(&a, &b);
}

/* xBegin's begin (feox_sqlite_storage_begin_refreshed) trusts only a refresh that was the
 * backend's previous call: after any other call, a commit by another connection since that
 * refresh is still found (STALE), and right after a refresh inside the write transaction the
 * begin sees the current seq. */
static void test_begin_after_refresh(void **state)
{
    (void)state;
    sqlite3 *dba, *dbb;
    backend a, b;
    test_sink ts;
    open_pair("begin_refreshed.db", FEOX_SQLITE_WRITE_BUFFERED, &dba, &dbb, &a, &b);
    load(&a, &ts);
    load(&b, &ts);

    /* A refreshes inside a read transaction (found current), which then ends; B commits. */
    ftest_exec_ok(dba, "BEGIN");
    sqlite3_free(query(dba, "SELECT count(*) FROM kv_log"));
    assert_int_equal(refresh(&a, &ts), FEOX_OK);
    ftest_exec_ok(dba, "COMMIT");
    txn_begin(&b);
    assert_int_equal(put_text(&b, "k1", "from b"), FEOX_OK);
    txn_commit(&b);
    /* another backend call came between: the begin checks, and finds A behind */
    ftest_exec_ok(dba, "BEGIN IMMEDIATE");
    feox_stats stats;
    memset(&stats, 0, sizeof stats);
    a.st->methods->get_stats(a.st, &stats);
    assert_int_equal(feox_sqlite_storage_begin_refreshed(&a.t), FEOX_ERR_STALE);
    assert_int_equal(feox_sqlite_storage_begin(&a.t), FEOX_ERR_STALE);
    /* as xBegin does it: refresh (applies B's change), then begin */
    assert_int_equal(refresh(&a, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+k1");
    assert_int_equal(refresh(&a, &ts), FEOX_OK); /* current now: found without SQL */
    assert_int_equal(feox_sqlite_storage_begin_refreshed(&a.t), FEOX_OK);
    assert_int_equal(put_text(&a, "k2", "from a"), FEOX_OK);
    txn_commit(&a);
    /* A's write took the seq after B's: B hears it as the next change */
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+k2");
    char *seqs = query(dbb, "SELECT group_concat(seq) FROM kv_log");
    assert_string_equal(seqs, "1,2");
    sqlite3_free(seqs);

    close_pair(&a, &b);
}

/* One write per transaction, as autocommit statements do: each row and feed row holds exactly
 * its own write's tag, expiry and time, whatever the previous write bound (PUT and LOG keep
 * their bindings from one run to the next). */
static void rows_hold_their_own_parameters(feox_sqlite_write_mode mode, const char *name)
{
    sqlite3 *db = open_db(name);
    create_table(db, "kv");
    backend a;
    test_sink ts;
    open_backend(&a, db, "kv", mode);
    load(&a, &ts);
    const uint64_t expiry = 4000000000000000000ull;
    const unsigned char eight[8] = {7, 0, 0, 0, 0, 0, 0, 0};
    struct {
        const char *key;
        uint32_t tag;
        uint64_t expires;
        bool erase;
    } steps[] = {
        {"k1", FEOX_TAG_TEXT, expiry, false}, {"k1", FEOX_TAG_TEXT, 0, false},
        {"k2", FEOX_TAG_INTEGER, 0, false},   {"k2", FEOX_TAG_INTEGER, expiry, false},
        {"k3", FEOX_TAG_TEXT, 0, false},      {"k3", 0, 0, true},
        {"k4", FEOX_TAG_TEXT, 0, false},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        txn_begin(&a);
        if (steps[i].erase) {
            assert_int_equal(erase(&a, steps[i].key), FEOX_OK);
        } else if (steps[i].tag == FEOX_TAG_INTEGER) {
            assert_int_equal(
                put_tagged(&a, steps[i].key, eight, 8, FEOX_TAG_INTEGER, 1000, steps[i].expires),
                FEOX_OK);
        } else {
            assert_int_equal(
                put_tagged(&a, steps[i].key, "text", 4, FEOX_TAG_TEXT, 1000, steps[i].expires),
                FEOX_OK);
        }
        txn_commit(&a);
    }
    char *rows = query(db, "SELECT key, typeof(value), tag, expires FROM kv_data ORDER BY key");
    assert_string_equal(rows, "k1|text|3|NULL,k2|integer|1|4000000000000000000,k4|text|3|NULL");
    sqlite3_free(rows);
    char *feed = query(db, "SELECT seq, key, ts IS NULL FROM kv_log ORDER BY seq");
    assert_string_equal(feed, "1|k1|1,2|k1|1,3|k2|1,4|k2|1,5|k3|1,6|k3|0,7|k4|1");
    sqlite3_free(feed);
    close_backend(&a);
    sqlite3_close(db);
}

static void test_rows_hold_their_own_parameters(void **state)
{
    (void)state;
    rows_hold_their_own_parameters(FEOX_SQLITE_WRITE_BUFFERED, "own_params_buffered.db");
    rows_hold_their_own_parameters(FEOX_SQLITE_WRITE_THROUGH, "own_params_through.db");
}

static void test_feed_buffered(void **state)
{
    (void)state;
    feed_between_connections(FEOX_SQLITE_WRITE_BUFFERED, "feed_buffered.db");
}

static void test_feed_write_through(void **state)
{
    (void)state;
    feed_between_connections(FEOX_SQLITE_WRITE_THROUGH, "feed_through.db");
}

static void stale_case(feox_sqlite_write_mode mode, const char *name)
{
    sqlite3 *dba, *dbb;
    backend a, b;
    test_sink ts;
    open_pair_limits(name, mode, 4, FEOX_SQLITE_WRITE_BUFFERED, &dba, &dbb, &a, &b);
    load(&a, &ts);
    load(&b, &ts);

    /* A transaction of more changes than the feed keeps writes no feed rows: B must reload. */
    txn_begin(&a);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put_text(&a, key, "v"), FEOX_OK);
    }
    txn_commit(&a);
    expect(dba, "SELECT count(*), (SELECT value FROM kv_meta WHERE name = 'min_seq') FROM kv_log",
           "0|10");
    assert_int_equal(refresh(&b, &ts), FEOX_ERR_STALE);
    assert_int_equal(refresh(&b, &ts), FEOX_ERR_STALE); /* until it reloads */
    load(&b, &ts);
    assert_int_equal(live_count(&ts), 10);
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "");

    /* Small transactions: the feed is trimmed once it holds more than the limit. */
    for (int i = 0; i < 8; i++) {
        txn_begin(&a);
        snprintf(key, sizeof key, "s%d", i);
        assert_int_equal(put_text(&a, key, "v"), FEOX_OK);
        txn_commit(&a);
    }
    expect(dba, "SELECT (SELECT value FROM kv_meta WHERE name = 'min_seq') > 10", "1");
    assert_int_equal(refresh(&b, &ts), FEOX_ERR_STALE);
    load(&b, &ts);
    assert_int_equal(live_count(&ts), 18);
    char detail[256];
    assert_int_equal(a.st->methods->check(a.st, detail, sizeof detail), FEOX_OK);

    close_pair(&a, &b);
}

static void test_stale_buffered(void **state)
{
    (void)state;
    stale_case(FEOX_SQLITE_WRITE_BUFFERED, "stale_buffered.db");
}

static void test_stale_write_through(void **state)
{
    (void)state;
    stale_case(FEOX_SQLITE_WRITE_THROUGH, "stale_through.db");
}

/* In a UTF-16 database SQLite would convert TEXT: values are kept as BLOBs there. */
static void test_utf16_database(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/utf16.db", tmpdir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    ftest_exec_ok(db, "PRAGMA encoding = 'UTF-16le'");
    create_table(db, "kv");
    backend bk;
    test_sink ts;
    open_backend(&bk, db, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&bk, &ts);
    txn_begin(&bk);
    write_typed_values(&bk);
    txn_commit(&bk);
    expect(db, "SELECT typeof(value) FROM kv_data WHERE key = x'74657874'", "blob"); /* 'text' */
    char detail[256];
    assert_int_equal(bk.st->methods->check(bk.st, detail, sizeof detail), FEOX_OK);
    backend again;
    open_backend(&again, db, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&again, &ts);
    expect_typed_values(&ts);
    close_backend(&again);
    close_backend(&bk);
    sqlite3_close(db);
}

static int count_statements(unsigned type, void *ctx, void *p, void *x)
{
    (void)type;
    (void)p;
    (void)x;
    (*(int *)ctx)++;
    return 0;
}

static void test_fast_path_runs_no_sql(void **state)
{
    (void)state;
    sqlite3 *dba, *dbb;
    backend a, b;
    test_sink ts;
    open_pair("fast.db", FEOX_SQLITE_WRITE_BUFFERED, &dba, &dbb, &a, &b);
    load(&a, &ts);
    load(&b, &ts);
    int statements = 0;
    sqlite3_trace_v2(dbb, SQLITE_TRACE_STMT, count_statements, &statements);

    /* A read transaction open (as in xOpen/xFilter): the first refresh may read the seq once;
     * from then on, nothing changed means no SQL at all. */
    ftest_exec_ok(dbb, "BEGIN; SELECT count(*) FROM sqlite_schema");
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    statements = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(refresh(&b, &ts), FEOX_OK);
    }
    assert_int_equal(statements, 0);
    ftest_exec_ok(dbb, "COMMIT");

    /* After A commits, B's next read transaction sees the new version and reads the feed. */
    txn_begin(&a);
    assert_int_equal(put_text(&a, "k", "v"), FEOX_OK);
    txn_commit(&a);
    ftest_exec_ok(dbb, "BEGIN; SELECT count(*) FROM sqlite_schema");
    statements = 0;
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_true(statements > 0);
    assert_string_equal(ts.events, "+k");
    statements = 0;
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_int_equal(statements, 0);
    ftest_exec_ok(dbb, "COMMIT");

    /* With no transaction open the version may be old: the seq is read every time. */
    statements = 0;
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_true(statements > 0);
    sqlite3_trace_v2(dbb, 0, NULL, NULL);

    close_pair(&a, &b);
}

/* ---- find, read_value ------------------------------------------------------------------------ */

static void test_find_and_read_value(void **state)
{
    (void)state;
    sqlite3 *db = open_db("find.db");
    create_table(db, "kv");
    backend bk;
    test_sink ts;
    open_backend(&bk, db, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&bk, &ts);
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "a", "alpha"), FEOX_OK);
    txn_commit(&bk);

    /* A backend that has loaded nothing (the store asks find() only for keys it does not hold;
     * a loaded backend answers "not found" for the keys it loaded the range of: the lazy-load
     * test below) reads the row. */
    backend fresh;
    open_backend(&fresh, db, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    feox_storage_sink s = sink_of(&ts);
    assert_int_equal(fresh.st->methods->find(fresh.st, NULL, "a", 1, &s), FEOX_OK);
    assert_int_equal(fresh.st->methods->find(fresh.st, NULL, "zz", 2, &s), FEOX_OK);
    assert_string_equal(ts.events, "+a-zz");
    close_backend(&fresh);
    char buf[16];
    assert_int_equal(bk.st->methods->read_value(bk.st, NULL, "a", 1, 1, buf, 5), FEOX_OK);
    assert_memory_equal(buf, "alpha", 5);
    assert_int_equal(bk.st->methods->read_value(bk.st, NULL, "a", 1, 1, buf, 4), FEOX_ERR_CORRUPT);
    assert_int_equal(bk.st->methods->read_value(bk.st, NULL, "zz", 2, 1, buf, 4), FEOX_ERR_CORRUPT);

    /* Inside a transaction its own pending changes are what find and read_value see. */
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "a", "beta"), FEOX_OK);
    assert_int_equal(put_text(&bk, "b", "new"), FEOX_OK);
    assert_int_equal(erase(&bk, "b"), FEOX_OK);
    s = sink_of(&ts);
    assert_int_equal(bk.st->methods->find(bk.st, NULL, "a", 1, &s), FEOX_OK);
    assert_int_equal(bk.st->methods->find(bk.st, NULL, "b", 1, &s), FEOX_OK);
    assert_string_equal(ts.events, "+a-b");
    assert_int_equal(bk.st->methods->read_value(bk.st, NULL, "a", 1, 1, buf, 4), FEOX_OK);
    assert_memory_equal(buf, "beta", 4);
    txn_commit(&bk);
    feox_stats stats;
    memset(&stats, 0, sizeof stats);
    bk.st->methods->get_stats(bk.st, &stats);
    assert_true(stats.disk_reads >= 3);
    assert_true(stats.disk_writes >= 3);
    close_backend(&bk);
    sqlite3_close(db);
}

/* SQLITE_LIMIT_LENGTH lowered below stored values on the reading connection: every read of the
 * backend (load, the feed, find, read_value, check) still gets whole values, the connection's
 * limit is what it was after each call, and its own SQL still fails on such a value. */
static void assert_value(test_sink *ts, const char *key, const char *want)
{
    copy *c = slot(ts, key, (uint32_t)strlen(key));
    assert_true(c->live);
    assert_int_equal(c->value_len, strlen(want));
    assert_memory_equal(c->value, want, strlen(want));
}

static void test_lowered_length_limit(void **state)
{
    (void)state;
    char long_text[301];
    memset(long_text, 'v', 300);
    long_text[300] = '\0';
    sqlite3 *dba, *dbb;
    backend a, b, fresh;
    test_sink ta, tb;
    memset(&ta, 0, sizeof ta);
    memset(&tb, 0, sizeof tb);
    open_pair("limit.db", FEOX_SQLITE_WRITE_BUFFERED, &dba, &dbb, &a, &b);
    load(&a, &ta);
    txn_begin(&a);
    assert_int_equal(put_text(&a, "big", long_text), FEOX_OK);
    assert_int_equal(put_text(&a, "small", "s"), FEOX_OK);
    txn_commit(&a);

    /* the schema first: its CREATE statements are longer than the limit, for SQLite too (and
     * with a limit much lower than 200 SQLite refuses the backend's statements' own text) */
    expect(dbb, "SELECT count(*) FROM kv_data", "2");
    sqlite3_limit(dbb, SQLITE_LIMIT_LENGTH, 200);
    load(&b, &tb);
    assert_value(&tb, "big", long_text);
    assert_value(&tb, "small", "s");
    txn_begin(&a);
    assert_int_equal(put_text(&a, "fed", long_text), FEOX_OK);
    txn_commit(&a);
    assert_int_equal(refresh(&b, &tb), FEOX_OK);
    assert_value(&tb, "fed", long_text);

    test_sink tf;
    memset(&tf, 0, sizeof tf);
    open_backend(&fresh, dbb, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    feox_storage_sink s = sink_of(&tf);
    assert_int_equal(fresh.st->methods->find(fresh.st, NULL, "big", 3, &s), FEOX_OK);
    assert_value(&tf, "big", long_text);
    close_backend(&fresh);
    char buf[512];
    uint32_t len = (uint32_t)strlen(long_text);
    assert_int_equal(b.st->methods->read_value(b.st, NULL, "fed", 3, 1, buf, len), FEOX_OK);
    assert_memory_equal(buf, long_text, len);
    char detail[256];
    assert_int_equal(b.st->methods->check(b.st, detail, sizeof detail), FEOX_OK);

    assert_int_equal(sqlite3_limit(dbb, SQLITE_LIMIT_LENGTH, -1), 200);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(dbb, "SELECT value FROM kv_data WHERE key = x'626967'", -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_TOOBIG);
    sqlite3_finalize(st);
    close_pair(&a, &b);
}

/* ---- the lazy load (storage_sqlite_load.c) ------------------------------------------------- */

static void load_info(backend *bk, feox_sqlite_load_info *info)
{
    feox_sqlite_storage_load_info(&bk->t, info);
}

static void test_lazy_load(void **state)
{
    (void)state;
    sqlite3 *dba, *dbb;
    backend a, b;
    test_sink ts;
    open_pair("lazy.db", FEOX_SQLITE_WRITE_BUFFERED, &dba, &dbb, &a, &b);
    load(&a, &ts);
    txn_begin(&a);
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put_text(&a, key, "v"), FEOX_OK);
    }
    txn_commit(&a);

    /* Chunks of 3 rows: the load sends the first 3, in key order. */
    b.t.load_chunk_rows = 3;
    load(&b, &ts);
    assert_string_equal(ts.events, "+k0+k1+k2");
    feox_sqlite_load_info info;
    load_info(&b, &info);
    assert_false(info.complete);

    /* A miss at or below the frontier (k2) runs no SQL; one beyond it reads the row. */
    int statements = 0;
    sqlite3_trace_v2(dbb, SQLITE_TRACE_STMT, count_statements, &statements);
    feox_storage_sink s = sink_of(&ts);
    assert_int_equal(b.st->methods->find(b.st, NULL, "k1x", 3, &s), FEOX_OK);
    assert_int_equal(b.st->methods->find(b.st, NULL, "k", 1, &s), FEOX_OK);
    assert_int_equal(statements, 0);
    assert_int_equal(b.st->methods->find(b.st, NULL, "k8", 2, &s), FEOX_OK);
    assert_int_equal(b.st->methods->find(b.st, NULL, "k8x", 3, &s), FEOX_OK);
    assert_true(statements > 0);
    assert_string_equal(ts.events, "-k1x-k+k8-k8x");
    load_info(&b, &info);
    assert_int_equal(info.finds_local, 2);
    assert_int_equal(info.finds_sql, 2);

    /* Another connection changes a loaded key, a key not loaded yet and deletes one of each:
     * the feed sends them all (puts of keys above the frontier included), then one chunk. */
    txn_begin(&a);
    assert_int_equal(put_text(&a, "k1", "w"), FEOX_OK);
    assert_int_equal(put_text(&a, "k7", "w"), FEOX_OK);
    assert_int_equal(erase(&a, "k0"), FEOX_OK);
    assert_int_equal(erase(&a, "k4"), FEOX_OK);
    txn_commit(&a);
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "-k0+k1-k4+k7+k3+k5+k6");
    load_info(&b, &info);
    assert_false(info.complete);

    /* A wanted range beyond the frontier (k6) is loaded in full, without moving it. */
    assert_int_equal(feox_sqlite_storage_want(&b.t, "k8", 2, "k9", 2), FEOX_OK);
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+k8+k9");
    statements = 0;
    s = sink_of(&ts);
    assert_int_equal(b.st->methods->find(b.st, NULL, "k8x", 3, &s), FEOX_OK);
    assert_true(statements > 0);
    /* One wanted next to the frontier moves it; an unbounded one completes the load. */
    assert_int_equal(feox_sqlite_storage_want(&b.t, NULL, 0, "k7", 2), FEOX_OK);
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+k7");
    statements = 0;
    s = sink_of(&ts);
    assert_int_equal(b.st->methods->find(b.st, NULL, "k6x", 3, &s), FEOX_OK);
    assert_int_equal(statements, 0);
    assert_int_equal(feox_sqlite_storage_want(&b.t, "k3", 2, NULL, 0), FEOX_OK);
    assert_int_equal(refresh(&b, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+k8+k9");
    load_info(&b, &info);
    assert_true(info.complete);
    assert_int_equal(info.ranges, 3);
    statements = 0;
    s = sink_of(&ts);
    assert_int_equal(b.st->methods->find(b.st, NULL, "zz", 2, &s), FEOX_OK);
    assert_int_equal(statements, 0);
    assert_string_equal(ts.events, "-zz");
    sqlite3_trace_v2(dbb, 0, NULL, NULL);

    /* A full reload starts over: partial, first chunk. */
    assert_int_equal(b.st->methods->load(b.st, NULL, &s), FEOX_OK);
    assert_string_equal(ts.events, "-zz+k1+k2+k3");
    load_info(&b, &info);
    assert_false(info.complete);
    assert_int_equal(info.reloads, 1);

    close_pair(&a, &b);
}

/* A store over the backend on db, loading chunks of chunk_rows (the first one at open). */
static feox_store *open_chunked_store(feox_sqlite_table *t, sqlite3 *db, uint64_t chunk_rows)
{
    memset(t, 0, sizeof *t);
    t->db = db;
    t->schema = "main";
    t->table = "kv";
    t->write_mode = FEOX_SQLITE_WRITE_BUFFERED;
    t->load_chunk_rows = chunk_rows;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage = feox_sqlite_storage();
    cfg.storage_arg = t;
    cfg.disable_ttl_sweeper = true;
    cfg.disable_compaction = true;
    feox_store *s = NULL;
    assert_int_equal(feox_open(&cfg, &s), FEOX_OK);
    return s;
}

/* A chunk goes to the store's put_ordered, which may hold its rows back and apply them only
 * after the backend's call returned. Each engine allocation of the refresh that loads the second
 * chunk fails in turn: whatever the refresh says, every row of the table reads back afterwards
 * (a row the store failed to apply must not count as loaded: a miss at or below the frontier is
 * answered "not found" without SQL), and the next refresh brings every row into the cache. */
static void test_lazy_chunk_failing_to_apply(void **state)
{
    (void)state;
    enum { ROWS = 400, CHUNK = 150 };
    sqlite3 *dba = open_db("lazy_nomem.db");
    sqlite3 *dbb = open_db("lazy_nomem.db");
    create_table(dba, "kv");
    backend a;
    test_sink ts;
    open_backend(&a, dba, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&a, &ts);
    txn_begin(&a);
    char key[16];
    for (int i = 0; i < ROWS; i++) {
        snprintf(key, sizeof key, "k%04d", i);
        assert_int_equal(put_text(&a, key, key), FEOX_OK);
    }
    txn_commit(&a);
    close_backend(&a);

    ftest_failing_alloc_install(false);
    unsigned long n;
    int failed = 0;
    for (n = 1;; n++) {
        feox_sqlite_table t;
        feox_store *s = open_chunked_store(&t, dbb, CHUNK); /* k0000 .. k0149 */
        ftest_fault.alloc_count = 0;
        ftest_fault.fail_at = n;
        ftest_fault.failure_injected = false;
        ftest_fault.injecting = true;
        feox_err err = feox_refresh(s, NULL); /* k0150 .. k0299 */
        ftest_fault.injecting = false;
        bool reached = ftest_fault.failure_injected;
        assert_true(err == FEOX_OK || reached);
        failed += err != FEOX_OK;
        for (int pass = 0; pass < 2; pass++) {
            for (int i = 0; i < ROWS; i++) {
                snprintf(key, sizeof key, "k%04d", i);
                void *value = NULL;
                size_t len = 0;
                feox_err got = feox_get(s, key, strlen(key), &value, &len, NULL);
                if (got != FEOX_OK || len != strlen(key) || memcmp(value, key, len) != 0) {
                    fail_msg("allocation %lu failed (refresh: %s), pass %d: %s: %s", n,
                             feox_strerror(err), pass, key, feox_strerror(got));
                }
                feox_free(value);
            }
            assert_int_equal(feox_refresh(s, NULL), FEOX_OK);
        }
        assert_int_equal(feox_close(s), FEOX_OK);
        if (!reached) {
            break;
        }
    }
    ftest_failing_alloc_remove();
    assert_true(n > CHUNK);
    assert_true(failed > 0);
    sqlite3_close(dba);
    sqlite3_close(dbb);
}

/* The rest of a large table loaded at once (a scan wants it all: the backend announces the rows
 * with sink->expect) is applied on the store's worker thread (engine/store/store_load_pipe.c):
 * its allocations are seen there. Each of several of the worker's allocations fails in turn
 * (once, then from there on): the refresh works or fails; either way every row of the table
 * reads back afterwards (rows the worker dropped do not count as loaded: a miss at or below the
 * frontier would be answered "not found" without SQL), and the next refresh completes the
 * cache. */
static void check_every_row(feox_store *s, int rows, unsigned long n, feox_err refreshed)
{
    char key[16];
    for (int i = 0; i < rows; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        void *value = NULL;
        size_t len = 0;
        feox_err got = feox_get(s, key, strlen(key), &value, &len, NULL);
        if (got != FEOX_OK || len != strlen(key) || memcmp(value, key, len) != 0) {
            fail_msg("worker allocation %lu failed (refresh: %s): %s: %s", n,
                     feox_strerror(refreshed), key, feox_strerror(got));
        }
        feox_free(value);
    }
}

static void test_full_load_on_a_worker_failing(void **state)
{
    (void)state;
    enum { ROWS = 40000, CHUNK = 1000 };
    sqlite3 *dba = open_db("worker_nomem.db");
    sqlite3 *dbb = open_db("worker_nomem.db");
    create_table(dba, "kv");
    backend a;
    test_sink ts;
    open_backend(&a, dba, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&a, &ts);
    txn_begin(&a);
    char key[16];
    for (int i = 0; i < ROWS; i++) {
        snprintf(key, sizeof key, "k%05d", i);
        assert_int_equal(put_text(&a, key, key), FEOX_OK);
    }
    txn_commit(&a);
    close_backend(&a);

    static const unsigned long at[] = {0, 1, 2, 3, 10, 100, 1000, 5000, 7000, 7500, 8000, 9000};
    int failed = 0;
    for (int persistent = 0; persistent < 2; persistent++) {
        for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
            ftest_failing_alloc_install(persistent);
            ftest_fault.other_threads = true;
            feox_sqlite_table t;
            feox_store *s = open_chunked_store(&t, dbb, CHUNK); /* k00000 .. k00999 */
            assert_int_equal(feox_sqlite_storage_want(&t, NULL, 0, NULL, 0), FEOX_OK);
            ftest_fault.alloc_count = 0;
            ftest_fault.fail_at = at[i];
            ftest_fault.failure_injected = false;
            ftest_fault.injecting = true;
            feox_err err = feox_refresh(s, NULL); /* the rest, on the worker */
            ftest_fault.injecting = false;
            assert_true(ftest_fault.alloc_count > 0); /* the worker ran */
            assert_true(err == FEOX_OK || (ftest_fault.failure_injected && err == FEOX_ERR_NOMEM));
            failed += err != FEOX_OK;
            check_every_row(s, ROWS, at[i], err);
            assert_int_equal(feox_refresh(s, NULL), FEOX_OK);
            assert_int_equal(feox_sqlite_storage_want(&t, NULL, 0, NULL, 0), FEOX_OK);
            assert_int_equal(feox_refresh(s, NULL), FEOX_OK);
            feox_sqlite_load_info info;
            feox_sqlite_storage_load_info(&t, &info);
            assert_true(info.complete);
            assert_int_equal(feox_len(s, 0), ROWS);
            assert_int_equal(feox_check(s), FEOX_OK);
            check_every_row(s, ROWS, at[i], err);
            assert_int_equal(feox_close(s), FEOX_OK);
            ftest_failing_alloc_remove();
        }
    }
    assert_true(failed > 0);
    sqlite3_close(dba);
    sqlite3_close(dbb);
}

/* ---- check ------------------------------------------------------------------------------------
 */

static void expect_damage(sqlite3 *db, backend *bk, const char *damage, const char *undo,
                          const char *want)
{
    char detail[512];
    ftest_exec_ok(db, damage);
    assert_int_equal(bk->st->methods->check(bk->st, detail, sizeof detail), FEOX_ERR_CORRUPT);
    if (strstr(detail, want) == NULL) {
        fail_msg("after %s\n  detail: %s\n  want:   %s", damage, detail, want);
    }
    ftest_exec_ok(db, undo);
    if (bk->st->methods->check(bk->st, detail, sizeof detail) != FEOX_OK) {
        fail_msg("after %s\n  still: %s", undo, detail);
    }
}

static void test_check_finds_damage(void **state)
{
    (void)state;
    sqlite3 *db = open_db("check.db");
    create_table(db, "kv");
    backend bk;
    test_sink ts;
    open_backend(&bk, db, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&bk, &ts);
    txn_begin(&bk);
    write_typed_values(&bk);
    txn_commit(&bk);
    char detail[512];
    if (bk.st->methods->check(bk.st, detail, sizeof detail) != FEOX_OK) {
        fail_msg("check: %s", detail);
    }

    expect_damage(db, &bk, "UPDATE kv_data SET value = 'x' WHERE key = CAST('int' AS BLOB)",
                  "UPDATE kv_data SET value = -2 WHERE key = CAST('int' AS BLOB)",
                  "kv_data: key x'696e74': TEXT value with another tag");
    expect_damage(db, &bk, "UPDATE kv_data SET value = CAST('hi' AS BLOB) WHERE key = x'74657874'",
                  "UPDATE kv_data SET value = 'h\xc3\xa9llo\n''x' WHERE key = x'74657874'",
                  "TEXT without NUL stored as a BLOB");
    expect_damage(
        db, &bk, "UPDATE kv_data SET seq = 999 WHERE key = CAST('raw' AS BLOB)",
        "UPDATE kv_data SET seq = (SELECT seq FROM kv_log WHERE key = CAST('raw' AS BLOB))"
        " WHERE key = CAST('raw' AS BLOB)",
        "kv_data: key x'726177': seq 999 is after the table's seq");
    expect_damage(db, &bk, "UPDATE kv_data SET tag = -1 WHERE key = CAST('raw' AS BLOB)",
                  "UPDATE kv_data SET tag = 0 WHERE key = CAST('raw' AS BLOB)",
                  "tag is not a 32-bit unsigned integer");
    expect_damage(db, &bk, "UPDATE kv_data SET expires = 0 WHERE key = CAST('raw' AS BLOB)",
                  "UPDATE kv_data SET expires = NULL WHERE key = CAST('raw' AS BLOB)",
                  "expires is neither NULL nor a non-zero integer");
    expect_damage(db, &bk, "INSERT INTO kv_data VALUES('textkey', 1, 1, 1, NULL, 1)",
                  "DELETE FROM kv_data WHERE key = 'textkey'", "a key is not a BLOB");
    expect_damage(db, &bk, "DELETE FROM kv_log WHERE key = CAST('blob' AS BLOB)",
                  "INSERT INTO kv_log SELECT seq, key, NULL FROM kv_data"
                  " WHERE key = CAST('blob' AS BLOB)",
                  "records written since min_seq without their feed row: 1");
    expect_damage(db, &bk, "UPDATE kv_meta SET value = 'x' WHERE name = 'min_seq'",
                  "UPDATE kv_meta SET value = 0 WHERE name = 'min_seq'",
                  "min_seq is not a non-negative integer");
    /* Another format is refused by every reader. */
    ftest_exec_ok(db, "UPDATE kv_meta SET value = 2 WHERE name = 'format'");
    assert_int_equal(bk.st->methods->check(bk.st, detail, sizeof detail), FEOX_ERR_FORMAT);
    assert_non_null(strstr(bk.t.errmsg, "feox: kv: the shadow tables are not format 1"));
    feox_storage_sink s = sink_of(&ts);
    assert_int_equal(bk.st->methods->load(bk.st, NULL, &s), FEOX_ERR_FORMAT);
    close_backend(&bk);
    sqlite3_close(db);
}

/* ---- errors -----------------------------------------------------------------------------------
 */

static void busy_case(feox_sqlite_write_mode mode, const char *name)
{
    sqlite3 *dba = open_db(name);
    sqlite3 *dbb = open_db(name);
    create_table(dba, "kv");
    backend b;
    test_sink ts;
    open_backend(&b, dbb, "kv", mode);
    load(&b, &ts);
    sqlite3_busy_timeout(dbb, 0);

    ftest_exec_ok(dba, "BEGIN IMMEDIATE"); /* A holds the write lock */
    ftest_exec_ok(dbb, "BEGIN");           /* B reads (WAL: not blocked) .. */
    assert_int_equal(feox_sqlite_storage_begin(&b.t), FEOX_OK);
    feox_err err = put_text(&b, "k", "v"); /* .. and writes: now, or at sync */
    if (mode == FEOX_SQLITE_WRITE_BUFFERED) {
        assert_int_equal(err, FEOX_OK);
        err = feox_sqlite_storage_sync(&b.t);
    }
    assert_int_equal(err, FEOX_ERR_LOCKED);
    assert_int_equal(b.t.errcode & 0xff, SQLITE_BUSY);
    assert_non_null(strstr(b.t.errmsg, "feox: kv: writing a record: database is locked"));
    ftest_exec_ok(dbb, "ROLLBACK");
    feox_sqlite_storage_rollback(&b.t);
    ftest_exec_ok(dba, "ROLLBACK");

    /* Once A is gone, B writes. */
    txn_begin(&b);
    assert_int_equal(b.t.errcode, SQLITE_OK);
    assert_string_equal(b.t.errmsg, "");
    assert_int_equal(put_text(&b, "k", "v"), FEOX_OK);
    txn_commit(&b);
    close_backend(&b);
    sqlite3_close(dba);
    sqlite3_close(dbb);
}

static void test_busy_buffered(void **state)
{
    (void)state;
    busy_case(FEOX_SQLITE_WRITE_BUFFERED, "busy_buffered.db");
}

static void test_busy_write_through(void **state)
{
    (void)state;
    busy_case(FEOX_SQLITE_WRITE_THROUGH, "busy_through.db");
}

static void test_missing_tables(void **state)
{
    (void)state;
    sqlite3 *db = open_db("missing.db");
    backend bk;
    open_backend(&bk, db, "nope", FEOX_SQLITE_WRITE_BUFFERED); /* open runs no SQL */
    test_sink ts;
    feox_storage_sink s = sink_of(&ts);
    assert_int_equal(bk.st->methods->load(bk.st, NULL, &s), FEOX_ERR_IO);
    assert_int_equal(bk.t.errcode, SQLITE_ERROR);
    assert_non_null(strstr(bk.t.errmsg, "feox: nope: preparing a statement: no such table"));
    close_backend(&bk);
    sqlite3_close(db);
}

/* ---- through SQLite's own hooks: a minimal virtual table -------------------------------------
 * "sqvt" drives the backend exactly as storage_sqlite.h tells the feox vtab to (INSERT only,
 * reads go to the shadow table), so the hook order of the SQLite in use is what is tested: the
 * buffered design relies on xSavepoint running before SQLite opens the savepoint, and on
 * ROLLBACK TO restoring the tables before xRollbackTo. DEFENSIVE is on. */

typedef struct sqvt {
    sqlite3_vtab base;
    backend bk;
    char *name;
} sqvt;

static feox_err sqvt_refresh(sqvt *v)
{
    test_sink ts;
    feox_storage_sink s = sink_of(&ts);
    feox_err err = v->bk.st->methods->refresh(v->bk.st, NULL, &s);
    if (err == FEOX_ERR_STALE) {
        err = v->bk.st->methods->load(v->bk.st, NULL, &s);
    }
    return err;
}

static int sqvt_open_backend(sqlite3 *db, int argc, const char *const *argv, sqlite3_vtab **out,
                             bool create)
{
    sqvt *v = sqlite3_malloc(sizeof *v);
    memset(v, 0, sizeof *v);
    v->name = sqlite3_mprintf("%s", argv[2]);
    int rc = sqlite3_declare_vtab(db, "CREATE TABLE x(key, value)");
    if (rc == SQLITE_OK && create) {
        rc = feox_sqlite_storage_create(db, argv[1], argv[2], NULL);
    }
    if (rc != SQLITE_OK) {
        sqlite3_free(v->name);
        sqlite3_free(v);
        return rc;
    }
    feox_sqlite_write_mode mode = argc > 3 && strcmp(argv[3], "through") == 0
                                      ? FEOX_SQLITE_WRITE_THROUGH
                                      : FEOX_SQLITE_WRITE_BUFFERED;
    memset(&v->bk, 0, sizeof v->bk);
    v->bk.t.db = db;
    v->bk.t.schema = "main";
    v->bk.t.table = v->name;
    v->bk.t.write_mode = mode;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage_arg = &v->bk.t;
    assert_int_equal(feox_sqlite_storage()->open(feox_sqlite_storage(), &cfg, NULL, &v->bk.st),
                     FEOX_OK);
    *out = &v->base;
    return SQLITE_OK;
}

static int sqvt_create(sqlite3 *db, void *aux, int argc, const char *const *argv,
                       sqlite3_vtab **out, char **err)
{
    (void)aux;
    (void)err;
    return sqvt_open_backend(db, argc, argv, out, true);
}

static int sqvt_connect(sqlite3 *db, void *aux, int argc, const char *const *argv,
                        sqlite3_vtab **out, char **err)
{
    (void)aux;
    (void)err;
    return sqvt_open_backend(db, argc, argv, out, false);
}

static int sqvt_disconnect(sqlite3_vtab *vt)
{
    sqvt *v = (sqvt *)vt;
    v->bk.st->methods->close(v->bk.st);
    sqlite3_free(v->name);
    sqlite3_free(v);
    return SQLITE_OK;
}

static int sqvt_destroy(sqlite3_vtab *vt)
{
    sqvt *v = (sqvt *)vt;
    int rc = feox_sqlite_storage_drop(v->bk.t.db, "main", v->name, NULL);
    sqvt_disconnect(vt);
    return rc;
}

static int sqvt_best_index(sqlite3_vtab *vt, sqlite3_index_info *info)
{
    (void)vt;
    info->estimatedCost = 1e6;
    return SQLITE_OK;
}

static int sqvt_open_cursor(sqlite3_vtab *vt, sqlite3_vtab_cursor **out)
{
    (void)vt;
    *out = sqlite3_malloc(sizeof **out);
    return *out ? SQLITE_OK : SQLITE_NOMEM;
}

static int sqvt_close_cursor(sqlite3_vtab_cursor *c)
{
    sqlite3_free(c);
    return SQLITE_OK;
}

static int sqvt_filter(sqlite3_vtab_cursor *c, int n, const char *s, int argc, sqlite3_value **v)
{
    (void)c, (void)n, (void)s, (void)argc, (void)v;
    return SQLITE_OK;
}

static int sqvt_next(sqlite3_vtab_cursor *c)
{
    (void)c;
    return SQLITE_OK;
}

static int sqvt_eof(sqlite3_vtab_cursor *c)
{
    (void)c;
    return 1;
}

static int sqvt_column(sqlite3_vtab_cursor *c, sqlite3_context *ctx, int i)
{
    (void)c, (void)ctx, (void)i;
    return SQLITE_OK;
}

static int sqvt_rowid(sqlite3_vtab_cursor *c, sqlite3_int64 *rowid)
{
    (void)c;
    *rowid = 0;
    return SQLITE_OK;
}

static int sqvt_engine_rc(sqvt *v, feox_err err)
{
    if (err == FEOX_OK) {
        return SQLITE_OK;
    }
    sqlite3_free(v->base.zErrMsg);
    v->base.zErrMsg = sqlite3_mprintf("%s", v->bk.t.errmsg);
    return v->bk.t.errcode != SQLITE_OK ? v->bk.t.errcode : SQLITE_ERROR;
}

static int sqvt_update(sqlite3_vtab *vt, int argc, sqlite3_value **argv, sqlite3_int64 *rowid)
{
    sqvt *v = (sqvt *)vt;
    (void)rowid;
    if (argc < 4 || sqlite3_value_type(argv[0]) != SQLITE_NULL) {
        return SQLITE_READONLY; /* INSERT only */
    }
    if (sqlite3_value_type(argv[2]) == SQLITE_NULL) {
        sqlite3_free(vt->zErrMsg);
        vt->zErrMsg = sqlite3_mprintf("NULL key");
        return SQLITE_CONSTRAINT;
    }
    const char *key = (const char *)sqlite3_value_text(argv[2]);
    const char *value = (const char *)sqlite3_value_text(argv[3]);
    feox_storage_record rec = {key,
                               (uint32_t)strlen(key),
                               value ? value : "",
                               value ? (uint32_t)strlen(value) : 0,
                               FEOX_TAG_TEXT,
                               1,
                               0,
                               0};
    uint64_t location, seq;
    return sqvt_engine_rc(v, v->bk.st->methods->write(v->bk.st, NULL, &rec, NULL, &location, &seq));
}

static int sqvt_begin(sqlite3_vtab *vt)
{
    sqvt *v = (sqvt *)vt;
    feox_err err = sqvt_refresh(v);
    return sqvt_engine_rc(v, err != FEOX_OK ? err : feox_sqlite_storage_begin(&v->bk.t));
}

static int sqvt_sync(sqlite3_vtab *vt)
{
    sqvt *v = (sqvt *)vt;
    return sqvt_engine_rc(v, feox_sqlite_storage_sync(&v->bk.t));
}

static int sqvt_commit(sqlite3_vtab *vt)
{
    feox_sqlite_storage_commit(&((sqvt *)vt)->bk.t);
    return SQLITE_OK;
}

static int sqvt_rollback(sqlite3_vtab *vt)
{
    feox_sqlite_storage_rollback(&((sqvt *)vt)->bk.t);
    return SQLITE_OK;
}

static int sqvt_rename(sqlite3_vtab *vt, const char *to)
{
    sqvt *v = (sqvt *)vt;
    int rc = feox_sqlite_storage_rename(v->bk.t.db, "main", v->name, to, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_free(v->name);
        v->name = sqlite3_mprintf("%s", to);
        v->bk.t.table = v->name;
        assert_int_equal(feox_sqlite_storage_renamed(&v->bk.t, to), FEOX_OK);
    }
    return rc;
}

static int sqvt_savepoint(sqlite3_vtab *vt, int level)
{
    sqvt *v = (sqvt *)vt;
    return sqvt_engine_rc(v, feox_sqlite_storage_savepoint(&v->bk.t, level));
}

static int sqvt_release(sqlite3_vtab *vt, int level)
{
    (void)vt, (void)level;
    return SQLITE_OK;
}

static int sqvt_rollback_to(sqlite3_vtab *vt, int level)
{
    feox_sqlite_storage_rollback_to(&((sqvt *)vt)->bk.t, level);
    return SQLITE_OK;
}

static int sqvt_shadow_name(const char *suffix)
{
    return feox_sqlite_storage_shadow_name(suffix);
}

static const sqlite3_module sqvt_module = {
    3,
    sqvt_create,
    sqvt_connect,
    sqvt_best_index,
    sqvt_disconnect,
    sqvt_destroy,
    sqvt_open_cursor,
    sqvt_close_cursor,
    sqvt_filter,
    sqvt_next,
    sqvt_eof,
    sqvt_column,
    sqvt_rowid,
    sqvt_update,
    sqvt_begin,
    sqvt_sync,
    sqvt_commit,
    sqvt_rollback,
    NULL,
    sqvt_rename,
    sqvt_savepoint,
    sqvt_release,
    sqvt_rollback_to,
    sqvt_shadow_name,
};

static void exec_fails(sqlite3 *db, const char *sql, const char *want)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK) {
        fail_msg("expected failure: %s", sql);
    }
    if (err == NULL || strstr(err, want) == NULL) {
        fail_msg("%s\n  -> %s\n  want: %s", sql, err ? err : "?", want);
    }
    sqlite3_free(err);
}

/* ---- expiry: the commit's bounded sweep, feox_sweep's full one ------------------------------ */

static uint64_t sync_commit(backend *bk)
{
    uint64_t swept = 99;
    assert_int_equal(feox_sqlite_storage_sync_commit(&bk->t, &swept), FEOX_OK);
    return swept;
}

#define EXPIRED_KEYS                                                                               \
    "SELECT group_concat(CAST(key AS TEXT), ' ') FROM (SELECT key FROM kv_data"                    \
    " WHERE CAST(key AS TEXT) GLOB 'e*' ORDER BY key)"

static void test_commit_sweeps_expired_rows(void **state)
{
    (void)state;
    sqlite3 *db = open_db("sweep.db");
    create_table(db, "kv");
    /* e1..e9 expired long ago (expires = 1 ns), one row that expires far away, one without a
     * TTL; seqs 1..11, so the transactions below go on from 11. */
    ftest_exec_ok(db,
                  "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 9)"
                  " INSERT INTO kv_data SELECT CAST('e' || i AS BLOB), i, 1, 1, 1, i FROM n;"
                  "INSERT INTO kv_data VALUES(CAST('future' AS BLOB), 1, 1, 1, 9000000000000000000,"
                  " 10), (CAST('plain' AS BLOB), 2, 1, 1, NULL, 11);"
                  "UPDATE kv_meta SET value = 11 WHERE name = 'min_seq'");
    backend bk, other;
    test_sink ts, heard;
    memset(&bk, 0, sizeof bk);
    bk.t.db = db;
    bk.t.schema = "main";
    bk.t.table = "kv";
    bk.t.sweep_limit = 4;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage = feox_sqlite_storage();
    cfg.storage_arg = &bk.t;
    assert_int_equal(cfg.storage->open(cfg.storage, &cfg, NULL, &bk.st), FEOX_OK);
    load(&bk, &ts);
    sqlite3 *db2 = open_db("sweep.db");
    open_backend(&other, db2, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&other, &heard);

    /* A transaction that changed nothing sweeps nothing. */
    txn_begin(&bk);
    assert_int_equal(sync_commit(&bk), 0);
    ftest_exec_ok(db, "COMMIT");
    feox_sqlite_storage_commit(&bk.t);
    expect(db, "SELECT count(*) FROM kv_data", "11");

    /* One that did removes sweep_limit of them, in expiry order, each with its feed row. */
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "w", "1"), FEOX_OK);
    assert_int_equal(sync_commit(&bk), 4);
    assert_int_equal(sync_commit(&bk), 0); /* once per transaction (a retried COMMIT) */
    ftest_exec_ok(db, "COMMIT");
    feox_sqlite_storage_commit(&bk.t);
    expect(db, EXPIRED_KEYS, "e5 e6 e7 e8 e9");
    expect(db, "SELECT count(*) FROM kv_log WHERE ts IS NOT NULL", "4");
    assert_int_equal(refresh(&other, &heard), FEOX_OK);
    assert_string_equal(heard.events, "+w-e1-e2-e3-e4");

    /* The commit fails after xSync and the transaction rolls back: the rows are back. */
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "x", "1"), FEOX_OK);
    assert_int_equal(sync_commit(&bk), 4);
    expect(db, EXPIRED_KEYS, "e9");
    ftest_exec_ok(db, "ROLLBACK");
    feox_sqlite_storage_rollback(&bk.t);
    expect(db, EXPIRED_KEYS, "e5 e6 e7 e8 e9");
    assert_int_equal(refresh(&other, &heard), FEOX_OK);
    assert_string_equal(heard.events, "");

    /* feox_sweep: every expired row; the others stay. */
    txn_begin(&bk);
    uint64_t removed = 0;
    assert_int_equal(feox_sqlite_storage_sweep(&bk.t, 0, &removed), FEOX_OK);
    assert_int_equal(removed, 5);
    txn_commit(&bk);
    expect(db,
           "SELECT group_concat(CAST(key AS TEXT), ' ') FROM (SELECT key FROM kv_data"
           " ORDER BY key)",
           "future plain w");
    assert_int_equal(refresh(&other, &heard), FEOX_OK);
    assert_string_equal(heard.events, "-e5-e6-e7-e8-e9");
    feox_stats stats;
    memset(&stats, 0, sizeof stats);
    bk.st->methods->get_stats(bk.st, &stats);
    assert_int_equal(stats.ttl_expired_active, 4 + 4 + 5); /* the rolled back ones counted */
    char detail[256];
    assert_int_equal(bk.st->methods->check(bk.st, detail, sizeof detail), FEOX_OK);

    /* A table of the first layout (no expiry index) gets it from its first sweep. */
    ftest_exec_ok(db, "DROP INDEX kv_data_expires");
    close_backend(&bk);
    open_backend(&bk, db, "kv", FEOX_SQLITE_WRITE_BUFFERED);
    load(&bk, &ts);
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "y", "1"), FEOX_OK);
    assert_int_equal(sync_commit(&bk), 0);
    ftest_exec_ok(db, "COMMIT");
    feox_sqlite_storage_commit(&bk.t);
    expect(db, "SELECT name FROM sqlite_schema WHERE type = 'index'", "kv_data_expires");
    close_backend(&bk);
    close_backend(&other);
    sqlite3_close(db2);
    sqlite3_close(db);
}

/* The commit's sweep seeks the expiry index only once something in it can have expired: it learns
 * the earliest expiry left there, which this connection's writes, the rows other connections
 * commit (through the feed) and a rollback bring back down. */
static uint64_t fake_now;

static uint64_t fake_clock(void *ctx)
{
    (void)ctx;
    return fake_now;
}

static void open_clocked(backend *bk, sqlite3 *db, uint64_t sweep_limit, bool no_commit_sweep)
{
    memset(bk, 0, sizeof *bk);
    bk->t.db = db;
    bk->t.schema = "main";
    bk->t.table = "kv";
    bk->t.sweep_limit = sweep_limit;
    bk->t.no_commit_sweep = no_commit_sweep;
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.storage = feox_sqlite_storage();
    cfg.storage_arg = &bk->t;
    feox_storage_host host;
    memset(&host, 0, sizeof host);
    host.now_ns = fake_clock;
    assert_int_equal(cfg.storage->open(cfg.storage, &cfg, &host, &bk->st), FEOX_OK);
}

/* One committing write transaction as the vtab runs it (refresh, begin, write, xSync with the
 * sweep, COMMIT, xCommit); the rows the sweep removed. */
static uint64_t commit_one(backend *bk, const char *key, uint64_t expires)
{
    test_sink ts;
    assert_int_equal(refresh(bk, &ts), FEOX_OK);
    txn_begin(bk);
    assert_int_equal(put_tagged(bk, key, "v", 1, FEOX_TAG_TEXT, 1000, expires), FEOX_OK);
    uint64_t swept = sync_commit(bk);
    ftest_exec_ok(bk->t.db, "COMMIT");
    feox_sqlite_storage_commit(&bk->t);
    return swept;
}

static void expect_sweeps(backend *bk, uint64_t seeks, uint64_t skips)
{
    uint64_t got_seeks = 99, got_skips = 99;
    feox_sqlite_storage_sweep_counts(&bk->t, &got_seeks, &got_skips);
    assert_int_equal(got_seeks, seeks);
    assert_int_equal(got_skips, skips);
}

static void test_commit_sweep_skips_until_due(void **state)
{
    (void)state;
    sqlite3 *db = open_db("sweep_skip.db");
    create_table(db, "kv");
    sqlite3 *db2 = open_db("sweep_skip.db");
    backend bk, other;
    test_sink ts;
    fake_now = 1000;
    open_clocked(&bk, db, 1, false);
    open_clocked(&other, db2, 0, true); /* its commits never sweep: only bk's do */
    load(&bk, &ts);
    load(&other, &ts);

    /* Fresh open: the index is unknown, the first commit seeks; it holds nothing with an
     * expiry, so the next ones skip. */
    assert_int_equal(commit_one(&bk, "a", 0), 0);
    expect_sweeps(&bk, 1, 0);
    assert_int_equal(commit_one(&bk, "b", 0), 0);
    expect_sweeps(&bk, 1, 1);

    /* Another connection commits a row expiring at 2000: bk hears it through the feed and
     * skips only until its clock passes 2000, then removes it. */
    assert_int_equal(commit_one(&other, "t", 2000), 0);
    assert_int_equal(commit_one(&bk, "c", 0), 0);
    expect_sweeps(&bk, 1, 2);
    fake_now = 2001;
    assert_int_equal(commit_one(&bk, "d", 0), 1);
    expect_sweeps(&bk, 2, 2);
    expect(db, "SELECT count(*) FROM kv_data WHERE key = CAST('t' AS BLOB)", "0");
    assert_int_equal(commit_one(&bk, "e", 0), 0);
    expect_sweeps(&bk, 2, 3);

    /* Its own row with a TTL: skipped while alive, removed once expired. */
    assert_int_equal(commit_one(&bk, "f", 2500), 0);
    expect_sweeps(&bk, 2, 4);
    fake_now = 3000;
    assert_int_equal(commit_one(&bk, "g", 0), 1);
    expect_sweeps(&bk, 3, 4);
    expect(db, "SELECT count(*) FROM kv_data WHERE expires IS NOT NULL", "0");

    /* A sweep that is rolled back: the row is back, so the next commit seeks again. */
    assert_int_equal(commit_one(&other, "u", 3500), 0);
    fake_now = 4000;
    assert_int_equal(refresh(&bk, &ts), FEOX_OK);
    txn_begin(&bk);
    assert_int_equal(put_text(&bk, "h", "1"), FEOX_OK);
    assert_int_equal(sync_commit(&bk), 1);
    ftest_exec_ok(db, "ROLLBACK");
    feox_sqlite_storage_rollback(&bk.t);
    expect(db, "SELECT count(*) FROM kv_data WHERE key = CAST('u' AS BLOB)", "1");
    assert_int_equal(commit_one(&bk, "i", 0), 1);
    expect_sweeps(&bk, 5, 4);

    /* More expired than one commit removes (sweep_limit 1): the next commit seeks too, the one
     * after it has nothing left to remove and skips. */
    assert_int_equal(commit_one(&other, "v1", 4100), 0);
    assert_int_equal(commit_one(&other, "v2", 4200), 0);
    fake_now = 5000;
    assert_int_equal(commit_one(&bk, "j", 0), 1);
    assert_int_equal(commit_one(&bk, "k", 0), 1);
    assert_int_equal(commit_one(&bk, "l", 0), 0);
    expect_sweeps(&bk, 7, 5);
    expect(db, "SELECT count(*) FROM kv_data WHERE expires IS NOT NULL", "0");

    /* A reload forgets what it knew: the next commit seeks. */
    load(&bk, &ts);
    assert_int_equal(commit_one(&bk, "m", 0), 0);
    expect_sweeps(&bk, 8, 5);

    char detail[256];
    assert_int_equal(bk.st->methods->check(bk.st, detail, sizeof detail), FEOX_OK);
    close_backend(&bk);
    close_backend(&other);
    sqlite3_close(db2);
    sqlite3_close(db);
}

/* ---- larger than memory: cold loads, pending versions relocated once written ---------------- */

typedef struct relocations {
    char log[256]; /* "key:old>new " per call */
} relocations;

static bool record_relocate(void *ctx, const void *key, uint32_t key_len, uint64_t old_location,
                            uint64_t new_location)
{
    relocations *r = ctx;
    size_t used = strlen(r->log);
    snprintf(r->log + used, sizeof r->log - used, "%.*s:%llu>%llu ", (int)key_len,
             (const char *)key, (unsigned long long)old_location, (unsigned long long)new_location);
    return true;
}

typedef struct cold_count {
    int resident, cold;
} cold_count;

static feox_err count_put(void *ctx, const feox_storage_record *rec)
{
    cold_count *c = ctx;
    assert_true(rec->location != 0);
    if (rec->value == NULL) {
        c->cold++;
    } else {
        c->resident++;
    }
    return FEOX_OK;
}

static feox_err count_del(void *ctx, const void *key, uint32_t key_len, uint64_t ts_ns)
{
    (void)ctx;
    (void)key;
    (void)key_len;
    (void)ts_ns;
    return FEOX_OK;
}

static void open_with_budget(backend *bk, sqlite3 *db, uint64_t max_memory, relocations *r)
{
    memset(bk, 0, sizeof *bk);
    bk->t.db = db;
    bk->t.schema = "main";
    bk->t.table = "kv";
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.max_memory = max_memory;
    cfg.storage = feox_sqlite_storage();
    cfg.storage_arg = &bk->t;
    feox_storage_host host = {.ctx = r, .relocate = record_relocate};
    assert_int_equal(cfg.storage->open(cfg.storage, &cfg, &host, &bk->st), FEOX_OK);
}

static feox_err write_bytes(backend *bk, const char *key, char fill, uint32_t len,
                            uint64_t *location)
{
    unsigned char value[500];
    memset(value, fill, sizeof value);
    feox_storage_record rec = {key, (uint32_t)strlen(key), value, len, FEOX_TAG_BLOB, 1000, 0, 0};
    uint64_t seq;
    return bk->st->methods->write(bk->st, NULL, &rec, NULL, location, &seq);
}

static void test_larger_than_memory(void **state)
{
    (void)state;
    sqlite3 *db = open_db("cold.db");
    create_table(db, "kv");
    relocations r = {{0}};
    backend bk;
    open_with_budget(&bk, db, 4000, &r);
    test_sink ts;
    load(&bk, &ts);

    /* A pending version has no location (only in memory); written out, it gets its seq. */
    txn_begin(&bk);
    static const char *const keys[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    for (int i = 0; i < 10; i++) {
        uint64_t location = 99;
        assert_int_equal(write_bytes(&bk, keys[i], (char)('a' + i), 500, &location), FEOX_OK);
        assert_int_equal(location, 0);
    }
    assert_int_equal(feox_sqlite_storage_settle(&bk.t), FEOX_OK); /* under the limit: stays */
    assert_string_equal(r.log, "");
    txn_commit(&bk);
    assert_string_equal(r.log, "a:0>1 b:0>2 c:0>3 d:0>4 e:0>5 f:0>6 g:0>7 h:0>8 i:0>9 j:0>10 ");

    /* read_value reads the table's row: a cold version is never the pending one, even when the
     * key has a newer pending change. */
    txn_begin(&bk);
    uint64_t location;
    assert_int_equal(write_bytes(&bk, "a", 'z', 300, &location), FEOX_OK);
    unsigned char buf[500];
    assert_int_equal(bk.st->methods->read_value(bk.st, NULL, "a", 1, 1, buf, 500), FEOX_OK);
    assert_int_equal(buf[0], 'a');
    assert_int_equal(buf[499], 'a');
    ftest_exec_ok(db, "ROLLBACK");
    feox_sqlite_storage_rollback(&bk.t);
    close_backend(&bk);

    /* A load keeps values in memory up to half of max_memory and sends the rest cold. */
    open_with_budget(&bk, db, 4000, &r);
    cold_count c = {0, 0};
    feox_storage_sink counting = {.ctx = &c, .put = count_put, .del = count_del};
    assert_int_equal(bk.st->methods->load(bk.st, NULL, &counting), FEOX_OK);
    assert_int_equal(c.resident, 4);
    assert_int_equal(c.cold, 6);
    assert_int_equal(bk.st->methods->read_value(bk.st, NULL, "j", 1, 10, buf, 500), FEOX_OK);
    assert_int_equal(buf[0], 'j');
    close_backend(&bk);
    sqlite3_close(db);
}

static void through_sqlite_hooks(const char *mode, const char *name)
{
    sqlite3 *db = open_db(name);
    assert_int_equal(sqlite3_create_module(db, "sqvt", &sqvt_module, NULL), SQLITE_OK);
    int on = 1;
    assert_int_equal(sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, &on), SQLITE_OK);
    char *sql = sqlite3_mprintf("CREATE VIRTUAL TABLE t USING sqvt(%s)", mode);
    ftest_exec_ok(db, sql);
    sqlite3_free(sql);
    assert_int_equal(count_tables(db, "t_*"), 3);
#define KEYS "SELECT group_concat(CAST(key AS TEXT), '') FROM (SELECT key FROM t_data ORDER BY key)"

    ftest_exec_ok(db, "INSERT INTO t VALUES('a', '1')");
    expect(db, KEYS, "a");
    /* BEGIN; b; SAVEPOINT s; c; ROLLBACK TO s; d; COMMIT */
    ftest_exec_ok(
        db, "BEGIN; INSERT INTO t VALUES('b', '2'); SAVEPOINT s; INSERT INTO t VALUES('c', '3');"
            " ROLLBACK TO s; INSERT INTO t VALUES('d', '4'); COMMIT");
    expect(db, KEYS, "abd");
    /* nested savepoints, the inner one released */
    ftest_exec_ok(db, "BEGIN; SAVEPOINT s1; INSERT INTO t VALUES('e', '5'); SAVEPOINT s2;"
                      " INSERT INTO t VALUES('f', '6'); RELEASE s2; ROLLBACK TO s1;"
                      " INSERT INTO t VALUES('g', '7'); COMMIT");
    expect(db, KEYS, "abdg");
    /* a failing multi-row statement inside BEGIN: its statement savepoint drops 'h' only */
    ftest_exec_ok(db, "BEGIN; INSERT INTO t VALUES('i', '9')");
    exec_fails(db, "INSERT INTO t VALUES('h', '8'), (NULL, 'x')", "NULL key");
    ftest_exec_ok(db, "INSERT INTO t VALUES('j', '10'); COMMIT");
    expect(db, KEYS, "abdgij");
    /* ... and in autocommit, and a ROLLBACK */
    exec_fails(db, "INSERT INTO t VALUES('k', '11'), (NULL, 'x')", "NULL key");
    ftest_exec_ok(db, "BEGIN; INSERT INTO t VALUES('l', '12'); ROLLBACK");
    expect(db, KEYS, "abdgij");
    /* DEFENSIVE: the shadow tables are read-only to SQL */
    exec_fails(db, "DELETE FROM t_data", "may not be modified");

    /* Another connection's backend loads the same rows, and the tables check clean. */
    sqlite3 *db2 = open_db(name);
    backend other;
    test_sink ts;
    open_backend(&other, db2, "t", FEOX_SQLITE_WRITE_BUFFERED);
    load(&other, &ts);
    assert_int_equal(live_count(&ts), 6);
    char detail[256];
    assert_int_equal(other.st->methods->check(other.st, detail, sizeof detail), FEOX_OK);
    /* and hears the next commit through the feed */
    ftest_exec_ok(db, "INSERT INTO t VALUES('m', '13')");
    assert_int_equal(refresh(&other, &ts), FEOX_OK);
    assert_string_equal(ts.events, "+m");
    close_backend(&other);
    sqlite3_close(db2);

    ftest_exec_ok(db, "BEGIN; ALTER TABLE t RENAME TO u; ROLLBACK");
    assert_int_equal(count_tables(db, "u_*"), 0);
    ftest_exec_ok(db, "ALTER TABLE t RENAME TO u");
    assert_int_equal(count_tables(db, "t_*"), 0);
    ftest_exec_ok(db, "INSERT INTO u VALUES('n', '14')");
    expect(db, "SELECT count(*) FROM u_data", "8");
    ftest_exec_ok(db, "BEGIN; DROP TABLE u; ROLLBACK");
    assert_int_equal(count_tables(db, "u_*"), 3);
    ftest_exec_ok(db, "DROP TABLE u");
    assert_int_equal(count_tables(db, "u_*"), 0);
#undef KEYS
    sqlite3_close(db);
}

static void test_sqlite_hooks_buffered(void **state)
{
    (void)state;
    through_sqlite_hooks("buffered", "hooks_buffered.db");
}

static void test_sqlite_hooks_write_through(void **state)
{
    (void)state;
    through_sqlite_hooks("through", "hooks_through.db");
}

/* ---- the lazy load through the extension ---------------------------------------------------
 * An 80000-row table (more than 9 chunks of 8192 rows): a new connection answers while its cache
 * is partial, and every answer equals a native WITHOUT ROWID table's (also under ASan). */

static void expect_same(sqlite3 *db, const char *sql_fmt)
{
    char *kv_sql = sqlite3_mprintf(sql_fmt, "kv"), *nat_sql = sqlite3_mprintf(sql_fmt, "nat");
    char *got = query(db, kv_sql), *want = query(db, nat_sql);
    if (strcmp(got, want) != 0) {
        fail_msg("%s\n  got:  %.200s\n  want: %.200s", kv_sql, got, want);
    }
    sqlite3_free(got);
    sqlite3_free(want);
    sqlite3_free(kv_sql);
    sqlite3_free(nat_sql);
}

static bool cache_complete(sqlite3 *db)
{
    char *stats = query(db, "SELECT feox_stats('kv')");
    bool complete = strstr(stats, "\"cache_complete\":true") != NULL;
    assert_true(complete || strstr(stats, "\"cache_complete\":false") != NULL);
    sqlite3_free(stats);
    return complete;
}

static void test_lazy_load_through_sql(void **state)
{
    (void)state;
    sqlite3 *a = open_db("lazy_sql.db");
    sqlite3 *b = open_db("lazy_sql.db");
    char *err = NULL;
    assert_int_equal(sqlite3_feox_init(a, &err, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(b, &err, NULL), SQLITE_OK);
    ftest_exec_ok(a,
                  "CREATE VIRTUAL TABLE kv USING feox;"
                  "CREATE TABLE nat(key TEXT PRIMARY KEY, value) WITHOUT ROWID; BEGIN;"
                  "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 79999)"
                  " INSERT INTO kv(key, value) SELECT printf('k%06d', 2 * i), i FROM c;"
                  "INSERT INTO nat SELECT key, value FROM kv; COMMIT");

    /* b's first statement: a key at the end, then misses below and beyond what is loaded */
    expect(b, "SELECT value FROM kv WHERE key = 'k159998'", "79999");
    assert_false(cache_complete(b));
    expect_same(b, "SELECT key, value FROM %s WHERE key IN ('k000001', 'k159997', 'k130000')");
    expect_same(b, "SELECT key, value FROM %s WHERE key BETWEEN 'k040000' AND 'k040100'");
    expect_same(b, "SELECT key FROM %s WHERE key < 'k001000' ORDER BY key DESC LIMIT 5");
    assert_false(cache_complete(b));

    /* a scan inside a transaction with pending changes, then ROLLBACK */
    ftest_exec_ok(b, "BEGIN; INSERT INTO kv VALUES('k000003', 'x', NULL, NULL);"
                     "INSERT INTO nat VALUES('k000003', 'x'); DELETE FROM kv WHERE key = 'k050000';"
                     "DELETE FROM nat WHERE key = 'k050000'");
    expect_same(b, "SELECT count(*), min(key), max(key) FROM %s WHERE key > 'k045000'");
    expect_same(b, "SELECT count(*) FROM %s");
    ftest_exec_ok(b, "ROLLBACK");
    expect_same(b, "SELECT count(*), sum(value) FROM %s");
    assert_true(cache_complete(b));

    /* a's transaction outgrows the feed (65536 changes): b compares instead of reloading */
    ftest_exec_ok(a,
                  "BEGIN;"
                  "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 69999)"
                  " INSERT INTO kv(key, value) SELECT printf('k%06d', 2 * i + 1), -i FROM c;"
                  "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 69999)"
                  " INSERT INTO nat SELECT printf('k%06d', 2 * i + 1), -i FROM c;"
                  "UPDATE kv SET value = 'u' WHERE key = 'k000100';"
                  "UPDATE nat SET value = 'u' WHERE key = 'k000100';"
                  "DELETE FROM kv WHERE key = 'k000200'; DELETE FROM nat WHERE key = 'k000200';"
                  "COMMIT");
    expect_same(b, "SELECT key, value FROM %s WHERE key IN ('k000100', 'k000200', 'k000201')");
    char *stats = query(b, "SELECT feox_stats('kv')");
    assert_non_null(strstr(stats, "\"cache_resyncs\":1,"));
    assert_non_null(strstr(stats, "\"cache_reloads\":0,"));
    sqlite3_free(stats);
    assert_true(cache_complete(b));
    expect_same(b, "SELECT count(*), sum(typeof(value) = 'integer'), min(key), max(key) FROM %s");
    expect_same(b, "SELECT key, value FROM %s ORDER BY key");
    expect(b, "SELECT feox_check('kv')", "ok");
    sqlite3_close(a);
    sqlite3_close(b);
}

/* Loading the extension registers the backend with the engine under its name (feox_storage.h);
 * registering it again is a no-op, and no other backend may take the name. */
static void test_registered_by_the_extension(void **state)
{
    (void)state;
    sqlite3 *db = open_db("registered.db");
    char *err = NULL;
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    assert_ptr_equal(feox_storage_find("sqlite"), feox_sqlite_storage());
    assert_int_equal(feox_storage_register(feox_sqlite_storage()), FEOX_OK);
    feox_storage_methods other = *feox_sqlite_storage();
    assert_int_equal(feox_storage_register(&other), FEOX_ERR_KEY_EXISTS);
    assert_ptr_equal(feox_storage_find("sqlite"), feox_sqlite_storage());
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registered_by_the_extension),
        cmocka_unit_test(test_ddl_inside_transactions),
        cmocka_unit_test(test_round_trip_buffered),
        cmocka_unit_test(test_round_trip_write_through),
        cmocka_unit_test(test_writes_need_a_transaction),
        cmocka_unit_test(test_renamed_backend),
        cmocka_unit_test(test_savepoints_buffered),
        cmocka_unit_test(test_savepoints_buffered_early_flush),
        cmocka_unit_test(test_savepoints_write_through),
        cmocka_unit_test(test_feed_buffered),
        cmocka_unit_test(test_feed_write_through),
        cmocka_unit_test(test_begin_after_refresh),
        cmocka_unit_test(test_rows_hold_their_own_parameters),
        cmocka_unit_test(test_stale_buffered),
        cmocka_unit_test(test_stale_write_through),
        cmocka_unit_test(test_utf16_database),
        cmocka_unit_test(test_fast_path_runs_no_sql),
        cmocka_unit_test(test_find_and_read_value),
        cmocka_unit_test(test_lowered_length_limit),
        cmocka_unit_test(test_lazy_load),
        cmocka_unit_test(test_lazy_load_through_sql),
        cmocka_unit_test(test_check_finds_damage),
        cmocka_unit_test(test_busy_buffered),
        cmocka_unit_test(test_busy_write_through),
        cmocka_unit_test(test_missing_tables),
        cmocka_unit_test(test_commit_sweeps_expired_rows),
        cmocka_unit_test(test_commit_sweep_skips_until_due),
        cmocka_unit_test(test_larger_than_memory),
        cmocka_unit_test(test_lazy_chunk_failing_to_apply),
        cmocka_unit_test(test_full_load_on_a_worker_failing),
        cmocka_unit_test(test_sqlite_hooks_buffered),
        cmocka_unit_test(test_sqlite_hooks_write_through),
    };
    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}

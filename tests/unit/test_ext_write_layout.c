/*
 * test_ext_write_layout.c — where the versions of keys written through SQL lie: a lookup
 * prefetches the FEOX_HASH_VERSION_PREFETCH (160) bytes before a key's entry with the entry, and
 * a version allocated right before its entry starts there. Keys INSERTed in transactions of 1000
 * rows into a table in a WAL database, in one connection (what the benchmark's point SELECT
 * reads): at least 90% of them have their version start in those bytes. Before the transaction's
 * journal and pending bytes went into an arena (ext/byte_arena.c), the per-row blocks they freed at
 * each COMMIT were reused by the next transaction's versions and only 53% did. A property of
 * glibc's malloc, which is deterministic for a given sequence of calls; skipped under a sanitizer,
 * whose allocator places blocks its own way.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "feox_ext.h"
#include "index/hash_index.h"
#include "index/record.h"
#include "sql_exec.h"
#include "store/store_internal.h"
#include "temp_store_dir.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define LAYOUT_SKIPPED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define LAYOUT_SKIPPED 1
#endif
#endif

#define ROWS 20000
#define ROWS_PER_TXN 1000
#define PREFETCHED_BYTES FEOX_HASH_VERSION_PREFETCH

int sqlite3_feox_init(sqlite3 *db, char **err, const sqlite3_api_routines *api);

#ifdef LAYOUT_SKIPPED
static void test_written_versions_lie_before_their_entries(void **state)
{
    (void)state;
    skip();
}
#else
static void key_of(size_t i, unsigned char key[16])
{
    uint64_t x = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    memcpy(key, &x, 8);
    memcpy(key + 8, &i, 8);
}

static void test_written_versions_lie_before_their_entries(void **state)
{
    (void)state;
    char dir[] = "/tmp/feox_layoutXXXXXX", path[256];
    assert_int_equal(ftest_temp_store_make(dir, path, sizeof path), 0);
    char db_path[300];
    snprintf(db_path, sizeof db_path, "%s/t.db", dir);
    sqlite3 *db = NULL;
    char *err = NULL;
    assert_int_equal(sqlite3_open(db_path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    ftest_exec_ok(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL");
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE kv USING feox(keytype=blob)");
    sqlite3_stmt *ins = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db, "INSERT INTO kv(key, value) VALUES(?1, ?2)", -1, &ins, NULL),
        SQLITE_OK);
    unsigned char key[16], value[100];
    memset(value, 7, sizeof value);
    for (size_t i = 0; i < ROWS; i++) {
        if (i % ROWS_PER_TXN == 0) {
            ftest_exec_ok(db, "BEGIN");
        }
        key_of(i, key);
        sqlite3_bind_blob(ins, 1, key, sizeof key, SQLITE_STATIC);
        sqlite3_bind_blob(ins, 2, value, sizeof value, SQLITE_STATIC);
        assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
        sqlite3_reset(ins);
        if (i % ROWS_PER_TXN == ROWS_PER_TXN - 1) {
            ftest_exec_ok(db, "COMMIT");
        }
    }
    sqlite3_finalize(ins);

    feox_conn *conn = feox_conn_get(db);
    feox_vtab *vt = feox_conn_find_vtab(conn, "main", "kv");
    assert_non_null(vt);
    feox_store *s = vt->entry->store;
    size_t near = 0;
    for (size_t i = 0; i < ROWS; i++) {
        key_of(i, key);
        feox_entry *e =
            feox_hash_lookup(&s->hash, feox_hash_key(&s->hash, key, sizeof key), key, sizeof key);
        assert_non_null(e);
        const feox_record *r = atomic_load_explicit(&e->current, memory_order_acquire);
        assert_non_null(r);
        intptr_t gap = (const char *)e - (const char *)r;
        near += gap > 0 && gap <= PREFETCHED_BYTES;
    }
    feox_conn_release(conn);
    sqlite3_close(db);
    ftest_temp_store_remove(dir, db_path);
    print_message("versions in the %d bytes before their entry: %zu of %d\n", PREFETCHED_BYTES,
                  near, ROWS);
    assert_true(near * 10 >= (size_t)ROWS * 9);
}
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_written_versions_lie_before_their_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

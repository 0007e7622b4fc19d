/*
 * test_ext_differential.c — the planner differential test (issue 5, item 5).
 *
 * The same rows live in a feox table and in a native table
 *   CREATE TABLE nat(key TEXT PRIMARY KEY, value) WITHOUT ROWID
 * and thousands of random queries run against both: =, IN, <, <=, >, >=, BETWEEN, GLOB and LIKE
 * prefixes (with and without case_sensitive_like), COLLATE NOCASE, <>, IS, IS NULL, NULL operands,
 * AND/OR nesting, ORDER BY key ASC/DESC or value, LIMIT/OFFSET, bound parameters and literals,
 * row values ((key, value) > (?, n)), numbers against text keys, keys that are prefixes of each
 * other, high bytes and LIKE/GLOB metacharacters; a third select the key alone (a scan without
 * values unless a term needs the value). Results must agree exactly: in order when ORDER
 * BY makes the order unique, as multisets otherwise; with LIMIT but no ORDER BY, the rows must be a
 * subset of the full answer of the right size. A keytype=blob table is checked the same way against
 * a BLOB-keyed twin.
 *
 * FEOX_DIFF_QUERIES=n sets the number of queries per table (default 4000), FEOX_DIFF_SEED the
 * seed. A mismatch prints the query and its parameters.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "feox_ext.h"
#include "feox_test_support.h"
#include "sql_exec.h"

#define MAX_PARAMS 16

typedef struct param {
    int type; /* SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB, SQLITE_NULL */
    sqlite3_int64 i;
    double d;
    char text[64];
    int len;
} param;

typedef struct query {
    char sql[2048];
    param params[MAX_PARAMS];
    int n_params;
    bool ordered;   /* ORDER BY makes the order unique */
    bool has_limit; /* LIMIT without a unique order */
    sqlite3_int64 limit, offset;
} query;

typedef struct rows {
    char **row;
    size_t n, cap;
} rows;

static ftest_rng rng;
static bool blob_mode;

/* The keys both tables hold. */
static char keys[400][32];
static int key_lens[400];
static int n_keys;

static void add_key(const char *k, int len)
{
    for (int i = 0; i < n_keys; i++) {
        if (key_lens[i] == len && memcmp(keys[i], k, (size_t)len) == 0) {
            return;
        }
    }
    memcpy(keys[n_keys], k, (size_t)len);
    key_lens[n_keys] = len;
    n_keys++;
}

static void make_keys(void)
{
    static const char *const fixed[] = {
        "a",           "ab",          "abc",     "abd",      "b",
        "B",           "A",           "aB",      "user:",    "user;",
        "user:1",      "user:2",      "user:10", "user:100", "user:9",
        "usa",         "1",           "10",      "2",        "-1",
        "1.5",         "5",           "50",      "5.0",      "%",
        "a%b",         "a_b",         "a*b",     "a?b",      "a[b",
        "_",           "*",           "z",       "zz",       "zzz",
        " ",           "~",           "a b",     "x\x7f",    "\x01",
        "caf\xc3\xa9", "caf\xc3\xa8", "\xff",    "\xff\xff", "\xc3\xa9t\xc3\xa9",
        "p\xff",       "user:\xff",
    };
    n_keys = 0;
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        add_key(fixed[i], (int)strlen(fixed[i]));
    }
    while (n_keys < 300) {
        char k[16];
        int len = 1 + (int)ftest_rng_below(&rng, 6);
        static const char alphabet[] = "abcuz:019%_*AB\xff";
        for (int i = 0; i < len; i++) {
            k[i] = alphabet[ftest_rng_below(&rng, sizeof alphabet - 1)];
        }
        add_key(k, len);
    }
}

static void bind_key(sqlite3_stmt *st, int idx, int k)
{
    if (blob_mode) {
        sqlite3_bind_blob(st, idx, keys[k], key_lens[k], SQLITE_STATIC);
    } else {
        sqlite3_bind_text(st, idx, keys[k], key_lens[k], SQLITE_STATIC);
    }
}

static void fill(sqlite3 *db, const char *table)
{
    char sql[128];
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql, "INSERT INTO %s(key, value) VALUES (?, ?)", table);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    for (int i = 0; i < n_keys; i++) {
        bind_key(st, 1, i);
        sqlite3_bind_int(st, 2, i);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
}

/* An operand: mostly existing keys, then near-misses, numbers and NULL. */
static void random_operand(param *p)
{
    uint64_t r = ftest_rng_below(&rng, 100);
    int k = (int)ftest_rng_below(&rng, (uint64_t)n_keys);
    memset(p, 0, sizeof *p);
    p->type = blob_mode ? SQLITE_BLOB : SQLITE_TEXT;
    if (r < 55) {
        memcpy(p->text, keys[k], (size_t)key_lens[k]);
        p->len = key_lens[k];
    } else if (r < 75) {
        /* a near miss: truncated, extended by a low or high byte */
        int len = key_lens[k];
        memcpy(p->text, keys[k], (size_t)len);
        switch (ftest_rng_below(&rng, 3)) {
        case 0: p->len = len > 1 ? len - 1 : len; break;
        case 1:
            p->text[len] = '\0';
            p->len = len + 1;
            break;
        default:
            p->text[len] = (char)0xfe;
            p->len = len + 1;
            break;
        }
    } else if (r < 88 && !blob_mode) {
        p->type = SQLITE_INTEGER;
        p->i = (sqlite3_int64)ftest_rng_below(&rng, 120) - 10;
    } else if (r < 92 && !blob_mode) {
        p->type = SQLITE_FLOAT;
        p->d = (double)ftest_rng_below(&rng, 12) / 2.0;
    } else if (r < 96) {
        p->type = SQLITE_NULL;
    } else {
        memcpy(p->text, keys[k], (size_t)key_lens[k]);
        p->len = key_lens[k];
    }
}

static void appendf(query *q, const char *fmt, ...)
{
    size_t used = strlen(q->sql);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(q->sql + used, sizeof q->sql - used, fmt, ap);
    va_end(ap);
}

static void add_param(query *q)
{
    if (q->n_params < MAX_PARAMS) {
        random_operand(&q->params[q->n_params++]);
        appendf(q, "?%d", q->n_params);
    } else {
        appendf(q, "NULL");
    }
}

/* A prefix for GLOB/LIKE: a short prefix of an existing key with metacharacters avoided. */
static void random_prefix(char *out, size_t cap)
{
    int k = (int)ftest_rng_below(&rng, (uint64_t)n_keys);
    int len = 1 + (int)ftest_rng_below(&rng, 4);
    int j = 0;
    for (int i = 0; i < key_lens[k] && i < len && (size_t)j + 2 < cap; i++) {
        char c = keys[k][i];
        if (c == '*' || c == '?' || c == '[' || c == '%' || c == '_' || c == '\'' || c == '\0') {
            break;
        }
        out[j++] = c;
    }
    /* Never cut a UTF-8 sequence: SQLite itself answers such a GLOB differently through an
     * index (range only) and through a scan (character matching). */
    while (j > 0 && j < key_lens[k] && ((unsigned char)keys[k][j] & 0xc0) == 0x80) {
        j--;
    }
    out[j] = '\0';
}

static void random_term(query *q, int depth)
{
    uint64_t r = ftest_rng_below(&rng, depth < 2 ? 100 : 88);
    static const char *const cmp[] = {"=", "<", "<=", ">", ">="};
    char prefix[16];
    if (r < 28) {
        appendf(q, "key %s ", cmp[ftest_rng_below(&rng, 5)]);
        add_param(q);
    } else if (r < 36) {
        appendf(q, "key BETWEEN ");
        add_param(q);
        appendf(q, " AND ");
        add_param(q);
    } else if (r < 46) {
        int n = 1 + (int)ftest_rng_below(&rng, 4);
        appendf(q, "key IN (");
        for (int i = 0; i < n; i++) {
            appendf(q, i ? ", " : "");
            add_param(q);
        }
        appendf(q, ")");
    } else if (r < 53) {
        random_prefix(prefix, sizeof prefix);
        appendf(q, "key GLOB '%s*'", prefix);
    } else if (r < 60) {
        random_prefix(prefix, sizeof prefix);
        appendf(q, "key LIKE '%s%%'", prefix);
    } else if (r < 63) {
        appendf(q, "key %s ", cmp[ftest_rng_below(&rng, 5)]);
        add_param(q);
        appendf(q, " COLLATE NOCASE");
    } else if (r < 66) {
        appendf(q, "key <> ");
        add_param(q);
    } else if (r < 69 && !blob_mode) {
        static const char *const misc[] = {"key IS NULL", "key IS NOT NULL", "key = NULL",
                                           "key > NULL",  "key IN (NULL)",   "key = 5",
                                           "key < 2",     "key >= 'user'",   "key = 1.5"};
        appendf(q, "%s", misc[ftest_rng_below(&rng, sizeof misc / sizeof misc[0])]);
    } else if (r < 69) {
        appendf(q, "key IS NOT NULL");
    } else if (r < 76) {
        appendf(q, "value %s %d", cmp[ftest_rng_below(&rng, 5)],
                (int)ftest_rng_below(&rng, (uint64_t)n_keys));
    } else if (r < 78) {
        appendf(q, "key IS ");
        add_param(q);
    } else if (r < 80) {
        /* a row value: SQLite passes key >= / <= and re-checks the whole comparison */
        appendf(q, "(key, value) %s (", cmp[1 + ftest_rng_below(&rng, 4)]);
        add_param(q);
        appendf(q, ", %d)", (int)ftest_rng_below(&rng, (uint64_t)n_keys));
    } else if (r < 88) {
        /* two bounds in either order, same or opposite direction */
        appendf(q, "key %s ", cmp[1 + ftest_rng_below(&rng, 4)]);
        add_param(q);
        appendf(q, " AND key %s ", cmp[1 + ftest_rng_below(&rng, 4)]);
        add_param(q);
    } else {
        appendf(q, "(");
        random_term(q, depth + 1);
        appendf(q, ftest_rng_below(&rng, 2) ? " OR " : " AND ");
        random_term(q, depth + 1);
        appendf(q, ")");
    }
}

static void random_query(query *q)
{
    memset(q, 0, sizeof *q);
    /* A third select no value: their scans read rows without values (FEOX_PLAN_NO_VALUE) unless
     * a term or ORDER BY asks for it. */
    appendf(q, ftest_rng_below(&rng, 3) == 0 ? "SELECT key, 0 FROM {T}"
                                             : "SELECT key, value FROM {T}");
    int n_terms = (int)ftest_rng_below(&rng, 4);
    for (int i = 0; i < n_terms; i++) {
        appendf(q, i == 0 ? " WHERE " : (ftest_rng_below(&rng, 4) ? " AND " : " OR "));
        random_term(q, 0);
    }
    uint64_t o = ftest_rng_below(&rng, 10);
    if (o < 3) {
        appendf(q, " ORDER BY key");
        q->ordered = true;
    } else if (o < 6) {
        appendf(q, " ORDER BY key DESC");
        q->ordered = true;
    } else if (o < 7) {
        appendf(q, " ORDER BY value");
        q->ordered = true;
    }
    if (ftest_rng_below(&rng, 3) == 0) {
        q->limit = (sqlite3_int64)ftest_rng_below(&rng, 12) - 1; /* -1 = no limit */
        appendf(q, " LIMIT %lld", (long long)q->limit);
        if (ftest_rng_below(&rng, 2)) {
            q->offset = (sqlite3_int64)ftest_rng_below(&rng, 8);
            appendf(q, " OFFSET %lld", (long long)q->offset);
        }
        q->has_limit = !q->ordered;
    }
}

static void rows_free(rows *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->row[i]);
    }
    free(r->row);
    memset(r, 0, sizeof *r);
}

/* Run q against table (with or without its LIMIT clause). Returns the SQLite rc. */
static int run(sqlite3 *db, const query *q, const char *table, bool strip_limit, rows *out,
               char **errmsg)
{
    char sql[2200];
    sqlite3_stmt *st = NULL;
    int rc;
    const char *hole = strstr(q->sql, "{T}");
    snprintf(sql, sizeof sql, "%.*s%s%s", (int)(hole - q->sql), q->sql, table, hole + 3);
    if (strip_limit) {
        char *lim = strstr(sql, " LIMIT ");
        if (lim) {
            *lim = '\0';
        }
    }
    memset(out, 0, sizeof *out);
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK) {
        *errmsg = strdup(sqlite3_errmsg(db));
        return rc;
    }
    for (int i = 0; i < q->n_params; i++) {
        const param *p = &q->params[i];
        switch (p->type) {
        case SQLITE_INTEGER: sqlite3_bind_int64(st, i + 1, p->i); break;
        case SQLITE_FLOAT: sqlite3_bind_double(st, i + 1, p->d); break;
        case SQLITE_TEXT: sqlite3_bind_text(st, i + 1, p->text, p->len, SQLITE_STATIC); break;
        case SQLITE_BLOB: sqlite3_bind_blob(st, i + 1, p->text, p->len, SQLITE_STATIC); break;
        default: sqlite3_bind_null(st, i + 1); break;
        }
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *k = sqlite3_column_blob(st, 0);
        int klen = sqlite3_column_bytes(st, 0);
        char *row = malloc((size_t)klen * 2 + 32);
        int w = 0;
        w += sprintf(row + w, "%c:", sqlite3_column_type(st, 0) == SQLITE_BLOB ? 'B' : 'T');
        for (int i = 0; i < klen; i++) {
            w += sprintf(row + w, "%02x", k[i]);
        }
        sprintf(row + w, "=%d", sqlite3_column_int(st, 1));
        if (out->n == out->cap) {
            out->cap = out->cap ? out->cap * 2 : 16;
            out->row = realloc(out->row, out->cap * sizeof *out->row);
        }
        out->row[out->n++] = row;
    }
    if (rc != SQLITE_DONE) {
        *errmsg = strdup(sqlite3_errmsg(db));
    } else {
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void describe(const query *q, const char *why)
{
    fprintf(stderr, "MISMATCH (%s)\n  %s\n", why, q->sql);
    for (int i = 0; i < q->n_params; i++) {
        const param *p = &q->params[i];
        fprintf(stderr, "  ?%d = ", i + 1);
        if (p->type == SQLITE_INTEGER) {
            fprintf(stderr, "%lld\n", (long long)p->i);
        } else if (p->type == SQLITE_FLOAT) {
            fprintf(stderr, "%g\n", p->d);
        } else if (p->type == SQLITE_NULL) {
            fprintf(stderr, "NULL\n");
        } else {
            fprintf(stderr, "%s'", p->type == SQLITE_BLOB ? "x" : "");
            for (int j = 0; j < p->len; j++) {
                fprintf(stderr, "%02x", (unsigned char)p->text[j]);
            }
            fprintf(stderr, "' (hex)\n");
        }
    }
}

static bool same_rows(rows *a, rows *b, bool ordered)
{
    if (a->n != b->n) {
        return false;
    }
    if (!ordered && a->n > 0) {
        qsort(a->row, a->n, sizeof *a->row, cmp_str);
        qsort(b->row, b->n, sizeof *b->row, cmp_str);
    }
    for (size_t i = 0; i < a->n; i++) {
        if (strcmp(a->row[i], b->row[i]) != 0) {
            return false;
        }
    }
    return true;
}

static void print_rows(const char *label, const rows *r)
{
    fprintf(stderr, "  %s (%zu):", label, r->n);
    for (size_t i = 0; i < r->n && i < 20; i++) {
        fprintf(stderr, " %s", r->row[i]);
    }
    fprintf(stderr, "\n");
}

/* Compare one query; returns false on a mismatch (after printing it). */
static bool check_query(sqlite3 *db, const query *q)
{
    rows f, n;
    char *ferr = NULL, *nerr = NULL;
    bool ok = true;
    int frc = run(db, q, "kv", false, &f, &ferr);
    int nrc = run(db, q, "nat", q->has_limit, &n, &nerr);
    if (frc != nrc) {
        describe(q, "different result codes");
        fprintf(stderr, "  feox: %d %s / native: %d %s\n", frc, ferr ? ferr : "", nrc,
                nerr ? nerr : "");
        ok = false;
    } else if (frc == SQLITE_OK && !q->has_limit) {
        if (!same_rows(&f, &n, q->ordered)) {
            describe(q, "different rows");
            print_rows("feox", &f);
            print_rows("native", &n);
            ok = false;
        }
    } else if (frc == SQLITE_OK) {
        /* LIMIT without a unique order: any rows of the full answer, the right number. */
        size_t total = n.n;
        size_t skip = q->offset > 0 ? (size_t)q->offset : 0;
        size_t expect = total > skip ? total - skip : 0;
        if (q->limit >= 0 && (size_t)q->limit < expect) {
            expect = (size_t)q->limit;
        }
        if (n.n > 0) {
            qsort(n.row, n.n, sizeof *n.row, cmp_str);
        }
        if (f.n != expect) {
            describe(q, "wrong row count under LIMIT");
            fprintf(stderr, "  feox %zu rows, expected %zu\n", f.n, expect);
            ok = false;
        }
        for (size_t i = 0; ok && i < f.n; i++) {
            if (n.n == 0 || bsearch(&f.row[i], n.row, n.n, sizeof *n.row, cmp_str) == NULL) {
                describe(q, "row not in the full answer");
                ok = false;
            }
        }
    }
    rows_free(&f);
    rows_free(&n);
    free(ferr);
    free(nerr);
    return ok;
}

static int env_int(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static void run_differential(bool blob)
{
    sqlite3 *db;
    char *err = NULL;
    int n_queries = env_int("FEOX_DIFF_QUERIES", 4000);
    int failures = 0;
    blob_mode = blob;
    ftest_rng_seed(&rng, (uint64_t)env_int("FEOX_DIFF_SEED", 20260524) + (blob ? 1 : 0));
    make_keys();
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(db, &err, NULL), SQLITE_OK);
    ftest_exec_ok(db, blob ? "CREATE VIRTUAL TABLE kv USING feox(keytype=blob)"
                           : "CREATE VIRTUAL TABLE kv USING feox");
    ftest_exec_ok(db, blob ? "CREATE TABLE nat(key BLOB PRIMARY KEY, value) WITHOUT ROWID"
                           : "CREATE TABLE nat(key TEXT PRIMARY KEY, value) WITHOUT ROWID");
    fill(db, "kv");
    fill(db, "nat");
    for (int i = 0; i < n_queries && failures < 5; i++) {
        query q;
        if (i % 500 == 0) {
            ftest_exec_ok(db, (i / 500) % 2 ? "PRAGMA case_sensitive_like = ON"
                                            : "PRAGMA case_sensitive_like = OFF");
        }
        random_query(&q);
        if (!check_query(db, &q)) {
            failures++;
        }
    }
    sqlite3_close(db);
    assert_int_equal(failures, 0);
}

static void test_differential_text(void **state)
{
    (void)state;
    run_differential(false);
}

static void test_differential_blob(void **state)
{
    (void)state;
    run_differential(true);
}

/* A join must probe the feox table by key (hash lookup), and agree with the native twin. */
static void test_join_uses_hash_lookup(void **state)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    (void)state;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    assert_int_equal(sqlite3_feox_init(db, NULL, NULL), SQLITE_OK);
    ftest_exec_ok(db, "CREATE VIRTUAL TABLE kv USING feox");
    ftest_exec_ok(db, "CREATE TABLE ids(k TEXT)");
    ftest_exec_ok(db, "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i<2000) "
                      "INSERT INTO kv(key, value) SELECT 'k' || i, i FROM c");
    ftest_exec_ok(db, "INSERT INTO ids VALUES ('k5'), ('k77'), ('nope'), ('k1999')");
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "EXPLAIN QUERY PLAN SELECT sum(kv.value) FROM ids "
                                        "JOIN kv ON kv.key = ids.k",
                                        -1, &st, NULL),
                     SQLITE_OK);
    bool saw_hash = false;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *detail = (const char *)sqlite3_column_text(st, 3);
        if (strstr(detail, "kv VIRTUAL TABLE") && strstr(detail, "hash lookup key=?")) {
            saw_hash = true;
        }
    }
    sqlite3_finalize(st);
    assert_true(saw_hash);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT sum(kv.value) FROM ids JOIN kv ON kv.key = ids.k",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 5 + 77 + 1999);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_differential_text),
        cmocka_unit_test(test_differential_blob),
        cmocka_unit_test(test_join_uses_hash_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_sql.c — differential libFuzzer target: SQL on a feox table against a native twin.
 *
 * One connection holds `kv` (CREATE VIRTUAL TABLE kv USING feox, memory only) and
 *   CREATE TABLE twin(key TEXT PRIMARY KEY, value, ttl, ts) WITHOUT ROWID
 * The input bytes are decoded by a small grammar into statements — INSERT, REPLACE, INSERT OR
 * IGNORE (single and multi-row), UPDATE of value or key, DELETE, SELECT with =, IN, ranges,
 * BETWEEN, GLOB and LIKE prefixes, value comparisons, ORDER BY key ASC/DESC, LIMIT/OFFSET — each
 * run once against each table, and BEGIN / COMMIT / ROLLBACK / SAVEPOINT / ROLLBACK TO / RELEASE
 * run once (they cover both tables). Both must succeed or both fail; SELECT results must agree
 * (in order under ORDER BY key, as multisets otherwise; LIMIT only comes with ORDER BY key), and
 * after every statement the two tables' (key, value) contents must be identical.
 * Only key and value are compared, and the grammar never writes ttl or ts (explicit timestamps
 * and expiry legitimately differ from a plain table). Keys are non-empty text over {a, b, A, z}
 * (an empty key is invalid in feox but fine in SQLite); values cover every SQL type.
 * A mismatch prints the statement and aborts. Seeds: tests/fuzz/corpus/fuzz_sql/.
 * FUZZ_SQL_DB=<file> runs each input on that database file (removed first) instead of memory:
 * kv is then a table in the database (shadow tables, the per-connection cache, SQLite's own
 * transactions: ext/db_mode.c), written with synchronous=OFF (durability is not what is fuzzed).
 * A second connection on the file keeps its own cache of kv: whenever the first is outside a
 * transaction, kv read through the second must equal twin too (the change feed and the
 * data-version check keep that cache coherent; a rolled-back change must never reach it).
 */
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "feox_ext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_STATEMENTS 64
#define SQL_CAP 2048
#define TABLE_MARK '\x01' /* stands for the table name in a generated statement */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_sql: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

/* ---- input ---------------------------------------------------------------------------------- */

typedef struct input {
    const uint8_t *data;
    size_t size, pos;
} input;

static uint8_t next_byte(input *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

/* ---- statement text
 * ------------------------------------------------------------------------------ */

typedef struct sql_buf {
    char text[SQL_CAP];
    size_t len;
} sql_buf;

static void put(sql_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->text + b->len, sizeof b->text - b->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof b->text - b->len)
        die("statement too long");
    b->len += (size_t)n;
}

static void put_key(sql_buf *b, input *in)
{
    static const char alphabet[4] = {'a', 'b', 'A', 'z'};
    uint8_t x = next_byte(in);
    size_t len = 1 + x % 3;
    put(b, "'");
    for (size_t i = 0; i < len; i++)
        put(b, "%c", alphabet[(x >> (2 + 2 * i)) & 3]);
    put(b, "'");
}

static void put_value(sql_buf *b, input *in)
{
    uint8_t x = next_byte(in);
    switch (x % 7) {
    case 0: put(b, "%d", (int)(int8_t)next_byte(in)); break;
    case 1: put(b, "%d.5", (int)(int8_t)next_byte(in)); break;
    case 2: put(b, "x'%02x00'", next_byte(in)); break;
    case 3: put(b, "NULL"); break;
    case 4: put(b, "''"); break;
    case 5: put(b, "'%d'", next_byte(in) % 4); break; /* text that looks like a number */
    default: put_key(b, in); break;                   /* text that looks like a key */
    }
}

/* A WHERE condition (the leading " WHERE " included, or nothing). */
static void put_condition(sql_buf *b, input *in)
{
    uint8_t x = next_byte(in);
    switch (x % 10) {
    case 0: return;
    case 1:
        put(b, " WHERE key = ");
        put_key(b, in);
        return;
    case 2:
        put(b, " WHERE key IN (");
        put_key(b, in), put(b, ", "), put_key(b, in), put(b, ", "), put_key(b, in);
        put(b, ")");
        return;
    case 3:
        put(b, " WHERE key > ");
        put_key(b, in);
        put(b, " AND key <= ");
        put_key(b, in);
        return;
    case 4:
        put(b, " WHERE key >= ");
        put_key(b, in);
        put(b, " AND key < ");
        put_key(b, in);
        return;
    case 5:
        put(b, " WHERE key BETWEEN ");
        put_key(b, in);
        put(b, " AND ");
        put_key(b, in);
        return;
    case 6: put(b, " WHERE key GLOB '%c*'", "abAz"[next_byte(in) % 4]); return;
    case 7: put(b, " WHERE key LIKE '%c%%'", "abAz"[next_byte(in) % 4]); return;
    case 8:
        put(b, " WHERE value = ");
        put_value(b, in);
        return;
    default:
        put(b, " WHERE key < ");
        put_key(b, in);
        put(b, " OR key = ");
        put_key(b, in);
        return;
    }
}

static void put_rows(sql_buf *b, input *in)
{
    int rows = 1 + next_byte(in) % 3;
    put(b, " VALUES ");
    for (int i = 0; i < rows; i++) {
        put(b, i ? ", (" : "(");
        put_key(b, in);
        put(b, ", ");
        put_value(b, in);
        put(b, ")");
    }
}

typedef enum statement_kind { PER_TABLE, SELECT_ORDERED, SELECT_UNORDERED, ONCE } statement_kind;

/* Decode one statement into b; returns how it is run and compared. */
static statement_kind next_statement(input *in, sql_buf *b)
{
    uint8_t x = next_byte(in);
    b->len = 0;
    b->text[0] = '\0';
    switch (x % 16) {
    case 0:
    case 1:
        put(b, "INSERT INTO %c(key, value)", TABLE_MARK);
        put_rows(b, in);
        return PER_TABLE;
    case 2:
        put(b, "REPLACE INTO %c(key, value)", TABLE_MARK);
        put_rows(b, in);
        return PER_TABLE;
    case 3:
        put(b, "INSERT OR IGNORE INTO %c(key, value)", TABLE_MARK);
        put_rows(b, in);
        return PER_TABLE;
    case 4:
        put(b, "UPDATE %c SET value = ", TABLE_MARK);
        put_value(b, in);
        put_condition(b, in);
        return PER_TABLE;
    case 5:
        put(b, "UPDATE %c SET key = ", TABLE_MARK);
        put_key(b, in);
        put(b, " WHERE key = ");
        put_key(b, in);
        return PER_TABLE;
    case 6:
        put(b, "DELETE FROM %c", TABLE_MARK);
        put_condition(b, in);
        return PER_TABLE;
    case 7:
    case 8:
    case 9: {
        uint8_t y = next_byte(in);
        put(b, y & 1 ? "SELECT key, quote(value) FROM %c" : "SELECT count(*), max(key) FROM %c",
            TABLE_MARK);
        put_condition(b, in);
        if (!(y & 2) || !(y & 1))
            return SELECT_UNORDERED;
        put(b, " ORDER BY key %s", y & 4 ? "DESC" : "ASC");
        if (y & 8)
            put(b, " LIMIT %d", (y >> 4) % 5);
        if (y & 8 && y & 0x40)
            put(b, " OFFSET %d", next_byte(in) % 4);
        return SELECT_ORDERED;
    }
    case 10: put(b, "BEGIN"); return ONCE;
    case 11: put(b, "COMMIT"); return ONCE;
    case 12: put(b, "ROLLBACK"); return ONCE;
    case 13: put(b, "SAVEPOINT sp%d", next_byte(in) % 2); return ONCE;
    case 14: put(b, "ROLLBACK TO sp%d", next_byte(in) % 2); return ONCE;
    default: put(b, "RELEASE sp%d", next_byte(in) % 2); return ONCE;
    }
}

/* The statement with TABLE_MARK replaced by table. */
static void for_table(const sql_buf *b, const char *table, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < b->len; i++) {
        const char *piece = b->text[i] == TABLE_MARK ? table : NULL;
        size_t n = piece ? strlen(piece) : 1;
        if (o + n + 1 > cap)
            die("statement too long");
        memcpy(out + o, piece ? piece : &b->text[i], n);
        o += n;
    }
    out[o] = '\0';
}

/* ---- running and comparing
 * ----------------------------------------------------------------------- */

typedef struct result {
    char **rows; /* each row's columns joined with '|' */
    size_t n, cap;
    int rc;
    char *errmsg;
} result;

static void result_free(result *r)
{
    for (size_t i = 0; i < r->n; i++)
        sqlite3_free(r->rows[i]);
    free(r->rows);
    sqlite3_free(r->errmsg);
    memset(r, 0, sizeof *r);
}

static void run(sqlite3 *db, const char *sql, result *r)
{
    memset(r, 0, sizeof *r);
    sqlite3_stmt *st = NULL;
    r->rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (r->rc == SQLITE_OK) {
        while ((r->rc = sqlite3_step(st)) == SQLITE_ROW) {
            char *row = sqlite3_mprintf("%s", "");
            for (int c = 0; c < sqlite3_column_count(st); c++) {
                const unsigned char *t = sqlite3_column_text(st, c);
                char *next =
                    sqlite3_mprintf("%s%s%s", row, c ? "|" : "", t ? (const char *)t : "NULL");
                sqlite3_free(row);
                row = next;
            }
            if (!row)
                die("out of memory");
            if (r->n == r->cap) {
                r->cap = r->cap ? r->cap * 2 : 16;
                r->rows = realloc(r->rows, r->cap * sizeof *r->rows);
                if (!r->rows)
                    die("out of memory");
            }
            r->rows[r->n++] = row;
        }
        if (r->rc == SQLITE_DONE)
            r->rc = SQLITE_OK;
    }
    if (r->rc != SQLITE_OK)
        r->errmsg = sqlite3_mprintf("%s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
}

static int compare_rows(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void compare(const char *sql, result *feox, result *twin, bool ordered)
{
    if ((feox->rc == SQLITE_OK) != (twin->rc == SQLITE_OK))
        die("%s\n  feox: %s (%s)\n  twin: %s (%s)", sql, sqlite3_errstr(feox->rc),
            feox->errmsg ? feox->errmsg : "", sqlite3_errstr(twin->rc),
            twin->errmsg ? twin->errmsg : "");
    if (feox->rc != SQLITE_OK)
        return;
    if (!ordered && feox->n)
        qsort(feox->rows, feox->n, sizeof *feox->rows, compare_rows);
    if (!ordered && twin->n)
        qsort(twin->rows, twin->n, sizeof *twin->rows, compare_rows);
    for (size_t i = 0; i < feox->n || i < twin->n; i++) {
        const char *f = i < feox->n ? feox->rows[i] : "(none)";
        const char *t = i < twin->n ? twin->rows[i] : "(none)";
        if (strcmp(f, t))
            die("%s\n  row %zu differs: feox %s, twin %s (feox %zu rows, twin %zu)", sql, i, f, t,
                feox->n, twin->n);
    }
}

/* kv as seen through kv_db against twin as seen through db. */
static void compare_tables(sqlite3 *kv_db, sqlite3 *db, const char *after)
{
    result f, t;
    run(kv_db, "SELECT key, typeof(value), quote(value) FROM kv ORDER BY key", &f);
    run(db, "SELECT key, typeof(value), quote(value) FROM twin ORDER BY key", &t);
    if (f.rc != SQLITE_OK || t.rc != SQLITE_OK)
        die("dumping the tables failed: %s / %s", f.errmsg ? f.errmsg : "",
            t.errmsg ? t.errmsg : "");
    for (size_t i = 0; i < f.n || i < t.n; i++) {
        const char *a = i < f.n ? f.rows[i] : "(none)";
        const char *b = i < t.n ? t.rows[i] : "(none)";
        if (strcmp(a, b))
            die("after %s\n  tables differ at row %zu (%s connection): feox %s, twin %s", after, i,
                kv_db == db ? "the writing" : "a second", a, b);
    }
    result_free(&f);
    result_free(&t);
}

/* FUZZ_SQL_TRACE=1 prints every statement. */
static bool trace;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    trace = getenv("FUZZ_SQL_TRACE") != NULL;
    const char *file = getenv("FUZZ_SQL_DB");
    if (file != NULL) {
        char wal[4096];
        unlink(file);
        snprintf(wal, sizeof wal, "%s-wal", file);
        unlink(wal);
        snprintf(wal, sizeof wal, "%s-journal", file);
        unlink(wal);
    }
    sqlite3 *db = NULL, *other = NULL;
    char *err = NULL;
    if (sqlite3_open(file != NULL ? file : ":memory:", &db) != SQLITE_OK ||
        sqlite3_feox_init(db, &err, NULL) != SQLITE_OK)
        die("setup: %s", err ? err : sqlite3_errmsg(db));
    if (sqlite3_exec(db,
                     "PRAGMA synchronous=OFF;"
                     "CREATE VIRTUAL TABLE kv USING feox;"
                     "CREATE TABLE twin(key TEXT PRIMARY KEY, value, ttl, ts) WITHOUT ROWID;",
                     NULL, NULL, &err) != SQLITE_OK)
        die("setup: %s", err);
    if (file != NULL && (sqlite3_open(file, &other) != SQLITE_OK ||
                         sqlite3_feox_init(other, &err, NULL) != SQLITE_OK))
        die("setup of the second connection: %s", err ? err : sqlite3_errmsg(other));
    input in = {.data = data, .size = size};
    sql_buf b;
    char feox_sql[SQL_CAP + 64], twin_sql[SQL_CAP + 64];
    for (int i = 0; i < MAX_STATEMENTS && in.pos < in.size; i++) {
        statement_kind kind = next_statement(&in, &b);
        for_table(&b, "kv", feox_sql, sizeof feox_sql);
        if (trace)
            fprintf(stderr, "%s\n", feox_sql);
        if (kind == ONCE) {
            result r;
            run(db, feox_sql, &r); /* may fail (no transaction, no such savepoint): fine */
            result_free(&r);
        } else {
            for_table(&b, "twin", twin_sql, sizeof twin_sql);
            result f, t;
            run(db, feox_sql, &f);
            run(db, twin_sql, &t);
            compare(feox_sql, &f, &t, kind == SELECT_ORDERED);
            result_free(&f);
            result_free(&t);
        }
        compare_tables(db, db, feox_sql);
        if (other != NULL && sqlite3_get_autocommit(db))
            compare_tables(other, db, feox_sql);
    }
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    compare_tables(db, db, "the final ROLLBACK");
    if (other != NULL)
        compare_tables(other, db, "the final ROLLBACK");
    if (sqlite3_close(other) != SQLITE_OK || sqlite3_close(db) != SQLITE_OK)
        die("sqlite3_close: busy");
    return 0;
}

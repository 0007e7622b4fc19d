/*
 * storage_sqlite_check.c — check() of the "sqlite" backend: verifies that the shadow tables hold
 * what storage_sqlite.h says they hold. First that each is there, a table with the columns the
 * backend reads (one dropped, replaced by a view or recreated with other columns by hand is
 * reported, and nothing else is checked: every other check reads them); then SQLite's own
 * integrity_check of each shadow table, the meta rows, every _data row (key a BLOB of
 * 1..FEOX_MAX_KEY_SIZE bytes, tag a u32, value stored in the SQL type its tag and bytes call for,
 * ts an integer, expires NULL or a non-zero integer, 1 <= seq <= the table's seq) and the feed
 * (each row written since min_seq has its feed row).
 * Each statement reads the table's seq itself, so every comparison is within one snapshot.
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "feox_ext.h"
#include "storage_sqlite_internal.h"

SQLITE_EXTENSION_INIT3

#define MAX_REPORTED 5

typedef struct check_report {
    char *out;
    size_t cap, used;
    unsigned problems;
    bool text_as_text; /* a UTF-8 database: TEXT values are stored as TEXT */
} check_report;

static void report(check_report *r, const char *fmt, ...)
{
    r->problems++;
    if (r->problems > MAX_REPORTED || r->out == NULL || r->used + 1 >= r->cap) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *msg = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    if (msg != NULL) {
        sqlite3_snprintf((int)(r->cap - r->used), r->out + r->used, "%s%s", r->used ? "; " : "",
                         msg);
        r->used += strlen(r->out + r->used);
        sqlite3_free(msg);
    }
}

/* Up to 16 key bytes as hex, for messages. */
static void key_hex(const unsigned char *key, int len, char out[40])
{
    static const char digits[] = "0123456789abcdef";
    int n = len < 16 ? len : 16, k = 0;
    for (int i = 0; i < n; i++) {
        out[k++] = digits[key[i] >> 4];
        out[k++] = digits[key[i] & 15];
    }
    if (len > n) {
        out[k++] = '.';
        out[k++] = '.';
    }
    out[k] = '\0';
}

/* The backend's last message without its "feox: <table>: " prefix (the report names tables). */
static const char *message_of(const feox_sqlite_backend *b)
{
    const char *m = b->t->errmsg;
    size_t prefix = strlen("feox: ") + strlen(b->table) + 2;
    if (sqlite3_stricmp(b->schema, "main") != 0) {
        prefix += strlen(b->schema) + 1;
    }
    return strlen(m) > prefix ? m + prefix : m;
}

/* Whether the value column's SQL type is the one the layout gives (tag, bytes). */
static const char *value_format_problem(sqlite3_stmt *s, int col, sqlite3_int64 tag,
                                        bool text_as_text)
{
    int type = sqlite3_column_type(s, col);
    if (type == SQLITE_INTEGER) {
        return tag == FEOX_TAG_INTEGER ? NULL : "INTEGER value with another tag";
    }
    if (type == SQLITE_FLOAT) {
        double d = sqlite3_column_double(s, col);
        if (tag != FEOX_TAG_REAL) {
            return "REAL value with another tag";
        }
        return isfinite(d) && !(d == 0.0 && signbit(d)) ? NULL : "REAL value not finite";
    }
    if (type == SQLITE_TEXT) {
        if (!text_as_text) {
            return "TEXT value in a database that is not UTF-8";
        }
        return tag == FEOX_TAG_TEXT ? NULL : "TEXT value with another tag";
    }
    if (type == SQLITE_NULL) {
        return tag == FEOX_TAG_NULL ? NULL : "NULL value with another tag";
    }
    const unsigned char *p = sqlite3_column_blob(s, col);
    int len = sqlite3_column_bytes(s, col);
    if (tag == FEOX_TAG_INTEGER && len == 8) {
        return "8-byte INTEGER stored as a BLOB";
    }
    if (tag == FEOX_TAG_REAL && len == 8) {
        double d;
        uint64_t bits = 0;
        for (int i = 7; i >= 0; i--) {
            bits = (bits << 8) | p[i];
        }
        memcpy(&d, &bits, sizeof d);
        return isfinite(d) && !(d == 0.0 && signbit(d)) ? "finite REAL stored as a BLOB" : NULL;
    }
    if (tag == FEOX_TAG_TEXT && text_as_text && (len == 0 || memchr(p, 0, (size_t)len) == NULL)) {
        return "TEXT without NUL stored as a BLOB";
    }
    if (tag == FEOX_TAG_NULL && len == 0) {
        return "NULL stored as a BLOB";
    }
    return NULL;
}

static void check_data_row(sqlite3_stmt *s, check_report *r, const char *table)
{
    /* columns: key value tag ts expires seq cur */
    char hex[40] = "";
    int key_type = sqlite3_column_type(s, 0);
    int key_len = sqlite3_column_bytes(s, 0);
    if (key_type == SQLITE_BLOB) {
        key_hex(sqlite3_column_blob(s, 0), key_len, hex);
    }
    if (key_type != SQLITE_BLOB || key_len < 1 || (uint64_t)key_len > FEOX_MAX_KEY_SIZE) {
        report(r, "%s_data: a key is not a BLOB of 1 to %u bytes (x'%s')", table, FEOX_MAX_KEY_SIZE,
               hex);
        return;
    }
    sqlite3_int64 tag = sqlite3_column_int64(s, 2);
    const char *problem = NULL;
    if (sqlite3_column_type(s, 2) != SQLITE_INTEGER || tag < 0 || tag > (sqlite3_int64)UINT32_MAX) {
        problem = "tag is not a 32-bit unsigned integer";
    } else if ((problem = value_format_problem(s, 1, tag, r->text_as_text)) != NULL) {
    } else if ((uint64_t)sqlite3_column_bytes(s, 1) > FEOX_MAX_VALUE_SIZE) {
        problem = "value longer than the largest feox value";
    } else if (sqlite3_column_type(s, 3) != SQLITE_INTEGER) {
        problem = "ts is not an integer";
    } else if (sqlite3_column_type(s, 4) != SQLITE_NULL &&
               (sqlite3_column_type(s, 4) != SQLITE_INTEGER || sqlite3_column_int64(s, 4) == 0)) {
        problem = "expires is neither NULL nor a non-zero integer";
    } else if (sqlite3_column_type(s, 5) != SQLITE_INTEGER || sqlite3_column_int64(s, 5) < 1) {
        problem = "seq is not a positive integer";
    } else if (sqlite3_column_int64(s, 5) > sqlite3_column_int64(s, 6)) {
        report(r, "%s_data: key x'%s': seq %lld is after the table's seq %lld", table, hex,
               sqlite3_column_int64(s, 5), sqlite3_column_int64(s, 6));
        return;
    }
    if (problem != NULL) {
        report(r, "%s_data: key x'%s': %s", table, hex, problem);
    }
}

/* Run one statement of the check; rows go to on_row, or the first column of a single row is a
 * count of problems described by what. */
static feox_err check_sql(feox_sqlite_backend *b, check_report *r, char *sql,
                          void (*on_row)(sqlite3_stmt *, check_report *, const char *),
                          const char *what)
{
    if (sql == NULL) {
        return feox_sq_sql_error(b, SQLITE_NOMEM, "checking");
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(b->db, sql, -1, &s, NULL);
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        return feox_sq_sql_error(b, rc, "checking");
    }
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (on_row != NULL) {
            on_row(s, r, b->table);
        } else if (sqlite3_column_type(s, 0) == SQLITE_TEXT) {
            const char *text = (const char *)sqlite3_column_text(s, 0);
            if (strcmp(text, "ok") != 0) {
                report(r, "%s: %s", what, text);
            }
        } else if (sqlite3_column_int64(s, 0) != 0) {
            report(r, "%s: %lld", what, sqlite3_column_int64(s, 0));
        }
    }
    feox_err err = rc == SQLITE_DONE ? FEOX_OK : feox_sq_sql_error(b, rc, "checking");
    sqlite3_finalize(s);
    return err;
}

/* The columns of each shadow table that the backend reads (the layout: storage_sqlite.h). */
static const char *const suffixes[] = {"data", "log", "meta"};
static const char *const layout_columns[] = {"key, value, tag, ts, expires, seq", "seq, key, ts",
                                             "name, value"};

/* The schema's object named <table>_<suffix>: "table", "view", or NULL for none (*rc: SQLITE_OK,
 * or the failure's code). */
static const char *shadow_kind(feox_sqlite_backend *b, const char *suffix, int *rc)
{
    char *sql = sqlite3_mprintf("SELECT type FROM \"%w\".sqlite_schema WHERE type IN ('table', "
                                "'view') AND name = '%q_%q' COLLATE NOCASE",
                                b->schema, b->table, suffix);
    sqlite3_stmt *s = NULL;
    *rc = sql == NULL ? SQLITE_NOMEM : sqlite3_prepare_v2(b->db, sql, -1, &s, NULL);
    sqlite3_free(sql);
    const char *kind = NULL;
    if (*rc == SQLITE_OK) {
        int step = sqlite3_step(s);
        if (step == SQLITE_ROW) {
            kind = strcmp((const char *)sqlite3_column_text(s, 0), "view") == 0 ? "view" : "table";
        } else if (step != SQLITE_DONE) {
            *rc = step;
        }
    }
    sqlite3_finalize(s);
    return kind;
}

/* Each shadow table is there, a table with the layout's columns: what is not is reported
 * (*whole false: the other checks cannot run). A statement naming the columns prepares only if
 * they are there; SQLite's SQLITE_ERROR then says what is missing ("no such column: seq"). */
static feox_err check_layout(feox_sqlite_backend *b, check_report *r, bool *whole)
{
    *whole = true;
    for (int i = 0; i < 3; i++) {
        int rc = SQLITE_OK;
        const char *kind = shadow_kind(b, suffixes[i], &rc);
        if (rc != SQLITE_OK) {
            return feox_sq_sql_error(b, rc, "checking");
        }
        if (kind == NULL || strcmp(kind, "view") == 0) {
            report(r, "%s_%s: %s", b->table, suffixes[i],
                   kind == NULL ? "the shadow table does not exist" : "is a view, not a table");
            *whole = false;
            continue;
        }
        char *sql = sqlite3_mprintf("SELECT %s FROM \"%w\".\"%w_%s\" WHERE 0", layout_columns[i],
                                    b->schema, b->table, suffixes[i]);
        sqlite3_stmt *s = NULL;
        rc = sql == NULL ? SQLITE_NOMEM : sqlite3_prepare_v2(b->db, sql, -1, &s, NULL);
        sqlite3_free(sql);
        sqlite3_finalize(s);
        if ((rc & 0xff) == SQLITE_ERROR) {
            report(r, "%s_%s: %s", b->table, suffixes[i], sqlite3_errmsg(b->db));
            *whole = false;
        } else if (rc != SQLITE_OK) {
            return feox_sq_sql_error(b, rc, "checking");
        }
    }
    return FEOX_OK;
}

#define CUR_SEQ                                                                                    \
    "max(coalesce((SELECT max(seq) FROM \"%w\".\"%w_log\"), 0),"                                   \
    " coalesce((SELECT value FROM \"%w\".\"%w_meta\" WHERE name = 'min_seq'), 0))"
#define MIN_SEQ "coalesce((SELECT value FROM \"%w\".\"%w_meta\" WHERE name = 'min_seq'), 0)"

feox_err feox_sq_check(feox_storage *st, char *detail, size_t detail_len)
{
    feox_sqlite_backend *b = (feox_sqlite_backend *)st;
    const char *s = b->schema, *t = b->table;
    check_report r = {detail, detail_len, 0, 0, true};
    if (detail != NULL && detail_len != 0) {
        detail[0] = '\0';
    }
    sqlite3_mutex_enter(sqlite3_db_mutex(b->db));
    feox_sq_clear_error(b);
    bool whole = true;
    feox_err err = check_layout(b, &r, &whole);
    if (err != FEOX_OK || !whole) {
        sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
        return err != FEOX_OK ? err : FEOX_ERR_CORRUPT;
    }
    uint64_t cur = 0, min_seq = 0;
    err = feox_sq_read_seq(b, &cur, &min_seq);
    if (err == FEOX_ERR_CORRUPT || err == FEOX_ERR_FORMAT) {
        /* A damaged seq is a finding: the rows are still checked (the checks below read the seq
         * themselves). A layout this release does not know is FEOX_ERR_FORMAT, said in detail
         * too; nothing else is checked. */
        report(&r, "%s", message_of(b));
        if (err == FEOX_ERR_FORMAT) {
            sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
            return err;
        }
        err = FEOX_OK;
    }
    if (err == FEOX_OK) {
        err = feox_sq_learn_encoding(b);
        r.text_as_text = b->text_as_text;
    }
    for (int i = 0; i < 3 && err == FEOX_OK; i++) {
        char what[64];
        sqlite3_snprintf((int)sizeof what, what, "%s_%s", t, suffixes[i]);
        err = check_sql(
            b, &r, sqlite3_mprintf("PRAGMA \"%w\".integrity_check(\"%w_%s\")", s, t, suffixes[i]),
            NULL, what);
    }
    if (err == FEOX_OK) {
        err = check_sql(b, &r,
                        sqlite3_mprintf("SELECT count(*) FROM \"%w\".\"%w_meta\" WHERE name ="
                                        " 'min_seq' AND (typeof(value) <> 'integer' OR value < 0)",
                                        s, t),
                        NULL, "min_seq is not a non-negative integer");
    }
    if (err == FEOX_OK) {
        /* Every value is read, one over a lowered SQLITE_LIMIT_LENGTH too (storage_sqlite_sql.c) */
        int limit = feox_sq_lift_length_limit(b);
        err = check_sql(b, &r,
                        sqlite3_mprintf("SELECT key, value, tag, ts, expires, seq, " CUR_SEQ
                                        " FROM \"%w\".\"%w_data\"",
                                        s, t, s, t, s, t),
                        check_data_row, NULL);
        feox_sq_restore_length_limit(b, limit);
    }
    if (err == FEOX_OK) {
        err = check_sql(b, &r,
                        sqlite3_mprintf("SELECT count(*) FROM \"%w\".\"%w_log\" WHERE"
                                        " typeof(key) <> 'blob' OR seq < 1 OR"
                                        " (ts IS NOT NULL AND typeof(ts) <> 'integer')",
                                        s, t),
                        NULL, "feed rows not in the feed's format");
    }
    if (err == FEOX_OK && !b->in_txn) {
        /* Inside a transaction that outgrew the feed, its rows have none until sync. */
        err = check_sql(
            b, &r,
            sqlite3_mprintf("SELECT count(*) FROM \"%w\".\"%w_data\" d WHERE d.seq > " MIN_SEQ
                            " AND NOT EXISTS (SELECT 1 FROM \"%w\".\"%w_log\""
                            " l WHERE l.seq = d.seq AND l.key = d.key)",
                            s, t, s, t, s, t),
            NULL, "records written since min_seq without their feed row");
    }
    if (err == FEOX_OK && r.problems != 0) {
        if (r.problems > MAX_REPORTED && r.out != NULL && r.used + 1 < r.cap) {
            sqlite3_snprintf((int)(r.cap - r.used), r.out + r.used, "; and %u more",
                             r.problems - MAX_REPORTED);
        }
        err = FEOX_ERR_CORRUPT;
    }
    sqlite3_mutex_leave(sqlite3_db_mutex(b->db));
    return err;
}

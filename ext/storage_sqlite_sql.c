/*
 * storage_sqlite_sql.c — the "sqlite" backend's SQL plumbing, shared by its methods
 * (storage_sqlite.c), check() (storage_sqlite_check.c) and the lazy load (storage_sqlite_load.c):
 * the statement texts and their cache, errors (t->errcode / t->errmsg), reading a value column
 * (and a whole row) back as record bytes, the data version, the table's seq, the database's
 * text encoding, and SQLITE_LIMIT_LENGTH lifted for the backend's own reads.
 */
#include <stdint.h>
#include <string.h>

#include "feox_ext.h"
#include "storage_sqlite_internal.h"

SQLITE_EXTENSION_INIT3

/* Statement templates: every %w pair is (schema, table). */
static const char *const stmt_sql[FEOX_SQ_COUNT] = {
    [FEOX_SQ_SEQ] = "SELECT max(coalesce((SELECT max(seq) FROM \"%w\".\"%w_log\"), 0),"
                    " coalesce(m.value, 0)), coalesce(m.value, 0),"
                    " (SELECT value FROM \"%w\".\"%w_meta\" WHERE name = 'format')"
                    " FROM (SELECT NULL) LEFT JOIN \"%w\".\"%w_meta\" m ON m.name = 'min_seq'",
    [FEOX_SQ_FIND] = "SELECT value, tag, ts, expires, seq FROM \"%w\".\"%w_data\" WHERE key = ?1",
    [FEOX_SQ_PUT] = "INSERT OR REPLACE INTO \"%w\".\"%w_data\"(key, value, tag, ts, expires, seq)"
                    " VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
    /* ?5 (expires) is not used: the row has none before or after, so the expiry index is not
     * touched, and the row is rewritten in place (INSERT OR REPLACE deletes it and inserts it
     * again, which now and then rebalances the page: 2.08 -> 2.01 WAL frames per autocommit
     * upsert, 100K rows) */
    [FEOX_SQ_OVERWRITE] = "UPDATE \"%w\".\"%w_data\" SET value = ?2, tag = ?3, ts = ?4, seq = ?6"
                          " WHERE key = ?1 AND expires IS NULL",
    [FEOX_SQ_DEL] = "DELETE FROM \"%w\".\"%w_data\" WHERE key = ?1",
    [FEOX_SQ_LOG] = "INSERT INTO \"%w\".\"%w_log\"(seq, key, ts) VALUES(?1, ?2, ?3)",
    [FEOX_SQ_FEED] = "SELECT l.seq, l.key, l.ts, d.value, d.tag, d.ts, d.expires, d.seq"
                     " FROM \"%w\".\"%w_log\" l LEFT JOIN \"%w\".\"%w_data\" d ON d.key = l.key"
                     " WHERE l.seq > ?1 ORDER BY l.seq",
    [FEOX_SQ_LOG_DROP_AFTER] = "DELETE FROM \"%w\".\"%w_log\" WHERE seq > ?1",
    [FEOX_SQ_LOG_TRIM] = "DELETE FROM \"%w\".\"%w_log\" WHERE seq <= ?1",
    [FEOX_SQ_SET_MIN] = "UPDATE \"%w\".\"%w_meta\" SET value = ?1 WHERE name = 'min_seq'",
    [FEOX_SQ_WRITE_LOCK] = "DELETE FROM \"%w\".\"%w_meta\" WHERE 0",
    [FEOX_SQ_COOKIE] = "PRAGMA \"%w\".schema_version",
    /* FEOX_SQ_EXPIRED names the expiry index: prepared by storage_sqlite_expiry.c */
};

/* ---- errors -------------------------------------------------------------------------------- */

void feox_sq_clear_error(feox_sqlite_backend *b)
{
    b->t->errcode = SQLITE_OK;
    b->t->errmsg[0] = '\0';
}

static void set_message(feox_sqlite_backend *b, const char *what, const char *cause)
{
    if (sqlite3_stricmp(b->schema, "main") != 0) {
        sqlite3_snprintf((int)sizeof b->t->errmsg, b->t->errmsg, "feox: %s.%s: %s%s%s", b->schema,
                         b->table, what, cause ? ": " : "", cause ? cause : "");
    } else {
        sqlite3_snprintf((int)sizeof b->t->errmsg, b->t->errmsg, "feox: %s: %s%s%s", b->table, what,
                         cause ? ": " : "", cause ? cause : "");
    }
}

feox_err feox_sq_fail(feox_sqlite_backend *b, feox_err err, const char *what)
{
    set_message(b, what, NULL);
    if (err == FEOX_ERR_CORRUPT || err == FEOX_ERR_FORMAT) {
        b->t->errcode = feox_err_to_sqlite(err);
    }
    return err;
}

feox_err feox_sq_sql_error(feox_sqlite_backend *b, int rc, const char *what)
{
    b->t->errcode = feox_sqlite_failure(b->db, rc);
    set_message(b, what, rc == SQLITE_NOMEM ? sqlite3_errstr(rc) : sqlite3_errmsg(b->db));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return FEOX_ERR_LOCKED;
    case SQLITE_NOMEM: return FEOX_ERR_NOMEM;
    case SQLITE_FULL: return FEOX_ERR_DISK_FULL;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB: return FEOX_ERR_CORRUPT;
    default: return FEOX_ERR_IO;
    }
}

/* ---- statements ---------------------------------------------------------------------------- */

feox_err feox_sq_stmt(feox_sqlite_backend *b, feox_sq_id id, sqlite3_stmt **out)
{
    if (b->stmts[id] == NULL && stmt_sql[id] == NULL) {
        return feox_sq_fail(b, FEOX_ERR_INVALID_ARGUMENT, "a statement is not prepared");
    }
    if (b->stmts[id] == NULL) {
        const char *s = b->schema, *t = b->table;
        char *sql = sqlite3_mprintf(stmt_sql[id], s, t, s, t, s, t);
        if (sql == NULL) {
            return feox_sq_sql_error(b, SQLITE_NOMEM, "preparing a statement");
        }
        int rc = sqlite3_prepare_v3(b->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &b->stmts[id], NULL);
        sqlite3_free(sql);
        if (rc != SQLITE_OK) {
            return feox_sq_sql_error(b, rc, "preparing a statement");
        }
        if (id == FEOX_SQ_PUT) {
            b->put_tag_known = false;
            b->put_expires_set = false;
        } else if (id == FEOX_SQ_OVERWRITE) {
            b->overwrite_tag_known = false;
        } else if (id == FEOX_SQ_LOG) {
            b->log_ts_set = false;
        }
    }
    *out = b->stmts[id];
    return FEOX_OK;
}

const void *feox_sq_column_key(sqlite3_stmt *s, int col, uint32_t *len)
{
    sqlite3_value *v = sqlite3_column_value(s, col);
    const void *key = sqlite3_value_blob(v);
    *len = (uint32_t)sqlite3_value_bytes(v);
    return key != NULL ? key : "";
}

void feox_sq_value_bytes(sqlite3_value *v, unsigned char num[8], const void **data, uint32_t *len)
{
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        feox_put_i64(num, sqlite3_value_int64(v));
        *data = num;
        *len = 8;
        return;
    case SQLITE_FLOAT: {
        double d = sqlite3_value_double(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        feox_put_i64(num, (int64_t)bits);
        *data = num;
        *len = 8;
        return;
    }
    case SQLITE_NULL:
        *data = "";
        *len = 0;
        return;
    default: {
        const void *p = sqlite3_value_blob(v); /* TEXT too: its bytes, no conversion */
        *len = (uint32_t)sqlite3_value_bytes(v);
        *data = p != NULL ? p : "";
        return;
    }
    }
}

feox_err feox_sq_read_seq(feox_sqlite_backend *b, uint64_t *cur, uint64_t *min_seq)
{
    sqlite3_stmt *s;
    feox_err err = feox_sq_stmt(b, FEOX_SQ_SEQ, &s);
    if (err != FEOX_OK) {
        return err;
    }
    int rc = sqlite3_step(s);
    if (rc != SQLITE_ROW) {
        err = feox_sq_sql_error(b, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "reading the seq");
    } else if (sqlite3_column_int64(s, 2) != FEOX_SQLITE_FORMAT) {
        err = feox_sq_fail(b, FEOX_ERR_FORMAT, "the shadow tables are not format 1");
    } else if (sqlite3_column_type(s, 0) != SQLITE_INTEGER ||
               sqlite3_column_type(s, 1) != SQLITE_INTEGER || sqlite3_column_int64(s, 0) < 0 ||
               sqlite3_column_int64(s, 1) < 0 || sqlite3_column_int64(s, 0) > INT64_MAX / 2) {
        /* Only a hand edit makes these (at a billion commits a second the seq needs a century to
         * pass INT64_MAX / 2): refuse rather than let the next seq overflow. A min_seq that is
         * not an integer (max() then returns it too) would be read as another number. */
        char what[128];
        sqlite3_snprintf((int)sizeof what, what,
                         "the seq in %s_log or %s_meta is damaged (out of range)", b->table,
                         b->table);
        err = feox_sq_fail(b, FEOX_ERR_CORRUPT, what);
    } else {
        *cur = (uint64_t)sqlite3_column_int64(s, 0);
        *min_seq = (uint64_t)sqlite3_column_int64(s, 1);
    }
    sqlite3_reset(s);
    return err;
}

feox_err feox_sq_read_cookie(feox_sqlite_backend *b, int *cookie)
{
    sqlite3_stmt *s;
    feox_err err = feox_sq_stmt(b, FEOX_SQ_COOKIE, &s);
    if (err != FEOX_OK) {
        return err;
    }
    int rc = sqlite3_step(s);
    if (rc == SQLITE_ROW) {
        *cookie = sqlite3_column_int(s, 0);
    } else {
        err = feox_sq_sql_error(b, rc == SQLITE_DONE ? SQLITE_CORRUPT : rc, "reading the schema");
    }
    sqlite3_reset(s);
    return err;
}

/* ---- a lowered SQLITE_LIMIT_LENGTH ---------------------------------------------------------- */

int feox_sq_lift_length_limit(feox_sqlite_backend *b)
{
    int limit = sqlite3_limit(b->db, SQLITE_LIMIT_LENGTH, -1);
    if (limit < (int)FEOX_MAX_VALUE_SIZE) {
        sqlite3_limit(b->db, SQLITE_LIMIT_LENGTH, (int)FEOX_MAX_VALUE_SIZE);
    }
    return limit;
}

void feox_sq_restore_length_limit(feox_sqlite_backend *b, int limit)
{
    if (limit < (int)FEOX_MAX_VALUE_SIZE) {
        sqlite3_limit(b->db, SQLITE_LIMIT_LENGTH, limit);
    }
}

/* ---- writing a change to the tables ---------------------------------------------------------- */

/* TEXT keeps its bytes only in a UTF-8 database (SQLite would convert it to UTF-16 otherwise):
 * elsewhere a TEXT value is stored as a BLOB. */
feox_err feox_sq_learn_encoding(feox_sqlite_backend *b)
{
    if (b->encoding_known) {
        return FEOX_OK;
    }
    bool utf8;
    int rc = feox_text_is_utf8(b->db, b->schema, &utf8);
    if (rc != SQLITE_OK) {
        return feox_sq_sql_error(b, rc, "reading the encoding");
    }
    b->text_as_text = utf8;
    b->encoding_known = true;
    return FEOX_OK;
}

/* What is wrong with the columns value, tag, ts, expires, seq of a row (their values: cols), if
 * anything no write makes (the layout: storage_sqlite.h). A BLOB value goes with any tag (the
 * codec reads its bytes); the other SQL types each have their own. Read as they are, these would
 * be wrong answers: a NULL for a tag 5 INTEGER, a ts of 0 for 'x', an expiry of 1 ns for 1.5. */
static const char *row_columns_problem(sqlite3_value *const cols[5])
{
    sqlite3_int64 tag = sqlite3_value_int64(cols[1]);
    int type = sqlite3_value_type(cols[0]), expires_type = sqlite3_value_type(cols[3]);
    if (sqlite3_value_type(cols[1]) != SQLITE_INTEGER || tag < 0 || tag > UINT32_MAX) {
        return "a tag that is not a 32-bit unsigned integer";
    }
    if ((type == SQLITE_INTEGER && tag != FEOX_TAG_INTEGER) ||
        (type == SQLITE_FLOAT && tag != FEOX_TAG_REAL) ||
        (type == SQLITE_TEXT && tag != FEOX_TAG_TEXT) ||
        (type == SQLITE_NULL && tag != FEOX_TAG_NULL)) {
        return "a value whose SQL type does not match its tag";
    }
    if (sqlite3_value_type(cols[2]) != SQLITE_INTEGER) {
        return "a ts that is not an integer";
    }
    if (expires_type != SQLITE_NULL &&
        (expires_type != SQLITE_INTEGER || sqlite3_value_int64(cols[3]) == 0)) {
        return "an expires that is neither NULL nor a non-zero integer";
    }
    if (sqlite3_value_type(cols[4]) != SQLITE_INTEGER || sqlite3_value_int64(cols[4]) < 1) {
        return "a seq that is not a positive integer";
    }
    return NULL;
}

feox_err feox_sq_column_record(feox_sqlite_backend *b, sqlite3_stmt *s, int col, const void *key,
                               uint32_t key_len, unsigned char num[8], feox_storage_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->key = key;
    rec->key_len = key_len;
    /* Each column's value once: every sqlite3_column_* call takes the connection's mutex (held
     * already: the backend runs inside SQLite's calls), sqlite3_value_* on it takes none. A
     * loaded row costs 5 such calls instead of 9 or more (callgrind: ~80 instructions each). */
    sqlite3_value *cols[5];
    for (int i = 0; i < 5; i++) {
        cols[i] = sqlite3_column_value(s, col + i);
    }
    feox_sq_value_bytes(cols[0], num, &rec->value, &rec->value_len);
    rec->tag = (uint32_t)sqlite3_value_int64(cols[1]);
    rec->ts_ns = (uint64_t)sqlite3_value_int64(cols[2]); /* as written: u64 bits in an i64 */
    rec->expires_at_ns = (uint64_t)sqlite3_value_int64(cols[3]);
    rec->location = (uint64_t)sqlite3_value_int64(cols[4]);
    /* Only a hand edit of the shadow table makes these: say which row is damaged, and how. */
    char why[96];
    const char *problem;
    if (key_len == 0 || key_len > FEOX_MAX_KEY_SIZE) {
        sqlite3_snprintf((int)sizeof why, why, "a key of %u bytes (1 to %u allowed)", key_len,
                         FEOX_MAX_KEY_SIZE);
    } else if (rec->value_len > FEOX_MAX_VALUE_SIZE) {
        sqlite3_snprintf((int)sizeof why, why, "a value of %u bytes (at most %u allowed)",
                         rec->value_len, FEOX_MAX_VALUE_SIZE);
    } else if ((problem = row_columns_problem(cols)) != NULL) {
        sqlite3_snprintf((int)sizeof why, why, "%s", problem);
    } else {
        return FEOX_OK;
    }
    char what[160];
    sqlite3_snprintf((int)sizeof what, what, "a row of %s_data is damaged: %s", b->table, why);
    return feox_sq_fail(b, FEOX_ERR_CORRUPT, what);
}

unsigned feox_sq_data_version(feox_sqlite_backend *b)
{
    unsigned v = 0;
    sqlite3_file_control(b->db, b->dv_schema, SQLITE_FCNTL_DATA_VERSION, &v);
    return v;
}

const void *feox_sq_database_file(feox_sqlite_backend *b)
{
    /* The pager's own copy of the name: a file swapped for an in-memory image has a new pager
     * (named "x"). No mutex, no SQL: ~20 instructions, where SQLITE_FCNTL_FILE_POINTER (the
     * same information) costs ~150. One image swapped for the next may keep the pager.
     * A database with no name (":memory:", and in SQLite newer than 3.40 every memdb database:
     * each gets the same static "") is told apart by its pager's file object instead. */
    const char *name = sqlite3_db_filename(b->db, b->dv_schema);
    if (name != NULL && name[0] != '\0') {
        return name;
    }
    sqlite3_file *file = NULL;
    sqlite3_file_control(b->db, b->dv_schema, SQLITE_FCNTL_FILE_POINTER, &file);
    return file;
}

const void *feox_sq_database_image(feox_sqlite_backend *b)
{
    if (!b->in_memory_image) {
        return feox_sq_database_file(b);
    }
    /* An in-memory image: every one has the name "x", and SQLite may put the next one in the
     * same pager and file object. Its buffer, without a copy and without SQL. */
    return sqlite3_serialize(b->db, b->schema, NULL, SQLITE_SERIALIZE_NOCOPY);
}

bool feox_sq_is_memory_image(feox_sqlite_backend *b)
{
    /* A memdb database named "/name" (file:/name?vfs=memdb) is shared by the connections that
     * open that name and is never replaced in place (sqlite3_deserialize makes a private image):
     * its name or its pager tells it apart, as a file's does. sqlite3_serialize of one would run
     * a statement of its own, inside the commit, whose read lock then outlives it. Asked at the
     * load, which reads the shadow tables anyway (feox_is_memory_image may run that statement). */
    return feox_is_memory_image(b->db, b->dv_schema);
}

uint64_t feox_sq_get_u64(const void *p)
{
    int64_t v = 0;
    (void)feox_decode_i64(FEOX_TAG_INTEGER, p, 8, &v);
    return (uint64_t)v;
}

/*
 * value_codec.c — SQL values <-> engine bytes + record tag, key canonicalisation, and the mapping
 * of engine errors to SQLite result codes and messages.
 *
 * The tag encoding (INTEGER 8-byte LE i64, REAL 8-byte LE double, TEXT, BLOB, NULL) is written
 * down once in feox_ext.h. INTEGER uses the engine's counter format, so a value inserted through
 * SQL as an INTEGER can be incremented by the engine directly.
 *
 * Keys: a table has one key type. keytype=text: TEXT as is, INTEGER/REAL as their SQL text
 * (what TEXT affinity would produce), BLOB bytes taken as text bytes. keytype=blob: BLOB as is,
 * anything else as its text bytes. NULL is never a key. Returned keys are always of the table's
 * type, so memcmp order is SQLite's BINARY order and the planner may omit what it enforces, with
 * one exception: in a database whose text encoding is UTF-16, SQLite's BINARY collation compares
 * a text's UTF-16 bytes, whose order is not the order of its UTF-8 bytes (feox_text_is_utf8).
 */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

void feox_put_i64(unsigned char out[8], int64_t v)
{
    uint64_t u = (uint64_t)v;
    for (int i = 0; i < 8; i++) {
        out[i] = (unsigned char)(u >> (8 * i));
    }
}

static uint64_t get_u64_le(const unsigned char *p)
{
    uint64_t u = 0;
    for (int i = 7; i >= 0; i--) {
        u = (u << 8) | p[i];
    }
    return u;
}

void feox_encode_value(sqlite3_value *v, feox_encoded *out)
{
    out->data = "";
    out->len = 0;
    switch (sqlite3_value_type(v)) {
    case SQLITE_INTEGER:
        out->tag = FEOX_TAG_INTEGER;
        feox_put_i64(out->num, (int64_t)sqlite3_value_int64(v));
        out->data = out->num;
        out->len = 8;
        break;
    case SQLITE_FLOAT: {
        double d = sqlite3_value_double(v);
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        feox_put_i64(out->num, (int64_t)bits);
        out->tag = FEOX_TAG_REAL;
        out->data = out->num;
        out->len = 8;
        break;
    }
    case SQLITE_TEXT: {
        const unsigned char *t = sqlite3_value_text(v);
        out->tag = FEOX_TAG_TEXT;
        out->len = (size_t)sqlite3_value_bytes(v);
        if (t != NULL) {
            out->data = t;
        }
        break;
    }
    case SQLITE_BLOB: {
        const void *b = sqlite3_value_blob(v);
        out->tag = FEOX_TAG_BLOB;
        out->len = (size_t)sqlite3_value_bytes(v);
        if (b != NULL) {
            out->data = b;
        }
        break;
    }
    default: out->tag = FEOX_TAG_NULL; break;
    }
}

bool feox_decode_i64(uint32_t tag, const void *data, size_t len, int64_t *out)
{
    if ((tag != FEOX_TAG_INTEGER && tag != FEOX_TAG_BLOB && tag != FEOX_TAG_RAW) || len != 8) {
        return false;
    }
    *out = (int64_t)get_u64_le(data);
    return true;
}

/* d as an i64 if it is a whole number in range (not NaN, not infinite, no fraction). */
static bool double_to_i64(double d, int64_t *out)
{
    /* -2^63 is exactly representable; 2^63 is the first double above INT64_MAX. */
    if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) || d != floor(d)) {
        return false;
    }
    *out = (int64_t)d;
    return true;
}

double feox_decode_real(const void *data)
{
    uint64_t bits = get_u64_le(data);
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

bool feox_decode_counter(uint32_t tag, const void *data, size_t len, int64_t *out)
{
    if (tag == FEOX_TAG_REAL && len == 8) {
        return double_to_i64(feox_decode_real(data), out);
    }
    return feox_decode_i64(tag, data, len, out);
}

uint32_t feox_shown_tag(uint32_t tag, size_t len)
{
    if ((tag == FEOX_TAG_INTEGER || tag == FEOX_TAG_REAL) && len == 8) {
        return tag;
    }
    return tag == FEOX_TAG_NULL || tag == FEOX_TAG_TEXT ? tag : FEOX_TAG_BLOB;
}

void feox_result_value(sqlite3_context *ctx, uint32_t tag, const void *data, size_t len)
{
    if (tag == FEOX_TAG_INTEGER && len == 8) {
        sqlite3_result_int64(ctx, (sqlite3_int64)get_u64_le(data));
    } else if (tag == FEOX_TAG_REAL && len == 8) {
        uint64_t bits = get_u64_le(data);
        double d;
        memcpy(&d, &bits, sizeof d);
        sqlite3_result_double(ctx, d);
    } else if (tag == FEOX_TAG_NULL) {
        sqlite3_result_null(ctx);
    } else if (tag == FEOX_TAG_TEXT) {
        /* Never hand SQLite a NULL pointer: that would read back as SQL NULL, not ''. */
        sqlite3_result_text64(ctx, len ? (const char *)data : "", len, SQLITE_TRANSIENT,
                              SQLITE_UTF8);
    } else if (len == 0) {
        sqlite3_result_zeroblob(ctx, 0);
    } else {
        sqlite3_result_blob64(ctx, data, len, SQLITE_TRANSIENT);
    }
}

/* SQLite's destructor for the bytes feox_result_value_handle lends it. */
static void release_value_bytes(void *data)
{
    feox_value_release_data(data);
}

void feox_result_value_handle(sqlite3_context *ctx, feox_value *v)
{
    /* The tag, not feox_value_info: the timestamp and expiry are not needed here, and the
     * timestamp can be alone on the cache line before the rest (a miss for nothing). */
    uint32_t tag = feox_value_tag(v);
    const void *data = feox_value_data(v);
    size_t len = feox_value_size(v);
    uint32_t shown = feox_shown_tag(tag, len);
    if (len == 0 || (shown != FEOX_TAG_TEXT && shown != FEOX_TAG_BLOB)) {
        feox_result_value(ctx, tag, data, len);
        return;
    }
    /* SQLite keeps the bytes as they are and calls the destructor when it lets go of them (at
     * once on an error such as SQLITE_TOOBIG): the extra handle keeps the version alive until
     * then, however the cursor moves. */
    (void)feox_value_retain(v);
    if (shown == FEOX_TAG_TEXT) {
        sqlite3_result_text64(ctx, data, len, release_value_bytes, SQLITE_UTF8);
    } else {
        sqlite3_result_blob64(ctx, data, len, release_value_bytes);
    }
}

bool feox_key_from_value(feox_keytype keytype, sqlite3_value *v, const void **key, size_t *len)
{
    int type = sqlite3_value_type(v);
    const void *p;
    if (type == SQLITE_NULL) {
        return false;
    }
    if (type == SQLITE_BLOB && keytype == FEOX_KEYTYPE_BLOB) {
        p = sqlite3_value_blob(v);
    } else if (type == SQLITE_BLOB) {
        p = sqlite3_value_blob(v); /* blob bytes taken as text bytes (no conversion needed) */
    } else {
        p = sqlite3_value_text(v); /* numbers become their SQL text, as TEXT affinity would */
    }
    *len = (size_t)sqlite3_value_bytes(v);
    *key = p != NULL ? p : "";
    return true;
}

int feox_text_is_utf8(sqlite3 *db, const char *schema, bool *utf8)
{
    /* PRAGMA encoding reads no page (every attached database has the main database's). */
    *utf8 = false;
    char *sql = sqlite3_mprintf("PRAGMA \"%w\".encoding", schema);
    if (sql == NULL) {
        return SQLITE_NOMEM;
    }
    sqlite3_stmt *s = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
    sqlite3_free(sql);
    if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(s, 0);
        *utf8 = name != NULL && sqlite3_stricmp(name, "UTF-8") == 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(s);
    return rc;
}

bool feox_whole_number(sqlite3_value *v, sqlite3_int64 *out)
{
    int t = sqlite3_value_numeric_type(v);
    if (t == SQLITE_INTEGER) {
        *out = sqlite3_value_int64(v);
        return true;
    }
    if (t == SQLITE_FLOAT) {
        int64_t n;
        if (double_to_i64(sqlite3_value_double(v), &n)) {
            *out = n;
            return true;
        }
    }
    return false;
}

bool feox_is_empty_text(sqlite3_value *v)
{
    return sqlite3_value_type(v) == SQLITE_TEXT && sqlite3_value_bytes(v) == 0;
}

sqlite3_int64 feox_ts_for_sql(uint64_t ts_ns)
{
    return ts_ns > (uint64_t)INT64_MAX ? INT64_MAX : (sqlite3_int64)ts_ns;
}

int feox_sqlite_failure(sqlite3 *db, int rc)
{
    int ext = sqlite3_extended_errcode(db);
    return (ext & 0xff) == (rc & 0xff) ? ext : rc;
}

int feox_err_to_sqlite(feox_err err)
{
    switch (err) {
    case FEOX_OK: return SQLITE_OK;
    case FEOX_ERR_KEY_EXISTS:
    case FEOX_ERR_OLDER_TIMESTAMP:
    case FEOX_ERR_INVALID_KEY: return SQLITE_CONSTRAINT;
    case FEOX_ERR_INVALID_VALUE: return SQLITE_TOOBIG;
    case FEOX_ERR_OUT_OF_MEMORY:
    case FEOX_ERR_DISK_FULL: return SQLITE_FULL;
    case FEOX_ERR_NOMEM: return SQLITE_NOMEM;
    case FEOX_ERR_IO:
    case FEOX_ERR_DEGRADED: return SQLITE_IOERR;
    case FEOX_ERR_CORRUPT: return SQLITE_CORRUPT;
    case FEOX_ERR_FORMAT: return SQLITE_NOTADB;
    case FEOX_ERR_LOCKED: return SQLITE_BUSY;
    case FEOX_ERR_NOT_FOUND: return SQLITE_CANTOPEN;
    case FEOX_ERR_NOT_OWNER: return SQLITE_PERM;
    case FEOX_ERR_FORKED: return SQLITE_MISUSE;
    case FEOX_ERR_STALE: return SQLITE_SCHEMA;
    case FEOX_ERR_READ_ONLY: return SQLITE_READONLY;
    case FEOX_ERR_INVALID_OPERATION:
    case FEOX_ERR_TAG_MISMATCH: return SQLITE_MISMATCH;
    case FEOX_ERR_KEY_NOT_FOUND:
    case FEOX_ERR_JSON_PATCH:
    case FEOX_ERR_INVALID_ARGUMENT:
    case FEOX_ERR_CLOSED:
    default: return SQLITE_ERROR;
    }
}

char *feox_table_vmessage(const char *schema, const char *table, const char *fmt, va_list ap)
{
    char *cause = sqlite3_vmprintf(fmt, ap);
    char *msg = NULL;
    if (cause == NULL) {
        return NULL;
    }
    if (schema != NULL && sqlite3_stricmp(schema, "main") != 0) {
        msg = sqlite3_mprintf("feox: %s.%s: %s", schema, table, cause);
    } else {
        msg = sqlite3_mprintf("feox: %s: %s", table, cause);
    }
    sqlite3_free(cause);
    return msg;
}

char *feox_table_message(const char *schema, const char *table, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = feox_table_vmessage(schema, table, fmt, ap);
    va_end(ap);
    return msg;
}

void feox_table_error(feox_vtab *vt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = feox_table_vmessage(vt->schema, vt->name, fmt, ap);
    va_end(ap);
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = msg;
}

/* A fork()ed child used a table through a connection its parent opened (SQLITE_MISUSE). */
#define FORKED_MESSAGE                                                                         \
    "the connection was opened by the parent process before fork(); open the database again " \
    "in this process"

char *feox_table_err_message(const char *schema, const char *table, feox_err err)
{
    const char *detail = feox_error_detail();
    if (err == FEOX_ERR_OLDER_TIMESTAMP && detail != NULL && detail[0] != '\0') {
        return feox_table_message(schema, table, "%s", detail); /* says it all */
    }
    if (err == FEOX_ERR_FORKED) {
        /* The engine's detail names the store ("':memory:'" for a table in the database, whose
         * cache is a memory store): what the app has to do is about its connection. */
        return feox_table_message(schema, table, "%s", FORKED_MESSAGE);
    }
    if (err == FEOX_ERR_READ_ONLY && detail != NULL && detail[0] != '\0') {
        /* "the store file '<path>' is read-only": the engine names the file */
        return feox_table_message(schema, table, "%s %s", detail, FEOX_READ_ONLY_CAUSE);
    }
    if (detail != NULL && detail[0] != '\0' && strcmp(detail, feox_strerror(err)) != 0) {
        return feox_table_message(schema, table, "%s: %s", feox_strerror(err), detail);
    }
    return feox_table_message(schema, table, "%s", feox_strerror(err));
}

int feox_table_engine_error(feox_vtab *vt, feox_err err)
{
    sqlite3_free(vt->base.zErrMsg);
    vt->base.zErrMsg = feox_table_err_message(vt->schema, vt->name, err);
    return feox_err_to_sqlite(err);
}

char *feox_err_message(const char *table, feox_err err)
{
    const char *detail = feox_error_detail();
    if (err == FEOX_ERR_FORKED) {
        return sqlite3_mprintf("feox: %s: %s", table, FORKED_MESSAGE);
    }
    if (detail != NULL && detail[0] != '\0' && strcmp(detail, feox_strerror(err)) != 0) {
        return sqlite3_mprintf("feox: %s: %s: %s", table, feox_strerror(err), detail);
    }
    return sqlite3_mprintf("feox: %s: %s", table, feox_strerror(err));
}

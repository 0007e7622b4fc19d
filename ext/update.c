/*
 * update.c — xUpdate: INSERT, UPDATE and DELETE on a feox table, with SQL's conflict rules.
 *
 * Arguments (WITHOUT ROWID, 4 columns; verified on SQLite 3.40.1):
 *   DELETE   argc 1: argv[0] = old key
 *   INSERT   argc 6: argv[0] = NULL, argv[1] = NULL, argv[2..5] = key, value, ttl, ts
 *            (argc 7 with clock='log': argv[6] = the HIDDEN command column, NULL for a row)
 *   UPDATE   argc 6: argv[0] = old key, argv[1] = new key, argv[2..5] = the new row; columns the
 *            UPDATE does not assign arrive "nochange" (xColumn reports value/ttl/ts unchanged),
 *            except in UPDATE ... FROM, where SQLite passes them back as read (see
 *            settle_passed_back)
 *
 * Rules:
 *   - INSERT of a live key: "UNIQUE constraint failed: <table>.key" (SQLITE_CONSTRAINT), unless
 *     OR REPLACE (upsert) or OR IGNORE (SQLite skips the row on SQLITE_CONSTRAINT).
 *   - key NULL or empty: SQLITE_CONSTRAINT; longer than FEOX_MAX_KEY_SIZE: SQLITE_TOOBIG.
 *   - ttl: NULL, '' (what CSV import writes for NULL) or 0 = no expiry, > 0 = seconds from now,
 *     negative or not an integer = error. An UPDATE that does not assign ttl keeps the exact
 *     expiry instant; INSERT OR REPLACE without a ttl clears it.
 *   - ts: NULL or '' = automatic (always newer than the record's, and never above INT64_MAX: a
 *     record already at INT64_MAX makes an automatic write an error, SQLITE_ERROR, not a conflict
 *     OR IGNORE would skip); an explicit ts must be strictly newer than the record's, else
 *     SQLITE_CONSTRAINT (so OR IGNORE skips). An UPDATE that does not assign ts gets an automatic
 *     timestamp.
 *   - UPDATE may change the key: the new key is created (IF_ABSENT unless OR REPLACE), then the
 *     old one deleted.
 *   - clock='log' (logical_clock.c): an INSERT that sets the HIDDEN command column (argv[6]) is
 *     a command ('clock', 'sweep'), not a row; an automatic ts is max(logical clock, the live
 *     record's ts + 1), given to the engine as an explicit one.
 * Everything is validated before the first change, and every change is undo-journalled with the
 * version it replaced (txn_journal.c), so a failing row or statement leaves nothing behind.
 */
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

/* Validated new-row fields. */
typedef struct row_input {
    feox_encoded value;
    bool value_unchanged;
    bool ttl_unchanged;
    bool ttl_given;    /* ttl was a number (not NULL, not '') */
    uint64_t ttl_secs; /* 0 = none */
    uint64_t ts_ns;    /* 0 = automatic */
    bool passed_back;  /* UPDATE in which no column arrived "nochange" (see settle_passed_back) */
} row_input;

static int key_arg(feox_vtab *vt, sqlite3_value *v, const void **key, size_t *len)
{
    if (!feox_key_from_value(vt->options.keytype, v, key, len)) {
        feox_table_error(vt, "key may not be NULL");
        return SQLITE_CONSTRAINT;
    }
    if (*len == 0) {
        feox_table_error(vt, "key may not be empty");
        return SQLITE_CONSTRAINT;
    }
    if (*len > FEOX_MAX_KEY_SIZE) {
        feox_table_error(vt, "key is longer than %u bytes", (unsigned)FEOX_MAX_KEY_SIZE);
        return SQLITE_TOOBIG;
    }
    return SQLITE_OK;
}

static int read_row(feox_vtab *vt, sqlite3_value **argv, bool is_update, row_input *in)
{
    sqlite3_value *value = argv[2 + FEOX_COL_VALUE];
    sqlite3_value *ttl = argv[2 + FEOX_COL_TTL];
    sqlite3_value *ts = argv[2 + FEOX_COL_TS];
    sqlite3_int64 n;
    memset(in, 0, sizeof *in);

    in->value_unchanged = is_update && sqlite3_value_nochange(value);
    if (!in->value_unchanged) {
        feox_encode_value(value, &in->value);
        if (in->value.len > FEOX_MAX_VALUE_SIZE) {
            feox_table_error(vt, "value is longer than %u bytes", (unsigned)FEOX_MAX_VALUE_SIZE);
            return SQLITE_TOOBIG;
        }
    }
    in->ttl_unchanged = is_update && sqlite3_value_nochange(ttl);
    in->ttl_given = !in->ttl_unchanged && sqlite3_value_type(ttl) != SQLITE_NULL &&
                    !feox_is_empty_text(ttl); /* '' is what CSV import writes for NULL */
    if (in->ttl_given) {
        if (!feox_whole_number(ttl, &n)) {
            feox_table_error(vt, "ttl must be a whole number of seconds");
            return SQLITE_MISMATCH;
        }
        if (n < 0) {
            feox_table_error(vt, "ttl may not be negative");
            return SQLITE_ERROR;
        }
        in->ttl_secs = (uint64_t)n;
        if (n > 0 && feox_lclock_need_now(vt) != SQLITE_OK) {
            return SQLITE_ERROR; /* clock='log' before its first clock statement */
        }
    }
    bool ts_unchanged = is_update && sqlite3_value_nochange(ts);
    in->passed_back = is_update && !in->value_unchanged && !in->ttl_unchanged && !ts_unchanged;
    if (!ts_unchanged && sqlite3_value_type(ts) != SQLITE_NULL && !feox_is_empty_text(ts)) {
        if (!feox_whole_number(ts, &n) || n < 0) {
            feox_table_error(vt, "ts must be a non-negative integer (ns)");
            return SQLITE_MISMATCH;
        }
        in->ts_ns = (uint64_t)n;
    }
    return SQLITE_OK;
}

/* UPDATE ... FROM (and any UPDATE in which no column arrives "nochange") gets the columns it does
 * not assign back as they were read: ts as the record's own timestamp, ttl as the whole seconds
 * the row showed. So in such an UPDATE a ts equal to the record's means "not assigned" (an
 * automatic timestamp, as when ts is left out of a plain UPDATE), and a ttl equal to the seconds
 * the row shows now (or showed up to a second ago) keeps the exact expiry instant instead of
 * rounding it down to whole seconds. Assigning exactly those values explicitly in such an UPDATE
 * has the same effect (SQLite gives no way to tell them apart). A value passed back as read keeps
 * the record's tag. */
static void settle_passed_back(feox_vtab *vt, row_input *in, feox_value *old_value,
                               const feox_record_info *old)
{
    if (!in->passed_back) {
        return;
    }
    /* The value as read: keep the record's own tag (a raw C API value is shown as a BLOB). */
    size_t len = feox_value_size(old_value);
    if (in->value.len == len && in->value.tag == feox_shown_tag(old->tag, len) &&
        memcmp(in->value.data, feox_value_data(old_value), len) == 0) {
        in->value_unchanged = true;
    }
    if (in->ts_ns != 0 && in->ts_ns == (uint64_t)feox_ts_for_sql(old->timestamp_ns)) {
        in->ts_ns = 0;
    }
    if (in->ttl_given && old->expires_at_ns != 0) {
        uint64_t now = feox_now_ns(vt->entry->store);
        uint64_t shown = old->expires_at_ns > now ? (old->expires_at_ns - now) / 1000000000u : 0;
        if (in->ttl_secs == shown || in->ttl_secs == shown + 1) {
            in->ttl_unchanged = true;
        }
    }
}

/* Write options for the new row; old is the replaced record's info (UPDATE) or NULL. auto_ts:
 * the automatic ts clock='log' chose (0: the engine draws it). */
static void write_opts(feox_vtab *vt, const row_input *in, uint32_t tag,
                       const feox_record_info *old, uint64_t auto_ts, feox_write_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->flags = FEOX_WRITE_TS_INT64; /* SQL shows ts as a signed 64-bit integer */
    opts->timestamp_ns = in->ts_ns != 0 ? in->ts_ns : auto_ts;
    opts->tag = tag;
    if (in->ttl_unchanged && old != NULL) {
        opts->flags |= FEOX_WRITE_EXPIRES_AT;
        opts->expires_at_ns = old->expires_at_ns;
    } else if (in->ttl_secs > 0) {
        uint64_t now = feox_now_ns(vt->entry->store);
        if (in->ttl_secs > (UINT64_MAX - now) / 1000000000u) {
            opts->flags |= FEOX_WRITE_EXPIRES_AT; /* beyond the clock's range: never */
            opts->expires_at_ns = UINT64_MAX;
        } else {
            opts->flags |= FEOX_WRITE_TTL;
            opts->ttl_secs = in->ttl_secs;
        }
    }
}

/* The error for a failed write of the new row. */
static int write_error(feox_vtab *vt, feox_err e, const row_input *in)
{
    switch (e) {
    case FEOX_ERR_KEY_EXISTS:
        feox_vtab_set_error(vt, "UNIQUE constraint failed: %s.key", vt->name);
        return SQLITE_CONSTRAINT;
    case FEOX_ERR_OLDER_TIMESTAMP:
        if (in->ts_ns == 0) {
            /* Automatic, but the record's ts is already the largest: a hard error, not a
             * conflict that OR IGNORE would skip silently. */
            feox_table_engine_error(vt, e);
            return SQLITE_ERROR;
        }
        feox_table_error(vt, "ts %llu is not newer than the record's timestamp",
                         (unsigned long long)in->ts_ns);
        return SQLITE_CONSTRAINT;
    default: return feox_db_engine_error(vt, e);
    }
}

static int do_delete(feox_vtab *vt, sqlite3_value *old_key)
{
    const void *key;
    size_t len;
    if (!feox_key_from_value(vt->options.keytype, old_key, &key, &len)) {
        return SQLITE_OK;
    }
    feox_value *old = NULL;
    feox_write_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.replaced = vt->in_txn ? &old : NULL;
    feox_err e = feox_delete(vt->entry->store, key, len, &opts);
    if (e != FEOX_OK) {
        if (e == FEOX_ERR_KEY_NOT_FOUND || e == FEOX_ERR_INVALID_KEY) {
            return SQLITE_OK; /* already gone (expired or deleted by another connection) */
        }
        return feox_db_engine_error(vt, e);
    }
    return vt->in_txn ? feox_journal_replaced(&vt->journal, vt->entry->store, key, len, old)
                      : SQLITE_OK;
}

/* clock='log': the timestamp of key's live record (0: none), which an automatic ts must pass. */
static int live_record_ts(feox_vtab *vt, const void *key, size_t len, uint64_t *ts)
{
    *ts = 0;
    if (vt->lclock == NULL) {
        return SQLITE_OK;
    }
    feox_value *live = NULL;
    feox_err e = feox_get_ref(vt->entry->store, key, len, &live);
    if (e == FEOX_ERR_KEY_NOT_FOUND || e == FEOX_ERR_INVALID_KEY) {
        return SQLITE_OK;
    }
    if (e != FEOX_OK) {
        return feox_db_engine_error(vt, e);
    }
    feox_record_info info;
    feox_value_info(live, &info);
    feox_value_release(live);
    *ts = info.timestamp_ns;
    return SQLITE_OK;
}

/* Write key -> new row. if_absent: fail on a live key (plain INSERT, key-changing UPDATE).
 * old: the record being replaced (UPDATE of the same key) or NULL. */
static int write_row(feox_vtab *vt, const void *key, size_t len, const row_input *in,
                     const void *value, size_t value_len, uint32_t tag,
                     const feox_record_info *ttl_source, bool if_absent)
{
    feox_write_opts opts;
    feox_value *old = NULL;
    uint64_t auto_ts = 0;
    if (in->ts_ns == 0) {
        uint64_t live_ts = 0;
        int rc = live_record_ts(vt, key, len, &live_ts);
        if (rc == SQLITE_OK) {
            rc = feox_lclock_auto_ts(vt, live_ts, &auto_ts); /* clock='log' only */
        }
        if (rc != SQLITE_OK) {
            return rc;
        }
    }
    write_opts(vt, in, tag, ttl_source, auto_ts, &opts);
    if (if_absent) {
        opts.flags |= FEOX_WRITE_IF_ABSENT;
    }
    opts.replaced = vt->in_txn ? &old : NULL;
    feox_err e = feox_insert(vt->entry->store, key, len, value, value_len, &opts, NULL);
    if (e != FEOX_OK) {
        return write_error(vt, e, in);
    }
    return vt->in_txn ? feox_journal_replaced(&vt->journal, vt->entry->store, key, len, old)
                      : SQLITE_OK;
}

static int do_insert(feox_vtab *vt, sqlite3_value **argv)
{
    const void *key;
    size_t len;
    row_input in;
    int rc = key_arg(vt, argv[2 + FEOX_COL_KEY], &key, &len);
    if (rc == SQLITE_OK) {
        rc = read_row(vt, argv, false, &in);
    }
    if (rc != SQLITE_OK) {
        return rc;
    }
    bool replace = sqlite3_vtab_on_conflict(vt->db) == SQLITE_REPLACE;
    return write_row(vt, key, len, &in, in.value.data, in.value.len, in.value.tag, NULL, !replace);
}

static int do_update(feox_vtab *vt, sqlite3_value **argv)
{
    const void *old_key, *new_key;
    size_t old_len, new_len;
    feox_value *old = NULL;
    feox_record_info info;
    row_input in;
    int rc = SQLITE_OK;

    if (!feox_key_from_value(vt->options.keytype, argv[0], &old_key, &old_len)) {
        return SQLITE_OK;
    }
    rc = key_arg(vt, argv[2 + FEOX_COL_KEY], &new_key, &new_len);
    if (rc == SQLITE_OK) {
        rc = read_row(vt, argv, true, &in);
    }
    if (rc != SQLITE_OK) {
        return rc;
    }
    /* The old key's pointer may be invalidated by converting argv[2]; re-read it. */
    (void)feox_key_from_value(vt->options.keytype, argv[0], &old_key, &old_len);
    feox_err e = feox_get_ref(vt->entry->store, old_key, old_len, &old);
    if (e == FEOX_ERR_KEY_NOT_FOUND || e == FEOX_ERR_INVALID_KEY) {
        return SQLITE_OK; /* the row expired or was deleted meanwhile */
    }
    if (e != FEOX_OK) {
        return feox_db_engine_error(vt, e);
    }
    feox_value_info(old, &info);
    settle_passed_back(vt, &in, old, &info);
    const void *value = in.value_unchanged ? feox_value_data(old) : in.value.data;
    size_t value_len = in.value_unchanged ? feox_value_size(old) : in.value.len;
    uint32_t tag = in.value_unchanged ? info.tag : in.value.tag;
    bool same_key = old_len == new_len && memcmp(old_key, new_key, old_len) == 0;

    if (same_key) {
        rc = write_row(vt, new_key, new_len, &in, value, value_len, tag, &info, false);
        goto cleanup;
    }
    bool replace = sqlite3_vtab_on_conflict(vt->db) == SQLITE_REPLACE;
    rc = write_row(vt, new_key, new_len, &in, value, value_len, tag, &info, !replace);
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    feox_value *removed = NULL;
    feox_write_opts opts;
    memset(&opts, 0, sizeof opts);
    opts.replaced = vt->in_txn ? &removed : NULL;
    e = feox_delete(vt->entry->store, old_key, old_len, &opts);
    if (e != FEOX_OK && e != FEOX_ERR_KEY_NOT_FOUND) {
        rc = feox_db_engine_error(vt, e);
    } else if (e == FEOX_OK && vt->in_txn) {
        rc = feox_journal_replaced(&vt->journal, vt->entry->store, old_key, old_len, removed);
    }
cleanup:
    feox_value_release(old);
    return rc;
}

/* xUpdate: see the header comment for the argument layout and rules. */
int feox_vt_update(sqlite3_vtab *tab, int argc, sqlite3_value **argv, sqlite3_int64 *rowid)
{
    feox_vtab *vt = (feox_vtab *)tab;
    (void)rowid;
    /* Its own code: CANTOPEN, NOMEM, IOERR, CORRUPT... In database mode xBegin brought the
     * cache up to date for the whole write transaction (only this connection writes until it
     * ends; a scan's range is loaded by its xFilter), so no refresh here; the logical clock
     * (clock='log') still takes the full one. */
    bool refreshed = vt->dbs != NULL && vt->in_txn && vt->lclock == NULL;
    int rc = refreshed ? feox_vtab_check_store_without_refresh(vt) : feox_vtab_check_store(vt);
    if (rc != SQLITE_OK) {
        return rc;
    }
    if (argc > 2 + FEOX_COL_TS + 1) { /* clock='log': the command column */
        sqlite3_value *command = argv[2 + FEOX_COL_TS + 1];
        bool set = sqlite3_value_type(command) != SQLITE_NULL && !sqlite3_value_nochange(command);
        if (set && sqlite3_value_type(argv[0]) != SQLITE_NULL) {
            feox_table_error(vt, "a command is an INSERT: INSERT INTO %s(%s, ts) VALUES(...)",
                             vt->name, vt->name);
            return SQLITE_ERROR;
        }
        if (set) {
            rc = feox_db_sync(vt); /* a 'sweep' works on the shadow table: pending rows first */
            return rc == SQLITE_OK ? feox_lclock_command(vt, argv) : rc;
        }
    }
    if (argc == 1) {
        rc = do_delete(vt, argv[0]);
    } else if (sqlite3_value_type(argv[0]) == SQLITE_NULL) {
        rc = do_insert(vt, argv);
    } else {
        rc = do_update(vt, argv);
    }
    /* database mode: a full pending map is written out here, outside the engine's locks */
    return rc == SQLITE_OK ? feox_db_settle(vt) : rc;
}

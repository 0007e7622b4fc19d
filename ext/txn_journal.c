/*
 * txn_journal.c — the undo journal that gives a feox table SQL transactions.
 *
 * The engine has no transactions, so each vtab (one per connection and table) records, with
 * every change it makes, the key's previous state: absent, or its old value, tag and expiry
 * instant and timestamp. The write itself returns that state (feox_write_opts.replaced: the
 * version it replaced, atomically with the change), so nothing is read before a write. ROLLBACK
 * undoes the entries newest first; ROLLBACK TO savepoint N undoes the entries made since savepoint
 * N began. An undo is itself a write: a restored version gets back its exact value, tag, timestamp
 * and expiry (FEOX_WRITE_RESTORE lets the engine accept the older timestamp), so after ROLLBACK the
 * row is as it was, ts included; a key that was absent is deleted.
 *
 * Savepoints: marks[i] is the journal length when savepoint i began. xSavepoint(N) sets marks[N]
 * (filling any skipped levels), xRelease(N) forgets levels >= N, xRollbackTo(N) undoes to
 * marks[N] and keeps level N. SQLite calls xRollbackTo(-1) when the savepoint that opened the
 * transaction is rolled back: that undoes everything.
 *
 * Database mode (db_mode.c): SQLite restores the shadow tables itself before it calls xRollback /
 * xRollbackTo, so the undo writes carry undo_flags = FEOX_WRITE_INDEX_ONLY: they put the cache
 * back to match, and write nothing to the backend.
 *
 * Memory: the first entry, and one entry's key and old value of up to FEOX_JOURNAL_INLINE_BYTES,
 * are held in the journal itself; so the journal of a one-row transaction (an autocommit write)
 * allocates nothing (each allocation is a mutex, a status update and a free at commit). The other
 * entries' keys and old values go in the journal's arena (byte_arena.h), whose blocks are kept
 * from one transaction to the next, like a small entry array: a transaction of many rows allocates
 * nothing per row, and one of as many rows as the last allocates nothing at all.
 *
 * Isolation (file and shared memory tables): other connections see changes before COMMIT (the store
 * is shared, not versioned), and a rollback restores the old state even if another connection wrote
 * the key meanwhile.
 */
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

/* Entries of an array kept from one transaction to the next (64 bytes each). */
#define JOURNAL_KEEP_ENTRIES 1024

/* Entry i: the array once there is one, else the one held in the journal itself. */
static feox_journal_entry *entry_at(feox_journal *j, size_t i)
{
    return j->entries != NULL ? &j->entries[i] : &j->first;
}

/* Room for one more entry: the first goes in j->first, a second moves it into an array. */
static bool reserve_entry(feox_journal *j)
{
    size_t cap = j->entries != NULL ? j->cap : 1;
    if (j->n < cap) {
        return true;
    }
    size_t grown_cap = j->entries != NULL ? j->cap * 2 : 16;
    feox_journal_entry *grown = sqlite3_realloc64(j->entries, grown_cap * sizeof *grown);
    if (grown == NULL) {
        return false;
    }
    if (j->entries == NULL) {
        grown[0] = j->first; /* n == 1 here */
    }
    j->entries = grown;
    j->cap = grown_cap;
    return true;
}

/* An entry's key and old value share one place (the value right after the key): the journal's
 * inline bytes if they are free and large enough, else the journal's arena. */
static unsigned char *entry_bytes(feox_journal *j, size_t held)
{
    if (!j->inline_used && held <= sizeof j->inline_bytes) {
        j->inline_used = true;
        return j->inline_bytes;
    }
    return feox_arena_alloc(&j->arena, held);
}

/* Forget the newest entry. Its arena bytes are given back by the caller's rewind (give_back):
 * entries leave newest first, so the oldest one forgotten marks where the arena goes back to. */
static void entry_free(feox_journal *j, feox_journal_entry *e, unsigned char **give_back)
{
    if (e->key == j->inline_bytes) {
        j->inline_used = false;
    } else {
        *give_back = e->key;
    }
    e->key = NULL;
}

static void arena_rewind(feox_journal *j, unsigned char *give_back)
{
    if (give_back != NULL) {
        feox_arena_rewind(&j->arena, give_back);
    }
}

int feox_journal_add(feox_journal *j, const void *key, size_t key_len, bool existed,
                     const void *value, size_t value_len, const feox_record_info *info)
{
    if (!reserve_entry(j)) {
        return SQLITE_NOMEM;
    }
    feox_journal_entry *e = entry_at(j, j->n);
    memset(e, 0, sizeof *e);
    e->key = entry_bytes(j, key_len + (existed ? value_len : 0));
    if (e->key == NULL) {
        return SQLITE_NOMEM;
    }
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    e->existed = existed;
    if (existed) {
        e->value = e->key + key_len;
        if (value_len) {
            memcpy(e->value, value, value_len);
        }
        e->value_len = value_len;
        e->tag = info->tag;
        e->timestamp_ns = info->timestamp_ns;
        e->expires_at_ns = info->expires_at_ns;
    }
    j->n++;
    return SQLITE_OK;
}

void feox_journal_truncate(feox_journal *j, size_t n)
{
    unsigned char *give_back = NULL;
    while (j->n > n) {
        entry_free(j, entry_at(j, --j->n), &give_back);
    }
    arena_rewind(j, give_back);
}

/* Put one entry's state back (flags: the journal's undo_flags, e.g. FEOX_WRITE_INDEX_ONLY). */
static feox_err undo_entry(feox_store *store, const feox_journal_entry *e, unsigned flags)
{
    feox_write_opts opts;
    memset(&opts, 0, sizeof opts);
    if (!e->existed) {
        opts.flags = flags;
        feox_err r = feox_delete(store, e->key, e->key_len, flags != 0 ? &opts : NULL);
        return r == FEOX_ERR_KEY_NOT_FOUND || r == FEOX_ERR_INVALID_KEY ? FEOX_OK : r;
    }
    opts.tag = e->tag;
    opts.flags = FEOX_WRITE_EXPIRES_AT | FEOX_WRITE_RESTORE | flags;
    opts.timestamp_ns = e->timestamp_ns;
    opts.expires_at_ns = e->expires_at_ns;
    return feox_insert(store, e->key, e->key_len, e->value, e->value_len, &opts, NULL);
}

int feox_journal_replaced(feox_journal *j, feox_store *store, const void *key, size_t key_len,
                          feox_value *old)
{
    feox_record_info info;
    feox_journal_entry undo = {.key = (unsigned char *)key, .key_len = key_len};
    if (old != NULL) {
        feox_value_info(old, &info);
        undo.existed = true;
        undo.value = (unsigned char *)feox_value_data(old);
        undo.value_len = feox_value_size(old);
        undo.tag = info.tag;
        undo.timestamp_ns = info.timestamp_ns;
        undo.expires_at_ns = info.expires_at_ns;
    }
    int rc = feox_journal_add(j, key, key_len, undo.existed, undo.value, undo.value_len,
                              old != NULL ? &info : NULL);
    if (rc != SQLITE_OK) {
        (void)undo_entry(store, &undo, 0); /* cannot be undone later: undo it now */
    }
    feox_value_release(old);
    return rc;
}

feox_err feox_journal_undo_to(feox_journal *j, feox_store *store, size_t n)
{
    unsigned char *give_back = NULL;
    while (j->n > n) {
        feox_journal_entry *e = entry_at(j, j->n - 1);
        feox_err r = undo_entry(store, e, j->undo_flags);
        /* An allocation failure is usually transient; losing the old version is not. */
        for (int attempt = 0; attempt < 3 && r == FEOX_ERR_NOMEM; attempt++) {
            r = undo_entry(store, e, j->undo_flags);
        }
        if (r != FEOX_OK) {
            arena_rewind(j, give_back);
            return r; /* keep this entry and the older ones: a later undo retries them */
        }
        entry_free(j, e, &give_back);
        j->n--;
    }
    arena_rewind(j, give_back);
    return FEOX_OK;
}

void feox_journal_savepoint(feox_journal *j, int level)
{
    if (level < 0) {
        return;
    }
    if (level >= j->cap_marks) {
        int cap = level + 8;
        size_t *grown = sqlite3_realloc64(j->marks, (size_t)cap * sizeof *grown);
        if (grown == NULL) {
            return; /* an unknown level later rolls back to the nearest known one */
        }
        j->marks = grown;
        j->cap_marks = cap;
    }
    while (j->n_marks < level) {
        j->marks[j->n_marks++] = j->n;
    }
    j->marks[level] = j->n;
    j->n_marks = level + 1;
}

void feox_journal_release(feox_journal *j, int level)
{
    if (level < 0) {
        level = 0;
    }
    if (level < j->n_marks) {
        j->n_marks = level;
    }
}

feox_err feox_journal_rollback_to(feox_journal *j, feox_store *store, int level)
{
    size_t target = 0;
    if (level >= 0 && j->n_marks > 0) {
        target = level < j->n_marks ? j->marks[level] : j->marks[j->n_marks - 1];
        if (level < j->n_marks) {
            j->n_marks = level + 1;
        }
    } else if (level >= 0) {
        return FEOX_OK; /* no savepoint began inside this vtab's transaction: nothing to undo */
    } else {
        j->n_marks = 0;
    }
    return feox_journal_undo_to(j, store, target);
}

void feox_journal_clear(feox_journal *j)
{
    feox_journal_truncate(j, 0);
    feox_arena_reset(&j->arena);
    /* A small array is kept for the next transaction (no realloc chain and free per
     * transaction); a large one goes. The rest is empty already; undo_flags is a property of the
     * table, not of the transaction. */
    if (j->cap > JOURNAL_KEEP_ENTRIES) {
        sqlite3_free(j->entries);
        j->entries = NULL;
        j->cap = 0;
    }
    j->n_marks = 0;
}

void feox_journal_free(feox_journal *j)
{
    feox_journal_truncate(j, 0);
    feox_arena_free(&j->arena);
    sqlite3_free(j->entries);
    sqlite3_free(j->marks);
    j->entries = NULL;
    j->cap = 0;
    j->marks = NULL;
    j->n_marks = 0;
    j->cap_marks = 0;
}

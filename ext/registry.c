/*
 * registry.c — what the extension keeps with each open store, and the table operations on it.
 *
 * The process's one registry of open stores is the engine's (feox_open returns the open instance
 * of a path, or of a share key for the memory stores of a file database: "memory:@<dev>.<inode>:<table>",
 * options.c); this file keeps none. What the extension needs
 * with an instance is an entry, kept in the instance's slot (feox_store_slot): the table
 * options it was opened with, the owners (feox_store_owner: database file and table) of every
 * table that acquired it, the references of this process's connections (the entry holds one engine
 * reference), and the dropped state. Private memory stores (in-memory databases) have no share key
 * and belong to one connection. The last release closes the store, which flushes it and releases
 * its file lock.
 *
 * Two tables naming one store share it only if their options agree (sync, max_memory, keytype,
 * ttl_sweep_interval, flush_interval); otherwise the second one fails and the message names the
 * option. The owners let a DROP tell "another table shows this data" from "the same table, seen
 * by another connection".
 *
 * A store file this process may not write is opened read-only (open_store): its tables read, and
 * refuse every write (vtab.c).
 *
 * Files are never touched here except through the engine: a store file is created by feox_open
 * only in xCreate (no_create otherwise), removed only by feox_remove_store_file and renamed only
 * by feox_rename_store_file, both of which verify that the file is a feox store of the given owner
 * and that no open holds it. When they happen is decided by file_actions.c (after SQLite's
 * transaction is decided); this file only carries them out:
 *   - a committed DROP of a file store removes the file, unless another table of this process
 *     has it open; if only other connections of the same table hold it, the store is emptied,
 *     marked dropped (a new table at that path takes it back) and the file removed with the last
 *     reference;
 *   - a committed DROP of a shared memory store removes its share key: a new CREATE gets a new
 *     store;
 *   - RENAME of a default-path table moves the file (feox_registry_move) while the caller holds
 *     every reference, else SQLITE_BUSY.
 *
 * fork(): a child never uses a store its parent opened. The engine never returns an inherited
 * instance, so the file is opened again, which fails while the parent holds it ("the parent
 * process holds it"); the entries of inherited stores stay valid for their holders (the last
 * release only forgets the store).
 *
 * Concurrency: one pthread mutex guards every entry (references, owners, flags) and the slots;
 * stores are opened and closed under it, so two connections never race to open the same file.
 * Lock order: this mutex, then the engine's registry lock.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

typedef struct registry_entry {
    feox_entry_ref ref; /* first: feox_entry_ref* and registry_entry* are interchangeable */
    int refs;
    atomic_bool dropped; /* written under the mutex, read without it (is_dropped) */
    bool shared_memory;  /* named in the engine by a share key (feox_set_share_key renames it) */
    feox_options options;
    char **owners; /* distinct owners of the tables that acquired it */
    int n_owners;
    char *remove_owner; /* non-NULL: remove the file with this owner when the store closes */
    unsigned remove_flags;
} registry_entry;

static pthread_mutex_t entries_mutex = PTHREAD_MUTEX_INITIALIZER;

/* The entry kept with an open instance, or NULL (none yet, or opened outside the extension). */
static registry_entry *entry_of(feox_store *store)
{
    return store != NULL ? *feox_store_slot(store) : NULL;
}

/* Give up e's engine reference (the instance forgets e first). */
static feox_err detach_store(registry_entry *e)
{
    feox_store *store = e->ref.store;
    if (store == NULL) {
        return FEOX_OK;
    }
    if (entry_of(store) == e) {
        *feox_store_slot(store) = NULL;
    }
    e->ref.store = NULL;
    return feox_close(store);
}

/* The instance this process has open at path (a counted reference: close it), or NOT_FOUND, or
 * FORKED (only the parent of this fork()ed process has it open). Nothing is opened. */
static feox_err open_existing(const char *path, feox_store **out)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.open_existing = true;
    return feox_open(&cfg, out);
}

/* The entry of the store open at path (not retained; compare only), or NULL. */
static registry_entry *entry_at(const char *path)
{
    feox_store *store = NULL;
    if (open_existing(path, &store) != FEOX_OK) {
        return NULL;
    }
    registry_entry *e = entry_of(store);
    (void)feox_close(store); /* e (if any) holds its own reference */
    return e;
}

/* True if this process inherited an open store of path from its parent (fork). */
static bool inherited_path(const char *path)
{
    feox_store *store = NULL;
    feox_err e = open_existing(path, &store);
    if (e == FEOX_OK) {
        (void)feox_close(store);
    }
    return e == FEOX_ERR_FORKED;
}

static void config_from_options(feox_config *cfg, const feox_options *o, const char *path)
{
    feox_config_init(cfg);
    cfg->path = path;
    cfg->max_memory = o->max_memory;
    cfg->sync = o->sync;
    cfg->flush_interval_ms = o->flush_interval_ms;
    if (o->ttl_sweep_set) {
        cfg->disable_ttl_sweeper = o->ttl_sweep_interval_ms == 0;
        cfg->ttl_sweep_interval_ms = o->ttl_sweep_interval_ms;
    }
}

/* "feox: <table>: cannot open store '<path>': <cause>", the cause said once: the error's
 * description, followed by what the engine's detail adds after the path it repeats (for a file
 * that is not a store: "the file exists and is not a feox store ..."). */
static char *open_error(const char *table, const char *path, feox_err e)
{
    if (e == FEOX_ERR_NOT_FOUND) {
        return sqlite3_mprintf("feox: %s: store file '%s' does not exist", table, path);
    }
    const char *cause = feox_strerror(e);
    const char *detail = feox_error_detail();
    char *text = NULL;
    if (e != FEOX_ERR_LOCKED && e != FEOX_ERR_NOMEM && detail[0] != '\0' &&
        strcmp(detail, cause) != 0) {
        const char *at = path != NULL ? strstr(detail, path) : NULL;
        const char *rest = at != NULL ? at + strlen(path) : detail;
        while (*rest == ':' || *rest == ' ' || *rest == '\'') {
            rest++;
        }
        /* The engine may name the file by its resolved path (/proc/self -> /proc/<pid>): its
         * verdict is what follows the quoted name either way. */
        const char *verdict = strstr(detail, "' exists and is not a feox store");
        if (verdict != NULL) {
            text = sqlite3_mprintf("the file %s", verdict + 2);
        } else if (*rest != '\0') {
            text = sqlite3_mprintf("%s: %s", cause, rest);
        }
    }
    char *msg = sqlite3_mprintf("feox: %s: cannot open store%s%s%s: %s", table, path ? " '" : "",
                                path ? path : "", path ? "'" : "", text ? text : cause);
    sqlite3_free(text);
    return msg;
}

/* A table without path is in the database when its <table>_data exists, else a previous
 * release's table kept in its default file: when neither is there (the shadow table dropped, or
 * replaced by a view), *err says both rather than only that the file is missing. */
static void missing_default_store(const char *path, const char *table, char **err)
{
    feox_file_info info;
    if (*err == NULL || feox_store_file_info(path, &info) != FEOX_ERR_NOT_FOUND) {
        return;
    }
    char *both = sqlite3_mprintf("%s, nor does the shadow table %s_data (a table without path "
                                 "keeps its records in one or the other)",
                                 *err, table);
    if (both != NULL) {
        sqlite3_free(*err);
        *err = both;
    }
}

/* Open the store as the table's options say. A store file this process may not write (the
 * engine says READ_ONLY: its permissions, a read-only mount; or this process has it open
 * read-only already) is opened read-only instead when an existing table connects, never created:
 * its table reads, and every write says why it cannot (feox_vtab_read_only_error). CREATE VIRTUAL
 * TABLE over such a file fails (SQLITE_CANTOPEN, as for a file it cannot open at all): it would
 * make a table this process could not DROP. A file the process may write is opened as before. */
static int open_store(const char *path, const char *share_key, const feox_options *o,
                      const char *table, const char *owner, bool create, feox_store **out,
                      char **err)
{
    feox_config cfg;
    config_from_options(&cfg, o, path);
    cfg.share_key = share_key;
    cfg.owner = owner;
    cfg.no_create = !create;
    feox_err e = feox_open(&cfg, out);
    if (e == FEOX_ERR_READ_ONLY && path != NULL && !create) {
        cfg.read_only = true;
        cfg.no_create = true;
        e = feox_open(&cfg, out);
    }
    if (e == FEOX_OK) {
        return SQLITE_OK;
    }
    *err = open_error(table, path, e);
    if (e == FEOX_ERR_LOCKED || e == FEOX_ERR_IO || e == FEOX_ERR_NOT_FOUND ||
        e == FEOX_ERR_READ_ONLY) {
        return SQLITE_CANTOPEN;
    }
    return feox_err_to_sqlite(e);
}

static bool has_owner(const registry_entry *e, const char *owner)
{
    for (int i = 0; i < e->n_owners; i++) {
        if (strcmp(e->owners[i], owner) == 0) {
            return true;
        }
    }
    return false;
}

static int add_owner(registry_entry *e, const char *owner)
{
    if (owner == NULL || has_owner(e, owner)) {
        return SQLITE_OK;
    }
    char **grown = sqlite3_realloc64(e->owners, sizeof *grown * (size_t)(e->n_owners + 1));
    if (grown == NULL) {
        return SQLITE_NOMEM;
    }
    e->owners = grown;
    e->owners[e->n_owners] = sqlite3_mprintf("%s", owner);
    if (e->owners[e->n_owners] == NULL) {
        return SQLITE_NOMEM;
    }
    e->n_owners++;
    return SQLITE_OK;
}

static void entry_free(registry_entry *e)
{
    for (int i = 0; i < e->n_owners; i++) {
        sqlite3_free(e->owners[i]);
    }
    sqlite3_free(e->owners);
    sqlite3_free(e->remove_owner);
    sqlite3_free(e->ref.file_path);
    sqlite3_free(e);
}

/* A new entry for loc (no store yet), or NULL (out of memory). */
static registry_entry *entry_new(const feox_location *loc, const feox_options *o)
{
    registry_entry *e = sqlite3_malloc(sizeof *e);
    if (e == NULL) {
        return NULL;
    }
    memset(e, 0, sizeof *e);
    atomic_init(&e->dropped, false);
    e->options = *o;
    e->options.path = NULL; /* not owned; the location says where the store is */
    e->shared_memory = loc->kind == FEOX_LOC_SHARED_MEMORY;
    e->refs = 1;
    bool ok = add_owner(e, loc->owner) == SQLITE_OK;
    if (ok && loc->kind == FEOX_LOC_FILE) {
        e->ref.file_path = sqlite3_mprintf("%s", loc->file_path);
        ok = e->ref.file_path != NULL;
    }
    if (!ok) {
        entry_free(e);
        return NULL;
    }
    return e;
}

/* A new table at the path of a dropped table's store gets that (emptied) instance back, since
 * the engine shares it anyway, and the removal planned for its last reference is cancelled: the
 * file now holds the new table's data. */
static void take_back_dropped(registry_entry *it)
{
    it->dropped = false;
    sqlite3_free(it->remove_owner);
    it->remove_owner = NULL;
    for (int i = 0; i < it->n_owners; i++) {
        sqlite3_free(it->owners[i]);
    }
    it->n_owners = 0; /* the dropped table no longer uses it */
}

/* Share an open entry: the same options, and this table becomes one of its owners. */
static int share_entry(registry_entry *it, const feox_location *loc, const feox_options *o,
                       const char *table, feox_entry_ref **out, char **err)
{
    char *conflict = feox_options_conflict(&it->options, o);
    if (conflict != NULL) {
        *err = sqlite3_mprintf("feox: %s: store '%s' is already open with %s", table,
                               it->ref.file_path ? it->ref.file_path : loc->share_key, conflict);
        sqlite3_free(conflict);
        return SQLITE_ERROR;
    }
    if (it->dropped) {
        take_back_dropped(it);
    }
    int rc = add_owner(it, loc->owner);
    if (rc != SQLITE_OK) {
        return rc;
    }
    it->refs++;
    *out = &it->ref;
    return SQLITE_OK;
}

int feox_registry_acquire(const feox_location *loc, const feox_options *o, const char *table,
                          bool create, bool *created, feox_entry_ref **out, char **err)
{
    if (created != NULL) {
        *created = false;
    }
    registry_entry *e = entry_new(loc, o); /* before the open, which may create the file */
    if (e == NULL) {
        return SQLITE_NOMEM;
    }
    const char *path = e->ref.file_path;
    pthread_mutex_lock(&entries_mutex);
    bool existed = false;
    if (create && path != NULL) {
        feox_file_info info;
        existed = feox_store_file_info(path, &info) != FEOX_ERR_NOT_FOUND;
    }
    feox_store *store = NULL;
    int rc = open_store(path, e->shared_memory ? loc->share_key : NULL, o, table, loc->owner,
                        create, &store, err);
    if (rc == SQLITE_CANTOPEN && path != NULL && inherited_path(path)) {
        sqlite3_free(*err);
        *err = sqlite3_mprintf("feox: %s: cannot open store '%s': the parent process holds it "
                               "(this process was forked after opening it; it can open the "
                               "store once the parent has closed it)",
                               table, path);
    } else if (rc == SQLITE_CANTOPEN && !create && loc->default_path && path != NULL) {
        missing_default_store(path, table, err);
    }
    registry_entry *open = rc == SQLITE_OK ? entry_of(store) : NULL;
    if (open != NULL) {
        rc = share_entry(open, loc, o, table, out, err);
        (void)feox_close(store); /* the entry holds its own reference */
    } else if (rc == SQLITE_OK) {
        e->ref.store = store;
        *feox_store_slot(store) = e;
        *out = &e->ref;
        if (created != NULL) {
            *created = create && path != NULL && !existed;
        }
        e = NULL;
    }
    pthread_mutex_unlock(&entries_mutex);
    if (e != NULL) {
        entry_free(e);
    }
    return rc;
}

feox_entry_ref *feox_registry_placeholder(void)
{
    registry_entry *e = sqlite3_malloc(sizeof *e);
    if (e == NULL) {
        return NULL;
    }
    memset(e, 0, sizeof *e);
    atomic_init(&e->dropped, false);
    e->refs = 1;
    return &e->ref;
}

void feox_registry_retain(feox_entry_ref *ref)
{
    registry_entry *e = (registry_entry *)ref;
    pthread_mutex_lock(&entries_mutex);
    e->refs++;
    pthread_mutex_unlock(&entries_mutex);
}

bool feox_registry_is_dropped(feox_entry_ref *ref)
{
    /* No lock: every SQL function call asks (connection_actions.c), and the answer is only a
     * hint that this connection's schema may be out of date (SQLite's own check decides). */
    registry_entry *e = (registry_entry *)ref;
    return atomic_load_explicit(&e->dropped, memory_order_acquire);
}

bool feox_registry_is_inherited(feox_entry_ref *ref)
{
    return ref->store != NULL && feox_store_is_inherited(ref->store);
}

int feox_registry_refs(feox_entry_ref *ref)
{
    registry_entry *e = (registry_entry *)ref;
    pthread_mutex_lock(&entries_mutex);
    int n = e->refs;
    pthread_mutex_unlock(&entries_mutex);
    return n;
}

void feox_registry_release(feox_entry_ref *ref)
{
    registry_entry *e = (registry_entry *)ref;
    if (e == NULL) {
        return;
    }
    pthread_mutex_lock(&entries_mutex);
    if (--e->refs > 0) {
        pthread_mutex_unlock(&entries_mutex);
        return;
    }
    /* The final close flushes and unlocks (an inherited store is only forgotten); a close error
     * has nowhere to go (xDisconnect cannot fail), and every acknowledged write was already
     * handed to the engine. */
    (void)detach_store(e);
    if (e->remove_owner != NULL && e->ref.file_path != NULL) {
        /* NOT_OWNER, LOCKED (another process), NOT_FOUND: the file stays, which is safe */
        (void)feox_remove_store_file(e->ref.file_path, e->remove_owner, e->remove_flags);
    }
    pthread_mutex_unlock(&entries_mutex);
    entry_free(e);
}

feox_entry_ref *feox_registry_find_file(const char *path)
{
    pthread_mutex_lock(&entries_mutex);
    registry_entry *found = entry_at(path);
    pthread_mutex_unlock(&entries_mutex);
    return found != NULL ? &found->ref : NULL;
}

/* Delete every key of the store (a dropped table whose store other connections still hold). */
static void clear_store(feox_store *store)
{
    feox_cursor *c = NULL;
    if (store == NULL || feox_cursor_open(store, &c) != FEOX_OK) {
        return;
    }
    feox_err e = feox_cursor_seek(c, FEOX_SEEK_FIRST, NULL, 0);
    while (e == FEOX_OK && feox_cursor_valid(c)) {
        size_t len;
        const void *key = feox_cursor_key(c, &len);
        (void)feox_delete(store, key, len, NULL); /* KEY_NOT_FOUND: expired or gone meanwhile */
        e = feox_cursor_next(c);
    }
    feox_cursor_close(c);
}

void feox_registry_forget(feox_entry_ref *ref, int caller_refs)
{
    registry_entry *e = (registry_entry *)ref;
    pthread_mutex_lock(&entries_mutex);
    e->dropped = true;
    if (e->shared_memory && e->ref.store != NULL) {
        /* no allocation; FORKED (inherited): never found again anyway */
        (void)feox_set_share_key(e->ref.store, NULL);
    }
    if (e->refs > caller_refs) {
        clear_store(e->ref.store); /* others still see the dropped table until they reconnect */
    }
    pthread_mutex_unlock(&entries_mutex);
}

void feox_registry_drop_file(const char *path, const char *owner, unsigned flags)
{
    pthread_mutex_lock(&entries_mutex);
    registry_entry *open = entry_at(path);
    if (open == NULL) {
        /* NOT_OWNER, LOCKED (another process has it), NOT_FOUND, FORMAT: the file stays */
        (void)feox_remove_store_file(path, owner, flags);
    } else if (open->n_owners == 1 && strcmp(open->owners[0], owner) == 0) {
        /* Only the dropped table (through other connections) holds it: they see it empty until
         * their schema is reloaded; the file goes with the last reference. */
        char *o = sqlite3_mprintf("%s", owner);
        if (o != NULL) {
            sqlite3_free(open->remove_owner);
            open->remove_owner = o;
            open->remove_flags = flags;
            open->dropped = true;
            clear_store(open->ref.store);
        }
    } else {
        /* another table of this process shows this data: the file stays, and the dropped table
         * no longer counts as one of its users */
        for (int i = 0; i < open->n_owners; i++) {
            if (strcmp(open->owners[i], owner) == 0) {
                sqlite3_free(open->owners[i]);
                open->owners[i] = open->owners[--open->n_owners];
                break;
            }
        }
    }
    pthread_mutex_unlock(&entries_mutex);
}

int feox_registry_rekey(feox_entry_ref *ref, const char *new_key)
{
    registry_entry *e = (registry_entry *)ref;
    int rc = SQLITE_OK;
    pthread_mutex_lock(&entries_mutex);
    /* A file store is named by its path (a move renames it), a private one by nothing. */
    if (!e->dropped && e->shared_memory && e->ref.store != NULL && new_key != NULL) {
        feox_err fe = feox_set_share_key(e->ref.store, new_key);
        rc = fe == FEOX_ERR_NOMEM ? SQLITE_NOMEM : SQLITE_OK; /* FORKED: it is reopened anyway */
    }
    pthread_mutex_unlock(&entries_mutex);
    return rc;
}

/* Open e's store at path (RENAME: after the move, or back where it was) and keep e with it. */
static int reopen_at(registry_entry *e, const char *path, const char *table, char **err)
{
    int rc = open_store(path, NULL, &e->options, table, NULL, false, &e->ref.store, err);
    if (rc == SQLITE_OK) {
        *feox_store_slot(e->ref.store) = e;
    }
    return rc;
}

int feox_registry_move(feox_entry_ref *ref, const char *table, const char *to_path,
                       const char *from_owner, const char *to_owner, const char *file_owner,
                       int caller_refs, char **err)
{
    registry_entry *e = (registry_entry *)ref;
    int rc = SQLITE_OK;
    char *new_path = sqlite3_mprintf("%s", to_path);
    char *new_owner = sqlite3_mprintf("%s", to_owner);
    pthread_mutex_lock(&entries_mutex);
    if (new_path == NULL || new_owner == NULL) {
        rc = SQLITE_NOMEM;
        goto cleanup;
    }
    if (e->refs > caller_refs) {
        *err = sqlite3_mprintf("feox: %s: cannot rename: the store '%s' is in use by another "
                               "connection",
                               table, e->ref.file_path);
        rc = SQLITE_BUSY;
        goto cleanup;
    }
    (void)detach_store(e);
    feox_err fe = feox_rename_store_file(e->ref.file_path, new_path, file_owner, file_owner,
                                         FEOX_FILE_ALLOW_UNOWNED);
    char *rename_err = NULL;
    if (fe != FEOX_OK) {
        const char *detail = feox_error_detail();
        rename_err = sqlite3_mprintf("%s", detail[0] ? detail : feox_strerror(fe));
    }
    rc = reopen_at(e, fe == FEOX_OK ? new_path : e->ref.file_path, table, err);
    if (rc != SQLITE_OK && fe == FEOX_OK &&
        feox_rename_store_file(new_path, e->ref.file_path, file_owner, file_owner,
                               FEOX_FILE_ALLOW_UNOWNED) == FEOX_OK) {
        /* moved but not reopened: move it back, so the failed RENAME leaves the file where the
         * (unchanged) schema looks for it */
        char *ignored = NULL;
        (void)reopen_at(e, e->ref.file_path, table, &ignored);
        sqlite3_free(ignored);
    }
    if (rc != SQLITE_OK) {
        sqlite3_free(rename_err);
        goto cleanup; /* without a store, later uses fail with a clear error */
    }
    if (fe != FEOX_OK) {
        *err = sqlite3_mprintf("feox: %s: cannot rename '%s' to '%s': %s", table, e->ref.file_path,
                               new_path, rename_err ? rename_err : feox_strerror(fe));
        sqlite3_free(rename_err);
        rc = feox_err_to_sqlite(fe);
        if (rc == SQLITE_OK || rc == SQLITE_INTERNAL) {
            rc = SQLITE_IOERR;
        }
        goto cleanup;
    }
    sqlite3_free(e->ref.file_path);
    e->ref.file_path = new_path;
    new_path = NULL;
    for (int i = 0; i < e->n_owners; i++) {
        if (strcmp(e->owners[i], from_owner) == 0) {
            sqlite3_free(e->owners[i]);
            e->owners[i] = new_owner;
            new_owner = NULL;
            break;
        }
    }
cleanup:
    pthread_mutex_unlock(&entries_mutex);
    sqlite3_free(new_path);
    sqlite3_free(new_owner);
    return rc;
}

feox_err feox_registry_move_closed(const char *from, const char *to, const char *file_owner,
                                   unsigned flags)
{
    pthread_mutex_lock(&entries_mutex);
    feox_err e = feox_rename_store_file(from, to, file_owner, file_owner, flags);
    pthread_mutex_unlock(&entries_mutex);
    return e;
}

/* Record to_owner in the header of the store open in e, if it records expect_hash (or no owner,
 * with FEOX_FILE_ALLOW_UNOWNED). Caller holds entries_mutex and the store is open. */
static feox_err set_owner_of_open(feox_store *store, const char *path, uint64_t expect_hash,
                                  const char *to_owner, unsigned flags)
{
    feox_file_info info;
    feox_err e = feox_store_file_info(path, &info); /* stable: this process holds the lock */
    if (e != FEOX_OK || info.owner_hash == feox_owner_hash(to_owner)) {
        return e;
    }
    if (info.owner_hash != expect_hash &&
        !(info.owner_hash == 0 && (flags & FEOX_FILE_ALLOW_UNOWNED))) {
        return FEOX_ERR_NOT_OWNER;
    }
    return feox_set_owner(store, to_owner);
}

feox_err feox_registry_set_file_owner(const char *path, uint64_t expect_hash,
                                      const char *from_owner, const char *to_owner, unsigned flags)
{
    pthread_mutex_lock(&entries_mutex);
    /* The open instance, or (nobody here has it open) the file opened for the rewrite: LOCKED if
     * another process holds it (the owner stays, which is safe). Under the mutex, so no table
     * opens it meanwhile. */
    feox_store *store = NULL;
    feox_err e = open_existing(path, &store);
    if (e != FEOX_OK) {
        feox_config cfg;
        feox_config_init(&cfg);
        cfg.path = path;
        cfg.no_create = true;
        cfg.disable_compaction = true;
        cfg.disable_ttl_sweeper = true;
        e = feox_open(&cfg, &store);
    }
    if (e == FEOX_OK) {
        e = set_owner_of_open(store, path, expect_hash, to_owner, flags);
        registry_entry *open = entry_of(store);
        for (int i = 0; open != NULL && e == FEOX_OK && from_owner != NULL && i < open->n_owners;
             i++) {
            if (strcmp(open->owners[i], from_owner) == 0 && !has_owner(open, to_owner)) {
                char *o = sqlite3_mprintf("%s", to_owner); /* NOMEM: the old name stays listed */
                if (o != NULL) {
                    sqlite3_free(open->owners[i]);
                    open->owners[i] = o;
                }
                break;
            }
        }
        feox_err closed = feox_close(store);
        e = e != FEOX_OK ? e : closed;
    }
    pthread_mutex_unlock(&entries_mutex);
    return e;
}

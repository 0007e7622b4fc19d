/*
 * registry.c — process-wide sharing of open stores between connections.
 *
 * An entry is one open feox_store with a reference count. Entries with a share key (file stores:
 * "file:<absolute path>"; memory stores of a file database: "memory:<db file>:<table>") are found
 * by every connection of the process that resolves the same key; private memory stores (in-memory
 * databases) have no key and belong to one connection. The last release closes the store, which
 * flushes it and releases its file lock.
 *
 * DROP TABLE marks an entry dropped: its key is forgotten at once (a new CREATE gets a new store)
 * and its files are removed then and again after the last close. The store's files are the path
 * itself plus anything named "<path>-*" or "<path>.*" next to it (the engine's temporary and
 * compaction files). If other connections still hold the store (they let go when SQLite
 * disconnects their table, vtab.c), DROP empties it instead and the files are removed with the
 * last reference; a CREATE of a file table on the same path meanwhile takes the (empty) dropped
 * instance back, since the engine shares instances by path anyway.
 *
 * RENAME of a table stored in its default file "<db>-<table>.feox" closes the store, renames the
 * file and its sidecars, and reopens it; it fails with SQLITE_BUSY if another connection has the
 * store open. Other entries are only re-keyed.
 *
 * Concurrency: one pthread mutex guards the list and every reference count; stores are opened and
 * closed under it, so two connections never race to open the same file.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

typedef struct registry_entry {
    feox_entry_ref ref; /* first: feox_entry_ref* and registry_entry* are interchangeable */
    char *share_key;    /* NULL: private or dropped */
    int refs;
    bool dropped;
    struct registry_entry *next;
} registry_entry;

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static registry_entry *registry_head;

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

static int open_store(const char *path, const feox_options *o, const char *table, feox_store **out,
                      char **err)
{
    feox_config cfg;
    config_from_options(&cfg, o, path);
    feox_err e = feox_open(&cfg, out);
    if (e == FEOX_OK) {
        return SQLITE_OK;
    }
    const char *detail = feox_error_detail();
    *err = sqlite3_mprintf("feox: %s: cannot open store%s%s%s: %s%s%s", table, path ? " '" : "",
                           path ? path : "", path ? "'" : "", feox_strerror(e),
                           detail[0] ? ": " : "", detail);
    if (e == FEOX_ERR_LOCKED) {
        return SQLITE_CANTOPEN;
    }
    return e == FEOX_ERR_IO ? SQLITE_CANTOPEN : feox_err_to_sqlite(e);
}

int feox_registry_acquire(const feox_location *loc, const feox_options *o, const char *table,
                          feox_entry_ref **out, char **err)
{
    int rc = SQLITE_OK;
    registry_entry *e = NULL;
    pthread_mutex_lock(&registry_mutex);
    if (loc->kind == FEOX_LOC_FILE) {
        for (registry_entry *it = registry_head; it != NULL; it = it->next) {
            if (it->dropped && it->ref.file_path != NULL &&
                strcmp(it->ref.file_path, loc->file_path) == 0) {
                /* A table dropped while another connection still had its store open, created
                 * again: the engine would hand back that instance anyway (it shares by path), so
                 * take it back; feox_registry_drop emptied it. */
                char *key = sqlite3_mprintf("%s", loc->share_key);
                if (key == NULL) {
                    rc = SQLITE_NOMEM;
                    goto cleanup;
                }
                sqlite3_free(it->share_key);
                it->share_key = key;
                it->dropped = false;
                it->refs++;
                *out = &it->ref;
                goto cleanup;
            }
        }
    }
    if (loc->share_key != NULL) {
        for (registry_entry *it = registry_head; it != NULL; it = it->next) {
            if (it->share_key != NULL && strcmp(it->share_key, loc->share_key) == 0) {
                it->refs++;
                *out = &it->ref;
                goto cleanup;
            }
        }
    }
    e = sqlite3_malloc(sizeof *e);
    if (e == NULL) {
        rc = SQLITE_NOMEM;
        goto cleanup;
    }
    memset(e, 0, sizeof *e);
    if (loc->share_key != NULL) {
        e->share_key = sqlite3_mprintf("%s", loc->share_key);
        if (e->share_key == NULL) {
            rc = SQLITE_NOMEM;
            goto cleanup;
        }
    }
    if (loc->kind == FEOX_LOC_FILE) {
        e->ref.file_path = sqlite3_mprintf("%s", loc->file_path);
        if (e->ref.file_path == NULL) {
            rc = SQLITE_NOMEM;
            goto cleanup;
        }
    }
    rc = open_store(e->ref.file_path, o, table, &e->ref.store, err);
    if (rc != SQLITE_OK) {
        goto cleanup;
    }
    e->refs = 1;
    e->next = registry_head;
    registry_head = e;
    *out = &e->ref;
    e = NULL;
cleanup:
    pthread_mutex_unlock(&registry_mutex);
    if (e != NULL) {
        sqlite3_free(e->share_key);
        sqlite3_free(e->ref.file_path);
        sqlite3_free(e);
    }
    return rc;
}

void feox_registry_retain(feox_entry_ref *ref)
{
    registry_entry *e = (registry_entry *)ref;
    pthread_mutex_lock(&registry_mutex);
    e->refs++;
    pthread_mutex_unlock(&registry_mutex);
}

bool feox_registry_is_dropped(feox_entry_ref *ref)
{
    registry_entry *e = (registry_entry *)ref;
    pthread_mutex_lock(&registry_mutex);
    bool dropped = e->dropped;
    pthread_mutex_unlock(&registry_mutex);
    return dropped;
}

int feox_registry_refs(feox_entry_ref *ref)
{
    registry_entry *e = (registry_entry *)ref;
    pthread_mutex_lock(&registry_mutex);
    int n = e->refs;
    pthread_mutex_unlock(&registry_mutex);
    return n;
}

void feox_registry_release(feox_entry_ref *ref)
{
    registry_entry *e = (registry_entry *)ref;
    if (e == NULL) {
        return;
    }
    pthread_mutex_lock(&registry_mutex);
    if (--e->refs > 0) {
        pthread_mutex_unlock(&registry_mutex);
        return;
    }
    for (registry_entry **pp = &registry_head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            break;
        }
    }
    /* The final close flushes and unlocks; a close error has nowhere to go (xDisconnect cannot
     * fail), and every acknowledged write was already handed to the engine. */
    (void)feox_close(e->ref.store);
    if (e->dropped && e->ref.file_path != NULL) {
        feox_remove_store_files(e->ref.file_path);
    }
    pthread_mutex_unlock(&registry_mutex);
    sqlite3_free(e->share_key);
    sqlite3_free(e->ref.file_path);
    sqlite3_free(e);
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

void feox_registry_drop(feox_entry_ref *ref, int caller_refs)
{
    registry_entry *e = (registry_entry *)ref;
    pthread_mutex_lock(&registry_mutex);
    e->dropped = true;
    sqlite3_free(e->share_key);
    e->share_key = NULL;
    if (e->ref.file_path != NULL) {
        if (e->refs > caller_refs) {
            /* Others still write through this instance: removing the file now would let their
             * writes (and compactions, which rename over the path) go astray. Empty it; the files
             * go with the last reference, or the store is reused if the table is created again. */
            clear_store(e->ref.store);
        } else {
            feox_remove_store_files(e->ref.file_path);
        }
    }
    pthread_mutex_unlock(&registry_mutex);
}

/* Call fn(dir, name, suffix) for every sidecar "<base>-*" / "<base>.*" of path. */
static void for_each_sidecar(const char *path,
                             void (*fn)(void *ctx, const char *dir, const char *name,
                                        const char *suffix),
                             void *ctx)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash == NULL   ? sqlite3_mprintf(".")
                : slash == path ? sqlite3_mprintf("/")
                                : sqlite3_mprintf("%.*s", (int)(slash - path), path);
    const char *base = slash == NULL ? path : slash + 1;
    size_t base_len = strlen(base);
    DIR *d = dir != NULL ? opendir(dir) : NULL;
    if (d != NULL) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strncmp(de->d_name, base, base_len) == 0 &&
                (de->d_name[base_len] == '-' || de->d_name[base_len] == '.') &&
                de->d_name[base_len + 1] != '\0') {
                fn(ctx, dir, de->d_name, de->d_name + base_len);
            }
        }
        closedir(d);
    }
    sqlite3_free(dir);
}

static void unlink_sidecar(void *ctx, const char *dir, const char *name, const char *suffix)
{
    (void)ctx;
    (void)suffix;
    char *p = sqlite3_mprintf("%s/%s", dir, name);
    if (p != NULL) {
        unlink(p);
        sqlite3_free(p);
    }
}

void feox_remove_store_files(const char *path)
{
    unlink(path);
    for_each_sidecar(path, unlink_sidecar, NULL);
}

static void rename_sidecar(void *ctx, const char *dir, const char *name, const char *suffix)
{
    const char *new_path = ctx;
    char *from = sqlite3_mprintf("%s/%s", dir, name);
    char *to = sqlite3_mprintf("%s%s", new_path, suffix);
    if (from != NULL && to != NULL) {
        rename(from, to);
    }
    sqlite3_free(from);
    sqlite3_free(to);
}

int feox_registry_rename(feox_entry_ref *ref, const char *table, const feox_location *new_loc,
                         const feox_options *o, int caller_refs, char **err)
{
    registry_entry *e = (registry_entry *)ref;
    int rc = SQLITE_OK;
    char *new_key = NULL;
    char *new_path = NULL;
    pthread_mutex_lock(&registry_mutex);
    if (e->dropped || e->share_key == NULL || new_loc->share_key == NULL) {
        goto cleanup; /* private memory store: nothing is keyed by name */
    }
    bool move_file = e->ref.file_path != NULL && new_loc->default_path &&
                     new_loc->file_path != NULL && strcmp(e->ref.file_path, new_loc->file_path);
    new_key = sqlite3_mprintf("%s", new_loc->share_key);
    new_path = move_file ? sqlite3_mprintf("%s", new_loc->file_path) : NULL;
    if (new_key == NULL || (move_file && new_path == NULL)) {
        rc = SQLITE_NOMEM;
        goto cleanup;
    }
    if (move_file) {
        if (e->refs > caller_refs) {
            *err = sqlite3_mprintf("feox: %s: cannot rename: the store '%s' is in use by another "
                                   "connection",
                                   table, e->ref.file_path);
            rc = SQLITE_BUSY;
            goto cleanup;
        }
        if (access(new_path, F_OK) == 0) {
            *err = sqlite3_mprintf("feox: %s: cannot rename: '%s' already exists", table, new_path);
            rc = SQLITE_ERROR;
            goto cleanup;
        }
        (void)feox_close(e->ref.store);
        e->ref.store = NULL;
        for_each_sidecar(e->ref.file_path, rename_sidecar, new_path);
        bool moved = rename(e->ref.file_path, new_path) == 0;
        const char *open_path = moved ? new_path : e->ref.file_path;
        rc = open_store(open_path, o, table, &e->ref.store, err);
        if (rc != SQLITE_OK) {
            goto cleanup; /* the entry has no store now: later calls fail with CLOSED */
        }
        if (!moved) {
            *err = sqlite3_mprintf("feox: %s: cannot rename '%s' to '%s'", table, e->ref.file_path,
                                   new_path);
            rc = SQLITE_IOERR;
            goto cleanup;
        }
        sqlite3_free(e->ref.file_path);
        e->ref.file_path = new_path;
        new_path = NULL;
    }
    sqlite3_free(e->share_key);
    e->share_key = new_key;
    new_key = NULL;
cleanup:
    pthread_mutex_unlock(&registry_mutex);
    sqlite3_free(new_key);
    sqlite3_free(new_path);
    return rc;
}

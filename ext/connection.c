/*
 * connection.c — the extension's state for one SQLite connection.
 *
 * It holds two lists:
 *   - the live feox_vtab objects of this connection, so the SQL functions can find a table by
 *     name (several instances of one table may coexist briefly after a schema reset; the newest
 *     is first);
 *   - attachments: (schema, table) -> one reference on the table's store. The connection keeps
 *     its stores open until it closes (or the table is dropped), so a schema reset that
 *     disconnects a vtab before reconnecting it never loses a memory-only store, and "closing the
 *     last connection that uses a store" is what releases it.
 *
 * Pending file actions (file_actions.c) of the connection are settled when a function looks a
 * table up and, for good, when the connection closes: connection_actions.c, above file_actions.c,
 * which itself uses the attachments kept here.
 *
 * Lifetime: the state is reference counted. The module registration, each SQL function
 * registration and each vtab hold a reference; SQLite drops the registrations when the
 * connection closes. A process-wide list maps sqlite3* -> state so that loading the extension
 * twice on one connection reuses it. All other access happens under the connection's own mutex
 * (SQLite serialises the callbacks of one connection).
 */
#include <pthread.h>
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

struct feox_attachment {
    char *schema;
    char *table;
    char *share_key; /* NULL for a private memory store */
    feox_entry_ref *entry;
    feox_attachment *next;
};

struct feox_conn {
    uint64_t id; /* unique in the process, never reused (file_actions.c compares by it) */
    sqlite3 *db;
    int refs;
    feox_vtab *vtabs;
    feox_attachment *attachments;
    feox_conn *next;
};

static pthread_mutex_t conns_mutex = PTHREAD_MUTEX_INITIALIZER;
static feox_conn *conns_head;
static uint64_t conns_next_id = 1; /* guarded by conns_mutex */

feox_conn *feox_conn_get(sqlite3 *db)
{
    feox_conn *c;
    pthread_mutex_lock(&conns_mutex);
    for (c = conns_head; c != NULL; c = c->next) {
        if (c->db == db) {
            c->refs++;
            goto done;
        }
    }
    c = sqlite3_malloc(sizeof *c);
    if (c != NULL) {
        memset(c, 0, sizeof *c);
        c->id = conns_next_id++;
        c->db = db;
        c->refs = 1;
        c->next = conns_head;
        conns_head = c;
    }
done:
    pthread_mutex_unlock(&conns_mutex);
    return c;
}

void feox_conn_retain(feox_conn *c)
{
    pthread_mutex_lock(&conns_mutex);
    c->refs++;
    pthread_mutex_unlock(&conns_mutex);
}

static void attachment_free(feox_attachment *a)
{
    feox_registry_release(a->entry);
    sqlite3_free(a->schema);
    sqlite3_free(a->table);
    sqlite3_free(a->share_key);
    sqlite3_free(a);
}

bool feox_conn_unref(feox_conn *c)
{
    pthread_mutex_lock(&conns_mutex);
    if (--c->refs > 0) {
        pthread_mutex_unlock(&conns_mutex);
        return false;
    }
    for (feox_conn **pp = &conns_head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&conns_mutex);
    c->db = NULL; /* the connection is closing: its handle may not be used any more */
    while (c->attachments != NULL) {
        feox_attachment *a = c->attachments;
        c->attachments = a->next;
        attachment_free(a);
    }
    return true;
}

void feox_conn_free(feox_conn *c)
{
    sqlite3_free(c);
}

uint64_t feox_conn_id(feox_conn *c)
{
    return c != NULL ? c->id : 0;
}

sqlite3 *feox_conn_db(feox_conn *c)
{
    return c != NULL ? c->db : NULL;
}

void feox_conn_add_vtab(feox_conn *c, feox_vtab *vt)
{
    vt->next_in_conn = c->vtabs;
    c->vtabs = vt;
}

void feox_conn_remove_vtab(feox_conn *c, feox_vtab *vt)
{
    for (feox_vtab **pp = &c->vtabs; *pp != NULL; pp = &(*pp)->next_in_conn) {
        if (*pp == vt) {
            *pp = vt->next_in_conn;
            return;
        }
    }
}

/* A vtab whose store was dropped by another connection of this process: this connection's schema
 * still shows the table until SQLite notices the change, which only a statement naming a table
 * does (a SELECT feox_incr(...) names none). Never handed to a function: the call would change
 * or read a table that no longer exists (or was replaced); the caller connects the table by name
 * instead, and SQLite then reloads the schema (no such table, or the new table). */
static bool is_stale(feox_vtab *vt)
{
    return vt->dbs == NULL && vt->entry != NULL && feox_registry_is_dropped(vt->entry);
}

/* The newest vtab named (schema, table), schema NULL: any schema. *stale: one was found that
 * is stale and no newer one. */
static feox_vtab *lookup_named(feox_conn *c, const char *schema, const char *table, bool *stale)
{
    for (feox_vtab *vt = c->vtabs; vt != NULL; vt = vt->next_in_conn) {
        if ((schema == NULL || sqlite3_stricmp(vt->schema, schema) == 0) &&
            sqlite3_stricmp(vt->name, table) == 0) {
            if (!is_stale(vt)) {
                return vt;
            }
            *stale = true;
        }
    }
    return NULL;
}

feox_vtab *feox_conn_lookup_vtab(feox_conn *c, const char *schema, const char *table)
{
    /* Unqualified names resolve as SQLite does: temp first, then main, then attached. A stale
     * vtab ends the search: the table SQLite would find may not be connected yet. */
    static const char *const order[] = {"temp", "main", NULL};
    bool stale = false;
    if (schema != NULL) {
        return lookup_named(c, schema, table, &stale);
    }
    for (int i = 0; order[i] != NULL; i++) {
        feox_vtab *vt = lookup_named(c, order[i], table, &stale);
        if (vt != NULL || stale) {
            return vt;
        }
    }
    return lookup_named(c, NULL, table, &stale);
}

static feox_attachment **find_attachment(feox_conn *c, const char *schema, const char *table)
{
    for (feox_attachment **pp = &c->attachments; *pp != NULL; pp = &(*pp)->next) {
        if (sqlite3_stricmp((*pp)->schema, schema) == 0 &&
            sqlite3_stricmp((*pp)->table, table) == 0) {
            return pp;
        }
    }
    return NULL;
}

static bool same_key(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

feox_entry_ref *feox_conn_attached(feox_conn *c, const char *schema, const char *table,
                                   const char *share_key)
{
    feox_attachment **pp = find_attachment(c, schema, table);
    if (pp == NULL) {
        return NULL;
    }
    if (!same_key((*pp)->share_key, share_key) || feox_registry_is_dropped((*pp)->entry)) {
        /* The name now means another store (a different database attached under the same
         * schema name, or the table was dropped and created again by another connection): let
         * the old one go. */
        feox_attachment *a = *pp;
        *pp = a->next;
        attachment_free(a);
        return NULL;
    }
    return (*pp)->entry;
}

int feox_conn_attach(feox_conn *c, const char *schema, const char *table, const char *share_key,
                     feox_entry_ref *e)
{
    feox_attachment *a = sqlite3_malloc(sizeof *a);
    if (a == NULL) {
        return SQLITE_NOMEM;
    }
    memset(a, 0, sizeof *a);
    a->schema = sqlite3_mprintf("%s", schema);
    a->table = sqlite3_mprintf("%s", table);
    a->share_key = share_key ? sqlite3_mprintf("%s", share_key) : NULL;
    if (a->schema == NULL || a->table == NULL || (share_key != NULL && a->share_key == NULL)) {
        sqlite3_free(a->schema);
        sqlite3_free(a->table);
        sqlite3_free(a->share_key);
        sqlite3_free(a);
        return SQLITE_NOMEM;
    }
    feox_registry_retain(e);
    a->entry = e;
    a->next = c->attachments;
    c->attachments = a;
    return SQLITE_OK;
}

feox_entry_ref *feox_conn_attachment_entry(feox_conn *c, const char *schema, const char *table)
{
    feox_attachment **pp = find_attachment(c, schema, table);
    return pp != NULL ? (*pp)->entry : NULL;
}

void feox_conn_detach(feox_conn *c, const char *schema, const char *table)
{
    feox_attachment **pp = find_attachment(c, schema, table);
    if (pp != NULL) {
        feox_attachment *a = *pp;
        *pp = a->next;
        attachment_free(a);
    }
}

void feox_conn_rename(feox_conn *c, const char *schema, const char *table, const char *new_table,
                      const char *new_share_key)
{
    feox_attachment **pp = find_attachment(c, schema, table);
    if (pp == NULL) {
        return;
    }
    char *t = sqlite3_mprintf("%s", new_table);
    char *k = new_share_key ? sqlite3_mprintf("%s", new_share_key) : NULL;
    if (t == NULL || (new_share_key != NULL && k == NULL)) {
        sqlite3_free(t);
        sqlite3_free(k);
        return; /* out of memory: the old name stays; the next connect re-resolves */
    }
    sqlite3_free((*pp)->table);
    sqlite3_free((*pp)->share_key);
    (*pp)->table = t;
    (*pp)->share_key = k;
}

int feox_conn_entry_refs(feox_conn *c, feox_entry_ref *e)
{
    int n = 0;
    for (feox_vtab *vt = c->vtabs; vt != NULL; vt = vt->next_in_conn) {
        n += vt->entry == e;
    }
    for (feox_attachment *a = c->attachments; a != NULL; a = a->next) {
        n += a->entry == e;
    }
    return n;
}

void feox_conn_detach_entry(feox_conn *c, feox_entry_ref *e)
{
    feox_attachment **pp = &c->attachments;
    while (*pp != NULL) {
        if ((*pp)->entry == e) {
            feox_attachment *a = *pp;
            *pp = a->next;
            attachment_free(a);
        } else {
            pp = &(*pp)->next;
        }
    }
}

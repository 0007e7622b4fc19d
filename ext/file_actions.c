/*
 * file_actions.c — DROP, RENAME and CREATE change store files only once SQLite's transaction has
 * decided them.
 *
 * SQLite calls xDestroy, xRename and xCreate inside the transaction that changes the schema, and
 * that transaction may still roll back (ROLLBACK, ROLLBACK TO, a COMMIT that fails with "database
 * is locked", a crash). So these methods change no file irreversibly; each records an action:
 *
 *   DROP    the table's store is released (a memory store is held by the action); on commit the
 *           file is removed (registry.c: only if no other table shows it, and only through
 *           feox_remove_store_file, which checks magic, owner and that no open holds it); on
 *           rollback nothing happens (xConnect opens the file again; a memory store goes back to
 *           the connection).
 *   CREATE  of a file that did not exist: on rollback the file is removed (it is this table's:
 *           its header records the table as owner); on commit nothing.
 *   RENAME  of a table in its default file "<db>-<table>.feox": the file name follows the table,
 *           and the new name must find its data at once (SQLite reconnects it in the same
 *           statement). So the file is renamed immediately (feox_rename_store_file), but it keeps
 *           recording the owner it had before the transaction; on rollback it is renamed back.
 *           On commit the file records the new name as its owner (feox_set_owner, also for an
 *           explicit path whose file recorded the old name). Other tables are re-keyed (and
 *           re-keyed back on rollback).
 * Changes of one table within one transaction make one action: a second RENAME extends the first
 * (or cancels it, back at the first name), a DROP after a pending RENAME joins it (rolled back:
 * the file moves back; committed: the file goes from where the RENAME put it), a DROP after a
 * pending CREATE replaces it, and a RENAME after a pending CREATE carries it to the new name.
 *
 * Deciding. An action is settled by reading the schema, never by guessing from callbacks:
 *   - rolled back: the connection that made the change sees the old schema again (DROP: the table
 *     is back; CREATE: it is gone; RENAME: the old name is back and the new one gone). This is
 *     checked at any time, also inside a transaction (ROLLBACK TO).
 *   - committed: the connection sees the new schema while it is outside any transaction and no
 *     write is under way (so every schema change it shows has committed: changing the schema is
 *     a write). Once the connection has closed, or its database was detached, a separate
 *     read-only connection to the database file (which sees only committed data) decides; for a
 *     closed in-memory database, which nobody else can read, a change made outside BEGIN counts
 *     as committed (its commit cannot fail for a lock) and one inside BEGIN stays undecided.
 *   - xCreate (and xRename to a name) are special: the connection's view already shows the new
 *     table. Outside BEGIN, an earlier DROP of that name must have committed (had it been rolled
 *     back the statement would have failed with "already exists"); inside BEGIN only the
 *     committed schema can say so, and if it cannot, the statement is refused ("... COMMIT
 *     first"): the new table would otherwise open the old table's file.
 * Actions are settled when the connection is next used by feox (xCreate, xConnect, xBegin, every
 * scan and write, the SQL functions) and when it closes (SQLite has rolled back by then, so the
 * committed schema is final). An action that still cannot be decided at close is dropped and its
 * files stay where they are: a leftover file is harmless, a lost one is not.
 *
 * Crash safety (a crash means no settlement at all):
 *   - DROP: nothing was removed before the decision, so a crash before or after the COMMIT leaves
 *     the file: the table, if the DROP did not commit, finds all its data; if it did, the file is
 *     a harmless leftover (a later CREATE of the same name opens it again, as before).
 *   - CREATE: a crash leaves the file it created; harmless, as above.
 *   - RENAME (default file): the file is renamed before the COMMIT, still recording the old
 *     name as owner. A crash before the COMMIT (in autocommit mode a single statement; inside
 *     BEGIN ... COMMIT the whole transaction) leaves the data in "<db>-<new name>.feox" while the
 *     schema keeps the old name: the old name's xConnect finds its file missing, looks in the
 *     database's directory for the one "<db>-*.feox" that verifies as a feox store recording it
 *     as owner, that no open holds, no pending action concerns and no table of the committed
 *     schema uses, and renames it back (feox_actions_recover_missing). A crash after the COMMIT
 *     and before the settlement leaves "<db>-<new name>.feox" recording the old name: the new
 *     name's xConnect sees that no table of the committed schema is that owner and adopts the
 *     file (feox_actions_adopt: feox_set_owner), so its DROP removes it. The hash recorded
 *     cannot say which database the old name belonged to: a default file named after this
 *     table of this database whose owner is no table of its committed schema is taken as this
 *     table's. Nothing else is ever touched; nothing is removed.
 *   - RENAME (explicit path): nothing moves. A crash before the settlement leaves the file
 *     recording the old name, and its DROP then leaves the file (harmless).
 *
 * Concurrency: one mutex guards the list; an action is taken off the list while it is being
 * settled, so two threads never settle the same action, and no SQL runs under the mutex.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

typedef enum action_kind { ACTION_DROP, ACTION_CREATE, ACTION_RENAME } action_kind;
typedef enum verdict { UNDECIDED, COMMITTED, ROLLED_BACK } verdict;

typedef struct action {
    action_kind kind;
    uint64_t conn_id; /* feox_conn_id of the connection that made the change; 0 once it closed */
    bool autocommit;  /* it was outside an explicit transaction then */
    char *db_file;    /* "" for an in-memory or temporary database */
    char *schema;
    char *table;          /* DROP, CREATE: the table; RENAME: the old name */
    char *new_table;      /* RENAME */
    char *path;           /* the file (RENAME: where it was), NULL for memory stores */
    char *new_path;       /* RENAME that moved the file: where it is now */
    char *owner;          /* owner of path (the table's owner string) */
    char *file_owner;     /* RENAME: the owner the file records until the RENAME is decided */
    char *new_owner;      /* RENAME: owner of new_path */
    char *share_key;      /* registry key (RENAME: the old one) */
    char *new_key;        /* RENAME: the new registry key */
    bool default_path;    /* the file is the table's default file (may record no owner) */
    feox_entry_ref *held; /* DROP of a memory store: keeps its data until decided */
    bool dropped;         /* RENAME: the renamed table was then dropped in the same transaction */
    struct action *next;
} action;

static pthread_mutex_t actions_mutex = PTHREAD_MUTEX_INITIALIZER;
static action *actions_head;
/* Lets the common case (nothing pending) skip the mutex. Changed under the mutex and read
 * without it as a hint: relaxed, since nothing is read on the strength of it (a non-zero count
 * leads to the mutex, which orders the list) and a connection's own pushes happen before its
 * own later reads (same thread, or ordered by SQLite's connection mutex). */
static _Atomic int actions_count;

/* True if c made action a. Connections are compared by id, never by pointer: a closed
 * connection's memory may be reused by a new one. */
static bool is_own(const action *a, feox_conn *c)
{
    return c != NULL && a->conn_id != 0 && a->conn_id == feox_conn_id(c);
}

static char *dup_or_null(const char *s, bool *nomem)
{
    if (s == NULL) {
        return NULL;
    }
    char *d = sqlite3_mprintf("%s", s);
    if (d == NULL) {
        *nomem = true;
    }
    return d;
}

static void action_free(action *a)
{
    if (a == NULL) {
        return;
    }
    feox_registry_release(a->held);
    sqlite3_free(a->db_file);
    sqlite3_free(a->schema);
    sqlite3_free(a->table);
    sqlite3_free(a->new_table);
    sqlite3_free(a->path);
    sqlite3_free(a->new_path);
    sqlite3_free(a->owner);
    sqlite3_free(a->file_owner);
    sqlite3_free(a->new_owner);
    sqlite3_free(a->share_key);
    sqlite3_free(a->new_key);
    sqlite3_free(a);
}

static void push(action *a)
{
    pthread_mutex_lock(&actions_mutex);
    a->next = actions_head;
    actions_head = a;
    atomic_fetch_add_explicit(&actions_count, 1, memory_order_relaxed);
    pthread_mutex_unlock(&actions_mutex);
}

/* A new action of connection c about (schema, table) at loc. */
static action *action_new(action_kind kind, feox_conn *c, const char *schema, const char *table,
                          const feox_location *loc)
{
    action *a = sqlite3_malloc(sizeof *a);
    if (a == NULL) {
        return NULL;
    }
    memset(a, 0, sizeof *a);
    bool nomem = false;
    a->kind = kind;
    a->conn_id = feox_conn_id(c);
    a->autocommit = sqlite3_get_autocommit(feox_conn_db(c)) != 0;
    a->db_file = dup_or_null(loc->db_file ? loc->db_file : "", &nomem);
    a->schema = dup_or_null(schema, &nomem);
    a->table = dup_or_null(table, &nomem);
    a->path = dup_or_null(loc->kind == FEOX_LOC_FILE ? loc->file_path : NULL, &nomem);
    a->owner = dup_or_null(loc->owner, &nomem);
    a->share_key = dup_or_null(loc->share_key, &nomem);
    a->default_path = loc->default_path;
    if (nomem) {
        action_free(a);
        return NULL;
    }
    return a;
}

typedef struct table_ctx {
    feox_conn *c;
    const char *schema;
    const char *table;
} table_ctx;

/* A RENAME of c that gave (schema, table) its name (not dropped since). */
/* a is t's connection's action of this kind, in t's schema, whose name (a->table, or a->new_table
 * for what a RENAME gave the name) is t's table. */
static bool names_table(const action *a, const table_ctx *t, action_kind kind, const char *name)
{
    return a->kind == kind && is_own(a, t->c) && !sqlite3_stricmp(a->schema, t->schema) &&
           !sqlite3_stricmp(name, t->table);
}

static bool renamed_to(const action *a, const void *ctx)
{
    return !a->dropped && names_table(a, ctx, ACTION_RENAME, a->new_table);
}

/* Take c's pending RENAME to (schema, table) off the list, or NULL. */
static action *take_rename_to(feox_conn *c, const char *schema, const char *table);

int feox_actions_add_drop(feox_conn *c, const char *schema, const char *table,
                          const feox_location *loc, feox_entry_ref *held)
{
    action *renamed = take_rename_to(c, schema, table);
    if (renamed != NULL) {
        /* Dropped after a RENAME that is still pending: one action decides both. Committed:
         * neither name exists and the file (where the RENAME put it) goes; rolled back: the
         * old name is back and the file moves back (a memory store goes back to it). */
        renamed->dropped = true;
        if (held != NULL) {
            feox_registry_retain(held);
            renamed->held = held;
        }
        push(renamed);
        return SQLITE_OK;
    }
    action *a = action_new(ACTION_DROP, c, schema, table, loc);
    if (a == NULL) {
        return SQLITE_NOMEM;
    }
    if (held != NULL) {
        feox_registry_retain(held);
        a->held = held;
    }
    push(a);
    return SQLITE_OK;
}

int feox_actions_add_create(feox_conn *c, const char *schema, const char *table,
                            const feox_location *loc)
{
    action *a = action_new(ACTION_CREATE, c, schema, table, loc);
    if (a == NULL) {
        return SQLITE_NOMEM;
    }
    push(a);
    return SQLITE_OK;
}

int feox_actions_add_rename(feox_conn *c, const char *schema, const char *table,
                            const char *new_table, const feox_location *from,
                            const feox_location *to, const char *file_owner, bool moved)
{
    action *prev = take_rename_to(c, schema, table);
    if (prev != NULL) {
        /* a second RENAME of the same table in one transaction: one action from the first name
         * to the last (none if the table got its first name back) */
        if (sqlite3_stricmp(prev->table, new_table) == 0 && (prev->new_path == NULL) == !moved) {
            action_free(prev);
            return SQLITE_OK;
        }
        bool nomem = false;
        char *n = dup_or_null(new_table, &nomem);
        char *p = moved ? dup_or_null(to->file_path, &nomem) : NULL;
        char *o = dup_or_null(to->owner, &nomem);
        char *k = dup_or_null(to->share_key, &nomem);
        if (nomem) {
            sqlite3_free(n);
            sqlite3_free(p);
            sqlite3_free(o);
            sqlite3_free(k);
            push(prev);
            return SQLITE_NOMEM;
        }
        sqlite3_free(prev->new_table);
        prev->new_table = n;
        if (moved) {
            sqlite3_free(prev->new_path);
            prev->new_path = p;
        }
        sqlite3_free(prev->new_owner);
        prev->new_owner = o;
        sqlite3_free(prev->new_key);
        prev->new_key = k;
        push(prev);
        return SQLITE_OK;
    }
    action *a = action_new(ACTION_RENAME, c, schema, table, from);
    if (a == NULL) {
        return SQLITE_NOMEM;
    }
    bool nomem = false;
    a->new_table = dup_or_null(new_table, &nomem);
    a->new_path = dup_or_null(moved ? to->file_path : NULL, &nomem);
    a->new_owner = dup_or_null(to->owner, &nomem);
    a->new_key = dup_or_null(to->share_key, &nomem);
    a->file_owner = dup_or_null(file_owner, &nomem);
    if (nomem) {
        action_free(a);
        return SQLITE_NOMEM;
    }
    push(a);
    return SQLITE_OK;
}

/* Whether the query sql (mprintf'd, freed here; NULL: it could not be allocated) finds a row, with
 * ?1 bound to param1 and ?2 to param2 (NULL: the query has no ?2): 1 if it does, 0 if not, -1 on
 * error. */
static int query_finds_row(sqlite3 *db, char *sql, const char *param1, const char *param2)
{
    sqlite3_stmt *st = NULL;
    int rc = sql ? sqlite3_prepare_v2(db, sql, -1, &st, NULL) : SQLITE_NOMEM;
    sqlite3_free(sql);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_bind_text(st, 1, param1, -1, SQLITE_STATIC);
    if (param2 != NULL) {
        sqlite3_bind_text(st, 2, param2, -1, SQLITE_STATIC);
    }
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* 1 if schema has a table named table (as SQLite compares names), 0 if not, -1 on error. */
static int table_exists(sqlite3 *db, const char *schema, const char *table)
{
    char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_schema WHERE type = 'table' AND "
                                "name = ?1 COLLATE NOCASE",
                                schema);
    return query_finds_row(db, sql, table, NULL);
}

/* 1 if another table of schema (not `table`) has a CREATE statement that names base (the file's
 * base name): it could use the same file. Conservative: any mention counts. -1 on error. */
static int other_table_names(sqlite3 *db, const char *schema, const char *table, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *sql = sqlite3_mprintf("SELECT 1 FROM \"%w\".sqlite_schema WHERE type = 'table' AND "
                                "name <> ?1 COLLATE NOCASE AND sql LIKE 'CREATE VIRTUAL TABLE%%' "
                                "AND instr(sql, ?2) > 0",
                                schema);
    return query_finds_row(db, sql, table, base);
}

/* A read-only connection to db_file: it sees only committed data. NULL if it cannot be read. */
static sqlite3 *open_committed(const char *db_file)
{
    sqlite3 *db = NULL;
    if (db_file == NULL || db_file[0] == '\0') {
        return NULL;
    }
    if (sqlite3_open_v2(db_file, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, 200);
    return db;
}

/* The schema as `view` shows it decides a: COMMITTED if it shows the change, ROLLED_BACK if it
 * shows the old state (only trusted when the caller says so), else UNDECIDED. */
static verdict judge(const action *a, sqlite3 *view, const char *schema, bool may_commit,
                     bool may_roll_back)
{
    int t = table_exists(view, schema, a->table);
    int n = a->kind == ACTION_RENAME ? table_exists(view, schema, a->new_table) : 0;
    if (t < 0 || n < 0) {
        return UNDECIDED;
    }
    bool changed, unchanged;
    switch (a->kind) {
    case ACTION_DROP:
        changed = !t;
        unchanged = t;
        break;
    case ACTION_CREATE:
        changed = t;
        unchanged = !t;
        break;
    default:
        changed = a->dropped ? !t && !n : n && !t;
        unchanged = a->dropped ? t : t && !n;
        break;
    }
    if (changed && may_commit) {
        return COMMITTED;
    }
    if (unchanged && may_roll_back) {
        return ROLLED_BACK;
    }
    return UNDECIDED;
}

/* Decide a, as seen from connection c (c may be NULL; conn_id 0: its connection closed).
 * Its own connection's view decides a rollback at any time; a commit only outside a transaction
 * and while no write is under way (the schema it shows is then the committed one: a statement
 * that changes the schema writes). A closed connection's actions are decided by the committed
 * schema, read through a separate read-only connection. */
static verdict decide(const action *a, feox_conn *c)
{
    if (a->conn_id != 0) {
        sqlite3 *db = is_own(a, c) ? feox_conn_db(c) : NULL;
        if (db == NULL) {
            return UNDECIDED; /* only its own connection sees its open transaction */
        }
        bool settled =
            sqlite3_get_autocommit(db) && sqlite3_txn_state(db, NULL) != SQLITE_TXN_WRITE;
        const char *file = sqlite3_db_filename(db, a->schema);
        bool attached = file != NULL && strcmp(file, a->db_file) == 0;
        if (attached || a->db_file[0] == '\0') {
            return judge(a, db, a->schema, settled, true);
        }
        if (!settled) {
            return UNDECIDED;
        }
        /* its database was detached (no transaction can be open on it): read the file */
    } else if (a->db_file[0] == '\0') {
        /* closed in-memory database: an autocommit change was committed when its statement
         * ended; one inside a transaction cannot be known any more */
        return a->autocommit ? COMMITTED : UNDECIDED;
    }
    sqlite3 *committed = open_committed(a->db_file);
    if (committed == NULL) {
        return UNDECIDED;
    }
    verdict v = judge(a, committed, "main", true, true);
    sqlite3_close(committed);
    return v;
}

/* 1 if another table could use path: this process has it open for a table other than owner's,
 * or another table of the schema names it. c: the connection whose view to read (NULL: the
 * committed schema). */
static int file_still_named(const action *a, feox_conn *c)
{
    sqlite3 *view = NULL;
    const char *schema = "main";
    sqlite3 *db = is_own(a, c) ? feox_conn_db(c) : NULL;
    const char *file = db ? sqlite3_db_filename(db, a->schema) : NULL;
    bool own = file != NULL && strcmp(file, a->db_file) == 0;
    if (own) {
        view = feox_conn_db(c);
        schema = a->schema;
    } else if (a->db_file[0] != '\0') {
        view = open_committed(a->db_file);
    }
    int named = view ? other_table_names(view, schema, a->table, a->path) : 0;
    if (view != NULL && !own) {
        sqlite3_close(view);
    }
    return named;
}

/* A committed DROP: remove the file (unless another table could use it) or forget the memory
 * store. */
static void drop_committed(action *a, feox_conn *c)
{
    if (a->held != NULL) {
        feox_registry_forget(a->held, 1);
        return; /* action_free releases the held reference */
    }
    if (a->path != NULL && file_still_named(a, c) == 0) {
        feox_registry_drop_file(a->path, a->owner, a->default_path ? FEOX_FILE_ALLOW_UNOWNED : 0);
    }
}

/* A rolled-back DROP: a held memory store goes back to its connection. */
static void drop_rolled_back(action *a, feox_conn *c)
{
    if (a->held != NULL && is_own(a, c)) {
        (void)feox_conn_attach(c, a->schema, a->table, a->share_key, a->held);
    }
}

/* A rolled-back CREATE: remove the file it created, once nothing holds it and no other table
 * names it. Returns false if it must wait (the connection still has the store open). */
static bool create_rolled_back(action *a, feox_conn *c)
{
    if (a->path == NULL) {
        return true;
    }
    if (is_own(a, c)) {
        feox_conn_detach(c, a->schema, a->table);
    }
    if (feox_registry_find_file(a->path) != NULL) {
        return a->conn_id == 0; /* still open (a vtab not yet disconnected): try again later */
    }
    if (file_still_named(a, c) == 0) {
        (void)feox_remove_store_file(a->path, a->owner, 0);
    }
    return true;
}

/* A rolled-back RENAME: the file and the names go back. Returns false if it must wait. */
static bool rename_rolled_back(action *a, feox_conn *c)
{
    feox_conn *own = is_own(a, c) ? c : NULL;
    feox_entry_ref *e = own ? feox_conn_attachment_entry(own, a->schema, a->new_table) : NULL;
    if (a->new_path != NULL) {
        feox_entry_ref *open = feox_registry_find_file(a->new_path);
        if (open != NULL) {
            int mine = own ? feox_conn_entry_refs(own, open) : 0;
            char *err = NULL;
            int rc = feox_registry_move(open, a->new_table, a->path, a->new_owner, a->owner,
                                        a->file_owner, mine, &err);
            sqlite3_free(err);
            if (rc != SQLITE_OK) {
                return false;
            }
        } else if (feox_registry_move_closed(a->new_path, a->path, a->file_owner,
                                             FEOX_FILE_ALLOW_UNOWNED) != FEOX_OK) {
            return true; /* nothing to move back (or not ours): leave the files alone */
        }
    } else if (e != NULL && a->share_key != NULL) {
        (void)feox_registry_rekey(e, a->share_key);
    }
    if (own != NULL) {
        feox_conn_rename(own, a->schema, a->new_table, a->table, a->share_key);
    }
    if (a->held != NULL && own != NULL) {
        /* renamed, then dropped: the memory store goes back under its first name */
        if (a->share_key != NULL) {
            (void)feox_registry_rekey(a->held, a->share_key);
        }
        (void)feox_conn_attach(own, a->schema, a->table, a->share_key, a->held);
    }
    return true;
}

/* A committed RENAME of a table with a file: the file, which kept the old name's owner until
 * now, records the new name's (only if it still records the old one). If this fails (another
 * process holds the file, no memory) the default file is adopted by the next xConnect of the new
 * name (feox_actions_adopt); an explicit path keeps the old owner (its DROP then leaves it). */
static void rename_committed(action *a)
{
    const char *path = a->new_path != NULL ? a->new_path : a->path;
    if (path != NULL) {
        (void)feox_registry_set_file_owner(path, feox_owner_hash(a->file_owner), a->owner,
                                           a->new_owner,
                                           a->default_path ? FEOX_FILE_ALLOW_UNOWNED : 0);
    }
}

/* Carry out a's verdict. Returns false if a stays pending. */
static bool carry_out(action *a, feox_conn *c, verdict v)
{
    switch (v) {
    case COMMITTED:
        if (a->kind == ACTION_RENAME && a->dropped) {
            /* renamed, then dropped: the file is where the RENAME put it, and still records the
             * owner it had before the RENAME */
            a->kind = ACTION_DROP;
            if (a->new_path != NULL) {
                char *p = a->path;
                a->path = a->new_path;
                a->new_path = p;
            }
            if (a->file_owner != NULL) {
                char *o = a->owner;
                a->owner = a->file_owner;
                a->file_owner = o;
            }
        } else if (a->kind == ACTION_RENAME) {
            rename_committed(a);
        }
        if (a->kind == ACTION_DROP) {
            drop_committed(a, c);
        }
        return true;
    case ROLLED_BACK:
        if (a->kind == ACTION_DROP) {
            drop_rolled_back(a, c);
            return true;
        }
        return a->kind == ACTION_CREATE ? create_rolled_back(a, c) : rename_rolled_back(a, c);
    default: return false;
    }
}

/* Take the actions for which want(a, ctx) holds off the list (they are settled outside the
 * mutex and the undecided ones put back). */
static action *take(bool (*want)(const action *a, const void *ctx), const void *ctx)
{
    action *taken = NULL;
    pthread_mutex_lock(&actions_mutex);
    action **pp = &actions_head;
    while (*pp != NULL) {
        action *a = *pp;
        if (want(a, ctx)) {
            *pp = a->next;
            a->next = taken;
            taken = a;
            atomic_fetch_sub_explicit(&actions_count, 1, memory_order_relaxed);
        } else {
            pp = &a->next;
        }
    }
    pthread_mutex_unlock(&actions_mutex);
    return taken;
}

/* A DROP that joined a pending RENAME and was then rolled back to a savepoint (c's view shows
 * the renamed table again, and not the old name): the action is a plain RENAME again. (A new
 * table of that name cannot be the cause: its CREATE is refused while the DROP is pending.) */
static void undrop(action *a, feox_conn *c)
{
    if (a->kind != ACTION_RENAME || !a->dropped || a->held != NULL || !is_own(a, c)) {
        return;
    }
    sqlite3 *db = feox_conn_db(c);
    const char *file = db ? sqlite3_db_filename(db, a->schema) : NULL;
    if (file != NULL && strcmp(file, a->db_file) == 0 &&
        table_exists(db, a->schema, a->new_table) == 1 &&
        table_exists(db, a->schema, a->table) == 0) {
        a->dropped = false;
    }
}

/* Settle a list of taken actions from c; put the undecided ones back (keep_undecided) or drop
 * them (their files stay as they are). */
static void settle_list(action *list, feox_conn *c, bool keep_undecided)
{
    while (list != NULL) {
        action *a = list;
        list = a->next;
        a->next = NULL;
        undrop(a, c);
        if (carry_out(a, c, decide(a, c)) || !keep_undecided) {
            action_free(a);
        } else {
            push(a);
        }
    }
}

static bool of_conn(const action *a, const void *ctx)
{
    return is_own(a, (feox_conn *)ctx);
}

void feox_actions_settle(feox_conn *c)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0 || c == NULL) {
        return;
    }
    settle_list(take(of_conn, c), c, true);
}

void feox_actions_connection_closed(feox_conn *c)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return;
    }
    action *list = take(of_conn, c);
    for (action *a = list; a != NULL; a = a->next) {
        a->conn_id = 0; /* a rolled-back memory store has no connection to go back to */
    }
    settle_list(list, NULL, false);
}

typedef struct name_ctx {
    feox_conn *c;
    const char *schema;
    const char *table;
    const char *path;
    const char *renaming; /* xRename: the table's current name (its pending RENAME is merged) */
} name_ctx;

/* Actions a new table (schema, table) at path depends on: any about its name on this
 * connection, and DROPs and RENAMEs of its file. */
static bool about_name(const action *a, const void *ctx)
{
    const name_ctx *n = ctx;
    bool same_db = is_own(a, n->c) && sqlite3_stricmp(a->schema, n->schema) == 0;
    if (same_db && n->renaming != NULL && a->kind == ACTION_RENAME && !a->dropped &&
        sqlite3_stricmp(a->new_table, n->renaming) == 0) {
        return false; /* the RENAME this one continues: merged by feox_actions_add_rename */
    }
    bool names = same_db && (sqlite3_stricmp(a->table, n->table) == 0 ||
                             (a->new_table && sqlite3_stricmp(a->new_table, n->table) == 0));
    bool file = a->kind != ACTION_CREATE && n->path != NULL &&
                ((a->path && strcmp(a->path, n->path) == 0) ||
                 (a->new_path && strcmp(a->new_path, n->path) == 0));
    return names || file;
}

/* Decide a for a statement that is about to give (schema, table) to a new table on c. */
static verdict decide_for_name(const action *a, feox_conn *c, const char *schema, const char *table)
{
    sqlite3 *db = feox_conn_db(c);
    bool autocommit = db != NULL && sqlite3_get_autocommit(db);
    bool same_db = is_own(a, c) && sqlite3_stricmp(a->schema, schema) == 0;
    bool was_name = same_db && sqlite3_stricmp(a->table, table) == 0;
    bool became_name = same_db && a->new_table && sqlite3_stricmp(a->new_table, table) == 0;
    if (is_own(a, c) && autocommit) {
        /* Outside a transaction every earlier statement is over, and this one changes nothing
         * but this name; had an earlier change of the name been rolled back, this statement
         * would have failed ("already exists") before reaching feox: a DROP of the name (or a
         * RENAME away from it) committed, a CREATE of it (or a RENAME to it) did not. */
        if (was_name || became_name) {
            bool freed = was_name && a->kind != ACTION_CREATE;
            return freed ? COMMITTED : ROLLED_BACK;
        }
        return judge(a, db, a->schema, true, true);
    }
    if (was_name || became_name) {
        /* Inside a transaction this connection's view already shows the new table: only the
         * committed schema can say that the earlier change of the name committed. */
        sqlite3 *committed = open_committed(a->db_file);
        verdict v = committed ? judge(a, committed, "main", true, false) : UNDECIDED;
        sqlite3_close(committed);
        return v;
    }
    verdict v = decide(a, c);
    if (v == UNDECIDED && !is_own(a, c) && a->db_file[0] != '\0') {
        /* another connection's action on this file: the committed schema may say */
        sqlite3 *committed = open_committed(a->db_file);
        if (committed != NULL) {
            v = judge(a, committed, "main", true, false);
            sqlite3_close(committed);
        }
    }
    return v;
}

int feox_actions_before_name(feox_conn *c, const char *schema, const char *table,
                             const char *file_path, const char *renaming, char **err)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return SQLITE_OK;
    }
    name_ctx n = {c, schema, table, file_path, renaming};
    action *list = take(about_name, &n);
    int rc = SQLITE_OK;
    while (list != NULL) {
        action *a = list;
        list = a->next;
        a->next = NULL;
        undrop(a, c);
        if (carry_out(a, c, decide_for_name(a, c, schema, table))) {
            action_free(a);
            continue;
        }
        if (rc == SQLITE_OK) {
            *err = sqlite3_mprintf("feox: %s: a table of this name or file was dropped or renamed "
                                   "in a transaction that is still open; COMMIT first",
                                   table);
            rc = SQLITE_ERROR;
        }
        push(a);
    }
    return rc;
}

static bool moved_from(const action *a, const void *ctx)
{
    return a->kind == ACTION_RENAME && a->new_path != NULL && strcmp(a->path, ctx) == 0;
}

bool feox_actions_path_moving(const char *path)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return false;
    }
    pthread_mutex_lock(&actions_mutex);
    bool moving = false;
    for (action *a = actions_head; a != NULL && !moving; a = a->next) {
        moving = moved_from(a, path);
    }
    pthread_mutex_unlock(&actions_mutex);
    return moving;
}

bool feox_actions_unnamed_elsewhere(feox_conn *c, sqlite3 *db, const char *schema,
                                    const char *table)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return false;
    }
    const char *db_file = sqlite3_db_filename(db, schema);
    if (db_file == NULL || db_file[0] == '\0') {
        return false;
    }
    pthread_mutex_lock(&actions_mutex);
    bool found = false;
    for (action *a = actions_head; a != NULL && !found; a = a->next) {
        found = (a->kind == ACTION_DROP || a->kind == ACTION_RENAME) && !is_own(a, c) &&
                strcmp(a->db_file, db_file) == 0 && sqlite3_stricmp(a->table, table) == 0;
    }
    pthread_mutex_unlock(&actions_mutex);
    return found;
}

static action *take_rename_to(feox_conn *c, const char *schema, const char *table)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return NULL;
    }
    table_ctx t = {c, schema, table};
    action *list = take(renamed_to, &t);
    while (list != NULL && list->next != NULL) {
        action *extra = list->next; /* cannot happen (one pending RENAME per name): keep it */
        list->next = extra->next;
        push(extra);
    }
    return list;
}

static bool creates_table(const action *a, const void *ctx)
{
    return names_table(a, ctx, ACTION_CREATE, a->table);
}

void feox_actions_forget_create(feox_conn *c, const char *schema, const char *table)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return;
    }
    table_ctx t = {c, schema, table};
    action *list = take(creates_table, &t);
    while (list != NULL) {
        action *a = list;
        list = a->next;
        action_free(a);
    }
}

int feox_actions_retarget_create(feox_conn *c, const char *schema, const char *table,
                                 const char *new_table, const feox_location *to, bool moved)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return SQLITE_OK;
    }
    table_ctx t = {c, schema, table};
    action *list = take(creates_table, &t);
    int rc = SQLITE_OK;
    while (list != NULL) {
        action *a = list;
        list = a->next;
        bool nomem = false;
        char *name = dup_or_null(new_table, &nomem);
        char *path = moved ? dup_or_null(to->file_path, &nomem) : NULL;
        if (nomem) {
            sqlite3_free(name);
            sqlite3_free(path);
            action_free(a); /* the file stays if that CREATE is rolled back: harmless */
            rc = SQLITE_NOMEM;
            continue;
        }
        /* the owner stays: the file records its creator until the RENAME has committed */
        sqlite3_free(a->table);
        a->table = name;
        if (moved) {
            sqlite3_free(a->path);
            a->path = path;
        }
        push(a);
    }
    return rc;
}

/* A RENAME of c that gave (schema, table) its name, dropped since or not (the DROP may have been
 * rolled back to a savepoint). */
static bool renamed_to_any(const action *a, const void *ctx)
{
    return names_table(a, ctx, ACTION_RENAME, a->new_table);
}

char *feox_actions_pending_owner(feox_conn *c, const char *schema, const char *table)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return NULL;
    }
    table_ctx t = {c, schema, table};
    char *owner = NULL;
    pthread_mutex_lock(&actions_mutex);
    for (action *a = actions_head; a != NULL; a = a->next) {
        if (renamed_to_any(a, &t)) {
            owner = a->file_owner != NULL ? sqlite3_mprintf("%s", a->file_owner) : NULL;
            break;
        }
    }
    pthread_mutex_unlock(&actions_mutex);
    return owner;
}

/* True if a pending action of any connection concerns the file at path. */
static bool path_pending(const char *path)
{
    if (atomic_load_explicit(&actions_count, memory_order_relaxed) == 0) {
        return false;
    }
    bool pending = false;
    pthread_mutex_lock(&actions_mutex);
    for (action *a = actions_head; a != NULL && !pending; a = a->next) {
        pending = (a->path != NULL && strcmp(a->path, path) == 0) ||
                  (a->new_path != NULL && strcmp(a->new_path, path) == 0);
    }
    pthread_mutex_unlock(&actions_mutex);
    return pending;
}

/* The committed schema of db_file, as seen for recovery: 1 if table is a table of it and no other
 * table of it uses path (as its default file, or by naming it in its CREATE statement) or, with
 * owner_hash != 0, records owner_hash as its owner; 0 if not; -1 if it cannot be read. */
static int committed_allows(const char *db_file, const char *table, const char *path,
                            uint64_t owner_hash)
{
    sqlite3 *db = open_committed(db_file);
    if (db == NULL) {
        return -1;
    }
    int ok = table_exists(db, "main", table);
    if (ok == 1 && path != NULL) {
        int named = other_table_names(db, "main", table, path);
        ok = named < 0 ? -1 : !named;
    }
    sqlite3_stmt *st = NULL;
    if (ok == 1 && sqlite3_prepare_v2(db,
                                      "SELECT name FROM main.sqlite_schema WHERE type = 'table' "
                                      "AND name <> ?1 COLLATE NOCASE",
                                      -1, &st, NULL) != SQLITE_OK) {
        ok = -1;
    }
    if (st != NULL) {
        sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    }
    int rc = SQLITE_DONE;
    while (ok == 1 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        char *owner = name ? feox_store_owner(db_file, name) : NULL;
        char *def = name ? feox_default_store_path(db_file, name) : NULL;
        if (owner == NULL || def == NULL) {
            ok = -1;
        } else if ((owner_hash != 0 && feox_owner_hash(owner) == owner_hash) ||
                   (path != NULL && strcmp(def, path) == 0)) {
            ok = 0;
        }
        sqlite3_free(owner);
        sqlite3_free(def);
    }
    if (ok == 1 && rc != SQLITE_DONE) {
        ok = -1;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* The one store file in the directory of loc's database named "<db>-*.feox" that records
 * owner_hash and that nobody holds (mprintf'd), or NULL if there is none or more than one. */
static char *find_own_file(const feox_location *loc, uint64_t owner_hash)
{
    const char *slash = strrchr(loc->db_file, '/');
    if (slash == NULL) {
        return NULL; /* SQLite gives database files as absolute paths */
    }
    char *dir = slash == loc->db_file
                    ? sqlite3_mprintf("/")
                    : sqlite3_mprintf("%.*s", (int)(slash - loc->db_file), loc->db_file);
    char *prefix = sqlite3_mprintf("%s-", slash + 1);
    DIR *d = dir && prefix ? opendir(dir) : NULL;
    char *found = NULL;
    int matches = 0;
    size_t plen = prefix ? strlen(prefix) : 0;
    for (struct dirent *ent; d != NULL && matches < 2 && (ent = readdir(d)) != NULL;) {
        size_t len = strlen(ent->d_name);
        if (len <= plen + 5 || strncmp(ent->d_name, prefix, plen) != 0 ||
            strcmp(ent->d_name + len - 5, ".feox") != 0) {
            continue;
        }
        char *cand = sqlite3_mprintf("%s/%s", slash == loc->db_file ? "" : dir, ent->d_name);
        feox_file_info info;
        if (cand != NULL && strcmp(cand, loc->file_path) != 0 &&
            feox_store_file_info(cand, &info) == FEOX_OK && info.owner_hash == owner_hash &&
            !info.in_use) {
            matches++;
            sqlite3_free(found);
            found = cand;
            cand = NULL;
        }
        sqlite3_free(cand);
    }
    if (d != NULL) {
        closedir(d);
    }
    sqlite3_free(dir);
    sqlite3_free(prefix);
    if (matches != 1) {
        sqlite3_free(found);
        return NULL;
    }
    return found;
}

void feox_actions_recover_missing(const char *table, const feox_location *loc)
{
    uint64_t owner_hash = feox_owner_hash(loc->owner);
    char *from = find_own_file(loc, owner_hash);
    if (from == NULL) {
        return;
    }
    /* Its own name must be free for it and nobody here may be using or moving the file; the
     * committed schema must show this table and no other table using that file. */
    if (feox_registry_find_file(from) == NULL && feox_registry_find_file(loc->file_path) == NULL &&
        !path_pending(from) && !path_pending(loc->file_path) &&
        committed_allows(loc->db_file, table, from, 0) == 1) {
        /* rename back, exactly this owner's feox store (checked again under its lock); never
         * over an existing file */
        (void)feox_registry_move_closed(from, loc->file_path, loc->owner, 0);
    }
    sqlite3_free(from);
}

void feox_actions_adopt(const char *table, const feox_location *loc)
{
    feox_file_info info;
    if (feox_store_file_info(loc->file_path, &info) != FEOX_OK || info.owner_hash == 0 ||
        info.owner_hash == feox_owner_hash(loc->owner) || path_pending(loc->file_path)) {
        return; /* the common case: the file records this table (or nobody) */
    }
    /* The owner must be no table of the committed schema (the table renamed away), and this
     * table one of it. */
    if (committed_allows(loc->db_file, table, NULL, info.owner_hash) == 1) {
        (void)feox_registry_set_file_owner(loc->file_path, info.owner_hash, NULL, loc->owner, 0);
    }
}

/*
 * options.c — the options of CREATE VIRTUAL TABLE ... USING feox(...), and where the data lives.
 *
 *   CREATE VIRTUAL TABLE kv USING feox(path='data.feox', max_memory='512MB', sync='normal',
 *                                      keytype='text', ttl_sweep_interval=250, flush_interval=100);
 *
 *   path                store file; ':memory:' = memory only (default: see below)
 *   max_memory          bytes: 1000, '512MB' (10^6), '512MiB' (2^20), also B/KB/KiB/GB/GiB/TB/TiB
 *                       (case-insensitive); 0 = unlimited (default)
 *   sync                off | normal (default) | full
 *   keytype             text (default) | blob
 *   ttl_sweep_interval  milliseconds between expiry sweeps (default 250); 0 = no sweeper
 *   flush_interval      sync=normal: milliseconds between background flushes (default 100)
 *   clock               wall (default) | log: where "now" comes from inside a write. 'log' is the
 *                       deterministic mode for statement replication (rqlite): a logical clock
 *                       kept in the database, advanced only by a replicated statement
 *                       (logical_clock.c says what it changes); only for a table whose records
 *                       are in the database (no path, a file database)
 * Values may be quoted ('x' or "x"). An unknown option, a repeated one or a bad value fails the
 * CREATE with a message naming the option.
 *
 * Where the data lives:
 *   - path=':memory:' — memory only;
 *   - path='file' — that store file (write-behind, one process: the opt-in fast mode); a relative
 *     path is relative to the database file's directory (the current directory for an
 *     in-memory database);
 *   - no path, file database (main or attached) — in the database (kind DATABASE, db_mode.c):
 *     shadow tables "<table>_data", ... of that database, a cache per connection;
 *   - no path, file database, previous release: an existing table whose shadow tables do not
 *     exist (every table this release creates has them) was created by the previous release
 *     and goes on using its default store file "<db file>-<table>.feox" (the table name
 *     encoded: see feox_default_store_path), so it never shows as empty with its data beside
 *     it; its file keeps the file-mode rules (owner check, RENAME moves it, DROP removes it);
 *   - no path, in-memory or temporary database — memory only (unless the database holds the
 *     table's shadow tables: a database file deserialized or restored into memory, or a memdb
 *     VFS database "/name", where CREATE puts them as in a file: vtab.c).
 * Once a table has been resolved, its vtab pins the kind (feox_options.pinned): a file appearing
 * later never moves a database-mode table, nor the other way round. Built with FEOX_DB_MODE=0,
 * every table without path in a file database uses its default store file (the old default).
 * A memory-only table in a file database is shared by the process's connections to that database
 * file (registry key "memory:@<dev>.<inode>:<table>": a hard link is the same database, a copy,
 * or a new file at the same path, is another one; a connection whose file was deleted or moved before it connected
 * the table keeps the table to itself), and so is one in a memdb VFS database "/name"
 * ("memory:memdb:/name:<table>"); in any other in-memory or temporary database it is private to
 * the connection. File stores are shared by absolute path.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feox_ext.h"

SQLITE_EXTENSION_INIT3

/* Copy of s without surrounding quotes ('..', "..", `..`, [..]); doubled quotes collapse. Sets
 * *out (NULL: out of memory). False when s starts with a quote that does not enclose all of it
 * (path='a'b, path='a' 'b': a lone closing quote inside, or none at the end), which would
 * otherwise be taken as the file name "'a'b" or "a' 'b". */
static bool dequote(const char *s, size_t n, char **out)
{
    *out = sqlite3_malloc64(n + 1);
    if (*out == NULL) {
        return true;
    }
    char q = n >= 1 ? s[0] : 0;
    char close = q == '[' ? ']' : q;
    if (q != '\'' && q != '"' && q != '`' && q != '[') {
        memcpy(*out, s, n);
        (*out)[n] = '\0';
        return true;
    }
    if (n < 2 || s[n - 1] != close) {
        return false;
    }
    size_t j = 0;
    for (size_t i = 1; i + 1 < n; i++) {
        if (s[i] == close) {
            if (q == '[' || i + 2 >= n || s[i + 1] != close) {
                return false; /* a closing quote before the end */
            }
            i++; /* a doubled quote: one of it */
        }
        (*out)[j++] = s[i];
    }
    (*out)[j] = '\0';
    return true;
}

static void trim(const char **s, size_t *n)
{
    while (*n > 0 && isspace((unsigned char)(*s)[0])) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && isspace((unsigned char)(*s)[*n - 1])) {
        (*n)--;
    }
}

/* Parse "<digits>[unit]" into bytes. */
static bool parse_size(const char *v, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},
        {"b", 1},
        {"kb", 1000ull},
        {"mb", 1000ull * 1000},
        {"gb", 1000ull * 1000 * 1000},
        {"tb", 1000ull * 1000 * 1000 * 1000},
        {"kib", 1ull << 10},
        {"mib", 1ull << 20},
        {"gib", 1ull << 30},
        {"tib", 1ull << 40},
    };
    const char *p = v;
    uint64_t n = 0;
    if (!isdigit((unsigned char)*p)) {
        return false;
    }
    while (isdigit((unsigned char)*p)) {
        unsigned d = (unsigned)(*p - '0');
        if (n > (UINT64_MAX - d) / 10) {
            return false;
        }
        n = n * 10 + d;
        p++;
    }
    while (*p == ' ') {
        p++;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (sqlite3_stricmp(p, units[i].unit) == 0) {
            if (n != 0 && units[i].mult > UINT64_MAX / n) {
                return false;
            }
            *out = n * units[i].mult;
            return true;
        }
    }
    return false;
}

static bool parse_u32(const char *v, uint32_t *out)
{
    char *end;
    if (!isdigit((unsigned char)v[0])) {
        return false;
    }
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0' || n > UINT32_MAX) {
        return false;
    }
    *out = (uint32_t)n;
    return true;
}

/* Apply one name=value pair. */
static int apply_option(feox_options *o, const char *table, const char *name, const char *value,
                        unsigned *seen, char **err)
{
    static const char *const names[] = {
        "path", "max_memory", "sync", "keytype", "ttl_sweep_interval", "flush_interval", "clock"};
    int idx = -1;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++) {
        if (sqlite3_stricmp(name, names[i]) == 0) {
            idx = i;
        }
    }
    if (idx < 0) {
        *err = sqlite3_mprintf("feox: %s: unknown option '%s'", table, name);
        return SQLITE_ERROR;
    }
    if (*seen & (1u << idx)) {
        *err = sqlite3_mprintf("feox: %s: option '%s' given twice", table, names[idx]);
        return SQLITE_ERROR;
    }
    *seen |= 1u << idx;
    bool ok = true;
    switch (idx) {
    case 0:
        ok = value[0] != '\0';
        if (ok) {
            o->path = sqlite3_mprintf("%s", value);
            if (o->path == NULL) {
                return SQLITE_NOMEM;
            }
        }
        break;
    case 1: ok = parse_size(value, &o->max_memory); break;
    case 2:
        if (sqlite3_stricmp(value, "off") == 0) {
            o->sync = FEOX_SYNC_OFF;
        } else if (sqlite3_stricmp(value, "normal") == 0) {
            o->sync = FEOX_SYNC_NORMAL;
        } else if (sqlite3_stricmp(value, "full") == 0) {
            o->sync = FEOX_SYNC_FULL;
        } else {
            ok = false;
        }
        break;
    case 3:
        if (sqlite3_stricmp(value, "text") == 0) {
            o->keytype = FEOX_KEYTYPE_TEXT;
        } else if (sqlite3_stricmp(value, "blob") == 0) {
            o->keytype = FEOX_KEYTYPE_BLOB;
        } else {
            ok = false;
        }
        break;
    case 4:
        ok = parse_u32(value, &o->ttl_sweep_interval_ms);
        o->ttl_sweep_set = true;
        break;
    case 5: ok = parse_u32(value, &o->flush_interval_ms); break;
    default:
        if (sqlite3_stricmp(value, "wall") == 0) {
            o->clock_log = false;
        } else if (sqlite3_stricmp(value, "log") == 0) {
            o->clock_log = true;
        } else {
            ok = false;
        }
        break;
    }
    if (!ok) {
        static const char *const expect[] = {
            "a file name or ':memory:'",
            "a size such as 1048576, '512MB' or '1GiB'",
            "off, normal or full",
            "text or blob",
            "a number of milliseconds",
            "a number of milliseconds",
            "wall or log",
        };
        *err = sqlite3_mprintf("feox: %s: bad value '%s' for option '%s' (expected %s)", table,
                               value, names[idx], expect[idx]);
        return SQLITE_ERROR;
    }
    return SQLITE_OK;
}

int feox_options_parse(int argc, const char *const *argv, feox_options *out, char **err)
{
    int rc = SQLITE_OK;
    unsigned seen = 0;
    char *name = NULL;
    char *value = NULL;
    memset(out, 0, sizeof *out);
    out->sync = FEOX_SYNC_NORMAL;
    out->keytype = FEOX_KEYTYPE_TEXT;
    for (int i = 3; i < argc; i++) {
        const char *arg = argv[i];
        const char *eq = strchr(arg, '=');
        if (eq == NULL) {
            const char *s = arg;
            size_t n = strlen(arg);
            trim(&s, &n);
            (void)dequote(s, n, &name); /* only named in the message */
            if (name == NULL) {
                rc = SQLITE_NOMEM;
                goto cleanup;
            }
            *err =
                sqlite3_mprintf("feox: %s: option '%s' needs a value (name=value)", argv[2], name);
            rc = SQLITE_ERROR;
            goto cleanup;
        }
        const char *ns = arg;
        size_t nn = (size_t)(eq - arg);
        const char *vs = eq + 1;
        size_t vn = strlen(vs);
        trim(&ns, &nn);
        trim(&vs, &vn);
        bool name_ok = dequote(ns, nn, &name);
        bool value_ok = dequote(vs, vn, &value);
        if (name == NULL || value == NULL) {
            rc = SQLITE_NOMEM;
            goto cleanup;
        }
        if (!name_ok || !value_ok) {
            *err = sqlite3_mprintf("feox: %s: option %.*s: unbalanced quotes in %s %.*s",
                                   argv[2], (int)nn, ns, name_ok ? "its value" : "its name",
                                   (int)(name_ok ? vn : nn), name_ok ? vs : ns);
            rc = SQLITE_ERROR;
            goto cleanup;
        }
        rc = apply_option(out, argv[2], name, value, &seen, err);
        out->given = seen;
        if (rc != SQLITE_OK) {
            goto cleanup;
        }
        sqlite3_free(name);
        sqlite3_free(value);
        name = value = NULL;
    }
cleanup:
    sqlite3_free(name);
    sqlite3_free(value);
    if (rc != SQLITE_OK) {
        feox_options_free(out);
    }
    return rc;
}

void feox_options_free(feox_options *o)
{
    sqlite3_free(o->path);
    o->path = NULL;
}

/* Default store file name: "<db file>-<table>.feox", the table name as SQLite stores it with
 * '/', backslash, '%' and control characters (bytes < 0x20 and 0x7f) written as %XX (upper-case
 * hex), so a name can never reach another directory and two names never share a file. A name
 * without those characters keeps its plain file name (what earlier versions used). */
char *feox_default_store_path(const char *db_file, const char *table)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(table);
    char *enc = sqlite3_malloc64(3 * n + 1);
    if (enc == NULL) {
        return NULL;
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)table[i];
        if (ch == '/' || ch == '\\' || ch == '%' || ch < 0x20 || ch == 0x7f) {
            enc[j++] = '%';
            enc[j++] = hex[ch >> 4];
            enc[j++] = hex[ch & 0xf];
        } else {
            enc[j++] = (char)ch;
        }
    }
    enc[j] = '\0';
    char *path = sqlite3_mprintf("%s-%s.feox", db_file, enc);
    sqlite3_free(enc);
    return path;
}

/* The owner string recorded in a store file this table creates (feox_config.owner):
 *   "<absolute database file>" 0x1F "<table name as SQLite stores it>"
 * The database file is "" for an in-memory or temporary database. 0x1F (unit separator) cannot
 * appear in a file name SQLite produced from a URI-less open of a normal path, so two different
 * (database, table) pairs never give the same string. */
char *feox_store_owner(const char *db_file, const char *table)
{
    return sqlite3_mprintf("%s\x1f%s", db_file != NULL ? db_file : "", table);
}

/* Absolute form of path: relative paths are taken relative to base_dir (or the cwd if NULL). */
static char *absolute_path(const char *path, const char *base_dir)
{
    if (path[0] == '/') {
        return sqlite3_mprintf("%s", path);
    }
    if (base_dir != NULL) {
        return sqlite3_mprintf("%s/%s", base_dir, path);
    }
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof cwd) == NULL) {
        return NULL;
    }
    return sqlite3_mprintf("%s/%s", cwd, path);
}

/* Is schema in the memdb VFS (an image given to sqlite3_deserialize, or file:/name?vfs=memdb)? */
static bool in_memdb_vfs(sqlite3 *db, const char *schema)
{
    char *vfs = NULL;
    bool memdb = sqlite3_file_control(db, schema, SQLITE_FCNTL_VFSNAME, &vfs) == SQLITE_OK &&
                 vfs != NULL && strstr(vfs, "memdb") != NULL;
    sqlite3_free(vfs);
    return memdb;
}

bool feox_is_file_database(sqlite3 *db, const char *schema)
{
    const char *file = sqlite3_db_filename(db, schema);
    if (file == NULL || file[0] == '\0') {
        return false;
    }
    /* A database deserialized into memory (sqlite3_deserialize) has the file name "x" and lives
     * in the "memdb" VFS: it is memory, not a file. */
    return !in_memdb_vfs(db, schema);
}

/* Of a memdb VFS database: was it opened by name ("/name", shared by the connections that open
 * that name) rather than given to sqlite3_deserialize as an image of its own? SQLite 3.40 names
 * the first "/name" and the second "x" (sqlite3_db_filename); newer releases (3.53 here) name no
 * memdb database ("" for each). Unnamed, only an image is what sqlite3_serialize hands out
 * without a copy: for a database opened by name it returns NULL, after a "PRAGMA page_count" of
 * its own. Every caller asks with the table's schema row written, so the page count is never 0
 * (where sqlite3_serialize would also try "BEGIN IMMEDIATE; COMMIT", which fails harmlessly
 * inside the caller's transaction). An image of no bytes yet has no buffer either and counts as
 * opened by name. */
static bool memdb_opened_by_name(sqlite3 *db, const char *schema)
{
    const char *file = sqlite3_db_filename(db, schema);
    if (file != NULL && file[0] != '\0') {
        return file[0] == '/';
    }
    return sqlite3_serialize(db, schema, NULL, SQLITE_SERIALIZE_NOCOPY) == NULL;
}

bool feox_is_shared_memdb(sqlite3 *db, const char *schema)
{
    return in_memdb_vfs(db, schema) && memdb_opened_by_name(db, schema);
}

bool feox_is_memory_image(sqlite3 *db, const char *schema)
{
    return in_memdb_vfs(db, schema) && !memdb_opened_by_name(db, schema);
}

/* What names the in-memory database schema among the process's databases, for the share key of
 * its memory stores: *id (mprintf'd) and *shared. Only a memdb VFS database "/name" has a name
 * that every connection opening it sees, and only where SQLite tells it (3.40 does; newer
 * releases name no memdb database: feox_is_shared_memdb). Any other in-memory database is
 * private to this connection as far as feox can tell (*shared false): a shared-cache one
 * (file:name?mode=memory&cache=shared) shows no name, and the address of its pager is reused by
 * a later database while a connection may still hold a store of the old one (README). */
static int memory_database_id(sqlite3 *db, const char *schema, char **id, bool *shared)
{
    *id = NULL;
    const char *file = sqlite3_db_filename(db, schema);
    *shared = file != NULL && file[0] == '/' && in_memdb_vfs(db, schema);
    if (*shared) {
        *id = sqlite3_mprintf("memdb:%s", file);
    }
    return *shared && *id == NULL ? SQLITE_NOMEM : SQLITE_OK;
}

/* Do the shadow tables of (schema, table) exist? ("<table>_data", the records; the backend's
 * layout, storage_sqlite.h.) Asked without a statement: sqlite3_table_column_metadata. */
static bool shadow_tables_exist(sqlite3 *db, const char *schema, const char *table)
{
    char *name = sqlite3_mprintf("%s_data", table);
    if (name == NULL) {
        return false;
    }
    int rc = sqlite3_table_column_metadata(db, schema, name, NULL, NULL, NULL, NULL, NULL, NULL);
    sqlite3_free(name);
    return rc == SQLITE_OK;
}

/* A table without path: in the database? xCreate pins DATABASE before it resolves when the
 * database is a file (a new table goes into it); an existing table is in the database exactly
 * when its shadow tables exist, since they are created in the CREATE's own transaction (this
 * also holds for a database file copied into memory: sqlite3_deserialize, .restore). Without
 * them, in a file database, it is a previous-release table: it keeps its default file, and file
 * mode does the rest as before (a missing file connects without a store and is recovered after
 * a crash inside a RENAME; a file of another owner is reported; DROP removes it). */
static bool in_database(sqlite3 *db, const char *schema, const char *table, const feox_options *o)
{
    if (!FEOX_DB_MODE) {
        return false;
    }
    if (o->pinned) {
        return o->pinned_kind == FEOX_LOC_DATABASE;
    }
    return shadow_tables_exist(db, schema, table);
}

/* True if the file db has open for schema is no longer the one at its path (unlinked or
 * renamed, maybe replaced by a new database): SQLite compares the two itself. */
static bool file_moved(sqlite3 *db, const char *schema)
{
    int moved = 0;
    return sqlite3_file_control(db, schema, SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved;
}

/* The share key of a memory-only table in the database file db_file: the file's identity is in
 * it as well as its name, so that a copy, or a new database made at the path of a deleted one
 * while a connection to the old one is still open, never shows the old one's rows. (The open
 * file cannot be removed from the disk while a connection holds it, so its inode is not reused
 * while the store lives.) A file that cannot be stat'ed is named by its path alone. The path
 * names the file db has open only if that file has not moved (asked after the stat: a move in
 * between is seen too); a connection whose file moved before it connected the table cannot name
 * its file, and keeps the table to itself (never another database's rows). */
static char *file_share_key(sqlite3 *db, const char *schema, const char *db_file, const char *table)
{
    struct stat st;
    bool named = stat(db_file, &st) == 0;
    if (file_moved(db, schema)) {
        return sqlite3_mprintf("memory:%s@moved.%p:%s", db_file, (void *)db, table);
    }
    if (!named) {
        return sqlite3_mprintf("memory:%s:%s", db_file, table);
    }
    /* The file alone, not its name: a hard link is the same database (SQLite locks it as one). */
    return sqlite3_mprintf("memory:@%llx.%llx:%s", (unsigned long long)st.st_dev,
                           (unsigned long long)st.st_ino, table);
}

/* A table in the database is as durable as the database and has no background thread: the
 * store-file options would do nothing, so they are refused rather than ignored. */
static int check_database_options(const char *table, const feox_options *o, char **err)
{
    static const struct {
        unsigned bit;
        const char *name;
    } file_only[] = {{FEOX_OPTION_SYNC, "sync"},
                     {FEOX_OPTION_FLUSH_INTERVAL, "flush_interval"},
                     {FEOX_OPTION_TTL_SWEEP_INTERVAL, "ttl_sweep_interval"}};
    for (size_t i = 0; i < sizeof file_only / sizeof file_only[0]; i++) {
        if (o->given & file_only[i].bit) {
            *err = sqlite3_mprintf("feox: %s: option '%s' applies to a store file (path=...); a "
                                   "table in the database is as durable as the database "
                                   "(PRAGMA synchronous) and has no background thread",
                                   table, file_only[i].name);
            return SQLITE_ERROR;
        }
    }
    return SQLITE_OK;
}

int feox_location_resolve(sqlite3 *db, const char *schema, const char *table, const feox_options *o,
                          feox_location *out, char **err)
{
    int rc = SQLITE_OK;
    char *base_dir = NULL;
    char *memory_id = NULL;
    char *lower = sqlite3_mprintf("%s", table);
    const char *db_file = sqlite3_db_filename(db, schema);
    bool file_db = feox_is_file_database(db, schema);
    memset(out, 0, sizeof *out);
    if (lower == NULL) {
        return SQLITE_NOMEM;
    }
    out->db_file = sqlite3_mprintf("%s", file_db ? db_file : "");
    out->owner = feox_store_owner(file_db ? db_file : "", table);
    if (out->db_file == NULL || out->owner == NULL) {
        rc = SQLITE_NOMEM;
        goto cleanup;
    }
    for (char *p = lower; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
    }
    if (file_db) {
        const char *slash = strrchr(db_file, '/');
        base_dir = slash == NULL      ? NULL
                   : slash == db_file ? sqlite3_mprintf("/")
                                      : sqlite3_mprintf("%.*s", (int)(slash - db_file), db_file);
        if (slash != NULL && base_dir == NULL) {
            rc = SQLITE_NOMEM;
            goto cleanup;
        }
    }
    bool shared = false;
    if (!file_db) {
        rc = memory_database_id(db, schema, &memory_id, &shared);
        if (rc != SQLITE_OK) {
            goto cleanup;
        }
    }
    feox_location_kind memory_kind =
        file_db || shared ? FEOX_LOC_SHARED_MEMORY : FEOX_LOC_PRIVATE_MEMORY;
    if (o->path != NULL && strcmp(o->path, ":memory:") == 0) {
        out->kind = memory_kind;
    } else if (o->path == NULL && in_database(db, schema, table, o)) {
        out->kind = FEOX_LOC_DATABASE; /* no share key: every connection has its own cache */
        rc = check_database_options(table, o, err);
        if (rc != SQLITE_OK) { /* *err says which option */
            feox_location_free(out);
            sqlite3_free(memory_id);
            sqlite3_free(base_dir);
            sqlite3_free(lower);
            return rc;
        }
    } else if (o->path == NULL && !file_db) {
        out->kind = memory_kind;
    } else {
        out->kind = FEOX_LOC_FILE;
        if (o->path == NULL) {
            char *def = feox_default_store_path(db_file, table);
            if (def == NULL) {
                rc = SQLITE_NOMEM;
                goto cleanup;
            }
            out->file_path = absolute_path(def, NULL);
            sqlite3_free(def);
            out->default_path = true;
            out->previous_release = FEOX_DB_MODE;
        } else {
            out->file_path = absolute_path(o->path, base_dir);
        }
        if (out->file_path == NULL) {
            rc = SQLITE_NOMEM;
            goto cleanup;
        }
        out->share_key = sqlite3_mprintf("file:%s", out->file_path);
    }
    if (out->kind == FEOX_LOC_SHARED_MEMORY) {
        out->share_key = file_db ? file_share_key(db, schema, db_file, lower)
                                 : sqlite3_mprintf("memory:%s:%s", memory_id, lower);
    }
    if ((out->kind == FEOX_LOC_FILE || out->kind == FEOX_LOC_SHARED_MEMORY) &&
        out->share_key == NULL) {
        rc = SQLITE_NOMEM;
    }
cleanup:
    if (rc != SQLITE_OK) {
        feox_location_free(out);
        if (rc != SQLITE_NOMEM) {
            *err = sqlite3_mprintf("feox: %s: cannot resolve the store location", table);
        }
    }
    sqlite3_free(memory_id);
    sqlite3_free(base_dir);
    sqlite3_free(lower);
    return rc;
}

void feox_location_free(feox_location *loc)
{
    sqlite3_free(loc->file_path);
    sqlite3_free(loc->share_key);
    sqlite3_free(loc->owner);
    sqlite3_free(loc->db_file);
    loc->file_path = NULL;
    loc->share_key = NULL;
    loc->owner = NULL;
    loc->db_file = NULL;
}

/* One option as a user writes it: name='value' with the effective value (defaults filled in). */
static char *option_text(const feox_options *o, int which)
{
    static const char *const sync_names[] = {"normal", "off", "full"};
    switch (which) {
    case 0: return sqlite3_mprintf("sync='%s'", sync_names[o->sync]);
    case 1: return sqlite3_mprintf("max_memory=%llu", (unsigned long long)o->max_memory);
    case 2:
        return sqlite3_mprintf("keytype='%s'", o->keytype == FEOX_KEYTYPE_BLOB ? "blob" : "text");
    case 3:
        return sqlite3_mprintf("ttl_sweep_interval=%u",
                               o->ttl_sweep_set ? o->ttl_sweep_interval_ms : 250u);
    default:
        return sqlite3_mprintf("flush_interval=%u",
                               o->flush_interval_ms != 0 ? o->flush_interval_ms : 100u);
    }
}

char *feox_options_conflict(const feox_options *open, const feox_options *wanted)
{
    for (int which = 0; which < 5; which++) {
        char *a = option_text(open, which);
        char *b = option_text(wanted, which);
        char *msg = NULL;
        if (a != NULL && b != NULL && strcmp(a, b) != 0) {
            msg = sqlite3_mprintf("%s (this table says %s)", a, b);
        }
        bool nomem = a == NULL || b == NULL;
        sqlite3_free(a);
        sqlite3_free(b);
        if (msg != NULL || nomem) {
            return msg != NULL ? msg : sqlite3_mprintf("(out of memory)");
        }
    }
    return NULL;
}

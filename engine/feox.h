/*
 * feox.h — the public API of the feox engine: an embedded, thread-safe key-value store.
 *
 * This header is the manual. Every function says what it does, what its arguments mean and which
 * errors it returns. Nothing else under engine/ is public.
 *
 *   feox_config cfg;
 *   feox_config_init(&cfg);                 // defaults; cfg.path = NULL means memory only
 *   feox_store *s;
 *   if (feox_open(&cfg, &s) != FEOX_OK) ...
 *   feox_insert(s, "user:1", 6, "Ada", 3, NULL, NULL);
 *   void *v; size_t n;
 *   feox_get(s, "user:1", 6, &v, &n, NULL); ... feox_free(v);
 *   feox_close(s);
 *
 * Model
 *   - Keys are 1..FEOX_MAX_KEY_SIZE bytes, ordered by unsigned memcmp (a shorter prefix first).
 *     Values are 0..FEOX_MAX_VALUE_SIZE bytes. Each record also carries a 32-bit opaque tag
 *     (like memcached's client flags), a timestamp and an optional expiry.
 *   - Timestamps are u64 nanoseconds since the Unix epoch. A write is accepted only if its
 *     timestamp is strictly newer than the record's; otherwise FEOX_ERR_OLDER_TIMESTAMP and
 *     nothing changes. Timestamp 0 means "automatic": drawn under the key's lock, strictly greater
 *     than the record's current timestamp, so concurrent automatic writes never fail with
 *     OLDER_TIMESTAMP.
 *   - Expiry is an absolute instant; a record is expired when now > expires_at. Expired records are
 *     absent on every path (get, size, contains, len, range, cursor, CAS, incr, patch, delete,
 *     update_ttl). A background sweeper reclaims them.
 *   - Every function is thread-safe. Point reads, range queries and cursors never take a lock
 *     (an exact feox_len does: see there). Every error leaves the store unchanged. A failing call
 *     may leave a human-readable detail in feox_error_detail().
 *   - The threads the engine starts (a store's maintenance thread, a store file's flusher and
 *     compactor, the background load, the reaper of closed stores) block every signal but
 *     SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS and SIGPROF, whatever the mask of the thread that
 *     caused them to start: a signal sent to the process is taken by one of the application's
 *     threads, never by the engine's.
 */
#ifndef FEOX_H
#define FEOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FEOX_VERSION "0.1.0"
#define FEOX_MAX_KEY_SIZE (100u * 1024u)         /* 102400 bytes */
#define FEOX_MAX_VALUE_SIZE (4u * 1024u * 1024u) /* 4194304 bytes */

/* ---------------------------------------------------------------------------------------------
 * Errors
 * ------------------------------------------------------------------------------------------- */

/* Every engine function returns one of these. FEOX_OK is 0. */
typedef enum feox_err {
    FEOX_OK = 0,
    FEOX_ERR_INVALID_ARGUMENT,  /* a NULL pointer where one is required, or a bad option value */
    FEOX_ERR_INVALID_KEY,       /* key empty or longer than FEOX_MAX_KEY_SIZE */
    FEOX_ERR_INVALID_VALUE,     /* value longer than FEOX_MAX_VALUE_SIZE */
    FEOX_ERR_KEY_NOT_FOUND,     /* key absent or expired */
    FEOX_ERR_KEY_EXISTS,        /* feox_insert with FEOX_WRITE_IF_ABSENT on a live key */
    FEOX_ERR_OLDER_TIMESTAMP,   /* explicit timestamp not strictly newer than the record's */
    FEOX_ERR_OUT_OF_MEMORY,     /* the write would exceed max_memory */
    FEOX_ERR_NOMEM,             /* the system allocator failed */
    FEOX_ERR_INVALID_OPERATION, /* counter value is not exactly 8 bytes */
    FEOX_ERR_JSON_PATCH,        /* stored value or patch not JSON, or an operation failed */
    FEOX_ERR_IO,                /* read, write or fsync failed (see feox_error_detail) */
    FEOX_ERR_DISK_FULL,         /* ENOSPC / EFBIG while writing the store file */
    FEOX_ERR_CORRUPT,           /* the store file is damaged beyond its recoverable tail */
    FEOX_ERR_FORMAT,            /* not a feox file, or a format version this build cannot read */
    FEOX_ERR_LOCKED,            /* another process holds the store file */
    FEOX_ERR_DEGRADED,          /* an earlier fsync failed; the file accepts no more writes */
    FEOX_ERR_CLOSED,            /* the store is shutting down */
    FEOX_ERR_NOT_FOUND,         /* the store file does not exist (no_create, remove, rename) */
    FEOX_ERR_NOT_OWNER,         /* the file is a feox store recorded as another owner's */
    FEOX_ERR_FORKED,            /* the store was opened by the parent of this fork()ed process */
    FEOX_ERR_STALE,             /* storage: the change feed no longer reaches the store's state */
    FEOX_ERR_TAG_MISMATCH,      /* patch with FEOX_WRITE_MATCH_TAG: the stored tag is another */
    FEOX_ERR_READ_ONLY          /* a write to a store opened read_only, or a read-write open of a
                                 * store file this process may not write (see read_only) */
} feox_err;

/* A short constant description of an error code, e.g. "key not found". Never NULL. */
const char *feox_strerror(feox_err err);

/* Detail about the last error returned to this thread (e.g. which JSON Patch operation failed and
 * why, or the path and errno of an I/O failure). Empty string if none. Valid until the next feox
 * call on this thread. */
const char *feox_error_detail(void);

/* ---------------------------------------------------------------------------------------------
 * Opening and closing
 * ------------------------------------------------------------------------------------------- */

typedef struct feox_store feox_store;

typedef enum feox_sync_mode {
    FEOX_SYNC_NORMAL = 0, /* background flusher writes and fsyncs every flush_interval_ms */
    FEOX_SYNC_OFF,        /* written by the background flusher, never fsynced except by flush() */
    FEOX_SYNC_FULL        /* a write returns only once durable; concurrent writers share fsyncs */
} feox_sync_mode;

/* A clock returning nanoseconds since the Unix epoch; used for automatic timestamps and expiry. */
typedef uint64_t (*feox_clock_fn)(void *ctx);

typedef struct feox_config {
    /* Store file. NULL or ":memory:" = memory only (no file, flush is a no-op). Default NULL. */
    const char *path;
    /* Budget in bytes for keys, values, index and per-record overhead; 0 = unlimited (default).
     * In memory mode a write that would exceed it fails with FEOX_ERR_OUT_OF_MEMORY. In persistent
     * mode the values of versions already appended to the store file leave memory first (they
     * are read back on demand through a cache of value_cache_bytes, which is not counted);
     * keys, index and per-record metadata always stay resident, so OUT_OF_MEMORY remains
     * possible when they alone exceed the budget. On open, replayed values beyond half the
     * budget stay on disk. */
    uint64_t max_memory;
    feox_sync_mode sync;         /* default FEOX_SYNC_NORMAL */
    uint32_t flush_interval_ms;  /* sync=normal durability window; 0 = default 100 ms */
    bool disable_ttl_sweeper;    /* default false: the sweeper thread runs */
    uint32_t ttl_sweep_interval_ms; /* 0 = default 250 ms */
    uint64_t initial_capacity;   /* expected number of keys, sizes the hash index; 0 = 1024 */
    uint64_t value_cache_bytes;  /* persistent mode: cache for cold values read back; 0 = 64 MiB */
    bool disable_compaction;     /* default false: space is reclaimed in the background */
    /* Clock for timestamps and expiry; NULL = CLOCK_REALTIME. For tests. */
    feox_clock_fn clock;
    void *clock_ctx;
    /* Persistent mode: who owns the store file, an opaque string (the SQLite extension passes the
     * database file and the table). A file created by this open records feox_owner_hash(owner)
     * in its header; feox_remove_store_file and feox_rename_store_file act only on a file whose
     * recorded owner matches. Opening an existing file does not check it (and compaction keeps
     * what the file records). Read during feox_open only. NULL = no owner. */
    const char *owner;
    /* Persistent mode: do not create a missing file; fail with FEOX_ERR_NOT_FOUND. */
    bool no_create;
    /* Memory mode: the name this process shares the store under. A feox_open with the same
     * share_key returns the open instance (reference counted, its first opener's configuration),
     * as a second open of one path does in persistent mode; feox_set_share_key renames it.
     * NULL = private to this open (default). Ignored in persistent mode (the path is the name).
     * Copied during feox_open. */
    const char *share_key;
    /* Only return the instance this process already has open under path (or share_key), as a
     * second open does: nothing is opened, created or locked. Errors: NOT_FOUND if there is none,
     * FORKED if the only one was inherited through fork() (the parent holds it). */
    bool open_existing;
    /* Where the records are kept (feox_storage.h): NULL = the "log" backend when path is set,
     * memory only otherwise. storage_arg is the backend's own argument (e.g. the SQLite
     * connection and table for "sqlite"). */
    const struct feox_storage_methods *storage;
    void *storage_arg;
    /* Persistent mode: open the existing store file for reading only (INVALID_ARGUMENT in memory
     * mode, and with cfg->storage). The file is opened O_RDONLY, never created (NOT_FOUND if
     * missing), verified as a feox store and held with a shared flock: it conflicts with a
     * read-write open's exclusive lock in either order (LOCKED), not with other read-only opens.
     * The log is replayed (and an index snapshot ending the file used) without writing anything:
     * a torn or damaged tail is skipped in memory, never cut. No flusher, no compaction, no TTL
     * sweeper thread (reads hide expired records anyway), no index snapshot at close, no
     * compaction leftover removed. Every write (insert, delete, update_ttl, incr, cas, patch),
     * feox_compact and feox_set_owner fail with FEOX_ERR_READ_ONLY, changing nothing;
     * feox_flush is a no-op (FEOX_OK); reads, cursors, stats and feox_check work as usual and
     * cost the same. A read-write open of a path open read-only in this process fails with
     * READ_ONLY (the instance cannot be shared with a writer: close it first); a read-only open
     * of a path open read-write in this process fails with LOCKED, as it would in another
     * process (open_existing returns the open instance whatever its mode:
     * feox_store_read_only tells). Default false. */
    bool read_only;
} feox_config;

/* Fill *cfg with the defaults documented above (all zero / NULL). */
void feox_config_init(feox_config *cfg);

/* True if store was opened with read_only (every write fails with FEOX_ERR_READ_ONLY). False for
 * NULL. */
bool feox_store_read_only(const feox_store *store);

/* ---------------------------------------------------------------------------------------------
 * Store files: the engine touches only files it created
 *
 * A store file is created only where nothing exists, atomically: the name appears only once the
 * header is durable (O_TMPFILE + link; engine/storage/log/FORMAT.md has the fallback). An
 * existing file is never written, locked, truncated or removed unless it is a feox store: a
 * directory, FIFO, device or socket is refused before it is opened ("'<path>' exists and is not
 * a feox store: it is not a regular file"), and an empty file, zeros, a header prefix or any
 * other content (a CSV, /proc/self/mem, a /sys file) fails with FEOX_ERR_FORMAT "'<path>' exists
 * and is not a feox store", the file left byte for byte as it was. The only names the engine
 * ever creates are <path> and <path>.compact; removing or renaming a store acts on exactly those,
 * each verified as a feox store of the given owner first, and never while an open holds the
 * store.
 * ------------------------------------------------------------------------------------------- */

/* The 64-bit hash a store file records for owner (never 0; NULL owner = 0). */
uint64_t feox_owner_hash(const char *owner);

/* What a store file's header says, read without opening the store. in_use: an open (in this
 * process or another, a read_only one included) holds the file's lock.
 * Errors: NOT_FOUND, FORMAT (exists and is not a feox store), CORRUPT (header checksum), IO. */
typedef struct feox_file_info {
    uint64_t file_id;
    uint64_t owner_hash; /* 0: no owner recorded (files written before owners existed) */
    bool in_use;
} feox_file_info;
feox_err feox_store_file_info(const char *path, feox_file_info *out);

enum feox_file_flags {
    FEOX_FILE_ALLOW_UNOWNED = 1u << 0 /* also act on a file that records no owner */
};

/* Remove the store file at path and its compaction leftover <path>.compact, only if path is a feox
 * store whose recorded owner is feox_owner_hash(owner) (or none, with FEOX_FILE_ALLOW_UNOWNED) and
 * no open holds it (the check and the unlink happen under the file's lock). The leftover is
 * removed only if it is itself a feox store recording the same owner (otherwise it stays and the
 * removal still succeeds). Nothing else is touched. The directory is fsynced.
 * Errors: INVALID_ARGUMENT (path NULL or empty, unknown flag), NOT_FOUND, FORMAT, CORRUPT,
 * NOT_OWNER, LOCKED (open here or in another process), NOMEM, IO. */
feox_err feox_remove_store_file(const char *path, const char *owner, unsigned flags);

/* Rename the store file from -> to (never replacing anything at to: fails with IO and a detail
 * naming to) and record new_owner in its header (NULL = no owner); the same checks as
 * feox_remove_store_file. The header is rewritten (and fsynced) before the rename, so a crash
 * leaves a valid header under either name; if the rename fails the old owner is written back.
 * A compaction leftover <from>.compact is removed as by feox_remove_store_file.
 * Errors: as feox_remove_store_file (INVALID_ARGUMENT also for to NULL or empty), DISK_FULL,
 * READ_ONLY (this process may not open the file for writing: EACCES, EPERM, EROFS). */
feox_err feox_rename_store_file(const char *from, const char *to, const char *owner,
                                const char *new_owner, unsigned flags);

/* Record owner (NULL = no owner) as the owner of the open store's file: its 64-byte header is
 * rewritten in place (same file id, checksum recomputed) and fsynced, never interleaved with the
 * store's own writes or a compaction; every later compaction keeps the new owner, and
 * feox_remove_store_file / feox_rename_store_file then act for owner only. A crash leaves the
 * old or the new owner. No-op in memory mode.
 * Errors: INVALID_ARGUMENT (store NULL), FORKED, IO, DISK_FULL (the old header is written back),
 * DEGRADED (the fsync failed, or failed earlier), CORRUPT (the header no longer verifies),
 * READ_ONLY (a read_only store: nothing is written). */
feox_err feox_set_owner(feox_store *store, const char *owner);

/* True if store was opened by another process: this one is a fork() child that inherited it.
 * Every call on such a store fails with FEOX_ERR_FORKED and touches neither the file nor its lock;
 * feox_close only forgets it. A child opens the path again (FEOX_ERR_LOCKED while the parent
 * holds it). */
bool feox_store_is_inherited(const feox_store *store);

/* The application's slot of an open instance: one pointer, NULL when the instance is created,
 * shared by every feox_open that returns the instance (same path or share_key) and gone with its
 * last feox_close. The engine never reads or frees it, nor synchronizes access to it: an
 * application that shares instances between threads guards it with its own lock (the SQLite
 * extension keeps each store's options and tables there). NULL if store is NULL. */
void **feox_store_slot(feox_store *store);

/* Rename the memory store's share key (see feox_config.share_key): later opens of share_key
 * return this instance; NULL = no name, later opens of the old name create a new store (the
 * references already held stay valid, each still closed once). A store opened without a share
 * key becomes shared (NULL leaves it private).
 * Errors: INVALID_ARGUMENT (store NULL, or persistent: its path is its name), FORKED, NOMEM. */
feox_err feox_set_share_key(feox_store *store, const char *share_key);

/* Open a store. cfg may be NULL (memory only, defaults). In persistent mode the file is created if
 * nothing exists at the path (unless cfg->no_create; see "Store files" above), replayed if it is a
 * feox store (a torn or corrupt tail is dropped and counted in stats, and cut off the file unless
 * read_only), and locked against other processes. Opening the same path (or, in memory mode,
 * share_key) twice in one process returns the same instance (reference counted; each open needs
 * its own feox_close): the registry of open stores, one per process. A store file closed
 * cleanly ends with an index snapshot (FORMAT.md):
 * its open returns once the snapshot is checked and the indexes load on a background thread;
 * until they have, point reads (feox_get, _into, _ref, _size, feox_contains, feox_get_ttl) are
 * answered from the snapshot and every other call waits for the load (a load that failed is
 * then that call's error, and every later call's). feox_len(FEOX_LEN_ESTIMATE) does not wait.
 * Errors: INVALID_ARGUMENT (out NULL, bad sync mode, read_only in memory mode), NOMEM, IO,
 * DISK_FULL (creating the file), NOT_FOUND (no_create or read_only and no file; open_existing and
 * no open instance), FORMAT (not a feox store, or unknown version), CORRUPT (header checksum),
 * LOCKED (another process holds the file: a writer, or for a read-write open a read-only open
 * too; a read-only open of a path open read-write here), FORKED (open_existing, and the only
 * instance was inherited through fork()), READ_ONLY (a read-write open of an existing feox store
 * this process may not open for writing: EACCES, EPERM or EROFS, named in the detail, so a
 * read_only open would read it; or of a path open read-only in this process). */
feox_err feox_open(const feox_config *cfg, feox_store **out);

/* Close one reference to the store. The last reference stops the background threads, flushes
 * (persistent mode), releases the file lock and frees everything: a store of 65,536 keys or more
 * is freed on a background thread of the process after feox_close returns (its file is closed
 * and unlocked and the store is gone before that, its index snapshot written if it has one;
 * feox_close_wait waits for the memory). A close after writes of 32,768 keys or more builds the
 * index snapshot on up to 8 threads (as many as the process may run on), started and joined
 * inside feox_close. NULL is a no-op.
 * Returns the error of the final flush, if any (the store is closed either way). On a store
 * inherited through fork() it only forgets the store and returns FEOX_OK: no flush, no write, no
 * unlock (the parent still owns all of it); its memory is not freed (its mutexes may be held by
 * threads that do not exist in the child). */
feox_err feox_close(feox_store *store);

/* Wait until the memory of every store whose last feox_close returned before this call has been
 * given back (see feox_close). For a program that measures its memory, or about to exec. */
void feox_close_wait(void);

/* Process lifecycle
 *   fork()      a child never uses a store opened before the fork (see feox_store_is_inherited):
 *               it opens the path again. The child's copies of the store's descriptors are
 *               closed at the fork, so the parent alone holds the file lock: once the parent
 *               closes the store, the child's (or anyone's) open succeeds. feox_open never
 *               returns an inherited instance (a path open in the parent opens anew).
 *   exit        a normal exit (return from main, exit(), a language runtime's exit, an uncaught
 *               exception that ends the process through exit()) and unloading the library
 *               (dlclose) flush every store this process opened and did not close: write + fsync
 *               of everything acknowledged, in every sync mode. A write acknowledged while the
 *               exit handlers run may miss it. exit() must not be called from inside a feox call
 *               (a clock or allocator hook) nor from a signal handler; nor may fork().
 *   _exit(), quick_exit(), kill -9, a crash of the process: no handler runs. Lost: sync=off,
 *               everything the flusher has not yet written (about the last flush_interval_ms;
 *               at most the 32 MiB buffer); sync=normal, the same; sync=full, nothing
 *               acknowledged.
 *               What reached the file (the page cache) survives the process.
 *   power cut   lost: sync=off, everything since the last feox_flush (or close, or exit flush);
 *               sync=normal, the last flush interval plus one write and fsync; sync=full,
 *               nothing acknowledged.
 *   disk full   under sync=off and sync=normal, once a background write of the store file has
 *               failed (ENOSPC, EFBIG, EDQUOT: FEOX_ERR_DISK_FULL; others: FEOX_ERR_IO), every
 *               later write first retries it and fails with its error, changing nothing, until
 *               a write succeeds; so what is acknowledged and not in the file never exceeds what
 *               was buffered when the disk filled. Under sync=full a write whose group commit
 *               fails returns that error and has no effect, nor have the writes that shared
 *               the group commit: each is undone in memory (other threads may have read it
 *               meanwhile) and its record is cancelled in the file, so it does not come back
 *               once space is freed. A failed fsync is FEOX_ERR_DEGRADED for good. */

/* Make everything acknowledged before this call durable (write + fsync). No-op in memory mode
 * and for a read_only store (nothing to write).
 * Errors: IO, DISK_FULL, DEGRADED (an fsync failed earlier: nothing is assumed durable). */
feox_err feox_flush(feox_store *store);

/* Rewrite the store file to hold only live records, now (normally done in the background).
 * No-op in memory mode. Errors: IO, DISK_FULL, DEGRADED, NOMEM, READ_ONLY (read_only store). */
feox_err feox_compact(feox_store *store);

/* Check the store: index consistency (hash and ordered index agree, counts match, the memory
 * accounted for max_memory is what the keys take) and, in persistent mode, every record checksum
 * in the file. Returns FEOX_OK or FEOX_ERR_CORRUPT with the problems in feox_error_detail(). */
feox_err feox_check(feox_store *store);

/* Bring the indexes up to date with a storage backend that others change too (one with a
 * refresh method, feox_storage.h): the backend reports what changed since the store loaded or
 * last refreshed, and the store applies it to its indexes only; if the backend no longer knows
 * (FEOX_ERR_STALE), the store empties its indexes and loads everything again. txn is the host's
 * transaction context, passed to the backend. A no-op (FEOX_OK) for memory stores and for
 * backends without refresh, such as "log". Errors: INVALID_ARGUMENT, FORKED, and the backend's. */
feox_err feox_refresh(feox_store *store, void *txn);

/* ---------------------------------------------------------------------------------------------
 * Write options (one struct instead of _with_timestamp / _with_ttl / _bytes variants)
 * ------------------------------------------------------------------------------------------- */

enum feox_write_flags {
    FEOX_WRITE_TTL = 1u << 0,        /* set expiry = now + ttl_secs (ttl_secs 0 = no expiry) */
    FEOX_WRITE_EXPIRES_AT = 1u << 1, /* set expiry = expires_at_ns (absolute; 0 = no expiry) */
    FEOX_WRITE_KEEP_TTL = 1u << 2,   /* feox_insert: keep the existing record's expiry */
    FEOX_WRITE_TAG = 1u << 3,        /* incr/cas/patch: set the tag to opts->tag */
    FEOX_WRITE_MATCH_TAG = 1u << 4,  /* cas, patch: the stored tag must equal expected_tag */
    FEOX_WRITE_IF_ABSENT = 1u << 5,  /* feox_insert: fail with KEY_EXISTS if the key is live */
    /* accept timestamp_ns even if not newer: restores an earlier version exactly (undo
     * journals); bypasses last-writer-wins */
    FEOX_WRITE_RESTORE = 1u << 6,
    /* automatic timestamps stay <= INT64_MAX, for callers that show ts as a signed 64-bit
     * integer (the SQL extension): when a newer one would have to exceed it (the record's
     * timestamp is already INT64_MAX or more), the write fails with OLDER_TIMESTAMP and nothing
     * changes. Explicit timestamps are not affected. */
    FEOX_WRITE_TS_INT64 = 1u << 7,
    /* change the in-memory indexes only, not the storage backend: a host that restored its
     * storage itself (rollback with FEOX_STORAGE_HOST_TXN) restores the indexes to match */
    FEOX_WRITE_INDEX_ONLY = 1u << 8
};

/* Every write below (insert, delete, update_ttl, incr, cas, patch) fails with FEOX_ERR_READ_ONLY
 * on a read_only store, changing nothing; checked before the key and value are (after a NULL
 * store and FORKED).
 * NULL options mean: automatic timestamp; feox_insert clears any TTL and sets tag 0;
 * incr / cas / patch keep the record's TTL and tag (a new counter gets tag 0, no TTL).
 * Every write (insert, delete, update_ttl, incr, cas, patch) takes them, and uses txn, replaced
 * and FEOX_WRITE_INDEX_ONLY alike. With a storage backend whose index is a cache
 * (FEOX_STORAGE_INDEX_CACHE) a write, and a point read (get, get_ref, get_size, contains,
 * get_ttl), first asks the backend for a key the index does not hold. */
typedef struct feox_write_opts {
    uint64_t timestamp_ns;  /* 0 = automatic */
    uint32_t flags;         /* feox_write_flags */
    uint32_t tag;           /* feox_insert: the record's tag; others: with FEOX_WRITE_TAG */
    uint64_t ttl_secs;      /* with FEOX_WRITE_TTL */
    uint64_t expires_at_ns; /* with FEOX_WRITE_EXPIRES_AT */
    uint32_t expected_tag;  /* with FEOX_WRITE_MATCH_TAG */
    void *txn;              /* the host's transaction context, passed to the storage backend */
    /* If not NULL: on success *replaced receives a reference on the live version this write
     * replaced or removed (NULL if the key was absent or expired); release it with
     * feox_value_release. Lets an undo journal keep the old version without reading first. */
    struct feox_value **replaced;
} feox_write_opts;

/* ---------------------------------------------------------------------------------------------
 * Point operations
 * ------------------------------------------------------------------------------------------- */

/* Insert or replace key → value (an upsert). *created (may be NULL) is set to true if the key was
 * absent or expired, false if a live record was replaced. A plain insert clears the TTL unless
 * FEOX_WRITE_TTL / EXPIRES_AT / KEEP_TTL say otherwise; the tag is opts->tag (0 if opts NULL).
 * With FEOX_WRITE_IF_ABSENT it only creates (the seed's insert_if_absent): a live key fails with
 * KEY_EXISTS and nothing changes.
 * Errors: INVALID_ARGUMENT (key NULL, value NULL with vlen > 0), INVALID_KEY, INVALID_VALUE,
 * KEY_EXISTS (IF_ABSENT), OLDER_TIMESTAMP, OUT_OF_MEMORY, NOMEM, IO/DISK_FULL/DEGRADED (sync=full
 * or a failed store file). */
feox_err feox_insert(feox_store *store, const void *key, size_t key_len, const void *value,
                     size_t value_len, const feox_write_opts *opts, bool *created);

/* Metadata of a live record. */
typedef struct feox_record_info {
    size_t value_len;
    uint32_t tag;
    uint64_t timestamp_ns;
    uint64_t expires_at_ns; /* 0 = no expiry */
} feox_record_info;

/* Copy the value out into a buffer allocated with the engine allocator; release with feox_free.
 * *value is never NULL on success (a zero-length value gives a valid 1-byte allocation).
 * value and value_len are required; info may be NULL. Errors: INVALID_ARGUMENT, INVALID_KEY,
 * KEY_NOT_FOUND, NOMEM, IO (cold value). */
feox_err feox_get(feox_store *store, const void *key, size_t key_len, void **value,
                  size_t *value_len, feox_record_info *info);

/* Copy the value into the caller's buffer: no allocation, and for a resident value no write to
 * memory other threads read (no reference is taken: the bytes are copied while the version is
 * protected), so threads reading the same hot key do not slow each other down as they do with
 * feox_get_ref. *value_len = the value's full length; min(*value_len, cap) bytes are copied, so
 * *value_len > cap says the value was cut (call again with a larger buffer). buf may be NULL only
 * when cap is 0. value_len is required; info may be NULL. Errors: INVALID_ARGUMENT, INVALID_KEY,
 * KEY_NOT_FOUND, NOMEM, IO (cold value). */
feox_err feox_get_into(feox_store *store, const void *key, size_t key_len, void *buf, size_t cap,
                       size_t *value_len, feox_record_info *info);

/* Free memory returned by feox_get / feox_json_patch / feox_json_patch_document. NULL is a
 * no-op. */
void feox_free(void *ptr);

/* A zero-copy, reference-counted handle on one version of a record. The bytes stay valid and
 * unchanged until feox_value_release, even if the key is overwritten or deleted meanwhile. */
typedef struct feox_value feox_value;

/* Get a handle on the key's current value. Errors: INVALID_ARGUMENT, INVALID_KEY, KEY_NOT_FOUND,
 * NOMEM, IO (cold value read back from disk). */
feox_err feox_get_ref(feox_store *store, const void *key, size_t key_len, feox_value **out);
const void *feox_value_data(const feox_value *v); /* never NULL, even for an empty value */
size_t feox_value_size(const feox_value *v);
/* The value's tag (feox_record_info.tag) alone: feox_value_info also reads the timestamp and the
 * expiry, which may sit on another cache line than the tag, the length and the bytes. */
uint32_t feox_value_tag(const feox_value *v);
void feox_value_info(const feox_value *v, feox_record_info *info);
void feox_value_release(feox_value *v); /* NULL is a no-op */
/* Another handle on the same version (each is released with feox_value_release). */
feox_value *feox_value_retain(feox_value *v);
/* Release the handle whose feox_value_data returned data: for a destructor that is given only the
 * bytes (SQLite's sqlite3_result_blob). data must be feox_value_data of a handle still held. */
void feox_value_release_data(const void *data);

/* Value length without copying. Errors: INVALID_ARGUMENT, INVALID_KEY, KEY_NOT_FOUND. */
feox_err feox_get_size(feox_store *store, const void *key, size_t key_len, size_t *value_len);

/* True if the key is live. Invalid keys (empty, too long, NULL) are simply absent. */
bool feox_contains(feox_store *store, const void *key, size_t key_len);

/* Delete a live key. opts may carry an explicit timestamp (others are ignored).
 * Errors: INVALID_ARGUMENT, INVALID_KEY, KEY_NOT_FOUND (absent or expired), OLDER_TIMESTAMP,
 * IO/DISK_FULL/DEGRADED. */
feox_err feox_delete(feox_store *store, const void *key, size_t key_len,
                     const feox_write_opts *opts);

/* ---------------------------------------------------------------------------------------------
 * TTL
 * ------------------------------------------------------------------------------------------- */

/* Remaining whole seconds until expiry (rounded down) in *ttl_secs and *has_ttl = true, or
 * *has_ttl = false if the record has no expiry. Errors: INVALID_ARGUMENT, INVALID_KEY,
 * KEY_NOT_FOUND. */
feox_err feox_get_ttl(feox_store *store, const void *key, size_t key_len, uint64_t *ttl_secs,
                      bool *has_ttl);

/* Set expiry = now + ttl_secs; ttl_secs 0 removes the TTL. Creates a new version (automatic
 * timestamp). opts (may be NULL) is used for txn, replaced and FEOX_WRITE_INDEX_ONLY only.
 * Errors: INVALID_ARGUMENT, INVALID_KEY, KEY_NOT_FOUND, OUT_OF_MEMORY, NOMEM, IO. */
feox_err feox_update_ttl(feox_store *store, const void *key, size_t key_len, uint64_t ttl_secs,
                         const feox_write_opts *opts);

/* ---------------------------------------------------------------------------------------------
 * Atomic operations
 * ------------------------------------------------------------------------------------------- */

/* Add delta to the little-endian i64 stored at key, saturating at INT64_MIN / INT64_MAX, and
 * return the new value in *result (may be NULL). A missing or expired key is created with
 * value = delta. Linearizable. Keeps TTL and tag unless opts say otherwise.
 * Errors: INVALID_ARGUMENT, INVALID_KEY, INVALID_OPERATION (stored value not exactly 8 bytes),
 * OLDER_TIMESTAMP, OUT_OF_MEMORY, NOMEM, IO. */
feox_err feox_atomic_increment(feox_store *store, const void *key, size_t key_len, int64_t delta,
                               const feox_write_opts *opts, int64_t *result);

/* Replace the value with new_value only if the current value equals expected byte for byte (and
 * the tag equals opts->expected_tag with FEOX_WRITE_MATCH_TAG). *swapped is true only if this call
 * replaced it; missing, expired or different = false (not an error). Keeps TTL and tag unless
 * opts say otherwise. Errors: INVALID_ARGUMENT, INVALID_KEY, INVALID_VALUE, OLDER_TIMESTAMP,
 * OUT_OF_MEMORY, NOMEM, IO. */
feox_err feox_compare_and_swap(feox_store *store, const void *key, size_t key_len,
                               const void *expected, size_t expected_len, const void *new_value,
                               size_t new_len, const feox_write_opts *opts, bool *swapped);

/* Apply an RFC 6902 JSON Patch (a JSON array of operations) to the JSON document stored at key,
 * all or nothing, retrying if another writer replaced the value meanwhile. Numbers the patch does
 * not touch keep their exact text. If result is non-NULL, the new document is returned in
 * *result / *result_len (release with feox_free). Keeps TTL and tag unless opts say otherwise.
 * With FEOX_WRITE_MATCH_TAG only a value whose tag is opts->expected_tag is patched: the version
 * whose tag was checked is the one read and replaced, so a caller that chose to patch by the tag
 * it saw is not given another kind of value by a writer in between (TAG_MISMATCH, nothing
 * changed: read the value again and decide again).
 * Errors: INVALID_ARGUMENT, INVALID_KEY, KEY_NOT_FOUND, JSON_PATCH (stored value not JSON, patch
 * not an array, or an operation failed: feox_error_detail names the operation index and why),
 * TAG_MISMATCH (MATCH_TAG), INVALID_VALUE (result too large), OLDER_TIMESTAMP, OUT_OF_MEMORY,
 * NOMEM, IO. */
feox_err feox_json_patch(feox_store *store, const void *key, size_t key_len, const char *patch,
                         size_t patch_len, const feox_write_opts *opts, char **result,
                         size_t *result_len);

/* The same RFC 6902 JSON Patch applied to a document given as text, without any store: a pure
 * function of its inputs (what SQL's feox_json_patch(doc, patch) calls). On success the new
 * document is in *result / *result_len (NUL-terminated, release with feox_free); numbers the
 * patch does not touch keep their exact text. On failure *result is untouched.
 * Errors: INVALID_ARGUMENT (result or result_len NULL, doc or patch NULL with a length),
 * JSON_PATCH (doc or patch not valid JSON, patch not an array, or an operation failed, a "test"
 * included: feox_error_detail names the operation index and why), NOMEM. */
feox_err feox_json_patch_document(const char *doc, size_t doc_len, const char *patch,
                                  size_t patch_len, char **result, size_t *result_len);

/* ---------------------------------------------------------------------------------------------
 * Ordered access
 * ------------------------------------------------------------------------------------------- */

/* Called once per record; return non-zero to stop. The pointers are valid during the call only. */
typedef int (*feox_range_fn)(void *ctx, const void *key, size_t key_len, const void *value,
                             size_t value_len, const feox_record_info *info);

/* Visit live records with start <= key <= end (both inclusive, memcmp order, ascending), at most
 * limit of them (0 = none, as in FeoxDB; use SIZE_MAX for all). start > end visits nothing.
 * *visited (may be NULL) = how many were passed to fn. Not a snapshot: each visited record was
 * live at some instant during the call. Errors: INVALID_ARGUMENT, INVALID_KEY, NOMEM, IO, and
 * a failed read-back of a value that left memory (feox_cursor_read_value). */
feox_err feox_range_query(feox_store *store, const void *start, size_t start_len, const void *end,
                          size_t end_len, size_t limit, feox_range_fn fn, void *ctx,
                          size_t *visited);

/* A cursor over the ordered index. It holds no lock and no epoch section between calls: it reads
 * batches of rows (copies of keys and of small values, references on large ones; up to 128 rows
 * ahead) and re-seeks past its current key when a batch runs out, so concurrent writers never
 * block it, crash it or make it return a key twice or out of order. Each row returned was live at
 * some instant during the scan (not a snapshot). A thread always sees its own writes: after the
 * calling thread writes, the next step re-reads the index. Expiry is judged against one clock
 * reading per seek (taken at the first row that carries an expiry, so a store without TTLs never
 * reads the clock). One cursor is used by one thread at a time. */
typedef struct feox_cursor feox_cursor;

typedef enum feox_seek_mode {
    FEOX_SEEK_FIRST, /* smallest key (key argument ignored) */
    FEOX_SEEK_LAST,  /* largest key (key argument ignored) */
    FEOX_SEEK_GE,    /* first key >= key */
    FEOX_SEEK_GT,    /* first key > key */
    FEOX_SEEK_LE,    /* last key <= key */
    FEOX_SEEK_LT     /* last key < key */
} feox_seek_mode;

/* Errors: INVALID_ARGUMENT, NOMEM. */
feox_err feox_cursor_open(feox_store *store, feox_cursor **out);

/* Optional hint: the caller means to read about `rows` rows after each seek (0, the default:
 * unknown). The first batch is sized to fit them (up to 128), so a scan of known length reads the
 * index once instead of in growing batches. Changes no result. NULL is a no-op. */
void feox_cursor_expect(feox_cursor *c, size_t rows);

/* Optional, for scans that never ask for a value (count(*), a list of keys or of metadata): with
 * no_values true, the rows of later seeks and steps carry their key and metadata only: no value
 * is copied or referenced, and the value's memory is not read. A value asked for on such a row
 * anyway (feox_cursor_read_value, feox_cursor_value) is the key's live version, read then (the
 * row's info becomes that version's; KEY_NOT_FOUND if the key is gone). NULL is a no-op. */
void feox_cursor_no_values(feox_cursor *c, bool no_values);

/* Position the cursor. Returns FEOX_OK whether or not a record was found; check
 * feox_cursor_valid. Errors: INVALID_ARGUMENT (bad mode, NULL key with a keyed mode),
 * INVALID_KEY (key longer than FEOX_MAX_KEY_SIZE; an empty key is allowed as a bound), NOMEM,
 * IO. */
feox_err feox_cursor_seek(feox_cursor *c, feox_seek_mode mode, const void *key, size_t key_len);

/* Move to the next larger / next smaller live key. On an invalid cursor they do nothing.
 * Errors: NOMEM, IO. */
feox_err feox_cursor_next(feox_cursor *c);
feox_err feox_cursor_prev(feox_cursor *c);

/* True if the cursor is on a record. */
bool feox_cursor_valid(const feox_cursor *c);

/* The current record (valid cursor only; pointers valid until the cursor moves or closes). Key
 * and info never read the backend. A value that has left memory (max_memory) is read back only
 * when asked for, once, by the location of the version the cursor saw (not the key's value
 * now; if a write has replaced that version and a compaction has dropped its bytes since, the
 * row shows the key's live version instead, value and info): feox_cursor_read_value says why
 * a read-back failed (INVALID_ARGUMENT for an invalid
 * cursor, NOMEM, IO, CORRUPT or the backend's error), feox_cursor_value returns NULL and
 * *value_len 0 then (and for an invalid cursor). A failed read-back leaves the cursor where it is
 * and may be retried. */
const void *feox_cursor_key(const feox_cursor *c, size_t *key_len);
feox_err feox_cursor_read_value(feox_cursor *c, const void **value, size_t *value_len);
const void *feox_cursor_value(feox_cursor *c, size_t *value_len);
void feox_cursor_info(const feox_cursor *c, feox_record_info *info);

void feox_cursor_close(feox_cursor *c); /* NULL is a no-op */

/* ---------------------------------------------------------------------------------------------
 * Size and statistics
 * ------------------------------------------------------------------------------------------- */

enum feox_len_flags {
    /* Count without changing anything: no lock, no removal, no counter touched. Keys that have
     * expired but are not yet swept are still counted, so the result may be high (by at most the
     * keys expired since the sweeper last ran). For estimates such as query planning. */
    FEOX_LEN_ESTIMATE = 1u << 0
};

/* Number of live (unexpired) keys. flags 0: exact; it first removes the keys that expired since
 * the sweeper last ran (taking each hash shard's writer lock briefly; counted as lazy expiry), so
 * its cost is the number of newly expired keys, never the size of the table. FEOX_LEN_ESTIMATE:
 * see there. An unknown flag counts as 0 keys. */
uint64_t feox_len(feox_store *store, unsigned flags);
bool feox_is_empty(feox_store *store);

/* Bytes accounted against max_memory: keys, resident values, index and per-record overhead. */
uint64_t feox_memory_usage(feox_store *store);

/*
 * The statistics fields, listed once. Each entry is one uint64_t field of feox_stats, in order,
 * and one key of the JSON object feox_stats(tab) returns in SQL. COUNTER(name, ID) is an operation
 * counter the store keeps itself (its internal id is FEOX_STAT_##ID); VALUE(name) is read when
 * the statistics are taken (sizes, the clock, other modules' counters). Counters are totals since
 * open; every field is maintained; the persistent-mode fields are 0 in memory mode.
 */
#define FEOX_STATS_FIELDS(COUNTER, VALUE)                                                          \
    VALUE(len)                            /* live keys */                                          \
    VALUE(memory_usage)                   /* as feox_memory_usage */                               \
    VALUE(max_memory)                     /* 0 = unlimited */                                      \
    VALUE(keys_with_ttl)                  /* with an expiry (expired-unswept too) */               \
    COUNTER(gets, GETS)                   /* get(_into, _ref, _size, _ttl), contains */            \
    COUNTER(get_misses, GET_MISSES)       /* of those, key absent */                               \
    COUNTER(inserts, INSERTS)             /* writes creating a key */                              \
    COUNTER(updates, UPDATES)             /* writes replacing a live key */                        \
    COUNTER(deletes, DELETES)             /* deletes done */                                       \
    COUNTER(range_queries, RANGE_QUERIES) /* feox_range_query calls, cursor seeks */               \
    COUNTER(cas_success, CAS_SUCCESS)     /* compare-and-swaps that swapped */                     \
    COUNTER(cas_failure, CAS_FAILURE)     /* compare-and-swaps that found another value */         \
    COUNTER(increments, INCREMENTS)       /* atomic increments */                                  \
    COUNTER(json_patches, JSON_PATCHES)   /* JSON patches applied */                               \
    COUNTER(json_patch_failures, JSON_PATCH_FAILURES) /* JSON patches that failed */               \
    COUNTER(older_timestamp_errors, OLDER_TIMESTAMP)  /* writes refused: older timestamp */        \
    COUNTER(out_of_memory_errors, OUT_OF_MEMORY)      /* writes refused: over max_memory */        \
    COUNTER(ttl_expired_lazy, TTL_EXPIRED_LAZY)       /* expired, found by a read/write path */    \
    COUNTER(ttl_expired_active, TTL_EXPIRED_ACTIVE)   /* expired, removed by the sweeper */        \
    COUNTER(ttl_sweeper_runs, TTL_SWEEPER_RUNS)       /* sweeper passes */                         \
    VALUE(epoch_retired)                              /* versions handed to reclamation */         \
    VALUE(epoch_freed)                                /* versions freed by reclamation */          \
    VALUE(cache_hits)               /* persistent mode from here on: cold values found cached */   \
    VALUE(cache_misses)             /* cold values read back from the file */                      \
    VALUE(cache_evictions)          /* values dropped from the value cache */                      \
    VALUE(cache_bytes)              /* bytes held by the value cache */                            \
    VALUE(disk_reads)               /* value reads from the file */                                \
    VALUE(disk_bytes_read)          /* bytes of those reads */                                     \
    VALUE(disk_writes)              /* writes to the file */                                       \
    VALUE(disk_bytes_written)       /* bytes of those writes */                                    \
    VALUE(flushes)                  /* buffer flushes */                                           \
    VALUE(fsyncs)                   /* fsync calls */                                              \
    VALUE(io_errors)                /* failed reads, writes and syncs */                           \
    VALUE(file_size)                /* size of the store file in bytes */                          \
    VALUE(file_live_bytes)          /* bytes of the file that still hold live records (*) */       \
    VALUE(compactions)              /* completed compactions */                                    \
    VALUE(recovered_records)        /* records applied when the file was opened */                 \
    VALUE(recovery_dropped_records) /* corrupt or torn records skipped on open */                  \
    VALUE(recovery_dropped_bytes)   /* bytes of those records */                                   \
    VALUE(recovery_ns)              /* time the replay took */

/* (*) file_live_bytes: the header plus every live version's record, as of the store's load (or
 * the last compaction, or the last time the compaction check measured it) moved by every write
 * since: a put adds its record, an overwrite or a delete takes away the version it replaced (a
 * delete record counts as dead). Exact while the keys do not expire; records that expired stay
 * counted until the next measurement or compaction, as do the writes a failed sync=full write
 * undid and the writes made while a compaction ran. Kept between 0 and file_size. 0 for
 * storage backends other than the store file (the SQLite extension's in-database tables). */

/* Expand a FEOX_STATS_FIELDS entry to its struct member. */
#define FEOX_STATS_COUNTER_MEMBER_(name, ID) uint64_t name;
#define FEOX_STATS_VALUE_MEMBER_(name) uint64_t name;

typedef struct feox_stats {
    FEOX_STATS_FIELDS(FEOX_STATS_COUNTER_MEMBER_, FEOX_STATS_VALUE_MEMBER_)
} feox_stats;
#undef FEOX_STATS_COUNTER_MEMBER_
#undef FEOX_STATS_VALUE_MEMBER_

/* Fill *out. Errors: INVALID_ARGUMENT. */
feox_err feox_get_stats(feox_store *store, feox_stats *out);

/* The store's clock: nanoseconds since the Unix epoch (the injected clock if configured). */
uint64_t feox_now_ns(feox_store *store);

/* ---------------------------------------------------------------------------------------------
 * Allocation hook (tests and embedders)
 * ------------------------------------------------------------------------------------------- */

/* Route every engine allocation (and cJSON's) through these functions. Call before opening any
 * store; passing NULLs restores malloc/realloc/free. Not thread-safe against open stores, nor
 * against closed ones still being freed (feox_close_wait first). */
void feox_set_allocator(void *(*malloc_fn)(size_t), void *(*realloc_fn)(void *, size_t),
                        void (*free_fn)(void *));

#ifdef __cplusplus
}
#endif
#endif /* FEOX_H */

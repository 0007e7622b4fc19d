/*
 * store_registry.c — the process-wide registry of open stores (the only one: the SQLite
 * extension keeps what it needs per store in feox_store_slot), and what happens to the stores at
 * the two process events the engine does not call for: fork() and exit.
 *
 *   same name  feox_open of a path (or, in memory mode, a share_key) already open in this
 *              process returns that instance (store.c looks it up here, under the registry lock,
 *              which a last feox_close also holds until the store is closed), if it was opened
 *              in the same mode (read_only or not; open_existing takes either): a read-write
 *              open of a read-only instance fails with READ_ONLY, a read-only open of a
 *              read-write one with LOCKED (as a second process's would). A memory store's
 *              name can change or go (feox_set_share_key); its opens are still counted.
 *   fork()     the child inherits every store's memory, descriptors and flock, but not its
 *              threads, and its mutexes may be held by threads that do not exist in the child.
 *              So the child never uses them. The atfork child handler bumps feox_fork_generation:
 *              every store opened before it is "inherited" (feox_store_inherited: one load and a
 *              branch on every entry point) and fails with FEOX_ERR_FORKED. The handler closes
 *              the child's copies of their descriptors — the flock belongs to the open file
 *              description shared with the parent, which keeps it while the parent keeps its
 *              own descriptor; flock(LOCK_UN) is never called, it would unlock the parent — so
 *              the parent alone decides when the file is free and the child can open the path
 *              anew afterwards. Inherited stores stay listed, but are never found (a child's
 *              feox_open of the path opens anew, FEOX_ERR_LOCKED while the parent holds the
 *              file) except to say so (open_existing: FEOX_ERR_FORKED); the child's closes
 *              count down and the last one unlists it. Inherited stores are never freed: that
 *              would take mutexes that may stay locked forever and join threads that do not
 *              exist; their memory is leaked on purpose.
 *              Descriptors that exist outside any registered store are closed too: a thread of
 *              the parent may be inside a compaction (whose rewrite becomes the store file, lock
 *              and all), feox_store_file_info, feox_remove_store_file or
 *              feox_rename_store_file at the fork. Every store-file descriptor is in
 *              store_files.c's table, whose lock the prepare handler takes (so none is half
 *              opened or half closed) and whose child handler closes them all. fork() returns
 *              in the parent only once the child has closed them (`handshake` below), so a
 *              close and reopen right after the fork never meets the child's copies.
 *   exit       an atexit handler and a library destructor (dlclose of feox.so) flush (write +
 *              fsync) every persistent store this process opened and has not closed, so a normal
 *              exit without feox_close loses nothing acknowledged. Background threads still run
 *              meanwhile (a write acknowledged after the flush started may miss it, as it would
 *              miss any flush). Assumption: exit() is not called by a thread that is inside a
 *              feox call (from a clock or allocator hook called under the registry lock, which
 *              would deadlock) nor from a signal handler (exit() is not async-signal-safe); the
 * same holds for fork(), whose prepare handler takes the registry lock. Lock order: registry lock,
 * then the reaper's queue lock (store_reaper.c: a large closed store is freed on its thread,
 * with no registry lock), then epoch reclamation (feox_store_destroy under a last close), then
 * a backend's own locks; the
 * descriptor table's lock (store_files.c) is a leaf, held only around one open() or close().
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "storage/log/store_files.h"
#include "store/store_internal.h"

unsigned feox_fork_generation;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static feox_store *open_stores; /* [registry_lock] persistent stores, linked by next_open */
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;

void feox_store_set_forked_detail(const feox_store *s)
{
    feox_set_error_detail(
        "store '%s' was opened by process %ld before fork(); open it again in this "
        "process",
        s->path ? s->path : ":memory:", (long)s->opener_pid);
}

bool feox_store_is_inherited(const feox_store *store)
{
    return store && feox_store_inherited(store);
}

void feox_registry_lock(void)
{
    pthread_mutex_lock(&registry_lock);
}

void feox_registry_unlock(void)
{
    pthread_mutex_unlock(&registry_lock);
}

/* True if s is listed under this name: its path (persistent), else its share key. */
static bool named(const feox_store *s, const char *path, const char *share_key)
{
    if (path)
        return s->path && strcmp(s->path, path) == 0;
    return !s->path && s->share_key && share_key && strcmp(s->share_key, share_key) == 0;
}

static feox_store *registry_find(const char *path, const char *share_key, bool *inherited)
{
    if (inherited)
        *inherited = false;
    for (feox_store *s = open_stores; s; s = s->next_open) {
        if (!named(s, path, share_key))
            continue;
        if (!feox_store_inherited(s))
            return s;
        if (inherited)
            *inherited = true;
    }
    return NULL;
}

/* A store file open here in one mode and asked for in the other: never shared (a writer never
 * gets a read-only instance, nor a reader one that writes). */
static feox_err mode_conflict(const feox_store *open)
{
    if (open->cfg.read_only)
        return feox_fail(FEOX_ERR_READ_ONLY,
                         "store file '%s' is open read-only in this process: it cannot be opened "
                         "for writing until every read-only open of it is closed",
                         open->path);
    return feox_fail(FEOX_ERR_LOCKED,
                     "store file '%s' is open for writing in this process (a read-only open is "
                     "refused, as in another process; open it without read_only to share it)",
                     open->path);
}

bool feox_registry_open_shared(const feox_config *cfg, const char *path, const char *share_key,
                               feox_store **out, feox_err *err)
{
    bool inherited;
    feox_store *open = registry_find(path, share_key, &inherited);
    *err = FEOX_OK;
    if (open && !cfg->open_existing && open->cfg.read_only != cfg->read_only) {
        *err = mode_conflict(open);
    } else if (open) {
        open->open_count++;
        *out = open;
    } else if (cfg->open_existing) {
        const char *name = path ? path : share_key ? share_key : ":memory:";
        *err = inherited ? feox_fail(FEOX_ERR_FORKED,
                                     "'%s' is open only in the parent process of this fork()ed "
                                     "process, which holds it",
                                     name)
                         : feox_fail(FEOX_ERR_NOT_FOUND, "'%s' is not open in this process", name);
    }
    return open || cfg->open_existing;
}

void feox_registry_add(feox_store *s)
{
    s->open_count = 1;
    s->listed = true;
    s->next_open = open_stores;
    open_stores = s;
}

void feox_registry_remove(feox_store *s)
{
    for (feox_store **p = &open_stores; *p; p = &(*p)->next_open) {
        if (*p == s) {
            *p = s->next_open;
            break;
        }
    }
    s->listed = false;
}

void **feox_store_slot(feox_store *store)
{
    return store ? &store->app_slot : NULL;
}

feox_err feox_set_share_key(feox_store *s, const char *share_key)
{
    feox_clear_error_detail();
    if (!s || s->path)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "%s",
                         s ? "a persistent store is named by its path" : "store is NULL");
    if (feox_store_inherited(s))
        return feox_store_forked_error(s);
    char *key = NULL;
    if (share_key && !(key = feox_mem_strndup(share_key, strlen(share_key))))
        return feox_fail(FEOX_ERR_NOMEM, "allocation failed");
    pthread_mutex_lock(&registry_lock);
    feox_mem_free(s->share_key);
    s->share_key = key;
    if (!s->listed && key)
        feox_registry_add(s); /* its one open, counted from now on */
    pthread_mutex_unlock(&registry_lock);
    return FEOX_OK;
}

/* Flush every store still open (exit handler and library destructor). Errors are dropped:
 * nobody is left to report them to. */
static void flush_open_stores(void)
{
    pthread_mutex_lock(&registry_lock);
    for (feox_store *s = open_stores; s; s = s->next_open)
        if (s->storage && s->storage->methods->flush && !feox_store_inherited(s))
            (void)s->storage->methods->flush(s->storage);
    pthread_mutex_unlock(&registry_lock);
}

/* dlclose of the library (and, after the atexit handlers, a normal exit). */
__attribute__((destructor)) static void flush_at_unload(void)
{
    flush_open_stores();
}

/* The handshake of one fork() [registry_lock]: the child writes a byte to [1] once it has closed
 * its copies of the store-file descriptors, and the parent's fork() returns only after reading
 * it (or end of file: the child died). Without it the parent could close a store and reopen it
 * (or a sibling could open it) before the child was scheduled at all, and find the file still
 * locked by the child's copy of a descriptor the child was about to close. fork() waits only
 * for the child's first instructions (no I/O), and only in a process that holds a store file. */
static int handshake[2] = {-1, -1};

/* fork(): no open, last close or reclamation is half done while the process is copied. */
static void before_fork(void)
{
    pthread_mutex_lock(&registry_lock);
    feox_reaper_fork_prepare(); /* waits for a store being freed: before the epoch's lock */
    feox_epoch_fork_prepare();
    /* last: held only around an open() or close() */
    if (!feox_store_files_fork_prepare() || pipe2(handshake, O_CLOEXEC) != 0)
        handshake[0] = handshake[1] = -1; /* nothing to wait for, or no way to: fork as before */
}

/* The parent (also after a failed fork: then nobody else holds the write end, and read sees
 * end of file at once). */
static void after_fork_parent(void)
{
    int saved = errno; /* a failed fork's EAGAIN or ENOMEM, for the caller */
    if (handshake[0] >= 0) {
        close(handshake[1]);
        char byte;
        while (read(handshake[0], &byte, 1) < 0 && errno == EINTR) {
        }
        close(handshake[0]);
        handshake[0] = handshake[1] = -1;
    }
    feox_store_files_fork_parent();
    feox_epoch_fork_parent();
    feox_reaper_fork_parent();
    pthread_mutex_unlock(&registry_lock);
    errno = saved;
}

/* The child: only this thread exists. Every store is now inherited (see the top of the file). */
static void after_fork_child(void)
{
    feox_fork_generation++;
    feox_store_files_fork_child();
    feox_reaper_fork_child();
    feox_epoch_fork_child();
    for (feox_store *s = open_stores; s; s = s->next_open)
        if (s->storage && s->storage->methods->forget_after_fork)
            s->storage->methods->forget_after_fork(s->storage); /* again for older ones: harmless */
    if (handshake[0] >= 0) {
        close(handshake[0]);
        char byte = 1;
        while (write(handshake[1], &byte, 1) < 0 && errno == EINTR) {
        }
        close(handshake[1]);
        handshake[0] = handshake[1] = -1;
    }
    pthread_mutex_unlock(&registry_lock);
}

static void install_hooks(void)
{
    /* Both fail only for lack of memory; the engine then works as before without them. */
    (void)pthread_atfork(before_fork, after_fork_parent, after_fork_child);
    (void)atexit(flush_open_stores);
}

void feox_registry_install_hooks(void)
{
    pthread_once(&hooks_once, install_hooks);
}

/*
 * storage_registry.c — the storage backends by name (feox_storage_register / feox_storage_find,
 * feox_storage.h): "log", the engine's own, is always there; others (the SQLite extension's
 * "sqlite") are added at run time and stay until the process ends. And the public file calls
 * (feox_store_file_info, feox_remove_store_file, feox_rename_store_file), which go to the
 * backend that makes store files at a path: "log".
 *
 * It lives with the store, not in engine/storage/, because it names the log backend, which sits
 * above the seam.
 */
#include <pthread.h>
#include <string.h>

#include "storage/log/log_storage.h"
#include "store/store_internal.h"

/* A fixed table, not a heap list: the SQLite extension registers its backend from every load,
 * and a library unloaded with dlclose must leave no allocation behind. */
#define MAX_BACKENDS 32

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static const feox_storage_methods *backends[MAX_BACKENDS]; /* [registry_mu] "log" not among them */
static unsigned n_backends;                                /* [registry_mu] */

static const feox_storage_methods *find_locked(const char *name)
{
    if (strcmp(name, feox_log_storage_methods.name) == 0)
        return &feox_log_storage_methods;
    for (unsigned i = 0; i < n_backends; i++)
        if (strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}

static const char *missing_method(const feox_storage_methods *m)
{
    if (!m->open)
        return "open";
    if (!m->load)
        return "load";
    if (!m->write)
        return "write";
    if (!m->erase)
        return "erase";
    if (!m->read_value)
        return "read_value";
    if (!m->check)
        return "check";
    if (!m->get_stats)
        return "get_stats";
    if (!m->close)
        return "close";
    return NULL;
}

feox_err feox_storage_register(const feox_storage_methods *methods)
{
    feox_clear_error_detail();
    if (!methods || !methods->name || !*methods->name)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "a storage backend needs methods and a name");
    if (methods->version < 1 || methods->version > FEOX_STORAGE_VERSION)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT,
                         "storage backend '%s' has version %d; this engine knows 1 to %d",
                         methods->name, methods->version, FEOX_STORAGE_VERSION);
    const char *missing = missing_method(methods);
    if (missing)
        return feox_fail(FEOX_ERR_INVALID_ARGUMENT, "storage backend '%s' has no %s method",
                         methods->name, missing);
    pthread_mutex_lock(&registry_mu);
    const feox_storage_methods *known = find_locked(methods->name);
    feox_err err = FEOX_OK;
    if (known && known != methods) {
        err = feox_fail(FEOX_ERR_KEY_EXISTS, "a storage backend named '%s' is registered",
                        methods->name);
    } else if (!known && n_backends == MAX_BACKENDS) {
        err = feox_fail(FEOX_ERR_NOMEM,
                        "%d storage backends are registered already: no room for '%s'",
                        MAX_BACKENDS, methods->name);
    } else if (!known) {
        backends[n_backends++] = methods;
    }
    pthread_mutex_unlock(&registry_mu);
    return err;
}

const feox_storage_methods *feox_storage_find(const char *name)
{
    if (!name)
        return NULL;
    pthread_mutex_lock(&registry_mu);
    const feox_storage_methods *m = find_locked(name);
    pthread_mutex_unlock(&registry_mu);
    return m;
}

/* ---- the public file calls ---- */

feox_err feox_store_file_info(const char *path, feox_file_info *out)
{
    feox_registry_install_hooks(); /* the fork handlers, also where no store was ever opened */
    const feox_storage_methods *log = &feox_log_storage_methods;
    return log->file_info(log, path, out);
}

feox_err feox_remove_store_file(const char *path, const char *owner, unsigned flags)
{
    feox_registry_install_hooks();
    const feox_storage_methods *log = &feox_log_storage_methods;
    return log->remove_files(log, path, owner, flags);
}

feox_err feox_rename_store_file(const char *from, const char *to, const char *owner,
                                const char *new_owner, unsigned flags)
{
    feox_registry_install_hooks();
    const feox_storage_methods *log = &feox_log_storage_methods;
    return log->rename_files(log, from, to, owner, new_owner, flags);
}

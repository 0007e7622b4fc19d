/*
 * log_storage.h — the single-file log backend as a feox_storage_methods ("log", registered by the
 * store's backend registry, engine/store/storage_registry.c). Everything else of the backend is
 * private to engine/storage/log/.
 */
#ifndef FEOX_LOG_STORAGE_H
#define FEOX_LOG_STORAGE_H

#include "feox_storage.h"

extern const feox_storage_methods feox_log_storage_methods;

#endif

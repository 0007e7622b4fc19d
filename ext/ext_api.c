/*
 * ext_api.c — the one definition of sqlite3_api, the table of SQLite's functions a loadable
 * extension calls through (SQLITE_EXTENSION_INIT1). It is the lowest file of ext/: every other
 * file uses it (SQLITE_EXTENSION_INIT3) and it uses none; sqlite3_feox_init (feox_ext.c) sets it.
 * With -DSQLITE_CORE the macro is empty and SQLite is called directly.
 */
#include "feox_ext.h"

SQLITE_EXTENSION_INIT1

/*
 * omitted_stubs.c — linked into the better-sqlite3-options libsqlite3.so.0 that
 * tests/sqlite_latest/run.sh builds: that library omits sqlite3_progress_handler
 * (SQLITE_OMIT_PROGRESS_CALLBACK), sqlite3_enable_shared_cache (SQLITE_OMIT_SHARED_CACHE) and the
 * session extension, which Debian's sqlite3 shell and Python's _sqlite3 link against. These
 * do-nothing definitions let those hosts load it; the extension API table feox.so sees keeps its
 * NULL entries for what is omitted (that is what the run checks). Never part of feox.so.
 */
#include <stddef.h>

void sqlite3_progress_handler(void *db, int n, int (*callback)(void *), void *arg);
int sqlite3_enable_shared_cache(int on);

void sqlite3_progress_handler(void *db, int n, int (*callback)(void *), void *arg)
{
    (void)db, (void)n, (void)callback, (void)arg;
}

int sqlite3_enable_shared_cache(int on)
{
    (void)on;
    return 1; /* SQLITE_ERROR */
}

/* Debian's shell links these session functions; it calls them only for its .session command. */
#define UNAVAILABLE(name)                                                                          \
    int name(void);                                                                                \
    int name(void)                                                                                 \
    {                                                                                              \
        return 1;                                                                                  \
    }
UNAVAILABLE(sqlite3session_attach)
UNAVAILABLE(sqlite3session_changeset)
UNAVAILABLE(sqlite3session_create)
UNAVAILABLE(sqlite3session_delete)
UNAVAILABLE(sqlite3session_enable)
UNAVAILABLE(sqlite3session_indirect)
UNAVAILABLE(sqlite3session_isempty)
UNAVAILABLE(sqlite3session_patchset)
UNAVAILABLE(sqlite3session_table_filter)

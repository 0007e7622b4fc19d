/*
 * feox_dqlite_node.c — a host program that runs one dqlite node (Debian libdqlite-dev 1.11.1)
 * with the feox extension registered in every SQLite connection the node opens.
 *
 *   feox_dqlite_node ID ADDRESS DATA_DIR [-e FEOX_SO] [-l LATENCY_MS]
 *
 *   ID          the node's Raft id (1 bootstraps a new cluster; the others join it through a
 *               client's ADD request: tests/cluster/dqlite_client.py join)
 *   ADDRESS     host:port the node binds and announces to the cluster
 *   DATA_DIR    the node's Raft log and snapshots (must exist)
 *   -e FEOX_SO  the extension to load (default ./feox.so)
 *   -l MS       one-way network latency given to dqlite (default 67: Raft heartbeat
 *               67*1.5 = 100 ms, election timeout 67*15 ~ 1 s; dqlite's own default is 15x
 *               slower to notice a dead leader)
 *
 * How feox is registered: the program dlopen()s the very feox.so a user loads with .load, and
 * hands its entry point sqlite3_feox_init to sqlite3_auto_extension() before dqlite_node_start():
 * dqlite opens a new SQLite connection (on its own VFS, "dqlite-<n>") for every client
 * connection, on the leader only, and SQLite runs every registered auto extension in each of
 * them. Loading the shipped .so, rather than linking the extension's objects into the host,
 * tests the artifact users deploy and keeps the host free of the engine's build flags.
 *
 * Prints "ready ID ADDRESS" on stdout once the node listens, then runs until SIGTERM or SIGINT
 * (then stops the node cleanly and exits 0). SIGPIPE is ignored: a peer that dies mid-write
 * (kill -9 of the leader) must not take this node down with it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <dqlite.h>

typedef int (*ext_init_fn)(sqlite3 *, char **, const sqlite3_api_routines *);

static int usage(void)
{
    fprintf(stderr, "usage: feox_dqlite_node ID ADDRESS DATA_DIR [-e FEOX_SO] [-l LATENCY_MS]\n");
    return 2;
}

static int parse_unsigned(const char *s, unsigned long long max, unsigned long long *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v == 0 || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* dlopen the extension and register its entry point for every connection opened from now on. */
static int register_feox(const char *path)
{
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "feox_dqlite_node: cannot load %s: %s\n", path, dlerror());
        return -1;
    }
    ext_init_fn init;
    void *sym = dlsym(lib, "sqlite3_feox_init");
    if (sym == NULL) {
        fprintf(stderr, "feox_dqlite_node: %s has no sqlite3_feox_init\n", path);
        dlclose(lib);
        return -1;
    }
    memcpy(&init, &sym, sizeof init); /* object pointer -> function pointer (POSIX dlsym) */
    void (*entry)(void);
    memcpy(&entry, &init, sizeof entry); /* sqlite3_auto_extension takes void (*)(void) */
    int rc = sqlite3_auto_extension(entry);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "feox_dqlite_node: sqlite3_auto_extension: %s\n", sqlite3_errstr(rc));
        dlclose(lib);
        return -1;
    }
    return 0; /* the library stays loaded for the life of the process */
}

int main(int argc, char **argv)
{
    const char *ext = "./feox.so";
    unsigned long long latency_ms = 67;
    unsigned long long id;
    if (argc < 4 || parse_unsigned(argv[1], UINT64_MAX, &id) != 0) {
        return usage();
    }
    const char *address = argv[2];
    const char *dir = argv[3];
    for (int i = 4; i < argc; i += 2) {
        if (i + 1 >= argc) {
            return usage();
        }
        if (strcmp(argv[i], "-e") == 0) {
            ext = argv[i + 1];
        } else if (strcmp(argv[i], "-l") != 0 ||
                   parse_unsigned(argv[i + 1], 3600000, &latency_ms) != 0) {
            return usage();
        }
    }

    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    /* blocked before dqlite starts its thread, which inherits the mask: sigwait below gets them */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    if (register_feox(ext) != 0) {
        return 1;
    }
    dqlite_node *node = NULL;
    int rc = dqlite_node_create((dqlite_node_id)id, address, dir, &node);
    if (rc != 0) {
        fprintf(stderr, "feox_dqlite_node: dqlite_node_create: %s\n",
                node != NULL ? dqlite_node_errmsg(node) : "out of memory");
        dqlite_node_destroy(node);
        return 1;
    }
    if ((rc = dqlite_node_set_bind_address(node, address)) != 0 ||
        (rc = dqlite_node_set_network_latency_ms(node, (unsigned)latency_ms)) != 0 ||
        (rc = dqlite_node_start(node)) != 0) {
        fprintf(stderr, "feox_dqlite_node: node %llu at %s: %s (%d)\n", id, address,
                dqlite_node_errmsg(node), rc);
        dqlite_node_destroy(node);
        return 1;
    }
    printf("ready %llu %s\n", id, address);
    fflush(stdout);

    int sig = 0;
    sigwait(&stop, &sig);
    rc = dqlite_node_stop(node);
    if (rc != 0) {
        fprintf(stderr, "feox_dqlite_node: dqlite_node_stop: %s\n", dqlite_node_errmsg(node));
    }
    dqlite_node_destroy(node);
    return rc == 0 ? 0 : 1;
}

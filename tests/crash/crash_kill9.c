/*
 * crash_kill9.c — kill -9 loop over the public API (issue 4 item 7, perf-reliability.md §D.2).
 *
 * Each iteration forks a child that opens the store file (sync mode chosen at random), then runs
 * puts, deletes, flushes, the odd compaction and the odd close and reopen (kills land in the
 * index snapshot's write at close and in the background load behind it) over 64 keys. Before each
 * op it sends the op's intent (sequence number, kind, key) through a pipe; after each flush()
 * returns it sends FLUSHED with the last sequence number acknowledged before the flush. The parent
 * kills the child at a random moment (sometimes while it is still recovering), drains the pipe,
 * reopens the file in-process and checks:
 *   1. it opens (and feox_check passes);
 *   2. every key holds a value it really held, or is absent only if an absence was possible;
 *   3. everything acknowledged before the last completed flush is present (or a later value);
 *   4. deletes acknowledged before the last flush stay deleted (unless rewritten later);
 *   5. no phantom keys (feox_len = keys found);
 *   6. recovery is idempotent: close + reopen gives the same state;
 *   7. sync=full: every acknowledged write is present (only the op in flight may be lost).
 * For sync=normal/off it reports the oldest acknowledged write lost (kill -9 keeps the page
 * cache, so this measures the flusher's write delay; fsync timing is measured by benchmarks).
 * The file is kept across iterations, so recovery → write → crash → recovery is covered too.
 * Values are derived from the sequence number, so the parent can rebuild any value it sees.
 * Iterations: env CRASH_ITERATIONS (default 50).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "feox.h"

#define KEYS 64
#define MAX_VALUE 300

enum message_kind { INTENT_PUT = 1, INTENT_DELETE = 2, FLUSHED = 3 };

typedef struct message {
    uint64_t seq;
    uint32_t kind;
    uint32_t key;
} message;

/* One op on a key the parent knows about: seq 0 with absent = false/true is the baseline. */
typedef struct op {
    uint64_t seq;
    bool absent;
    uint64_t seen_ns; /* when the parent received the intent */
} op;

typedef struct key_history {
    op *ops;
    size_t len, cap;
} key_history;

static key_history history[KEYS];
static uint64_t
    baseline_seq[KEYS]; /* value the key held after the last verification (0 = absent) */

static void key_name(char *out, uint32_t key)
{
    snprintf(out, 16, "key-%02u", key);
}

static size_t value_for(uint64_t seq, char *out)
{
    int n = snprintf(out, MAX_VALUE, "v%llu:", (unsigned long long)seq);
    size_t len = (size_t)n + seq % 200;
    for (size_t i = (size_t)n; i < len; i++)
        out[i] = (char)('a' + (seq + i) % 26);
    return len;
}

static void fail(const char *what, int iteration)
{
    fprintf(stderr, "crash_kill9: iteration %d: %s\n", iteration, what);
    exit(1);
}

static uint64_t next_random(uint64_t *state)
{
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

static void child_main(const char *path, int out_fd, uint64_t first_seq, uint64_t seed)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    cfg.sync = (feox_sync_mode)(seed % 3);
    cfg.flush_interval_ms = 5 + (uint32_t)(seed % 20);
    feox_store *s;
    if (feox_open(&cfg, &s) != FEOX_OK) {
        fprintf(stderr, "child: open failed: %s\n", feox_error_detail());
        _exit(2);
    }
    uint64_t rng = seed | 1, seq = first_seq;
    char key[16], value[MAX_VALUE];
    for (;;) {
        uint64_t r = next_random(&rng);
        message m = {.seq = ++seq, .key = (uint32_t)(r % KEYS)};
        uint64_t dice = (r >> 8) % 1000;
        key_name(key, m.key);
        if (dice < 3) { /* flush (rarely, so the flusher's own window shows) */
            uint64_t acked = seq - 1;
            seq--;
            feox_err err = feox_flush(s);
            if (err != FEOX_OK) {
                fprintf(stderr, "child: flush failed: %s\n", feox_error_detail());
                _exit(3);
            }
            message done = {.seq = acked, .kind = FLUSHED};
            if (write(out_fd, &done, sizeof done) != (ssize_t)sizeof done)
                _exit(4);
            continue;
        }
        if (dice < 4) { /* compaction now and then, so kills land inside it too */
            seq--;
            feox_compact(s);
            continue;
        }
        if (dice < 6) {
            /* Close (its final flush, then the index snapshot it appends) and open again (the
             * snapshot answers reads while the indexes load in the background): kills land in
             * the snapshot's write and in the background load. A clean close wrote everything. */
            uint64_t acked = seq - 1;
            seq--;
            if (feox_close(s) != FEOX_OK || feox_open(&cfg, &s) != FEOX_OK) {
                fprintf(stderr, "child: close and reopen failed: %s\n", feox_error_detail());
                _exit(3);
            }
            message done = {.seq = acked, .kind = FLUSHED};
            if (write(out_fd, &done, sizeof done) != (ssize_t)sizeof done)
                _exit(4);
            continue;
        }
        m.kind = dice < 800 ? INTENT_PUT : INTENT_DELETE;
        if (write(out_fd, &m, sizeof m) != (ssize_t)sizeof m)
            _exit(4);
        feox_err err;
        if (m.kind == INTENT_PUT) {
            size_t len = value_for(m.seq, value);
            err = feox_insert(s, key, strlen(key), value, len, NULL, NULL);
        } else {
            err = feox_delete(s, key, strlen(key), NULL);
            if (err == FEOX_ERR_KEY_NOT_FOUND)
                err = FEOX_OK;
        }
        if (err != FEOX_OK) {
            fprintf(stderr, "child: write failed: %s (%s)\n", feox_strerror(err),
                    feox_error_detail());
            _exit(3);
        }
    }
}

static uint64_t monotonic_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void history_add(uint32_t key, uint64_t seq, bool absent)
{
    key_history *h = &history[key];
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->ops = realloc(h->ops, h->cap * sizeof *h->ops);
        if (!h->ops)
            fail("out of memory", -1);
    }
    h->ops[h->len++] = (op){seq, absent, monotonic_ns()};
}

static void history_reset(void)
{
    for (uint32_t k = 0; k < KEYS; k++) {
        history[k].len = 0;
        history_add(k, 0, baseline_seq[k] == 0);
    }
}

/* Read one key's state: 0 = absent, else the sequence number its value encodes. */
static uint64_t read_key(feox_store *s, uint32_t key, int iteration)
{
    char name[16], expected[MAX_VALUE];
    key_name(name, key);
    void *v;
    size_t len;
    feox_err err = feox_get(s, name, strlen(name), &v, &len, NULL);
    if (err == FEOX_ERR_KEY_NOT_FOUND)
        return 0;
    if (err != FEOX_OK)
        fail("get failed after recovery", iteration);
    /* The value is len bytes with no terminator: parse a terminated copy (sscanf reads to a NUL). */
    char text[32];
    size_t text_len = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, v, text_len);
    text[text_len] = '\0';
    unsigned long long seq = 0;
    if (sscanf(text, "v%llu:", &seq) != 1 || seq == 0)
        fail("recovered value is not one the child wrote", iteration);
    size_t want = value_for(seq, expected);
    if (want != len || memcmp(v, expected, len) != 0)
        fail("recovered value bytes differ from the value written", iteration);
    feox_free(v);
    return seq;
}

static feox_store *open_store(const char *path, int iteration)
{
    feox_config cfg;
    feox_config_init(&cfg);
    cfg.path = path;
    feox_store *s;
    if (feox_open(&cfg, &s) != FEOX_OK) {
        fprintf(stderr, "open: %s: %s\n", feox_strerror(feox_open(&cfg, &s)), feox_error_detail());
        fail("store does not open after kill -9", iteration);
    }
    return s;
}

typedef struct crash_facts {
    uint64_t flushed_upto; /* last seq acknowledged before the last completed flush */
    uint64_t last_seq;     /* last intent received: the only op that may be in flight */
    feox_sync_mode sync;
    uint64_t killed_ns;
    uint64_t worst_loss_ns; /* out: age of the oldest acknowledged op lost (normal/off) */
} crash_facts;

static void verify(const char *path, crash_facts *facts, int iteration, uint64_t *dropped)
{
    /* sync=full: everything acknowledged (every op but the one in flight) is durable. */
    uint64_t flushed_upto = facts->sync == FEOX_SYNC_FULL && facts->last_seq ? facts->last_seq - 1
                                                                             : facts->flushed_upto;
    feox_store *s = open_store(path, iteration);
    /* Read first: a file that ends in an index snapshot (killed after a close, or while the
     * store opened after it loaded) answers these from the snapshot while the load runs. */
    uint64_t state[KEYS];
    for (uint32_t k = 0; k < KEYS; k++)
        state[k] = read_key(s, k, iteration);
    if (feox_check(s) != FEOX_OK) {
        fprintf(stderr, "check: %s\n", feox_error_detail());
        fail("feox_check failed after recovery", iteration);
    }
    feox_stats st;
    feox_get_stats(s, &st);
    *dropped += st.recovery_dropped_records;
    uint64_t present = 0;
    for (uint32_t k = 0; k < KEYS; k++) {
        if (read_key(s, k, iteration) != state[k])
            fail("a read after the load differs from the one before it", iteration);
        present += state[k] != 0;
        key_history *h = &history[k];
        /* The floor: the last op acknowledged before the last completed flush. */
        size_t floor = 0;
        for (size_t i = 0; i < h->len; i++)
            if (h->ops[i].seq <= flushed_upto || h->ops[i].seq == 0)
                floor = i;
        bool allowed = false;
        size_t match = floor;
        for (size_t i = h->len; i-- > floor && !allowed;) { /* the newest op that matches */
            uint64_t held =
                h->ops[i].absent ? 0 : (h->ops[i].seq ? h->ops[i].seq : baseline_seq[k]);
            allowed = held == state[k];
            match = i;
        }
        /* Acknowledged ops after the recovered one were lost: how old is the oldest? */
        for (size_t i = match + 1; allowed && i < h->len; i++) {
            if (h->ops[i].seq == facts->last_seq)
                continue; /* in flight, never acknowledged */
            uint64_t age = facts->killed_ns - h->ops[i].seen_ns;
            if (age > facts->worst_loss_ns && facts->killed_ns > h->ops[i].seen_ns)
                facts->worst_loss_ns = age;
            break;
        }
        if (!allowed) {
            const char *modes[3] = {"normal", "off", "full"};
            fprintf(stderr,
                    "sync=%s: key %u recovered as %llu; acknowledged-durable up to %llu; the "
                    "op it should hold or follow: %llu (%s)\n",
                    modes[facts->sync], k, (unsigned long long)state[k],
                    (unsigned long long)flushed_upto, (unsigned long long)h->ops[floor].seq,
                    h->ops[floor].absent ? "delete" : "put");
            fail("a key holds a value it cannot hold (lost flushed write or resurrection)",
                 iteration);
        }
    }
    if (feox_len(s, 0) != present)
        fail("phantom keys after recovery", iteration);
    if (feox_close(s) != FEOX_OK)
        fail("close after recovery failed", iteration);
    /* Idempotence: recovering the recovered file gives the same state. */
    s = open_store(path, iteration);
    for (uint32_t k = 0; k < KEYS; k++)
        if (read_key(s, k, iteration) != state[k])
            fail("second recovery differs from the first", iteration);
    if (feox_close(s) != FEOX_OK)
        fail("second close failed", iteration);
    memcpy(baseline_seq, state, sizeof state);
}

int main(void)
{
    const char *env = getenv("CRASH_ITERATIONS");
    int iterations = env ? atoi(env) : 50;
    char path[128];
    snprintf(path, sizeof path, "/tmp/feox-crash-kill9-%d.feox", (int)getpid());
    unlink(path);
    signal(SIGPIPE, SIG_IGN);
    uint64_t rng = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    uint64_t seq = 0, total_ops = 0, total_dropped = 0;
    uint64_t worst_loss_ns[3] = {0}, kills[3] = {0};
    history_reset();
    for (int it = 0; it < iterations; it++) {
        int fds[2];
        if (pipe(fds) != 0)
            fail("pipe", it);
        uint64_t seed = next_random(&rng);
        pid_t pid = fork();
        if (pid < 0)
            fail("fork", it);
        if (pid == 0) {
            close(fds[0]);
            child_main(path, fds[1], seq, seed);
            _exit(0);
        }
        close(fds[1]);
        /* Kill at a random moment in 0..80 ms (0 lands inside open/recovery). */
        uint64_t delay_ms = next_random(&rng) % 81;
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        crash_facts facts = {.sync = (feox_sync_mode)(seed % 3)};
        bool killed = false;
        for (;;) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            int64_t elapsed =
                (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
            if (!killed && elapsed >= (int64_t)delay_ms) {
                facts.killed_ns = monotonic_ns();
                kill(pid, SIGKILL);
                killed = true;
            }
            struct pollfd p = {.fd = fds[0], .events = POLLIN};
            int ready = poll(&p, 1, killed ? 1000 : 1);
            if (ready < 0 && errno == EINTR)
                continue;
            if (ready <= 0) {
                if (killed)
                    break;
                continue;
            }
            message msgs[256];
            ssize_t n = read(fds[0], msgs, sizeof msgs);
            if (n <= 0)
                break; /* EOF: the child is dead */
            if (n % (ssize_t)sizeof(message))
                fail("torn pipe message", it); /* pipe writes <= PIPE_BUF are atomic */
            for (ssize_t i = 0; i < n / (ssize_t)sizeof(message); i++) {
                message *m = &msgs[i];
                if (m->kind == FLUSHED) {
                    facts.flushed_upto = m->seq;
                } else {
                    history_add(m->key, m->seq, m->kind == INTENT_DELETE);
                    seq = facts.last_seq = m->seq;
                    total_ops++;
                }
            }
        }
        close(fds[0]);
        int status;
        waitpid(pid, &status, 0);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail("child exited on its own (see its message above)", it);
        verify(path, &facts, it, &total_dropped);
        kills[facts.sync]++;
        if (facts.worst_loss_ns > worst_loss_ns[facts.sync])
            worst_loss_ns[facts.sync] = facts.worst_loss_ns;
        history_reset();
    }
    printf("crash_kill9: %d iterations, %llu ops, %llu torn records dropped: all invariants held\n",
           iterations, (unsigned long long)total_ops, (unsigned long long)total_dropped);
    const char *names[3] = {"normal", "off", "full"};
    for (int m = 0; m < 3; m++)
        printf("  sync=%s: %llu kills, oldest acknowledged write lost: %.1f ms\n", names[m],
               (unsigned long long)kills[m], worst_loss_ns[m] / 1e6);
    unlink(path);
    return 0;
}

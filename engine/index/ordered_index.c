/*
 * ordered_index.c — the ordered index (contract in ordered_index.h): a B+tree of feox_entry
 * pointers in memcmp key order, with Optimistic Lock Coupling (Leis et al., "The ART of Practical
 * Synchronization", DaMoN 2016) for writers and lock-free, validating readers.
 *
 * Node layout (one allocation or slab block per node, never reused in place; freed through the
 * epoch; a bulk build and a bulk load take their nodes from slabs, slab.h)
 *   version      u64: bit 0 obsolete, bit 1 locked, bits 2.. a change counter. Every change to a
 *                node happens with the lock bit set and bumps the counter on unlock.
 *   count        leaf: entries; inner: separators (an inner node has count + 1 children).
 *   prefix_len / prefix_words
 *                a byte prefix (at most FEOX_OI_PREFIX_MAX bytes, packed big-endian into words)
 *                shared by every key in the node; it may be shorter than the true common prefix.
 *   heads[i]     the 4 key bytes after the prefix, big-endian and zero-padded, so comparing two
 *                heads as integers is memcmp order on those bytes. A search compares heads only and
 *                dereferences a key (entry or separator) only when the heads are equal. Four bytes,
 *                not eight: a leaf is 432 bytes instead of 560 (memory per key, issue 15), and
 *                the prefix (up to 16 bytes) already takes the bytes a node's keys share, so the
 *                next four tell a node's keys apart unless they share more than the prefix holds.
 *   leaf:  entries[i]   the caller's entries, ascending.
 *   inner: seps[i]      separator keys, each its own immutable allocation (a copy, never a pointer
 *                       into an entry that may be freed): child i holds keys k with
 *                       seps[i-1] <= k < seps[i]. Separators are the shortest byte string that
 *                       divides the two halves of a split, so 100 KiB keys give short separators.
 *          children[i]  count + 1 child nodes.
 * The structs and key helpers live in ordered_index_node.h (shared with ordered_index_verify.c).
 * There are no sibling links: a scan that leaves a leaf descends again from the root, bounded by
 * the leaf's fence (the nearest separator on the path), which is also how descending scans work.
 *
 * Concurrency contract
 *   - Readers (scan, and the descent of writers) take no lock. They read a node's version (waiting
 *     while it is locked), read fields with relaxed or acquire loads, and then validate that the
 *     version is unchanged; a changed or obsolete version restarts from the root. They run in an
 *     epoch section, so every node, separator and entry they can reach stays allocated even if it
 *     is unlinked meanwhile; a torn read is harmless because it is never trusted before validation.
 *   - Writers lock only the nodes they change, by CAS from the version they read (so a node
 *     changed since is never locked by mistake), top-down, and never wait while holding a lock:
 *     a failed CAS releases everything and restarts from the root. Full nodes are split eagerly
 *     on the way down (parent + node locked), so a split never has to propagate upwards. A
 *     removal that empties a leaf unlinks it, with the chain of single-child inner nodes above
 *     it, from the first ancestor with another child, locking that ancestor and the chain;
 *     unlinked nodes are marked obsolete and retired. A root left with a single child is
 *     replaced by that child. Height changes only at the root, so all leaves stay at one depth.
 *     Nodes are never merged otherwise (a half-empty leaf stays; an empty one goes), which keeps
 *     every write to at most two levels of locks plus the unlinked chain.
 *   - A replace (one entry for another with the same key bytes) locks only the leaf and stores
 *     one slot: the heads, the prefix and the shape stay.
 *   - Writers descend optimistically too, so insert, remove and replace enter an epoch section
 *     themselves.
 *   - Every shared node field is a C11 atomic. Pointers (children, separators, entries, the root)
 *     are stored with release and loaded with acquire, so whoever reaches an object through a
 *     pointer sees it initialized (this is also the edge ThreadSanitizer follows).
 */
#include "index/ordered_index.h"

#include <ck_pr.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "base/alloc.h"
#include "base/epoch.h"
#include "base/slab.h"
#include "index/ordered_index_node.h"

/* ---- prefixes and search (key helpers and the layout are in ordered_index_node.h) ------------ */

static void store_prefix(node *n, const uint8_t *key, size_t plen)
{
    uint8_t bytes[FEOX_OI_PREFIX_MAX] = {0};
    memcpy(bytes, key, plen);
    for (int w = 0; w < FEOX_OI_PREFIX_WORDS; w++) {
        uint64_t word;
        memcpy(&word, bytes + 8 * w, 8);
        atomic_store_explicit(&n->prefix_words[w], __builtin_bswap64(word), memory_order_relaxed);
    }
    atomic_store_explicit(&n->prefix_len, (uint32_t)plen, memory_order_relaxed);
}

/* Writer (node locked or unpublished): recompute the prefix from the first and last keys (they
 * are sorted, so their common prefix is everyone's) and every head. */
static void refresh_prefix_and_heads(node *n)
{
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    if (count == 0)
        return;
    size_t flen, llen;
    const uint8_t *first = slot_key(n, 0, &flen);
    const uint8_t *last = slot_key(n, count - 1, &llen);
    size_t plen = common_prefix(first, flen, last, llen);
    if (plen > FEOX_OI_PREFIX_MAX)
        plen = FEOX_OI_PREFIX_MAX;
    store_prefix(n, first, plen);
    for (uint32_t i = 0; i < count; i++) {
        size_t len;
        const uint8_t *key = slot_key(n, i, &len);
        atomic_store_explicit(&n->heads[i], key_head(key, len, plen), memory_order_relaxed);
    }
}

/*
 * Position of key among the first count slots: the first slot whose key is > key (strict) or
 * >= key (!strict). Used by readers and writers alike; for a reader the answer means something
 * only if the node's version validates afterwards.
 */
static uint32_t node_search(const node *n, uint32_t count, const uint8_t *key, size_t len,
                            bool strict)
{
    uint8_t prefix[FEOX_OI_PREFIX_MAX];
    uint32_t plen = load_prefix(n, prefix);
    size_t m = len < plen ? len : plen;
    int c = m ? memcmp(key, prefix, m) : 0;
    /* A key below the prefix, or a proper prefix of it, sorts before every key of the node. */
    if (c < 0 || (c == 0 && len < plen))
        return 0;
    if (c > 0)
        return count;
    uint32_t head = key_head(key, len, plen);
    uint32_t lo = 0, hi = count;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        uint32_t slot_head = atomic_load_explicit(&n->heads[mid], memory_order_relaxed);
        int cmp;
        if (head != slot_head) {
            cmp = head < slot_head ? -1 : 1;
        } else {
            size_t slen;
            const uint8_t *skey = slot_key(n, mid, &slen);
            cmp = skey ? feox_key_compare(key, len, skey, slen) : -1;
        }
        if (cmp > 0 || (strict && cmp == 0))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* ---- version word: optimistic read, validate, lock ------------------------------------------- */

/* Ask for every cache line of a node at once: a search touches several of them (version, heads,
 * slots), and independent misses overlap where dependent ones would queue (perf-reliability
 * B.1). */
static void prefetch_node(const node *n)
{
    for (size_t off = 0; off < sizeof(inner_node); off += 64)
        __builtin_prefetch((const char *)n + off);
}

/* Wait while the node is locked; false if it is obsolete (the caller restarts). Acquire: the
 * fields read afterwards are at least as new as this version. */
static bool read_version(const node *n, uint64_t *version)
{
    prefetch_node(n);
    unsigned spins = 0;
    uint64_t v = atomic_load_explicit(&n->version, memory_order_acquire);
    while (v & VERSION_LOCKED) {
        if (++spins % 128 == 0)
            sched_yield(); /* the holder may be descheduled on an oversubscribed machine */
        else
            ck_pr_stall();
        v = atomic_load_explicit(&n->version, memory_order_acquire);
    }
    *version = v;
    return !(v & VERSION_OBSOLETE);
}

/* Seqlock validation: the acquire fence orders the relaxed field reads before the re-read. */
static bool validate(const node *n, uint64_t version)
{
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&n->version, memory_order_relaxed) == version;
}

/* Lock only if the node is still at the version read; the release fence keeps the writer's field
 * stores after the lock bit, so a reader that sees any of them fails validation. */
static bool upgrade_to_lock(node *n, uint64_t version)
{
    if (!atomic_compare_exchange_strong_explicit(&n->version, &version, version + VERSION_LOCKED,
                                                 memory_order_acquire, memory_order_relaxed))
        return false;
    atomic_thread_fence(memory_order_release);
    return true;
}

/* Release: clears the lock bit and bumps the counter (locked + 2 carries into the counter). */
static void unlock(node *n)
{
    atomic_fetch_add_explicit(&n->version, 2, memory_order_release);
}

static void unlock_obsolete(node *n)
{
    atomic_fetch_add_explicit(&n->version, 2 + VERSION_OBSOLETE, memory_order_release);
}

static void backoff(unsigned restarts)
{
    if (restarts > 8)
        sched_yield();
    else
        for (unsigned i = 0; i < restarts * 8; i++)
            ck_pr_stall();
}

/* ---- allocation and retirement --------------------------------------------------------------- */

_Static_assert(sizeof(inner_node) <= FEOX_SLAB_MAX_BLOCK &&
                   sizeof(leaf_node) <= FEOX_SLAB_MAX_BLOCK,
               "a node fits a slab block");

/* A zeroed node, from slabs's slab if slabs is not NULL (a bulk build), else from the allocator. */
static node *node_new_from(bool leaf, feox_slab_filler *slabs)
{
    size_t bytes = leaf ? sizeof(leaf_node) : sizeof(inner_node);
    node *n = slabs ? feox_slab_alloc(slabs, bytes) : feox_mem_alloc(bytes);
    if (!n)
        return NULL;
    memset(n, 0, bytes);
    n->is_leaf = leaf;
    n->bytes = (uint16_t)bytes;
    n->in_slab = slabs != NULL;
    return n;
}

static node *node_new(bool leaf)
{
    return node_new_from(leaf, NULL);
}

static void node_free(node *n)
{
    if (!n)
        return;
    if (n->in_slab)
        feox_slab_free(n, n->bytes);
    else
        feox_mem_free(n);
}

static void destroy_node(feox_retire_link *link)
{
    node_free((node *)((char *)link - offsetof(node, retire)));
}

static size_t node_bytes(const feox_retire_link *link)
{
    return ((const node *)((const char *)link - offsetof(node, retire)))->bytes;
}

static const feox_retire_kind node_kind = {FEOX_RETIRE_NODE, destroy_node, node_bytes};

static void retire_node(node *n)
{
    feox_epoch_retire(&n->retire, &node_kind, n->bytes);
}

/* The shortest key s with left < s <= right (left < right): right cut one byte past their
 * common prefix. */
static separator *separator_between(const uint8_t *left, size_t llen, const uint8_t *right,
                                    size_t rlen)
{
    size_t len = common_prefix(left, llen, right, rlen) + 1;
    if (len > rlen)
        len = rlen;
    separator *s = feox_mem_alloc(sizeof *s + len);
    if (!s)
        return NULL;
    s->len = (uint32_t)len;
    memcpy(s->key, right, len);
    return s;
}

static void destroy_separator(feox_retire_link *link)
{
    feox_mem_free((char *)link - offsetof(separator, retire));
}

static size_t separator_bytes(const feox_retire_link *link)
{
    const separator *s = (const separator *)((const char *)link - offsetof(separator, retire));
    return sizeof *s + s->len;
}

static const feox_retire_kind separator_kind = {FEOX_RETIRE_SEPARATOR, destroy_separator,
                                                separator_bytes};

static void retire_separator(separator *s)
{
    feox_epoch_retire(&s->retire, &separator_kind, sizeof *s + s->len);
}

/* ---- counting -------------------------------------------------------------------------------- */

static _Thread_local unsigned thread_stripe_plus_one;
static _Atomic unsigned next_stripe;

/* Striped so that writers on many cores do not bounce one cache line. */
static void count_add(feox_ordered_index *idx, int64_t delta)
{
    if (!thread_stripe_plus_one)
        thread_stripe_plus_one = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) %
                                     FEOX_OI_COUNT_STRIPES +
                                 1;
    atomic_fetch_add_explicit(&idx->counts[thread_stripe_plus_one - 1].value, delta,
                              memory_order_relaxed);
}

uint64_t feox_ordered_index_count(const feox_ordered_index *idx)
{
    int64_t sum = 0;
    for (int i = 0; i < FEOX_OI_COUNT_STRIPES; i++)
        sum += atomic_load_explicit(&idx->counts[i].value, memory_order_relaxed);
    return sum < 0 ? 0 : (uint64_t)sum;
}

/* ---- create / destroy ------------------------------------------------------------------------ */

feox_err feox_ordered_index_create(feox_ordered_index **out)
{
    feox_ordered_index *idx = feox_mem_calloc(1, sizeof *idx);
    if (!idx)
        return FEOX_ERR_NOMEM;
    node *root = node_new(true);
    if (!root) {
        feox_mem_free(idx);
        return FEOX_ERR_NOMEM;
    }
    atomic_store_explicit(&idx->root, root, memory_order_release);
    *out = idx;
    return FEOX_OK;
}

typedef struct entry_visitor {
    void (*visit)(void *ctx, feox_entry *e); /* NULL: the entries are not read */
    void *ctx;
} entry_visitor;

static void free_subtree(node *n, const entry_visitor *v)
{
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    if (!n->is_leaf) {
        for (uint32_t i = 0; i < count; i++)
            feox_mem_free(atomic_load_explicit(&AS_INNER(n)->seps[i], memory_order_relaxed));
        for (uint32_t i = 0; i <= count; i++)
            free_subtree(atomic_load_explicit(&AS_INNER(n)->children[i], memory_order_relaxed), v);
    } else if (v->visit) {
        for (uint32_t i = 0; i < count; i++)
            v->visit(v->ctx, atomic_load_explicit(&AS_LEAF(n)->entries[i], memory_order_relaxed));
    }
    node_free(n);
}

void feox_ordered_index_destroy_visiting(feox_ordered_index *idx,
                                         void (*visit)(void *ctx, feox_entry *e), void *ctx)
{
    if (!idx)
        return;
    entry_visitor v = {visit, ctx};
    free_subtree(atomic_load_explicit(&idx->root, memory_order_acquire), &v);
    feox_mem_free(idx);
}

void feox_ordered_index_destroy(feox_ordered_index *idx)
{
    feox_ordered_index_destroy_visiting(idx, NULL, NULL);
}

/* ---- bulk build ------------------------------------------------------------------------------ */

/* Leaves are built full: a loaded store's keys take the fewest leaves (at 16-byte keys, 13.5 bytes
 * a key instead of 15.4 at 28 a leaf), and a leaf that later takes a key splits once into two half
 * full ones, as it would after a few more keys. Inner nodes keep room for those splits, so the
 * first writes after a load split leaves and not their parents. */
#define LEAF_BUILD_FILL FEOX_OI_NODE_CAP
#define INNER_BUILD_FILL (FEOX_OI_NODE_CAP - 4)

/* One node of the level being built, with the smallest and largest key below it. */
typedef struct built {
    node *n;
    const feox_entry *min, *max;
} built;

/* Parts of `total` items cut into ceil(total / fill) nodes as even as possible: node i gets
 * base + (i < extra). */
static size_t build_parts(size_t total, size_t fill)
{
    return (total + fill - 1) / fill;
}

static void free_built(built *level, size_t count)
{
    const entry_visitor none = {NULL, NULL};
    for (size_t i = 0; i < count; i++)
        if (level[i].n)
            free_subtree(level[i].n, &none);
}

static size_t build_leaves(feox_entry *const *sorted, size_t n, built *out, feox_slab_filler *slabs)
{
    size_t parts = build_parts(n, LEAF_BUILD_FILL), at = 0;
    for (size_t i = 0; i < parts; i++) {
        size_t take = n / parts + (i < n % parts);
        node *leaf = node_new_from(true, slabs);
        if (!leaf)
            return i;
        for (size_t j = 0; j < take; j++)
            atomic_store_explicit(&AS_LEAF(leaf)->entries[j], sorted[at + j], memory_order_relaxed);
        atomic_store_explicit(&leaf->count, (uint32_t)take, memory_order_relaxed);
        refresh_prefix_and_heads(leaf);
        out[i] = (built){leaf, sorted[at], sorted[at + take - 1]};
        at += take;
    }
    return parts;
}

/* One inner level over `count` nodes of the level below (moved into the new nodes). Returns the
 * number of new nodes, or 0 on allocation failure (then `below` still owns every node). */
static size_t build_inner(built *below, size_t count, built *out, feox_slab_filler *slabs)
{
    size_t parts = count <= FEOX_OI_NODE_CAP + 1 ? 1 : build_parts(count, INNER_BUILD_FILL + 1);
    size_t at = 0;
    for (size_t i = 0; i < parts; i++) {
        size_t take = count / parts + (i < count % parts);
        node *inner = node_new_from(false, slabs);
        if (!inner)
            goto fail;
        out[i] = (built){inner, below[at].min, below[at + take - 1].max};
        for (size_t j = 0; j < take; j++) {
            if (j > 0) {
                const feox_entry *l = below[at + j - 1].max, *r = below[at + j].min;
                separator *sep = separator_between(l->key, l->key_len, r->key, r->key_len);
                if (!sep) {
                    atomic_store_explicit(&inner->count, (uint32_t)(j - 1), memory_order_relaxed);
                    for (size_t k = 0; k < j; k++) /* the children stay with `below` */
                        atomic_store_explicit(&AS_INNER(inner)->children[k], NULL,
                                              memory_order_relaxed);
                    goto fail_with_current;
                }
                atomic_store_explicit(&AS_INNER(inner)->seps[j - 1], sep, memory_order_relaxed);
            }
            atomic_store_explicit(&AS_INNER(inner)->children[j], below[at + j].n,
                                  memory_order_relaxed);
        }
        atomic_store_explicit(&inner->count, (uint32_t)(take - 1), memory_order_relaxed);
        refresh_prefix_and_heads(inner);
        at += take;
        continue;
    fail_with_current:
        for (uint32_t k = 0; k < atomic_load_explicit(&inner->count, memory_order_relaxed); k++)
            feox_mem_free(atomic_load_explicit(&AS_INNER(inner)->seps[k], memory_order_relaxed));
        node_free(inner);
        out[i].n = NULL;
    fail:
        /* Take the nodes of the finished parents back apart: separators freed, children stay. */
        for (size_t k = 0; k < i; k++) {
            node *p = out[k].n;
            uint32_t seps = atomic_load_explicit(&p->count, memory_order_relaxed);
            for (uint32_t m = 0; m < seps; m++)
                feox_mem_free(atomic_load_explicit(&AS_INNER(p)->seps[m], memory_order_relaxed));
            node_free(p);
        }
        return 0;
    }
    return parts;
}

feox_err feox_ordered_index_build(feox_ordered_index *idx, feox_entry *const *sorted, size_t n)
{
    if (n == 0)
        return FEOX_OK;
    size_t leaves = build_parts(n, LEAF_BUILD_FILL);
    built *level = feox_mem_calloc(leaves, sizeof *level);
    built *next = feox_mem_calloc(leaves, sizeof *next);
    if (!level || !next) {
        feox_mem_free(level);
        feox_mem_free(next);
        return FEOX_ERR_NOMEM;
    }
    /* The nodes of a big build come from slabs (slab.h): no allocator header, a 2 MiB huge page
     * per ~3,400 leaves instead of a first-touch fault per ~7 (1M keys: ~5,000 faults fewer).
     * Later splits make nodes of their own; a slab goes when all of its nodes are retired. A
     * small build keeps malloc: a slab would be mostly empty. */
    feox_slab_filler slabs = {0};
    bool from_slabs = leaves * sizeof(leaf_node) >= FEOX_SLAB_BYTES / 2;
    feox_slab_filler *filler = from_slabs ? &slabs : NULL;
    size_t count = build_leaves(sorted, n, level, filler);
    feox_err err = FEOX_OK;
    if (count < leaves) {
        err = FEOX_ERR_NOMEM;
    } else {
        while (count > 1) {
            size_t parents = build_inner(level, count, next, filler);
            if (!parents) {
                err = FEOX_ERR_NOMEM;
                break;
            }
            built *swap = level;
            level = next;
            next = swap;
            count = parents;
        }
    }
    if (err) {
        free_built(level, count);
    } else {
        /* Nobody else uses the index yet: the empty root leaf goes at once. */
        node_free(atomic_load_explicit(&idx->root, memory_order_relaxed));
        atomic_store_explicit(&idx->root, level[0].n, memory_order_release);
        count_add(idx, (int64_t)n);
    }
    feox_slab_filler_seal(&slabs); /* after free_built: a slab left empty goes now */
    feox_mem_free(level);
    feox_mem_free(next);
    return err;
}

/* ---- writer-side node edits (node locked) ---------------------------------------------------- */

/* Publish count last with release: a reader that loads the new count (acquire) sees the slots. */
static void set_count(node *n, uint32_t count)
{
    atomic_store_explicit(&n->count, count, memory_order_release);
}

/* Keep the prefix valid for a new key: shrink it (and recompute every head) if the key leaves it,
 * otherwise compute the one new head. */
static void fit_new_key(node *n, uint32_t slot, const uint8_t *key, size_t len)
{
    uint8_t prefix[FEOX_OI_PREFIX_MAX];
    uint32_t plen = load_prefix(n, prefix);
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    if (count == 1 || common_prefix(prefix, plen, key, len) < plen)
        refresh_prefix_and_heads(n);
    else
        atomic_store_explicit(&n->heads[slot], key_head(key, len, plen), memory_order_relaxed);
}

static void leaf_insert_at(node *n, uint32_t slot, feox_entry *e)
{
    leaf_node *leaf = AS_LEAF(n);
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    for (uint32_t i = count; i > slot; i--) {
        atomic_store_explicit(&leaf->entries[i],
                              atomic_load_explicit(&leaf->entries[i - 1], memory_order_relaxed),
                              memory_order_release);
        atomic_store_explicit(&n->heads[i],
                              atomic_load_explicit(&n->heads[i - 1], memory_order_relaxed),
                              memory_order_relaxed);
    }
    atomic_store_explicit(&leaf->entries[slot], e, memory_order_release);
    set_count(n, count + 1);
    fit_new_key(n, slot, e->key, e->key_len);
}

static void leaf_remove_at(node *n, uint32_t slot)
{
    leaf_node *leaf = AS_LEAF(n);
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    for (uint32_t i = slot; i + 1 < count; i++) {
        atomic_store_explicit(&leaf->entries[i],
                              atomic_load_explicit(&leaf->entries[i + 1], memory_order_relaxed),
                              memory_order_release);
        atomic_store_explicit(&n->heads[i],
                              atomic_load_explicit(&n->heads[i + 1], memory_order_relaxed),
                              memory_order_relaxed);
    }
    /* No stale pointer is left behind the count: the entry it names may be freed later. */
    atomic_store_explicit(&leaf->entries[count - 1], NULL, memory_order_release);
    set_count(n, count - 1);
}

/* Insert separator s at slot with right as the child after it. */
static void inner_insert_at(node *n, uint32_t slot, separator *s, node *right)
{
    inner_node *in = AS_INNER(n);
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    for (uint32_t i = count; i > slot; i--) {
        atomic_store_explicit(&in->seps[i],
                              atomic_load_explicit(&in->seps[i - 1], memory_order_relaxed),
                              memory_order_release);
        atomic_store_explicit(&n->heads[i],
                              atomic_load_explicit(&n->heads[i - 1], memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&in->children[i + 1],
                              atomic_load_explicit(&in->children[i], memory_order_relaxed),
                              memory_order_release);
    }
    atomic_store_explicit(&in->seps[slot], s, memory_order_release);
    /* Release: right is fully initialized before a reader can reach it through this slot. */
    atomic_store_explicit(&in->children[slot + 1], right, memory_order_release);
    set_count(n, count + 1);
    fit_new_key(n, slot, s->key, s->len);
}

/* Unlink child `child` and one adjacent separator (the neighbour inherits its key range); returns
 * the separator, which the caller retires. */
static separator *inner_remove_child(node *n, uint32_t child)
{
    inner_node *in = AS_INNER(n);
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    uint32_t sep = child > 0 ? child - 1 : 0;
    separator *dropped = atomic_load_explicit(&in->seps[sep], memory_order_relaxed);
    for (uint32_t i = sep; i + 1 < count; i++) {
        atomic_store_explicit(&in->seps[i],
                              atomic_load_explicit(&in->seps[i + 1], memory_order_relaxed),
                              memory_order_release);
        atomic_store_explicit(&n->heads[i],
                              atomic_load_explicit(&n->heads[i + 1], memory_order_relaxed),
                              memory_order_relaxed);
    }
    for (uint32_t i = child; i < count; i++)
        atomic_store_explicit(&in->children[i],
                              atomic_load_explicit(&in->children[i + 1], memory_order_relaxed),
                              memory_order_release);
    atomic_store_explicit(&in->seps[count - 1], NULL, memory_order_release);
    atomic_store_explicit(&in->children[count], NULL, memory_order_release);
    set_count(n, count - 1);
    return dropped;
}

static uint32_t child_slot(const node *parent, const node *child)
{
    uint32_t count = atomic_load_explicit(&parent->count, memory_order_relaxed);
    for (uint32_t i = 0; i <= count; i++)
        if (atomic_load_explicit(&AS_INNER(parent)->children[i], memory_order_relaxed) == child)
            return i;
    return count; /* unreachable while both are locked: parent points at child */
}

/*
 * Split the full, locked node n (its locked parent, or NULL when n is the root). Sequential
 * inserts (key past either end) split near that end so bulk loads fill nodes instead of halving
 * them. Everything is allocated before anything changes: NOMEM leaves the tree as it was.
 */
static feox_err split_node(feox_ordered_index *idx, node *parent, node *n, const uint8_t *key,
                           size_t len, feox_slab_filler *slabs)
{
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    size_t flen, llen;
    const uint8_t *first = slot_key(n, 0, &flen);
    const uint8_t *last = slot_key(n, count - 1, &llen);
    uint32_t mid = count / 2;
    if (feox_key_compare(key, len, last, llen) > 0)
        mid = count - 1;
    else if (feox_key_compare(key, len, first, flen) < 0)
        mid = 1;

    node *right = node_new_from(n->is_leaf, slabs);
    node *new_root = parent ? NULL : node_new_from(false, slabs);
    separator *up = NULL;
    if (n->is_leaf) {
        size_t alen, blen;
        const uint8_t *a = slot_key(n, mid - 1, &alen);
        const uint8_t *b = slot_key(n, mid, &blen);
        up = separator_between(a, alen, b, blen);
    } else {
        up = atomic_load_explicit(&AS_INNER(n)->seps[mid], memory_order_relaxed);
    }
    if (!right || (!parent && !new_root) || !up) {
        node_free(right);
        node_free(new_root);
        if (n->is_leaf)
            feox_mem_free(up);
        return FEOX_ERR_NOMEM;
    }

    /* Fill the unpublished right node, then cut n down (readers of n fail validation). */
    if (n->is_leaf) {
        for (uint32_t i = mid; i < count; i++) {
            feox_entry *e = atomic_load_explicit(&AS_LEAF(n)->entries[i], memory_order_relaxed);
            atomic_store_explicit(&AS_LEAF(right)->entries[i - mid], e, memory_order_relaxed);
            atomic_store_explicit(&AS_LEAF(n)->entries[i], NULL, memory_order_release);
        }
        atomic_store_explicit(&right->count, count - mid, memory_order_relaxed);
        set_count(n, mid);
    } else {
        inner_node *from = AS_INNER(n), *to = AS_INNER(right);
        for (uint32_t i = mid + 1; i < count; i++) {
            separator *s = atomic_load_explicit(&from->seps[i], memory_order_relaxed);
            atomic_store_explicit(&to->seps[i - mid - 1], s, memory_order_relaxed);
        }
        for (uint32_t i = mid + 1; i <= count; i++) {
            node *c = atomic_load_explicit(&from->children[i], memory_order_relaxed);
            atomic_store_explicit(&to->children[i - mid - 1], c, memory_order_relaxed);
            atomic_store_explicit(&from->children[i], NULL, memory_order_release);
        }
        for (uint32_t i = mid; i < count; i++)
            atomic_store_explicit(&from->seps[i], NULL, memory_order_release);
        atomic_store_explicit(&right->count, count - mid - 1, memory_order_relaxed);
        set_count(n, mid);
    }
    refresh_prefix_and_heads(right);
    refresh_prefix_and_heads(n);

    if (parent) {
        inner_insert_at(parent, child_slot(parent, n), up, right);
    } else {
        inner_node *r = AS_INNER(new_root);
        atomic_store_explicit(&r->seps[0], up, memory_order_relaxed);
        atomic_store_explicit(&r->children[0], n, memory_order_relaxed);
        atomic_store_explicit(&r->children[1], right, memory_order_relaxed);
        atomic_store_explicit(&new_root->count, 1, memory_order_relaxed);
        refresh_prefix_and_heads(new_root);
        /* Release: the new root and everything below it are initialized before it is seen. */
        atomic_store_explicit(&idx->root, new_root, memory_order_release);
    }
    return FEOX_OK;
}

/* Lock parent (if any) and n at the versions read, then split. Returns SPLIT_RESTART when a lock
 * was lost or the split is done (the caller restarts from the root either way), else the error. */
#define SPLIT_RESTART (-1)
static int lock_and_split(feox_ordered_index *idx, node *parent, uint64_t parent_version, node *n,
                          uint64_t version, const uint8_t *key, size_t len, feox_slab_filler *slabs)
{
    if (parent && !upgrade_to_lock(parent, parent_version))
        return SPLIT_RESTART;
    if (!upgrade_to_lock(n, version)) {
        if (parent)
            unlock(parent);
        return SPLIT_RESTART;
    }
    if (!parent && atomic_load_explicit(&idx->root, memory_order_acquire) != n) {
        unlock(n);
        return SPLIT_RESTART;
    }
    feox_err err = split_node(idx, parent, n, key, len, slabs);
    unlock(n);
    if (parent)
        unlock(parent);
    return err == FEOX_OK ? SPLIT_RESTART : (int)err;
}

/* ---- insert ---------------------------------------------------------------------------------- */

/* Insert sorted[0..want) (strictly ascending, keys absent) from sorted[0] on, as many as go into
 * the leaf sorted[0] goes to: one descent, then the following keys while they are below that leaf's
 * fence and it has room. *done: how many went in. The fence is the nearest separator above the
 * leaf on the path (NULL: the rightmost leaf); while the leaf is locked its key range can only
 * grow (a split needs its lock; an unlinked neighbour's range goes to a neighbour), so every key
 * below the fence still belongs to it. */
static feox_err insert_in_section(feox_ordered_index *idx, feox_entry *const *sorted, size_t want,
                                  size_t *done, feox_slab_filler *slabs)
{
    const uint8_t *key = sorted[0]->key;
    size_t len = sorted[0]->key_len;
    unsigned restarts = 0;
restart:
    if (restarts++)
        backoff(restarts);
    node *n = atomic_load_explicit(&idx->root, memory_order_acquire);
    uint64_t version, parent_version = 0;
    node *parent = NULL;
    const separator *fence = NULL;
    if (!read_version(n, &version) || n != atomic_load_explicit(&idx->root, memory_order_acquire))
        goto restart;
    for (;;) {
        uint32_t count = atomic_load_explicit(&n->count, memory_order_acquire);
        if (count >= FEOX_OI_NODE_CAP) {
            int r = lock_and_split(idx, parent, parent_version, n, version, key, len, slabs);
            if (r != SPLIT_RESTART)
                return (feox_err)r;
            goto restart;
        }
        if (n->is_leaf)
            break;
        uint32_t slot = node_search(n, count, key, len, true);
        node *child = atomic_load_explicit(&AS_INNER(n)->children[slot], memory_order_acquire);
        if (slot < count)
            fence = atomic_load_explicit(&AS_INNER(n)->seps[slot], memory_order_acquire);
        uint64_t child_version;
        if (!child || (slot < count && !fence) || !validate(n, version))
            goto restart;
        if (parent && !validate(parent, parent_version))
            goto restart;
        if (!read_version(child, &child_version) || !validate(n, version))
            goto restart;
        parent = n;
        parent_version = version;
        n = child;
        version = child_version;
    }
    if (!upgrade_to_lock(n, version))
        goto restart;
    /* The leaf is still the one the parent routes this key to (its version is unchanged, so it
     * was neither split nor unlinked since the parent was validated). */
    uint32_t count = atomic_load_explicit(&n->count, memory_order_relaxed);
    size_t i = 0;
    do {
        const feox_entry *e = sorted[i];
        size_t last_len = 0;
        /* after the first key (just inserted, in cache): is this one past the leaf's last? */
        const uint8_t *last = i && count ? slot_key(n, count - 1, &last_len) : NULL;
        uint32_t slot = last && feox_key_compare(e->key, e->key_len, last, last_len) > 0
                            ? count /* past the leaf's last key: a run appends */
                            : node_search(n, count, e->key, e->key_len, false);
        leaf_insert_at(n, slot, sorted[i]);
        count++;
        i++;
    } while (i < want && count < FEOX_OI_NODE_CAP &&
             (!fence ||
              feox_key_compare(sorted[i]->key, sorted[i]->key_len, fence->key, fence->len) < 0));
    unlock(n);
    count_add(idx, (int64_t)i);
    *done = i;
    return FEOX_OK;
}

/* ---- finding an entry (remove, replace) ------------------------------------------------------ */

typedef struct path_step {
    node *n;
    uint64_t version;
    uint32_t child; /* slot taken to the next level */
} path_step;

/* Where an entry was found: its leaf as read (version), its slot, the leaf's count, and how many
 * inner nodes lie above the leaf. */
typedef struct entry_place {
    node *leaf;
    uint64_t version;
    uint32_t slot;
    uint32_t count;
    int depth;
} entry_place;

typedef enum find_result { FIND_RESTART, FIND_ABSENT, FIND_FOUND } find_result;

/* Descend optimistically (inside an epoch section) to the leaf slot holding e, recording each
 * inner node on the way in path (remove unlinks from it; NULL: not kept). FIND_FOUND and
 * FIND_ABSENT were validated against the leaf's version in *at; nothing is locked.
 * FIND_RESTART: a node changed under the descent, start again from the root. */
static find_result find_entry(feox_ordered_index *idx, const feox_entry *e, path_step *path,
                              entry_place *at)
{
    const uint8_t *key = e->key;
    size_t len = e->key_len;
    int depth = 0;
    node *n = atomic_load_explicit(&idx->root, memory_order_acquire);
    uint64_t version;
    if (!read_version(n, &version) || n != atomic_load_explicit(&idx->root, memory_order_acquire))
        return FIND_RESTART;
    while (!n->is_leaf) {
        uint32_t count = atomic_load_explicit(&n->count, memory_order_acquire);
        if (count > FEOX_OI_NODE_CAP)
            return FIND_RESTART;
        uint32_t slot = node_search(n, count, key, len, true);
        node *child = atomic_load_explicit(&AS_INNER(n)->children[slot], memory_order_acquire);
        uint64_t child_version;
        if (!child || !validate(n, version) || depth == FEOX_OI_MAX_DEPTH)
            return FIND_RESTART;
        if (!read_version(child, &child_version) || !validate(n, version))
            return FIND_RESTART;
        if (path)
            path[depth] = (path_step){n, version, slot};
        depth++;
        n = child;
        version = child_version;
    }
    uint32_t count = atomic_load_explicit(&n->count, memory_order_acquire);
    if (count > FEOX_OI_NODE_CAP)
        return FIND_RESTART;
    uint32_t slot = node_search(n, count, key, len, false);
    bool found =
        slot < count && atomic_load_explicit(&AS_LEAF(n)->entries[slot], memory_order_acquire) == e;
    if (!validate(n, version))
        return FIND_RESTART;
    *at = (entry_place){n, version, slot, count, depth};
    return found ? FIND_FOUND : FIND_ABSENT;
}

/* ---- remove ---------------------------------------------------------------------------------- */

static void unlock_steps(path_step *path, int from, int to)
{
    for (int i = from; i < to; i++)
        unlock(path[i].n);
}

/* Unlock the ancestor that kept its other children. If it is the root and has one child left,
 * that child becomes the root (so queue-like workloads do not leave a chain of one-child roots):
 * the old root is locked, so nobody can be changing its child's position under it, and every
 * thread still holding the old root sees it obsolete and restarts. */
static void collapse_or_unlock_keeper(feox_ordered_index *idx, node *keeper, bool is_root)
{
    if (!is_root || atomic_load_explicit(&keeper->count, memory_order_relaxed) != 0) {
        unlock(keeper);
        return;
    }
    node *only = atomic_load_explicit(&AS_INNER(keeper)->children[0], memory_order_relaxed);
    /* Release: pairs with the acquire load of the root; only is already published. */
    atomic_store_explicit(&idx->root, only, memory_order_release);
    unlock_obsolete(keeper);
    retire_node(keeper);
}

static void remove_in_section(feox_ordered_index *idx, feox_entry *e)
{
    path_step path[FEOX_OI_MAX_DEPTH];
    unsigned restarts = 0;
restart:
    if (restarts++)
        backoff(restarts);
    entry_place at;
    find_result where = find_entry(idx, e, path, &at);
    if (where == FIND_RESTART)
        goto restart;
    if (where == FIND_ABSENT)
        return; /* not in the index: the caller broke the contract; nothing to do */
    node *n = at.leaf;
    uint64_t version = at.version;
    uint32_t slot = at.slot;
    int depth = at.depth;

    /* Emptying a leaf: unlink it with the chain of single-child ancestors above it, from the
     * nearest ancestor that keeps another child. */
    int keeper = -1;
    if (at.count == 1) {
        keeper = depth - 1;
        while (keeper >= 0 &&
               atomic_load_explicit(&path[keeper].n->count, memory_order_relaxed) == 0)
            keeper--;
    }
    if (keeper >= 0) {
        int locked = keeper;
        while (locked < depth && upgrade_to_lock(path[locked].n, path[locked].version))
            locked++;
        if (locked < depth || !upgrade_to_lock(n, version)) {
            unlock_steps(path, keeper, locked);
            goto restart;
        }
        leaf_remove_at(n, slot);
        separator *dropped = inner_remove_child(path[keeper].n, path[keeper].child);
        for (int i = keeper + 1; i < depth; i++) {
            unlock_obsolete(path[i].n);
            retire_node(path[i].n);
        }
        unlock_obsolete(n);
        retire_node(n);
        collapse_or_unlock_keeper(idx, path[keeper].n, keeper == 0);
        retire_separator(dropped);
        count_add(idx, -1);
        return;
    }
    if (!upgrade_to_lock(n, version))
        goto restart;
    leaf_remove_at(n, slot);
    unlock(n);
    count_add(idx, -1);
}

/* ---- replace --------------------------------------------------------------------------------- */

/* The slot stays where it is and so does every head and the prefix (the key bytes are the
 * same): only the entry pointer changes, with the leaf locked like any edit, so a reader that
 * read the slot either way fails validation or returns an entry that was there. */
static bool replace_in_section(feox_ordered_index *idx, feox_entry *old, feox_entry *fresh)
{
    unsigned restarts = 0;
    for (;;) {
        if (restarts++)
            backoff(restarts);
        entry_place at;
        find_result where = find_entry(idx, old, NULL, &at);
        if (where == FIND_RESTART)
            continue;
        if (where == FIND_ABSENT)
            return false;
        if (!upgrade_to_lock(at.leaf, at.version))
            continue;
        atomic_store_explicit(&AS_LEAF(at.leaf)->entries[at.slot], fresh, memory_order_release);
        unlock(at.leaf);
        return true;
    }
}

/* Writers read nodes optimistically before locking them, exactly like readers, so they too stay
 * inside an epoch section: a node they hold a pointer to may be unlinked and retired meanwhile,
 * and must not be freed before they validate and find out. */
feox_err feox_ordered_index_insert(feox_ordered_index *idx, feox_entry *e)
{
    size_t done;
    feox_epoch_enter();
    feox_err err = insert_in_section(idx, &e, 1, &done, NULL);
    feox_epoch_exit();
    return err;
}

feox_err feox_ordered_index_insert_sorted(feox_ordered_index *idx, feox_entry *const *sorted,
                                          size_t n, size_t *inserted)
{
    return feox_ordered_index_insert_sorted_from(idx, sorted, n, inserted, NULL);
}

feox_err feox_ordered_index_insert_sorted_from(feox_ordered_index *idx, feox_entry *const *sorted,
                                               size_t n, size_t *inserted, feox_slab_filler *slabs)
{
    feox_err err = FEOX_OK;
    size_t at = 0;
    feox_epoch_enter();
    while (at < n && !err) {
        size_t done = 0;
        err = insert_in_section(idx, sorted + at, n - at, &done, slabs);
        at += done;
    }
    feox_epoch_exit();
    *inserted = at;
    return err;
}

void feox_ordered_index_remove(feox_ordered_index *idx, feox_entry *e)
{
    feox_epoch_enter();
    remove_in_section(idx, e);
    feox_epoch_exit();
}

bool feox_ordered_index_replace(feox_ordered_index *idx, feox_entry *old, feox_entry *fresh)
{
    feox_epoch_enter();
    bool replaced = replace_in_section(idx, old, fresh);
    feox_epoch_exit();
    return replaced;
}

/* ---- scan ------------------------------------------------------------------------------------ */

/* Where a scan stands: the leaf being read, its fence, and the leaf's parent as it was seen on the
 * way down, so the scan can step to the next sibling leaf without a new descent while that
 * parent is unchanged. */
typedef struct leaf_visit {
    const node *leaf;
    uint64_t version;
    const separator *fence; /* ascending: the leaf's upper bound; descending: its lower bound */
    const node *parent;     /* NULL when the leaf is the root */
    uint64_t parent_version;
    uint32_t slot;                 /* the leaf's child slot in parent */
    const separator *parent_fence; /* the parent's own fence, inherited by its edge children */
} leaf_visit;

static bool scan_ascending(feox_scan_from from)
{
    return from == FEOX_SCAN_FIRST || from == FEOX_SCAN_GE || from == FEOX_SCAN_GT;
}

/* Descend to the leaf where a scan from (from, key) starts, remembering its fence and parent. */
static void descend_for_scan(feox_ordered_index *idx, feox_scan_from from, const uint8_t *key,
                             size_t len, leaf_visit *visit)
{
    bool ascending = scan_ascending(from);
    unsigned restarts = 0;
restart:
    if (restarts++)
        backoff(restarts);
    const separator *fence = NULL;
    node *n = atomic_load_explicit(&idx->root, memory_order_acquire);
    uint64_t version;
    if (!read_version(n, &version) || n != atomic_load_explicit(&idx->root, memory_order_acquire))
        goto restart;
    visit->parent = NULL;
    while (!n->is_leaf) {
        uint32_t count = atomic_load_explicit(&n->count, memory_order_acquire);
        if (count > FEOX_OI_NODE_CAP)
            goto restart;
        uint32_t slot;
        if (from == FEOX_SCAN_FIRST)
            slot = 0;
        else if (from == FEOX_SCAN_LAST)
            slot = count;
        else /* LT wants the child holding keys just below key; the others the one holding key */
            slot = node_search(n, count, key, len, from != FEOX_SCAN_LT);
        inner_node *in = AS_INNER(n);
        const separator *inherited = fence;
        if (ascending && slot < count)
            fence = atomic_load_explicit(&in->seps[slot], memory_order_acquire);
        else if (!ascending && slot > 0)
            fence = atomic_load_explicit(&in->seps[slot - 1], memory_order_acquire);
        node *child = atomic_load_explicit(&in->children[slot], memory_order_acquire);
        uint64_t child_version;
        if (!child || !validate(n, version))
            goto restart;
        if (!read_version(child, &child_version) || !validate(n, version))
            goto restart;
        visit->parent = n;
        visit->parent_version = version;
        visit->slot = slot;
        visit->parent_fence = inherited;
        n = child;
        version = child_version;
    }
    visit->leaf = n;
    visit->version = version;
    visit->fence = fence;
}

/* Move the visit to the next leaf under the same parent (previous one, descending). False when
 * the parent changed since it was read or the leaf was its edge child: the caller descends again
 * from the fence instead. Validating the parent proves its children and separators are the ones
 * seen on the way down, so the sibling's keys all lie beyond everything returned so far. */
static bool step_to_sibling(leaf_visit *visit, bool ascending)
{
    const node *p = visit->parent;
    if (!p)
        return false;
    uint32_t count = atomic_load_explicit(&p->count, memory_order_acquire);
    uint32_t slot = visit->slot;
    if (count > FEOX_OI_NODE_CAP || (ascending ? slot >= count : slot == 0))
        return false;
    uint32_t next = ascending ? slot + 1 : slot - 1;
    const inner_node *in = AS_INNER(p);
    const separator *fence = visit->parent_fence;
    if (ascending && next < count)
        fence = atomic_load_explicit(&in->seps[next], memory_order_acquire);
    else if (!ascending && next > 0)
        fence = atomic_load_explicit(&in->seps[next - 1], memory_order_acquire);
    node *child = atomic_load_explicit(&in->children[next], memory_order_acquire);
    uint64_t child_version;
    if (!child || !validate(p, visit->parent_version))
        return false;
    if (!read_version(child, &child_version) || !validate(p, visit->parent_version))
        return false;
    visit->leaf = child;
    visit->version = child_version;
    visit->fence = fence;
    visit->slot = next;
    return true;
}

/* Copy the qualifying entries of one leaf into out (at most max); false if the leaf changed. */
static bool read_leaf(const leaf_visit *visit, feox_scan_from from, const uint8_t *key, size_t len,
                      feox_entry **out, size_t max, size_t *got)
{
    const node *n = visit->leaf;
    uint32_t count = atomic_load_explicit(&n->count, memory_order_acquire);
    if (count > FEOX_OI_NODE_CAP)
        return false;
    size_t taken = 0;
    if (scan_ascending(from)) {
        uint32_t i =
            from == FEOX_SCAN_FIRST ? 0 : node_search(n, count, key, len, from == FEOX_SCAN_GT);
        for (; i < count && taken < max; i++) {
            feox_entry *e = atomic_load_explicit(&AS_LEAF(n)->entries[i], memory_order_acquire);
            if (!e)
                return false;
            out[taken++] = e;
        }
    } else {
        uint32_t end =
            from == FEOX_SCAN_LAST ? count : node_search(n, count, key, len, from == FEOX_SCAN_LE);
        for (uint32_t i = end; i > 0 && taken < max; i--) {
            feox_entry *e = atomic_load_explicit(&AS_LEAF(n)->entries[i - 1], memory_order_acquire);
            if (!e)
                return false;
            out[taken++] = e;
        }
    }
    *got = taken;
    return validate(n, visit->version);
}

size_t feox_ordered_index_scan(feox_ordered_index *idx, feox_scan_from from, const void *bound,
                               size_t bound_len, feox_entry **out, size_t max)
{
    bool ascending = scan_ascending(from);
    const uint8_t *key = bound;
    size_t len = key ? bound_len : 0;
    size_t n = 0;
    leaf_visit visit;
    bool at_sibling = false;
    while (n < max) {
        size_t got;
        if (at_sibling) {
            /* Every key of a sibling qualifies; if it changed under us, fall back to a descent
             * from the fence already set below. */
            at_sibling = read_leaf(&visit, ascending ? FEOX_SCAN_FIRST : FEOX_SCAN_LAST, NULL, 0,
                                   out + n, max - n, &got);
            if (!at_sibling)
                continue;
        } else {
            do
                descend_for_scan(idx, from, key, len, &visit);
            while (!read_leaf(&visit, from, key, len, out + n, max - n, &got));
        }
        n += got;
        if (n == max || !visit.fence)
            break;
        /* The leaf is exhausted: everything after it (before it, descending) lies beyond its
         * fence, and everything returned so far lies on this side of it. */
        from = ascending ? FEOX_SCAN_GE : FEOX_SCAN_LT;
        key = visit.fence->key;
        len = visit.fence->len;
        at_sibling = step_to_sibling(&visit, ascending);
    }
    return n;
}

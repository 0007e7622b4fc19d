/*
 * epoch.h — safe memory reclamation for lock-free readers, on Concurrency Kit's ck_epoch.
 *
 * Contract
 *   - Readers bracket every access to shared index memory with feox_epoch_enter/exit. Sections
 *     nest, are per thread, and must be short: no I/O, no user callbacks, no waiting.
 *   - Writers unlink an object from every index first, then hand it to feox_epoch_retire. The
 *     object's destroy function runs only after every section active at retire time has ended.
 *   - feox_epoch_reclaim waits for a grace period and destroys what was retired before it started.
 *     It must not be called inside a section (it would wait for itself); it returns at once if the
 *     calling thread is inside one.
 *   - One process-global epoch domain shared by every store; per-thread records are created lazily
 *     and recycled when threads exit, so any application thread may call into the engine.
 */
#ifndef FEOX_EPOCH_H
#define FEOX_EPOCH_H

#include <stddef.h>
#include <stdint.h>

/* Embedded in every object that is retired (records, entries, index nodes): one word, the
 * global retire stack's link to the next object with the object's kind in its low 3 bits (links
 * are 8-byte aligned). The kind says how to destroy the object and how many bytes it counts, so
 * an object spends 8 bytes on its retirement instead of a link, a function and a size. */
typedef struct feox_retire_link {
    _Alignas(8) uintptr_t next_kind;
} feox_retire_link;

/* One kind per type of retired object; the id is what a link's low bits hold. */
enum feox_retire_kind_id {
    FEOX_RETIRE_PTR, /* feox_epoch_retire_ptr's own nodes */
    FEOX_RETIRE_ENTRY,
    FEOX_RETIRE_RECORD,
    FEOX_RETIRE_NODE,
    FEOX_RETIRE_SEPARATOR,
    FEOX_RETIRE_KINDS /* at most 8 */
};

typedef struct feox_retire_kind {
    enum feox_retire_kind_id id;
    /* Free the object whose link this is (after its grace period). */
    void (*destroy)(feox_retire_link *link);
    /* The bytes the object counts while retired: computed from fields that never change, so the
     * same at retire and at destroy. */
    size_t (*bytes)(const feox_retire_link *link);
} feox_retire_kind;

void feox_epoch_enter(void);
void feox_epoch_exit(void);
/* True if this thread is inside a section. */
int feox_epoch_in_section(void);

/* Retire an object that is no longer reachable from any index. kind must stay valid for the life
 * of the process (a static const), and be the only kind with its id; bytes is what
 * kind->bytes(link) returns (passed so the write path makes no indirect call). */
void feox_epoch_retire(feox_retire_link *link, const feox_retire_kind *kind, size_t bytes);

/* Retire a plain allocation (freed with feox_mem_free); for memory without an embedded link,
 * such as a ck_hs map replaced by growth. */
void feox_epoch_retire_ptr(void *ptr, size_t bytes);

/* Grace period, then destroy everything retired before the call. Returns the bytes freed. */
size_t feox_epoch_reclaim(void);

/* Bytes retired and not yet destroyed (for bounding memory under update storms). */
uint64_t feox_epoch_pending_bytes(void);
uint64_t feox_epoch_total_retired(void);
uint64_t feox_epoch_total_freed(void);

/* fork(): prepare holds reclamation off while the process is copied; parent resumes it; child
 * also frees the records of the threads that do not exist in the child, so that one frozen inside
 * a read section cannot block every later grace period there. Called by the atfork handlers
 * (store_registry.c). */
void feox_epoch_fork_prepare(void);
void feox_epoch_fork_parent(void);
void feox_epoch_fork_child(void);

/* TSan cannot see Concurrency Kit's inline-asm atomics; these annotate the happens-before edges
 * that only Concurrency Kit's own structures provide, so ThreadSanitizer stays quiet on correct
 * code: ck_hs publishing an entry to a lock-free lookup (hash_index.c) and ck_epoch's grace period
 * (epoch.c). The engine's own atomics are C11 and need none. No-ops without TSan. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define FEOX_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define FEOX_TSAN 1
#endif
#ifdef FEOX_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define FEOX_TSAN_ACQUIRE(p) __tsan_acquire((void *)(p))
#define FEOX_TSAN_RELEASE(p) __tsan_release((void *)(p))
#else
#define FEOX_TSAN_ACQUIRE(p) ((void)0)
#define FEOX_TSAN_RELEASE(p) ((void)0)
#endif

#endif

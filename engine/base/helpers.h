/*
 * helpers.h — the small helpers engine files share, defined once here: clock reads and
 * deadlines, saturating addition, the little-endian integer codec (the byte order of the store
 * file and of counter values) and random 64-bit values. All static inline, no state.
 */
#ifndef FEOX_HELPERS_H
#define FEOX_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>

#define FEOX_NS_PER_SEC 1000000000ull
#define FEOX_NS_PER_MS 1000000ull

/* Nanoseconds on the given clock. */
static inline uint64_t feox_clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * FEOX_NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* Nanoseconds on the monotonic clock: durations and condition-variable deadlines. */
static inline uint64_t feox_monotonic_ns(void)
{
    return feox_clock_ns(CLOCK_MONOTONIC);
}

/* Nanoseconds since the Unix epoch (wall clock). */
static inline uint64_t feox_realtime_ns(void)
{
    return feox_clock_ns(CLOCK_REALTIME);
}

/* ns as a timespec, for pthread_cond_timedwait. */
static inline struct timespec feox_timespec_of_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / FEOX_NS_PER_SEC),
                          .tv_nsec = (long)(ns % FEOX_NS_PER_SEC)};
    return ts;
}

/* The monotonic-clock deadline ms milliseconds from now (condition variables set to that clock). */
static inline struct timespec feox_deadline_after_ms(uint64_t ms)
{
    return feox_timespec_of_ns(feox_monotonic_ns() + ms * FEOX_NS_PER_MS);
}

/* a + b, or UINT64_MAX if that overflows. */
static inline uint64_t feox_sat_add_u64(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* a + b, clamped to INT64_MIN / INT64_MAX. */
static inline int64_t feox_sat_add_i64(int64_t a, int64_t b)
{
    int64_t sum;
    if (__builtin_add_overflow(a, b, &sum))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return sum;
}

/* Store v at p as 4 little-endian bytes. */
static inline void feox_put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Store v at p as 8 little-endian bytes. */
static inline void feox_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The 4 little-endian bytes at p. */
static inline uint32_t feox_get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The 8 little-endian bytes at p. */
static inline uint64_t feox_get_le64(const uint8_t *p)
{
    return (uint64_t)feox_get_le32(p) | (uint64_t)feox_get_le32(p + 4) << 32;
}

/* Fill *out with random bits from the kernel without blocking; false if it had none to give. */
static inline bool feox_random_u64(uint64_t *out)
{
    return getrandom(out, sizeof *out, GRND_NONBLOCK) == (ssize_t)sizeof *out;
}

#endif

/*
 * log_format.h — encoding and validation of the store file's header and log records. The layout
 * itself is written down once, in FORMAT.md; the constants below are its numbers.
 */
#ifndef FEOX_LOG_FORMAT_H
#define FEOX_LOG_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "feox.h"

#define FEOX_LOG_FORMAT_VERSION 1u
#define FEOX_LOG_HEADER_SIZE 64u
#define FEOX_LOG_RECORD_OVERHEAD 48u /* 40-byte fixed header + 8-byte trailing checksum */
#define FEOX_LOG_RECORD_FIXED 40u
#define FEOX_LOG_RECORD_MAGIC 0x31525846u /* "FXR1" little-endian */

/* Ops 3 and 4 (FORMAT.md, "Index snapshot") are written only at a clean close, as the file's last
 * two records; the scanner skips them by their header's length (their bodies are checked only by
 * the open that uses them). Op 5 (FORMAT.md, "Cancelled records") is a put or delete of a
 * sync=full write whose group commit failed, re-sealed in place: no data, skipped the same way. */
enum feox_log_op {
    FEOX_LOG_PUT = 1,
    FEOX_LOG_DELETE = 2,
    FEOX_LOG_SNAPSHOT = 3,
    FEOX_LOG_SNAPSHOT_FOOTER = 4,
    FEOX_LOG_CANCELLED = 5
};

/* The snapshot's key (8 bytes: its own offset, which it covers up to) and its value: a 64-byte
 * table header, then slot_count 8-byte slots (FORMAT.md). */
#define FEOX_LOG_SNAPSHOT_KEY 8u
#define FEOX_LOG_SNAPSHOT_HEADER 64u
#define FEOX_LOG_SNAPSHOT_MAGIC 0x58495846u /* "FXIX" little-endian */
#define FEOX_LOG_SNAPSHOT_VERSION 1u
#define FEOX_LOG_SNAPSHOT_MIN_SLOTS 16u
#define FEOX_LOG_SNAPSHOT_MAX_SLOTS ((1u << 29) - 16) /* the value length fits 32 bits */
#define FEOX_LOG_SNAPSHOT_FOOTER_SIZE (FEOX_LOG_RECORD_OVERHEAD + FEOX_LOG_SNAPSHOT_KEY)
#define FEOX_LOG_SNAPSHOT_TAG_BITS 16

/* The snapshot's hash of a key: XXH3-64's low 32 bits with the table's seed (FORMAT.md). A
 * key's first slot is hash × slots / 2^32 (its high bits), its tag the low 16 bits. */
uint32_t feox_log_snapshot_hash(const void *key, size_t key_len, uint64_t seed);
static inline uint64_t feox_log_snapshot_home(uint32_t hash, uint64_t slots)
{
    return (uint64_t)hash * slots >> 32;
}
static inline uint64_t feox_log_snapshot_tag(uint32_t hash)
{
    return hash & ((1u << FEOX_LOG_SNAPSHOT_TAG_BITS) - 1);
}
static inline uint64_t feox_log_snapshot_slot(uint64_t offset, uint32_t hash)
{
    return offset << FEOX_LOG_SNAPSHOT_TAG_BITS | feox_log_snapshot_tag(hash);
}

/* A decoded record; key and value point into the buffer it was decoded from. */
typedef struct feox_log_record {
    uint8_t op;
    uint32_t key_len, value_len, tag;
    uint64_t ts_ns, expires_at_ns;
    const uint8_t *key, *value;
    uint64_t offset; /* where the record starts in its file */
} feox_log_record;

/* Bytes a record with these lengths occupies in the file. */
static inline uint64_t feox_log_record_size(uint64_t key_len, uint64_t value_len)
{
    return FEOX_LOG_RECORD_OVERHEAD + key_len + value_len;
}

/* What a file header says. */
typedef struct feox_log_header {
    uint64_t file_id;
    uint64_t created_ns;
    uint64_t owner_hash; /* feox_owner_hash of the creating open's owner; 0 = none recorded */
} feox_log_header;

/* Write the 64-byte file header for a file with this id and owner hash into out. */
void feox_log_header_encode(uint8_t out[FEOX_LOG_HEADER_SIZE], uint64_t file_id,
                            uint64_t created_ns, uint64_t owner_hash);
/* Validate a file header of len bytes (the bytes the file has, up to the header size). FEOX_OK
 * with *out, or FORMAT ("'<path>' exists and is not a feox store", or an unknown version) /
 * CORRUPT (header checksum) with a detail naming path. */
feox_err feox_log_header_decode(const uint8_t *in, size_t len, const char *path,
                                feox_log_header *out);

/* Encode a record for file file_id at offset into out (feox_log_record_size bytes). */
void feox_log_record_encode(uint8_t *out, uint64_t file_id, uint64_t offset, uint8_t op,
                            const void *key, uint32_t key_len, const void *value,
                            uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                            uint64_t expires_at_ns);

/* The same for a record whose key and value are already in place at out + 40: writes the fixed
 * header and the trailing checksum around them (a large snapshot is built where it is written). */
void feox_log_record_seal(uint8_t *out, uint64_t file_id, uint64_t offset, uint8_t op,
                          uint32_t key_len, uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                          uint64_t expires_at_ns);

/* Re-seal the put or delete encoded at rec (for file file_id at offset) as a cancelled record
 * (op 5): same length, key, value and fields, new header check and checksum. Returns its size. */
uint64_t feox_log_record_cancel(uint8_t *rec, uint64_t file_id, uint64_t offset);

/* Check the fixed header at in (FEOX_LOG_RECORD_FIXED bytes available): magic, reserved bytes,
 * op, lengths within limits and the header check. On success *size is the whole record's size. */
bool feox_log_record_header_valid(const uint8_t *in, uint64_t file_id, uint64_t offset,
                                  uint64_t *size);
/* Check a whole record of size bytes (header already valid) and decode it into *out. */
bool feox_log_record_decode(const uint8_t *in, uint64_t size, uint64_t file_id, uint64_t offset,
                            feox_log_record *out);

/* A new id for a store file (the header's file_id, which binds records to their file): random,
 * never 0 and never old (pass 0 for a first file). */
uint64_t feox_log_new_file_id(uint64_t old);

#endif

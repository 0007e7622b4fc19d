/*
 * log_format.c — encoding and validation of the file header and log records (layout in
 * engine/storage/log/FORMAT.md). All integers are little-endian; checksums are XXH3-64.
 */
#include "storage/log/log_format.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/error.h"
#include "base/helpers.h"

static const uint8_t header_magic[8] = {'F', 'E', 'O', 'X', 'L', 'O', 'G', 0};

/* Binding the checksum to file id and offset makes a record image found anywhere else (inside a
 * value, in an older file, misplaced by the device) fail validation, which keeps resync safe. */
static uint64_t record_seed(uint64_t file_id, uint64_t offset)
{
    return file_id ^ offset;
}

void feox_log_header_encode(uint8_t out[FEOX_LOG_HEADER_SIZE], uint64_t file_id,
                            uint64_t created_ns, uint64_t owner_hash)
{
    memset(out, 0, FEOX_LOG_HEADER_SIZE);
    memcpy(out, header_magic, sizeof header_magic);
    feox_put_le32(out + 8, FEOX_LOG_FORMAT_VERSION);
    feox_put_le32(out + 12, FEOX_LOG_HEADER_SIZE);
    feox_put_le64(out + 16, file_id);
    feox_put_le64(out + 24, created_ns);
    feox_put_le64(out + 32, owner_hash);
    feox_put_le64(out + 56, XXH3_64bits(out, 56));
}

feox_err feox_log_header_decode(const uint8_t *in, size_t len, const char *path,
                                feox_log_header *out)
{
    /* Version 0 never existed: magic then zeros is not a header. */
    if (len < FEOX_LOG_HEADER_SIZE || memcmp(in, header_magic, sizeof header_magic) != 0 ||
        feox_get_le32(in + 8) == 0)
        return feox_fail(FEOX_ERR_FORMAT, "'%s' exists and is not a feox store", path);
    uint32_t version = feox_get_le32(in + 8);
    if (version != FEOX_LOG_FORMAT_VERSION)
        return feox_fail(FEOX_ERR_FORMAT,
                         "%s: feox file format version %u, this build reads version %u", path,
                         version, FEOX_LOG_FORMAT_VERSION);
    if (feox_get_le32(in + 12) != FEOX_LOG_HEADER_SIZE ||
        feox_get_le64(in + 56) != XXH3_64bits(in, 56))
        return feox_fail(FEOX_ERR_CORRUPT, "%s: file header checksum mismatch", path);
    out->file_id = feox_get_le64(in + 16);
    out->created_ns = feox_get_le64(in + 24);
    out->owner_hash = feox_get_le64(in + 32);
    return FEOX_OK;
}

uint64_t feox_owner_hash(const char *owner)
{
    if (!owner)
        return 0;
    uint64_t h = XXH3_64bits(owner, strlen(owner));
    return h ? h : 1;
}

void feox_log_record_seal(uint8_t *out, uint64_t file_id, uint64_t offset, uint8_t op,
                          uint32_t key_len, uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                          uint64_t expires_at_ns)
{
    uint64_t seed = record_seed(file_id, offset);
    feox_put_le32(out, FEOX_LOG_RECORD_MAGIC);
    out[4] = op;
    out[5] = out[6] = out[7] = 0;
    feox_put_le32(out + 8, key_len);
    feox_put_le32(out + 12, value_len);
    feox_put_le32(out + 16, tag);
    feox_put_le32(out + 20, (uint32_t)XXH3_64bits_withSeed(out, 20, seed));
    feox_put_le64(out + 24, ts_ns);
    feox_put_le64(out + 32, expires_at_ns);
    size_t body = FEOX_LOG_RECORD_FIXED + (size_t)key_len + value_len;
    feox_put_le64(out + body, XXH3_64bits_withSeed(out, body, seed));
}

void feox_log_record_encode(uint8_t *out, uint64_t file_id, uint64_t offset, uint8_t op,
                            const void *key, uint32_t key_len, const void *value,
                            uint32_t value_len, uint32_t tag, uint64_t ts_ns,
                            uint64_t expires_at_ns)
{
    memcpy(out + FEOX_LOG_RECORD_FIXED, key, key_len);
    if (value_len)
        memcpy(out + FEOX_LOG_RECORD_FIXED + key_len, value, value_len);
    feox_log_record_seal(out, file_id, offset, op, key_len, value_len, tag, ts_ns, expires_at_ns);
}

/* Lengths an op allows: a put's and a delete's key and value limits, a snapshot's 8-byte key and
 * table of whole slots, a footer's 8-byte key and no value. */
static bool lengths_valid(uint8_t op, uint32_t key_len, uint32_t value_len)
{
    switch (op) {
    case FEOX_LOG_PUT:
    case FEOX_LOG_CANCELLED: /* a cancelled put or delete keeps its lengths */
        return key_len != 0 && key_len <= FEOX_MAX_KEY_SIZE && value_len <= FEOX_MAX_VALUE_SIZE;
    case FEOX_LOG_DELETE: return key_len != 0 && key_len <= FEOX_MAX_KEY_SIZE && value_len == 0;
    case FEOX_LOG_SNAPSHOT: {
        uint64_t slots_bytes = (uint64_t)value_len - FEOX_LOG_SNAPSHOT_HEADER;
        return key_len == FEOX_LOG_SNAPSHOT_KEY &&
               value_len >= FEOX_LOG_SNAPSHOT_HEADER + FEOX_LOG_SNAPSHOT_MIN_SLOTS * 8u &&
               slots_bytes % 8 == 0 && slots_bytes / 8 <= FEOX_LOG_SNAPSHOT_MAX_SLOTS;
    }
    case FEOX_LOG_SNAPSHOT_FOOTER: return key_len == FEOX_LOG_SNAPSHOT_KEY && value_len == 0;
    default: return false;
    }
}

uint64_t feox_log_record_cancel(uint8_t *rec, uint64_t file_id, uint64_t offset)
{
    uint32_t key_len = feox_get_le32(rec + 8), value_len = feox_get_le32(rec + 12);
    feox_log_record_seal(rec, file_id, offset, FEOX_LOG_CANCELLED, key_len, value_len,
                         feox_get_le32(rec + 16), feox_get_le64(rec + 24), feox_get_le64(rec + 32));
    return feox_log_record_size(key_len, value_len);
}

uint32_t feox_log_snapshot_hash(const void *key, size_t key_len, uint64_t seed)
{
    return (uint32_t)XXH3_64bits_withSeed(key, key_len, seed);
}

bool feox_log_record_header_valid(const uint8_t *in, uint64_t file_id, uint64_t offset,
                                  uint64_t *size)
{
    if (feox_get_le32(in) != FEOX_LOG_RECORD_MAGIC || in[5] || in[6] || in[7])
        return false;
    uint8_t op = in[4];
    uint32_t key_len = feox_get_le32(in + 8), value_len = feox_get_le32(in + 12);
    if (!lengths_valid(op, key_len, value_len))
        return false;
    if (feox_get_le32(in + 20) !=
        (uint32_t)XXH3_64bits_withSeed(in, 20, record_seed(file_id, offset)))
        return false;
    *size = feox_log_record_size(key_len, value_len);
    return true;
}

bool feox_log_record_decode(const uint8_t *in, uint64_t size, uint64_t file_id, uint64_t offset,
                            feox_log_record *out)
{
    size_t body = (size_t)size - 8;
    if (feox_get_le64(in + body) != XXH3_64bits_withSeed(in, body, record_seed(file_id, offset)))
        return false;
    out->op = in[4];
    out->key_len = feox_get_le32(in + 8);
    out->value_len = feox_get_le32(in + 12);
    out->tag = feox_get_le32(in + 16);
    out->ts_ns = feox_get_le64(in + 24);
    out->expires_at_ns = feox_get_le64(in + 32);
    out->key = in + FEOX_LOG_RECORD_FIXED;
    out->value = out->key + out->key_len;
    out->offset = offset;
    return true;
}

uint64_t feox_log_new_file_id(uint64_t old)
{
    uint64_t id = 0;
    if (!feox_random_u64(&id))
        id = (feox_monotonic_ns() ^ ((uint64_t)getpid() << 32)) + old * 0x9E3779B97F4A7C15u;
    return id && id != old ? id : old + 1;
}

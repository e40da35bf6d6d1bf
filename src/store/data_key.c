/* data_key.c - the `data` column family's key: position | table | 0x00 | key. */
#include <string.h>

#include "ringkv/store.h"

#define POSITION_BYTES 8

/* The position leads and is big-endian so that byte order is ring order:
 * a ring range is then one contiguous RocksDB range scan. A table name must
 * be non-empty and NUL-free, so the first NUL after the position ends it.
 * The key may be empty: the kv layer enforces 1..1024 bytes, and an empty
 * key makes "position | table | 0x00" usable as a scan bound. */
/* The key's length, or 0 for names no key can be made of: an empty table,
 * one holding a NUL, a NULL key of non-zero length, a size_t overflow. */
static size_t data_key_length(const char *table, size_t table_len, const char *key, size_t key_len)
{
    if (table == NULL || table_len == 0 || memchr(table, '\0', table_len) != NULL)
        return 0;
    if (key == NULL && key_len != 0)
        return 0;
    size_t total = POSITION_BYTES + table_len + 1 + key_len;
    return total < table_len || total < key_len ? 0 : total;
}

rk_err store_data_key_write(uint64_t position, const char *table, size_t table_len, const char *key,
                            size_t key_len, char *out, size_t cap, size_t *out_len)
{
    size_t total = data_key_length(table, table_len, key, key_len);
    if (total == 0)
        return RK_EINVAL;
    if (total > cap)
        return RK_ETOOBIG;
    rk_store_be64(out, position);
    memcpy(out + POSITION_BYTES, table, table_len);
    out[POSITION_BYTES + table_len] = '\0';
    if (key_len != 0)
        memcpy(out + POSITION_BYTES + table_len + 1, key, key_len);
    *out_len = total;
    return RK_OK;
}

rk_err store_data_key(uint64_t position, const char *table, size_t table_len, const char *key,
                      size_t key_len, rk_buf *out)
{
    size_t total = data_key_length(table, table_len, key, key_len);
    if (total == 0)
        return RK_EINVAL; /* checked first: a refused key allocates nothing */
    /* Reserve once so that a failure leaves out untouched. */
    rk_err err = rk_buf_reserve(out, total);
    if (err != RK_OK)
        return err;
    size_t written = 0;
    err = store_data_key_write(position, table, table_len, key, key_len, out->data + out->len,
                               total, &written);
    if (err != RK_OK)
        return err;
    out->len += written;
    out->data[out->len] = '\0'; /* rk_buf keeps a NUL past len */
    return RK_OK;
}

/* The inverse of store_data_key; pointers point into dbkey. */
rk_err store_data_key_parse(const char *dbkey, size_t len, uint64_t *position, const char **table,
                            size_t *table_len, const char **key, size_t *key_len)
{
    /* Shortest valid key: position, a one-byte table, the NUL. */
    if (dbkey == NULL || len < POSITION_BYTES + 2)
        return RK_ECORRUPT;
    const char *t = dbkey + POSITION_BYTES;
    const char *nul = memchr(t, '\0', len - POSITION_BYTES);
    if (nul == NULL || nul == t)
        return RK_ECORRUPT;

    *position = rk_load_be64(dbkey);
    *table = t;
    *table_len = (size_t)(nul - t);
    *key = nul + 1;
    *key_len = len - POSITION_BYTES - *table_len - 1;
    return RK_OK;
}

/* names.c - which table names and keys are acceptable, and a record's
 * address (ring position and storage key), computed once per request. */
#include <string.h>

#include "ringkv/replica.h"
#include "ringkv/ring.h"

bool replica_table_valid(const char *table, size_t len)
{
    if (table == NULL || len == 0 || len > REPLICA_TABLE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = table[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool replica_table_reserved(const char *table, size_t len)
{
    return len > 0 && table[0] == '_';
}

bool replica_key_valid(const char *key, size_t len)
{
    return key != NULL && len >= 1 && len <= REPLICA_KEY_MAX && rk_utf8_valid(key, len);
}

rk_err replica_key_init(replica_key *out, const char *table, size_t table_len, const char *key,
                        size_t key_len)
{
    if (!replica_table_valid(table, table_len) || !replica_key_valid(key, key_len))
        return RK_EINVAL;
    out->table = table;
    out->table_len = table_len;
    out->key = key;
    out->key_len = key_len;
    out->position = ring_position(table, table_len, key, key_len);
    return store_data_key_write(out->position, table, table_len, key, key_len, out->dbkey,
                                sizeof out->dbkey, &out->dbkey_len);
}

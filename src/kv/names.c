/* names.c - which table names and keys are acceptable. */
#include "ringkv/kv.h"

bool kv_table_valid(const char *table, size_t len)
{
    if (len == 0 || len > KV_TABLE_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = table[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool kv_table_reserved(const char *table, size_t len)
{
    return len > 0 && table[0] == '_';
}

bool kv_key_valid(const char *key, size_t len)
{
    return len >= 1 && len <= KV_KEY_MAX && rk_utf8_valid(key, len);
}
